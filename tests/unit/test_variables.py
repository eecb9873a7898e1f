"""Unknown variables are errors (module_utils/stackfit_variables.py): a typo is named with the
closest known names, and the list of declaration files names every role."""
from __future__ import annotations

import yaml

import stackfit_variables as sv
from conftest import ROOT


def test_every_role_is_declared():
    listed = yaml.safe_load((ROOT / "roles/stackfit/vars/main.yml").read_text())["__stackfit_roles"]
    assert sorted(listed) == sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


def known():
    specs = [yaml.safe_load(p.read_text()) for p in (ROOT / "roles").glob("*/meta/argument_specs.yml")]
    return sv.declared(specs, [yaml.safe_load((ROOT / "group_vars/all.yml").read_text())])


def test_every_variable_the_profiles_set_is_declared():
    names = known()
    for profile in ("development", "production"):
        data = yaml.safe_load((ROOT / "group_vars" / ("%s.yml" % profile)).read_text())
        assert not sv.unknown(data, names), profile


def test_a_typo_is_named_with_what_was_meant():
    found = sv.unknown(["stackfit_gunicorn_worker", "stackfit_redis_memory_limt", "app_wgsi",
                        "stackfit_redis_memory", "vault_anything", "other_var"], known())
    assert dict(found) == {
        "app_wgsi": ["app_wsgi"],
        "stackfit_gunicorn_worker": ["stackfit_gunicorn_workers"] + dict(found)["stackfit_gunicorn_worker"][1:],
        "stackfit_redis_memory": dict(found)["stackfit_redis_memory"],
        "stackfit_redis_memory_limt": ["stackfit_redis_memory_limit"] + dict(found)["stackfit_redis_memory_limt"][1:],
    }
    assert "stackfit_redis_memory_limit" in dict(found)["stackfit_redis_memory"]
    text = sv.message(found)
    assert "stackfit_gunicorn_worker (did you mean stackfit_gunicorn_workers" in text
    assert "app_wgsi (did you mean app_wsgi?)" in text


def test_declared_names_and_runtime_ones_pass():
    names = known()
    assert not sv.unknown(["stackfit_plan", "stackfit_host", "app_release_pending", "stackfit_user",
                           "gunicorn_timeout", "monitor_policy", "lb_listen"], names)
