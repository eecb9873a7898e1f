"""Each role's meta/argument_specs.yml against its defaults/main.yml, as test_modules.py checks each
module's DOCUMENTATION against its argument_spec: the same variables, the same defaults (a
templated default documented by its template), every option described and typed, every name
prefixed with the role's."""
from __future__ import annotations

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from conftest import ROOT

ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "meta").is_dir())


def load(role, path):
    with open(ROOT / "roles" / role / path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def defaults(role):
    return load(role, "defaults/main.yml")


def entry_points(role):
    return load(role, "meta/argument_specs.yml")["argument_specs"]


def templated(value):
    return isinstance(value, str) and "{{" in value


def typed(value):
    """The value with the type YAML gave each part of it: `1`, `1.0` and `true` differ."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def options(role):
    """(entry point, option name, option) over every entry point of the role."""
    return [(entry, name, option) for entry, spec in entry_points(role).items()
            for name, option in (spec.get("options") or {}).items()]


def test_every_role_has_defaults_and_a_main_entry_point():
    assert ROLES == ["app", "celery", "gunicorn", "lb", "monitor", "redis", "stackfit"]
    for role in ROLES:
        assert defaults(role), role
        assert "main" in entry_points(role), role


def _role_imports(node):
    """(role, tasks_from) of every import_role/include_role below a parsed playbook or task file."""
    if isinstance(node, list):
        return [found for item in node for found in _role_imports(item)]
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if key in ("ansible.builtin.import_role", "ansible.builtin.include_role") and isinstance(value, dict):
            found.append((value["name"], value.get("tasks_from", "main")))
        else:
            found.extend(_role_imports(value))
    return found


# Entry points without a spec, each with its reason. stackfit's plan_hosts plans every host in one
# step: its action checks each variable it reads against stackfit_sizing's argument spec itself,
# where a role spec would cost a task per host (about 85 ms a host, the 1,000-host plan's budget).
UNVALIDATED = {("stackfit", "plan_hosts")}


def test_every_entry_point_the_playbooks_use_has_a_spec():
    """Ansible validates a role's variables only for an entry point its argument_specs names."""
    used = {found for path in sorted((ROOT / "playbooks").rglob("*.yml"))
            for found in _role_imports(yaml.safe_load(path.read_text()))}
    assert ("stackfit", "host") in used and ("lb", "toggle") in used
    assert UNVALIDATED <= used, "stale exemptions: %s" % sorted(UNVALIDATED - used)
    missing = sorted((role, entry) for role, entry in used
                     if entry not in entry_points(role) and (role, entry) not in UNVALIDATED)
    assert not missing, "role entry points without a spec: %s" % missing


@pytest.mark.parametrize("role", ROLES)
def test_main_documents_every_default_and_nothing_else(role):
    documented = set(entry_points(role)["main"].get("options") or {})
    given = set(defaults(role))
    assert not given - documented, "role %s: defaults without a spec in main: %s" % (
        role, sorted(given - documented))
    assert not documented - given, "role %s: options of main without a default: %s" % (
        role, sorted(documented - given))


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_default_in_defaults(role):
    """Other entry points (lb's toggle, stackfit's host) document variables the role owns too."""
    given = defaults(role)
    missing = ["%s.%s" % (entry, name) for entry, name, _ in options(role) if name not in given]
    assert not missing, "role %s: options without a default in defaults/main.yml: %s" % (role, missing)


@pytest.mark.parametrize("role", ROLES)
def test_the_documented_default_is_the_default(role):
    """A literal default is documented as itself (with YAML's types); a templated one by its template."""
    given = defaults(role)
    wrong = []
    for entry, name, option in options(role):
        if name in given and typed(option.get("default")) != typed(given[name]):
            wrong.append("%s.%s: spec %r, defaults/main.yml %r%s" % (
                entry, name, option.get("default"), given[name],
                " (templated: the spec gives the template)" if templated(given[name]) else ""))
    assert not wrong, "role %s: %s" % (role, "; ".join(wrong))


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_description_and_a_type(role):
    bare = ["%s.%s" % (entry, name) for entry, name, option in options(role)
            if not option.get("description") or not option.get("type")]
    assert not bare, "role %s: options without a description or a type: %s" % (role, bare)
    for entry, spec in entry_points(role).items():
        assert spec.get("short_description"), "role %s: entry point %s" % (role, entry)


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_prefixed_with_the_role_name(role):
    """Defaults and options `<role>_`, internal values in vars/main.yml `__<role>_`."""
    names = set(defaults(role)) | {name for _, name, _ in options(role)}
    unprefixed = sorted(name for name in names if not name.startswith(role + "_"))
    internal = load(role, "vars/main.yml") if (ROOT / "roles" / role / "vars" / "main.yml").exists() else {}
    unprefixed += sorted(name for name in internal if not name.startswith("__%s_" % role))
    assert not unprefixed, "role %s: variables not prefixed %s_ (__%s_ in vars/): %s" % (
        role, role, role, unprefixed)


@pytest.mark.parametrize("role", ROLES)
def test_the_literal_defaults_pass_the_spec(role):
    """What validate_argument_spec checks when the role runs, for the defaults that need no template."""
    given = defaults(role)
    for entry, spec in entry_points(role).items():
        # Only the literal ones' specs: the validator would check a missing option's default too.
        literal = {name: option for name, option in (spec.get("options") or {}).items()
                   if name in given and not templated(given[name])}
        result = ArgumentSpecValidator(literal).validate({name: given[name] for name in literal})
        assert not result.error_messages, "role %s, entry point %s: %s" % (role, entry, result.error_messages)
