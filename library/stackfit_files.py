#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a role's directories, files and links in one call, only what differs written."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_files
short_description: Make a list of directories, files and links so, in one call
description:
  - Compares every item of O(files) with the host first, and refuses bad items before anything
    is written. Then only what differs is written, in the list's order; each file atomically (a
    temporary file beside it, then rename), and one with O(files[].validate) only once that
    command passed on its new content. As with one template task per file, the items before a
    file whose validate fails are written, it and those after it are not.
  - One module call for a role's files, where M(ansible.builtin.template) and
    M(ansible.builtin.file) take one or two each. Render the content on the controller with
    C(lookup('template', ...)) or C(lookup('file', ..., rstrip=false)).
  - Returns the paths that changed, so that handlers can be told which (C(changed_when) on
    RV(changed_paths)). Files with secrets go in a task of their own with C(no_log) and
    C(diff) off.
options:
  files:
    description: The items, made so in this order (a directory before what it holds).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The item's absolute path.
        type: path
        required: true
      state:
        description:
          - C(file) writes O(files[].content); C(link) makes a symbolic link to O(files[].src),
            replacing a file or link there; C(absent) removes a file, link or directory tree.
          - A directory is never replaced by a file or a link, nor the other way round.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The file's text (UTF-8), for C(file) only.
        type: str
      src:
        description: The link's target, for C(link) only.
        type: str
      owner:
        description: Its owner (a name or a number); left as it is when not given.
        type: str
      group:
        description: Its group (a name or a number); left as it is when not given.
        type: str
      mode:
        description:
          - Its mode as an octal string (C("0644")); a new file without it gets 0644.
          - A number is refused, since YAML reads an unquoted C(0644) as 420.
        type: raw
      validate:
        description: A command run on the new content before it is written, C(%s) standing for a
          temporary copy of it; the file is written only when it exits 0.
        type: str
  probe:
    description:
      - Paths to look at in the same round trip, after the items are made; RV(probed) tells what
        is at each, so that later tasks skip what is already done (a release already unpacked).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Reports what would change (and the diff) and writes nothing; validate does not run.
  diff_mode:
    support: full
author: stackfit developers (@stackfit)
"""

EXAMPLES = r"""
- name: Install the service's files
  stackfit_files:
    files:
      - {path: /opt/stackfit/bin, state: directory, owner: root, group: root, mode: "0755"}
      - path: /opt/stackfit/bin/start.sh
        content: "{{ lookup('template', 'start.sh.j2') }}"
        owner: root
        group: root
        mode: "0755"
      - {path: /opt/stackfit/bin/start_production.sh, state: link, src: start.sh}
  register: service_files
"""

RETURN = r"""
changed_paths:
  description: The items' paths that changed (or would, in check mode), in the list's order.
  returned: success
  type: list
  elements: str
probed:
  description: For each path of O(probe), null when nothing is there, otherwise its C(kind)
    (file, directory, link or other), a link's C(target) as written and its C(resolved) path.
  returned: success
  type: dict
  sample: {"/opt/stackfit/app": {"kind": "link", "target": "/opt/stackfit/releases/r1",
           "resolved": "/opt/stackfit/releases/r1"}, "/opt/stackfit/releases/r2": null}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackfit_files import STATES, converge, probe

ARGUMENT_SPEC = dict(
    probe=dict(type="list", elements="path", default=[]),
    files=dict(type="list", elements="dict", required=True, options=dict(
        path=dict(type="path", required=True),
        state=dict(type="str", choices=list(STATES), default="file"),
        content=dict(type="str"),
        src=dict(type="str"),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        validate=dict(type="str"),
    )),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        changed, diff = converge(module.params["files"], module.check_mode, module._diff)
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=bool(changed), changed_paths=changed, probed=probe(module.params["probe"]))
    if diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
