"""Build the collection stackfit.stackfit from this tree: `python -m tools.collection.build [OUT]`.

The tree stays the source (library/, module_utils/, roles/, playbooks/, group_vars/); this lays them
out as a collection under OUT/collection/ansible_collections/stackfit/stackfit and runs
`ansible-galaxy collection build` on it, which writes OUT/stackfit-stackfit-<version>.tar.gz:

  galaxy.yml, meta/runtime.yml, plugins/,  from tools/collection/ (the version is in galaxy.yml;
  tests/sanity/ignore-2.19.txt             each ignore entry gives its reason)
  plugins/modules/                         library/*.py, `ansible.module_utils.stackfit_*` imports
                                           rewritten to the collection's module_utils
  plugins/module_utils/                    module_utils/*.py (they import each other relatively)
  plugins/action/                          roles/*/action_plugins/*.py (a collection's roles hold no
                                           plugins of their own)
  roles/                                   roles/, symlinks replaced by the files they name
  playbooks/                               playbooks/ and site.yml (stackfit.stackfit.site)
  group_vars/                              the profiles, read by the stackfit.stackfit.profiles vars
                                           plugin and by the stackfit role's variable check
  examples/synspirit/                      the sample app, the app role's default app_source
  README.md, CHANGELOG.md
"""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "tools" / "collection"
MODULE_UTILS_IMPORT = re.compile(r"\bansible\.module_utils\.(stackfit_\w+)")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def version():
    return str(yaml.safe_load((HERE / "galaxy.yml").read_text())["version"])


def module_source(text):
    """A module of library/ as the collection holds it: its stackfit module_utils by FQCN."""
    return MODULE_UTILS_IMPORT.sub(r"ansible_collections.stackfit.stackfit.plugins.module_utils.\1", text)


def site_playbook(text):
    """site.yml as a playbook of the collection: it sits beside the playbooks it imports."""
    return re.sub(r"(import_playbook:\s*)playbooks/", r"\1", text)


def stage(dest):
    """Lay the collection out under dest (emptied first)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("galaxy.yml", "CHANGELOG.md"):
        shutil.copy2(HERE / name, dest / name)
    shutil.copytree(HERE / "meta", dest / "meta")
    shutil.copytree(HERE / "plugins", dest / "plugins", ignore=IGNORE)
    shutil.copytree(HERE / "tests", dest / "tests")
    shutil.copy2(ROOT / "README.md", dest / "README.md")
    (dest / "plugins" / "modules").mkdir()
    for path in sorted((ROOT / "library").glob("*.py")):
        (dest / "plugins" / "modules" / path.name).write_text(module_source(path.read_text()))
    shutil.copytree(ROOT / "module_utils", dest / "plugins" / "module_utils", ignore=IGNORE)
    shutil.copytree(ROOT / "roles", dest / "roles", symlinks=False, ignore=IGNORE)
    (dest / "plugins" / "action").mkdir()
    for path in sorted(dest.glob("roles/*/action_plugins")):
        for plugin in sorted(path.glob("*.py")):
            plugin.rename(dest / "plugins" / "action" / plugin.name)
        shutil.rmtree(path)
    shutil.copytree(ROOT / "playbooks", dest / "playbooks", ignore=IGNORE)
    (dest / "playbooks" / "site.yml").write_text(site_playbook((ROOT / "site.yml").read_text()))
    shutil.copytree(ROOT / "group_vars", dest / "group_vars")
    shutil.copytree(ROOT / "examples" / "synspirit", dest / "examples" / "synspirit", ignore=IGNORE)
    return dest


def build(out):
    out = pathlib.Path(out).resolve()
    dest = stage(out / "collection" / "ansible_collections" / "stackfit" / "stackfit")
    galaxy = pathlib.Path(sys.executable).with_name("ansible-galaxy")  # the venv's, beside its python
    subprocess.run([str(galaxy) if galaxy.exists() else "ansible-galaxy", "collection", "build", "--force", "--output-path", str(out), str(dest)],
                   check=True, stdout=subprocess.DEVNULL)
    tarball = out / ("stackfit-stackfit-%s.tar.gz" % version())
    print(tarball)
    return tarball


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build")
