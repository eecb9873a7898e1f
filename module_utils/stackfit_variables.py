# -*- coding: utf-8 -*-
"""No silent acceptance of a misspelt variable: every variable a user can set with stackfit's
prefixes must be one the project declares (a role's argument_specs, the shared group_vars, the
playbooks' own), or the play fails naming it and the closest known names.

Pure functions; the stackfit_sizing module (on the controller) reads the declaration files.
"""
from __future__ import annotations

import difflib

PREFIXES = ("stackfit_", "app_", "gunicorn_", "celery_", "redis_", "monitor_", "lb_")
# Set at run time by the roles (facts), or by the playbooks for their own plays.
RUNTIME = ("stackfit_host", "stackfit_plan", "app_release_pending", "stackfit_purge",
           "stackfit_measure_seconds", "stackfit_measure_concurrency",
           "stackfit_measure_celery_probe")


def declared(specs, group_vars):
    """Every declared name: the options of each argument_specs document (parsed YAML) and the
    top-level keys of each group_vars document."""
    names = set(RUNTIME)
    for spec in specs:
        for entry in ((spec or {}).get("argument_specs") or {}).values():
            names.update((entry or {}).get("options") or {})
    for document in group_vars:
        names.update(document or {})
    return names


def unknown(seen, known):
    """(name, closest known names) for each prefixed name seen that is not declared, sorted."""
    out = []
    for name in sorted(set(seen)):
        if name.startswith(PREFIXES) and name not in known:
            out.append((name, difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.75)))
    return out


def message(found):
    """The error: each unknown variable with what it may have meant."""
    parts = []
    for name, close in found:
        parts.append("%s (did you mean %s?)" % (name, " or ".join(close)) if close
                     else "%s (no such setting)" % name)
    return ("unknown variables: %s. A typo would otherwise be ignored and change nothing, or "
            "the wrong thing; every setting is listed in roles/*/meta/argument_specs.yml and "
            "group_vars/all.yml." % "; ".join(parts))
