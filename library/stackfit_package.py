#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a Python package directory as one reproducible zip file (run on the controller)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_package
short_description: Pack a Python package directory into one reproducible zip file
description:
  - Packs the C(.py) files of the package directory O(src) (symlinks followed, C(__pycache__) and
    anything else left out) into the zip file O(dest) under the package's own name, so that Python
    imports the package from the zip once the zip is on C(sys.path) (zipimport).
  - The same files give the same bytes (sorted names, a fixed date, mode 0644, one compression
    level). Copying the zip to a host changes nothing when no file changed, in one file transfer
    instead of one per file.
  - O(dest) is replaced atomically and only when its bytes differ, so that two runs that pack at
    once from one checkout do not see a half-written zip.
  - Meant to run on the controller (delegated to localhost, with check mode off), since the zip
    is a build product beside the repository, and the copy task after it tells what would change.
options:
  src:
    description: The package directory (it has an C(__init__.py)).
    type: path
    required: true
  dest:
    description: The zip file to write; its directory is made when missing.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Reports whether O(dest) would change and writes nothing.
  diff_mode:
    support: none
author: stackfit developers (@stackfit)
"""

EXAMPLES = r"""
- name: Pack the monitor package on the controller
  stackfit_package:
    src: "{{ role_path }}/files/stackfit_monitor"
    dest: "{{ playbook_dir }}/build/stackfit_monitor.zip"
  delegate_to: localhost
  run_once: true
  check_mode: false
"""

RETURN = r"""
files:
  description: The package's files in the zip, by their names in it.
  returned: success
  type: list
  elements: str
sha1:
  description: The zip's SHA-1, as ansible.builtin.copy compares it.
  returned: success
  type: str
"""

import hashlib
import io
import os
import tempfile
import zipfile

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="path", required=True),
)

# zipfile's earliest date: the zip records no time of this build.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def package_zip(src):
    """(zip bytes, names) of the package directory ``src``: its .py files, sorted, at a fixed date."""
    src = os.path.abspath(src)
    if not os.path.isfile(os.path.join(src, "__init__.py")):
        raise ValueError("src: %r is not a Python package (no __init__.py)" % src)
    package = os.path.basename(src)
    names = []
    for folder, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(folder, src)
        for name in sorted(files):
            if name.endswith(".py"):
                names.append(os.path.normpath(os.path.join(package, rel, name)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(names):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(os.path.dirname(src), name), "rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=9)
    return buffer.getvalue(), sorted(names)


def write_if_changed(dest, data):
    """Replace ``dest`` by ``data`` atomically when its bytes differ; True when it did."""
    try:
        with open(dest, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(dest))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        data, names = package_zip(module.params["src"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="stackfit_package: %s" % exc)
    dest = module.params["dest"]
    if module.check_mode:
        try:
            with open(dest, "rb") as handle:
                changed = handle.read() != data
        except FileNotFoundError:
            changed = True
    else:
        try:
            changed = write_if_changed(dest, data)
        except OSError as exc:
            module.fail_json(msg="stackfit_package: dest: %r: %s" % (dest, exc))
    module.exit_json(changed=changed, files=names, sha1=hashlib.sha1(data).hexdigest())


if __name__ == "__main__":
    main()
