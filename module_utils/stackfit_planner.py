# -*- coding: utf-8 -*-
"""One host's plan from its variables: what the stackfit_sizing module and the stackfit_plan action
(every host of a play in one step, on the controller) both compute.

No Ansible imports (read_declarations() reads YAML files): ``sizing_args()`` turns a host's variables into the module's options,
``host_plan()`` validated options into the plan (stackfit_sizing.plan() with the measured
evidence, the services' descriptions and their unit limits).
"""
from __future__ import annotations

import math

try:  # inside Ansible (AnsiballZ) and in tests through ansible.module_utils
    from .stackfit_measurements import SERVICE_OF, events, evidence, normalise, series
    from .stackfit_recommend import recommend
    from .stackfit_services import DEFAULT_SETTINGS, ServiceError, describe, parse_bind
    from .stackfit_sizing import MEASURED_KINDS, SERVICES, SizingError, plan
    from .stackfit_variables import declared, message, unknown
except ImportError:  # plain import with module_utils/ on sys.path
    from stackfit_measurements import SERVICE_OF, events, evidence, normalise, series  # type: ignore[no-redef]
    from stackfit_recommend import recommend  # type: ignore[no-redef]
    from stackfit_services import DEFAULT_SETTINGS, ServiceError, describe, parse_bind  # type: ignore[no-redef]
    from stackfit_sizing import MEASURED_KINDS, SERVICES, SizingError, plan  # type: ignore[no-redef]
    from stackfit_variables import declared, message, unknown  # type: ignore[no-redef]


class PlanError(Exception):
    """A host that cannot be planned; the message names the option (and the variable) and the value."""


ESTIMATE_OPTIONS = dict(
    gunicorn_master=dict(type="raw"),
    gunicorn_worker=dict(type="raw"),
    celery_base=dict(type="raw"),
    celery_task=dict(type="raw"),
    redis_base=dict(type="raw"),
    redis_overhead=dict(type="float"),
    monitor=dict(type="raw"),
)

ARGUMENT_SPEC = dict(
    cpus=dict(type="float", required=True),
    memory_bytes=dict(type="raw", required=True),
    services=dict(type="list", elements="str", choices=list(SERVICES), default=list(SERVICES)),
    gunicorn_workers=dict(type="raw", default="auto"),
    gunicorn_workers_per_cpu=dict(type="float"),
    gunicorn_worker_class=dict(type="str", default="gevent"),
    gunicorn_preload=dict(type="bool", default=False),
    gunicorn_worker_connections=dict(type="int", default=1000),
    gunicorn_max_requests=dict(type="int", default=2000),
    celery_concurrency=dict(type="raw", default="auto"),
    celery_concurrency_per_cpu=dict(type="float", default=50),
    celery_concurrency_max=dict(type="int", default=1000),
    redis_memory_limit=dict(type="raw", default="auto"),
    image_cache_quotas=dict(type="dict", default={}),
    image_cache_categories=dict(type="list", elements="str"),
    nofile_max=dict(type="int"),
    monitor_interval=dict(type="int", default=600),
    monitor_adaptive=dict(type="bool", default=False),
    memory_budget=dict(type="raw", default="50%"),
    estimates=dict(type="dict", default={}, options=ESTIMATE_OPTIONS),
    allow_overcommit=dict(type="bool", default=False),
    measurements=dict(type="dict", default={}),
    variables=dict(type="list", elements="str", default=[]),
    declarations=dict(type="list", elements="path", default=[]),
    previous=dict(type="dict", default={}),
    services_left_out=dict(type="dict", default={}),
    service_manager=dict(type="str", default="none"),
    environment=dict(type="str", choices=["development", "production"], default="development"),
    layout=dict(type="dict", default={}),
    service_settings=dict(type="dict", default={}),
)
# Options about how the services run, not about their sizes: describe() takes them.
CONTROL_OPTIONS = ("service_manager", "environment", "layout", "service_settings",
                   "measurements", "previous", "variables", "declarations")


# The environment variables of the profiles (as in the seed) behind some options.
ENVIRONMENT_OVERRIDES = {"gunicorn_workers": "GUNICORN_WORKERS", "celery_concurrency": "CELERY_CONCURRENCY",
                         "redis_memory_limit": "REDIS_MEMORY_LIMIT",
                         "monitor_interval": "MEMORY_MONITOR_INTERVAL"}


def where_set(text):
    """Which variable the user set for the option an error names (its first word)."""
    option = text.split(":", 1)[0].split(".", 1)[0].strip()
    if option not in ARGUMENT_SPEC or option in ("cpus", "memory_bytes"):
        return ""
    env = ENVIRONMENT_OVERRIDES.get(option)
    return " (set by stackfit_%s%s)" % (option, ", or the environment's %s" % env if env else "")


# The options that come from the variable of the same name with the prefix stackfit_.
SIZING_VARIABLES = ("services", "gunicorn_workers", "gunicorn_workers_per_cpu", "gunicorn_worker_class",
                    "gunicorn_preload", "gunicorn_worker_connections", "gunicorn_max_requests",
                    "celery_concurrency", "redis_memory_limit", "image_cache_quotas",
                    "image_cache_categories", "monitor_interval", "monitor_adaptive", "memory_budget",
                    "estimates", "allow_overcommit", "environment")
LAYOUT = ("prefix", "bin_dir", "config_dir", "log_dir", "state_dir", "run_dir", "data_dir")
SERVICE_SETTINGS = ("gunicorn_bind", "gunicorn_graceful_timeout", "celery_task_time_limit", "redis_port")
PROFILES = ("development", "production")
# The prefixes of the variables a user can set (stackfit_variables checks each is declared).
VARIABLE_PREFIXES = ("stackfit_", "app_", "gunicorn_", "celery_", "redis_", "monitor_", "lb_")


def assumed_host(cpus, memory):
    """The description of a hypothetical host (stackfit_assume_cpus, stackfit_assume_memory), or
    None when neither is given."""
    cpus, memory = ("" if cpus is None else str(cpus)).strip(), ("" if memory is None else str(memory)).strip()
    if not cpus and not memory:
        return None
    try:
        count = float(cpus)
    except ValueError:
        count = 0.0
    if not (math.isfinite(count) and count > 0) or not memory:
        raise PlanError("stackfit_assume_cpus (%s) must be a number of CPUs above 0 (8, 1.5) and "
                        "stackfit_assume_memory (%s) a size (16gb): give both to plan a hypothetical "
                        "host" % (cpus, memory))
    return {"cpus": count, "memory_bytes": memory, "service_manager": "none", "assumed": True}


def check_profile(host, group_names, environment):
    """A host takes its sizes from exactly one profile group, whose file names it."""
    groups = [g for g in group_names if g in PROFILES]
    if len(groups) != 1 or environment not in group_names:
        raise PlanError(
            "%s must be in exactly one profile group, development or production (its groups: %s), "
            "and that profile (group_vars/<profile>.yml; for an inventory of your own, the "
            "collection's vars plugin stackfit.stackfit.profiles) must set stackfit_environment to "
            "its name (it is '%s'): an empty or missing profile would plan the host with the roles' "
            "defaults." % (host, ", ".join(group_names) or "none", environment))


def sizing_args(get, names, host_facts, group_names, declarations):
    """The stackfit_sizing options of a host: get(name) gives the value of one of its variables
    (templated), names are all its variable names, host_facts is stackfit_host."""
    args = {name: get("stackfit_" + name) for name in SIZING_VARIABLES}
    if args["gunicorn_workers_per_cpu"] in ("", None):
        del args["gunicorn_workers_per_cpu"]
    state = host_facts.get("state") or {}
    args.update(
        cpus=host_facts.get("cpus"), memory_bytes=host_facts.get("memory_bytes"),
        service_manager=host_facts.get("service_manager", "none"),
        measurements=state.get("measurements") or {},
        previous=(state.get("plan") or {}).get("measured") or {},
        variables=sorted(n for n in names if n.startswith(VARIABLE_PREFIXES)),
        declarations=list(declarations),
        services_left_out=({"worker": "the app has no Celery app (app_celery is empty)"}
                           if "worker" in group_names and "worker" not in args["services"] else {}),
        layout={key: get("stackfit_" + key) for key in LAYOUT},
        service_settings={key: get("stackfit_" + key) for key in SERVICE_SETTINGS})
    if host_facts.get("nr_open"):
        args["nofile_max"] = host_facts["nr_open"]
    return args


def read_declarations(files):
    """The declaration files (argument_specs and group_vars), parsed."""
    import yaml
    documents = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                documents.append(yaml.safe_load(handle))
        except (OSError, yaml.YAMLError) as exc:
            raise PlanError("stackfit_sizing: declarations: cannot read %s: %s" % (path, exc))
    return documents


def undeclared(seen, documents):
    """The error for prefixed variables that no declaration (parsed argument_specs and group_vars
    files) names, or None."""
    specs = [d for d in documents if "argument_specs" in (d or {})]
    group_vars = [d for d in documents if "argument_specs" not in (d or {})]
    found = unknown(seen, declared(specs, group_vars))
    return (message(found), [n for n, _why in found]) if found else None


def host_plan(params, now):
    """The plan of one host from its validated stackfit_sizing options (raises PlanError)."""
    params = dict(params)
    control = {key: params.pop(key) for key in CONTROL_OPTIONS}
    manager = "systemd" if control["service_manager"] == "systemd" else "script"
    store, _dropped = normalise(control["measurements"] or None)
    params["measured"] = {}
    for kind in MEASURED_KINDS:
        enough, _why = evidence(store, kind, now)
        previous = (control["previous"] or {}).get(kind)
        previous = previous if isinstance(previous, dict) else {}
        rec = recommend(series(store, kind), now, events(store, [SERVICE_OF[kind]]),
                        previous.get("value") if isinstance(previous.get("value"), int) else None
                        ) if enough else None
        if rec:
            # The limit too holds still: the running upper bound stays while the new one is
            # within a tenth of it (a unit's MemoryHigh would otherwise move with every sample).
            upper = previous.get("upper")
            if isinstance(upper, int) and rec["value"] <= upper and abs(upper - rec["upper"]) <= rec["upper"] // 10:
                rec["upper"] = upper
            params["measured"][kind] = rec
    try:
        result = plan(params)
        settings = dict(control["service_settings"] or {}, gunicorn_workers=result["gunicorn_workers"])
        units = describe(result["services"], manager, control["layout"], settings,
                         control["environment"])
        for name, watched in units.get("monitor", {}).get("watch", {}).items():
            # The monitor reports each service's headroom to its unit's MemoryHigh.
            service = {"gunicorn": "web", "celery": "worker", "redis": "cache"}[name]
            watched["memory_high"] = result["unit_limits"][service]["memory_high_bytes"]
        result.update(environment=control["environment"], manager=manager, units=units,
                      stop_order=list(units),
                      gunicorn_port=parse_bind((control["service_settings"] or {}).get(
                          "gunicorn_bind", DEFAULT_SETTINGS["gunicorn_bind"]))[1])
    except (SizingError, ServiceError) as exc:
        raise PlanError("stackfit_sizing: %s%s" % (exc, where_set(str(exc))))
    return result
