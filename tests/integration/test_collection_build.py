"""The collection built from this tree (tools/collection/build.py), installed with ansible-galaxy
into an empty path: what it holds, and its vars plugin giving a user's inventory the profiles
beneath the user's own group_vars. No host is touched (ansible-inventory only)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from tools.collection import build  # noqa: E402

BIN = os.path.dirname(sys.executable)
CFG = """[defaults]
collections_path = {collections}
vars_plugins_enabled = host_group_vars,stackfit.stackfit.profiles
"""
INVENTORY = """all:
  children:
    development: {hosts: {laptop: }}
    production: {hosts: {server: }}
    web: {hosts: {laptop: , server: }}
"""


def clean_env(cfg):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(cfg), PATH=BIN + os.pathsep + env["PATH"])
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("collection")
    tarball = build.build(base / "dist")
    collections = base / "collections"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", str(collections),
                    str(tarball)], env=clean_env(base / "none.cfg"), check=True, capture_output=True, timeout=300)
    return tarball, collections


def test_the_tarball_is_named_and_versioned_from_galaxy_yml(installed):
    tarball, collections = installed
    version = yaml.safe_load((ROOT / "tools/collection/galaxy.yml").read_text())["version"]
    assert tarball.name == "stackfit-stackfit-%s.tar.gz" % version
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
        names = set(archive.getnames())
        assert not [m.name for m in archive.getmembers() if m.issym() or m.islnk()]
    assert manifest["collection_info"]["version"] == version
    for module in sorted((ROOT / "library").glob("*.py")):
        assert "plugins/modules/" + module.name in names
    for util in sorted((ROOT / "module_utils").glob("*.py")):
        assert "plugins/module_utils/" + util.name in names
    for role in sorted(p.name for p in (ROOT / "roles").iterdir()):
        assert "roles/%s/tasks/main.yml" % role in names
    # A collection's roles hold no plugins: the actions move to plugins/action/.
    for action in sorted((ROOT / "roles").glob("*/action_plugins/*.py")):
        assert "plugins/action/" + action.name in names
    assert not [n for n in names if "/action_plugins" in n]
    assert {"meta/runtime.yml", "playbooks/site.yml", "plugins/vars/profiles.py", "group_vars/production.yml",
            "tests/sanity/ignore-2.19.txt", "CHANGELOG.md", "README.md"} <= names


def test_modules_import_their_module_utils_by_the_collections_name(installed):
    _, collections = installed
    modules = collections / "ansible_collections/stackfit/stackfit/plugins/modules"
    for path in sorted(modules.glob("*.py")):
        text = path.read_text()
        assert "ansible.module_utils.stackfit_" not in text, path.name
    sizing = (modules / "stackfit_sizing.py").read_text()
    assert "from ansible_collections.stackfit.stackfit.plugins.module_utils.stackfit_planner import" in sizing
    assert build.module_source("from ansible.module_utils.stackfit_units import x\n"
                               "from ansible.module_utils.basic import AnsibleModule\n") == (
        "from ansible_collections.stackfit.stackfit.plugins.module_utils.stackfit_units import x\n"
        "from ansible.module_utils.basic import AnsibleModule\n")
    assert build.site_playbook("- ansible.builtin.import_playbook: playbooks/stack.yml\n") == (
        "- ansible.builtin.import_playbook: stack.yml\n")


def host_vars(project, host):
    out = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", "hosts.yml", "--host", host],
                         cwd=project, env=clean_env(project / "ansible.cfg"), capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


def test_the_vars_plugin_gives_each_profile_beneath_the_users_own_group_vars(installed, tmp_path):
    _, collections = installed
    (tmp_path / "ansible.cfg").write_text(CFG.format(collections=collections))
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    laptop, server = host_vars(tmp_path, "laptop"), host_vars(tmp_path, "server")
    assert (laptop["stackfit_environment"], server["stackfit_environment"]) == ("development", "production")
    assert (laptop["stackfit_memory_budget"], server["stackfit_memory_budget"]) == ("25%", "75%")
    assert laptop["stackfit_user"] == server["stackfit_user"] == "stackfit"  # group all: the shared settings
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "development.yml").write_text("stackfit_memory_budget: 10%\n")
    (tmp_path / "group_vars" / "all.yml").write_text("stackfit_log_dir: /srv/log/stackfit\n")
    laptop, server = host_vars(tmp_path, "laptop"), host_vars(tmp_path, "server")
    assert laptop["stackfit_memory_budget"] == "10%" and server["stackfit_memory_budget"] == "75%"
    assert laptop["stackfit_log_dir"] == server["stackfit_log_dir"] == "/srv/log/stackfit"
    assert laptop["stackfit_environment"] == "development"


def test_without_the_vars_plugin_no_profile_reaches_the_inventory(installed, tmp_path):
    _, collections = installed
    (tmp_path / "ansible.cfg").write_text(CFG.format(collections=collections).replace(
        ",stackfit.stackfit.profiles", ""))
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    assert "stackfit_environment" not in host_vars(tmp_path, "laptop")


def test_without_the_vars_plugin_the_plan_is_refused_naming_the_plugin(installed, tmp_path):
    _, collections = installed
    (tmp_path / "ansible.cfg").write_text(CFG.format(collections=collections).replace(
        ",stackfit.stackfit.profiles", ""))
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    out = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "hosts.yml", "stackfit.stackfit.plan",
                          "-e", "stackfit_assume_cpus=2", "-e", "stackfit_assume_memory=4gb"], cwd=tmp_path,
                         env=clean_env(tmp_path / "ansible.cfg"), capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "stackfit.stackfit.profiles" in out.stdout and "(it is '')" in out.stdout, out.stdout[-3000:]
