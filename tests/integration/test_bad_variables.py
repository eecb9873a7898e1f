"""Typos and profile mistakes fail the play, naming the variable (playbooks/plan.yml on
hypothetical hosts: nothing is contacted or changed)."""
from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import ROOT
from test_plan import playbook

ASSUME = ("-e", "stackfit_assume_cpus=2", "-e", "stackfit_assume_memory=8gb")


@pytest.mark.parametrize("variable, meant", [
    ("stackfit_gunicorn_worker=8", "stackfit_gunicorn_workers"),
    ("stackfit_redis_memory=2gb", "stackfit_redis_memory_limit"),
    ("app_wgsi=x:y", "app_wsgi"),
    ("gunicorn_timout=10", "gunicorn_timeout"),
])
def test_a_misspelt_extra_var_fails_and_says_what_was_meant(variable, meant):
    out = playbook("playbooks/plan.yml", "-i", "inventories/dev", "-e", variable, *ASSUME)
    assert out.returncode != 0
    name = variable.split("=")[0]
    assert "unknown variables: %s (did you mean %s" % (name, meant) in out.stdout, out.stdout[-2000:]


def inventory(tmp_path, groups, profile_edit=None):
    """A copy of the dev inventory's group_vars (profile_edit changes development.yml) and one
    hypothetical host in ``groups``."""
    shutil.copytree(ROOT / "group_vars", tmp_path / "group_vars")
    if profile_edit:
        path = tmp_path / "group_vars" / "development.yml"
        path.write_text(profile_edit(path.read_text()))
    hosts = {"all": {"children": {g: {"hosts": {"host1.invalid": None}} for g in groups}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return str(tmp_path / "hosts.yml")


def test_a_misspelt_profile_key_fails(tmp_path):
    path = inventory(tmp_path, ["development", "web", "cache"],
                     lambda text: text.replace("stackfit_redis_memory_limit:", "stackfit_redis_memory_limt:"))
    out = playbook("playbooks/plan.yml", "-i", path, *ASSUME)
    assert out.returncode != 0
    assert "stackfit_redis_memory_limt (did you mean stackfit_redis_memory_limit" in out.stdout


@pytest.mark.parametrize("groups", [["prodution", "web"], ["development", "production", "web"]])
def test_a_host_in_no_or_two_profile_groups_fails(tmp_path, groups):
    out = playbook("playbooks/plan.yml", "-i", inventory(tmp_path, groups), *ASSUME)
    assert out.returncode != 0
    assert "must be in exactly one profile group" in out.stdout and "host1.invalid" in out.stdout


def test_an_empty_profile_file_fails(tmp_path):
    shutil.copytree(ROOT / "group_vars", tmp_path / "group_vars")
    (tmp_path / "group_vars" / "production.yml").write_text("---\n")
    hosts = {"all": {"children": {"production": {"hosts": {"host1.invalid": None}},
                                  "web": {"hosts": {"host1.invalid": None}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    out = playbook("playbooks/plan.yml", "-i", str(tmp_path / "hosts.yml"), *ASSUME)
    assert out.returncode != 0
    assert "must set stackfit_environment to its name (it is '')" in out.stdout


@pytest.mark.parametrize("edit, expected", [
    (lambda text: text.replace("  cover: 0.05\n", "  covr: 0.05\n"),
     "image_cache_quotas.covr: 0.05 is not one of the app's image cache categories"),
    (lambda text: text.replace("  general: 0.05\n", ""),
     "has no quota for general"),
])
def test_a_quota_for_a_misspelt_or_missing_category_fails(tmp_path, edit, expected):
    out = playbook("playbooks/plan.yml", "-i", inventory(tmp_path, ["development", "web", "cache"], edit),
                   *ASSUME)
    assert out.returncode != 0
    assert expected in " ".join(out.stdout.split()), out.stdout[-2000:]
