# -*- coding: utf-8 -*-
"""stackfit's sizing inputs: the options, their defaults and the per-process estimates, checked and
normalised by validate(); bad input raises SizingError naming the option and the value.

Pure functions, no Ansible imports; stackfit_sizing.plan() takes validate()'s result.
"""
from __future__ import annotations

import math
from fractions import Fraction

try:  # inside Ansible (AnsiballZ) and in tests through ansible.module_utils
    from .stackfit_common import MONITOR_INTERVAL_MAX, MONITOR_INTERVAL_MIN, human
    from .stackfit_units import _fail, _pct_text, parse_percent, parse_size
except ImportError:  # plain import with module_utils/ on sys.path
    from stackfit_common import MONITOR_INTERVAL_MAX, MONITOR_INTERVAL_MIN, human  # type: ignore[no-redef]
    from stackfit_units import (  # type: ignore[no-redef]
        _fail, _pct_text, parse_percent, parse_size)

SERVICES = ("web", "worker", "cache", "monitor")

# Per-process estimates (PSS) of the sample app (examples/synspirit) on Debian 12 / 2 cores; the
# measured stacks are in docs/benchmarks.md (make bench). A real app's own figures replace them
# through `estimates`.
DEFAULT_ESTIMATES = {
    # gunicorn gevent without --preload: (b)'s 3 workers measured 112.6 MiB idle: ~28 per process
    "gunicorn_master": "30mb",
    "gunicorn_worker": "30mb",
    "celery_base": "50mb",         # celery --pool=gevent idle: 37.8-39.7 MiB in (a)-(d), warm ~46
    "celery_task": "64kb",         # per running greenlet (1000 sleeping tasks added ~45 MiB)
    "redis_base": "12mb",          # redis-server: 5.2-5.5 MiB idle in (a)-(d), more with clients
    "redis_overhead": 1.2,         # RSS over maxmemory: allocator fragmentation and buffers
    "monitor": "30mb",             # one monitor run's peak RSS: 15-27 MiB measured (python + psutil)
}
# With --preload and gevent's monkey-patch in the master before fork: (c) and (d) measured
# 62 MiB idle for 3 workers; the worker sweep adds ~5-6 MiB idle and ~13 MiB under load per worker.
PRELOAD_ESTIMATES = {"gunicorn_master": "48mb", "gunicorn_worker": "12mb"}

DEFAULTS = {
    "services": list(SERVICES),
    "gunicorn_workers": "auto",
    "gunicorn_workers_per_cpu": None,
    "gunicorn_worker_class": "gevent",
    "gunicorn_preload": False,
    "gunicorn_worker_connections": 1000,
    "gunicorn_max_requests": 2000,
    "celery_concurrency": "auto",
    "celery_concurrency_per_cpu": 50,
    "celery_concurrency_max": 1000,
    "redis_memory_limit": "auto",
    "image_cache_quotas": {},
    # The app's image cache categories: the quotas must name exactly these (None: not checked).
    "image_cache_categories": None,
    # The host's /proc/sys/fs/nr_open: no LimitNOFILE above it (None: not known, not checked).
    "nofile_max": None,
    "monitor_interval": 600,
    "monitor_adaptive": False,
    "memory_budget": "50%",
    "estimates": {},
    "allow_overcommit": False,
    "services_left_out": {},
    "measured": {},
}

# Workers per CPU when gunicorn_workers_per_cpu is not given. Async workers (gevent & co.) each
# serve many connections: in docs/benchmarks.md's worker sweep on 2 cores, 3 gevent workers (1 per
# CPU + 1) served 97 % of the best req/s with the best req/s per 100 MiB, while 5 (the seed's
# CPU x 2 + 1) added 25 MiB under load for 1 % more. Sync workers keep the seed's factor 2.
ASYNC_WORKERS_PER_CPU = 1.0
SYNC_WORKERS_PER_CPU = 2.0
ASYNC_WORKER_CLASSES = ("gevent", "eventlet", "tornado", "uvicorn", "geventwebsocket")
# Gunicorn's own short names for worker classes.
GUNICORN_WORKER_CLASSES = ("sync", "gthread", "gevent", "eventlet", "tornado")
# Bounds of what a host can run: beyond them a value is a typo (an extra digit), not a plan.
MAXIMA = {"gunicorn_workers": 512, "celery_concurrency": 100000, "gunicorn_worker_connections": 100000}
# A size below this is surely a unit left out (REDIS_MEMORY_LIMIT=512 is 512 bytes).
MIN_SIZE_BYTES = 1024 * 1024

# Shares used by the "auto" rules; constants so that results only grow with CPUs and memory.
REDIS_AUTO_SHARE_SHARED = Fraction(1, 4)   # of the budget, when web/worker share the host
REDIS_AUTO_SHARE_ALONE = Fraction(3, 4)    # of the budget, on a cache-only host
CELERY_SHARE_WITH_WEB = Fraction(1, 10)    # of the elastic memory, for running tasks
MEMORY_HIGH_FACTOR = 1.5
MEMORY_MAX_FACTOR = 2.0
# With measurements: MemoryHigh is the measured upper bounds (p95 + margin, widened when samples
# are few), MemoryMax a quarter above it (between 1.2x and 2x the measured peak).
MEASURED_MAX_FACTOR = 1.25
# The estimate keys that measurements can replace, and the service whose processes they are.
MEASURED_KINDS = {"gunicorn_master": "web", "gunicorn_worker": "web", "celery_base": "worker",
                  "celery_task": "worker"}


def _bool(value, option):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    _fail(option, value, "is not true or false")


def _auto_or_positive_int(value, option):
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool):
        _fail(option, value, "must be 'auto' or a positive integer")
    try:
        number = int(str(value).strip())
    except ValueError:
        _fail(option, value, "must be 'auto' or a positive integer")
    if number <= 0:
        _fail(option, value, "must be 'auto' or a positive integer (above 0)")
    if number > MAXIMA[option]:
        _fail(option, value, "is over %d, more than any host runs" % MAXIMA[option])
    return number


def _positive_number(value, option, cast=float):
    try:
        number = cast(value)
    except (TypeError, ValueError):
        _fail(option, value, "is not a number")
    if isinstance(value, bool) or number <= 0 or not math.isfinite(number):
        _fail(option, value, "must be above 0")
    return number


def _quotas(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail("image_cache_quotas", value, "must be a mapping of category to fraction")
    quotas = {}
    for name, raw in value.items():
        option = "image_cache_quotas.%s" % name
        try:
            fraction = Fraction(str(raw).strip())
        except (ValueError, ZeroDivisionError):
            _fail(option, raw, "is not a number")
        if fraction <= 0:
            _fail(option, raw, "must be above 0")
        if fraction > 1:
            _fail(option, raw, "must be at most 1")
        quotas[str(name)] = fraction
    total = sum(quotas.values(), Fraction(0))
    if total > 1:
        _fail("image_cache_quotas", value, "sum to %s, over 1" % float(total))
    return quotas


def _categories(value, quotas):
    """The quotas name exactly the app's categories ``value`` (a list; None: not checked)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) and c.strip() for c in value):
        _fail("image_cache_categories", value, "must be a list of category names")
    categories = sorted({c.strip() for c in value})
    if not categories:
        return None
    import difflib
    for name in sorted(set(quotas) - set(categories)):
        close = difflib.get_close_matches(name, categories, n=1)
        _fail("image_cache_quotas.%s" % name, float(quotas[name]),
              "is not one of the app's image cache categories (%s)%s" % (
                  ", ".join(categories), "; did you mean %s?" % close[0] if close else ""))
    missing = [c for c in categories if c not in quotas]
    if missing:
        _fail("image_cache_quotas", sorted(quotas), "has no quota for %s (the app's image cache "
              "categories: %s; each needs one)" % (", ".join(missing), ", ".join(categories)))
    return categories


def _estimates(value, preload):
    value = value or {}
    if not isinstance(value, dict):
        _fail("estimates", value, "must be a mapping")
    unknown = sorted(set(value) - set(DEFAULT_ESTIMATES))
    if unknown:
        _fail("estimates", unknown, "are unknown (known: %s)" % ", ".join(sorted(DEFAULT_ESTIMATES)))
    merged = dict(DEFAULT_ESTIMATES)
    if preload:
        merged.update(PRELOAD_ESTIMATES)
    merged.update({k: v for k, v in value.items() if v is not None})
    result = {}
    for key, raw in merged.items():
        option = "estimates.%s" % key
        if key == "redis_overhead":
            result[key] = _positive_number(raw, option)
            if result[key] < 1:
                _fail(option, raw, "must be at least 1 (Redis never uses less than its maxmemory)")
        else:
            result[key] = parse_size(raw, option)
            if result[key] <= 0:
                _fail(option, raw, "must be above 0")
    return result


def validate(params):
    """Check and normalise every option; raise SizingError on the first bad one."""
    p = dict(DEFAULTS)
    p.update({k: v for k, v in params.items() if v is not None})
    unknown = sorted(set(params) - set(DEFAULTS) - {"cpus", "memory_bytes"})
    if unknown:
        _fail("options", unknown, "are unknown")
    out = {}
    out["cpus"] = _positive_number(params.get("cpus"), "cpus")
    memory = params.get("memory_bytes")
    out["memory_bytes"] = parse_size(memory, "memory_bytes") if memory is not None else 0
    if out["memory_bytes"] <= 0:
        _fail("memory_bytes", memory, "must be above 0")

    services = p["services"]
    if isinstance(services, str):
        services = [s.strip() for s in services.split(",") if s.strip()]
    for service in services:
        if service not in SERVICES:
            _fail("services", service, "is not a service (known: %s)" % ", ".join(SERVICES))
    out["services"] = [s for s in SERVICES if s in services]

    out["gunicorn_workers"] = _auto_or_positive_int(p["gunicorn_workers"], "gunicorn_workers")
    worker_class = str(p["gunicorn_worker_class"]).strip()
    if not worker_class:
        _fail("gunicorn_worker_class", p["gunicorn_worker_class"], "is empty")
    if "." not in worker_class and worker_class not in GUNICORN_WORKER_CLASSES:
        import difflib
        close = difflib.get_close_matches(worker_class, GUNICORN_WORKER_CLASSES, n=1)
        _fail("gunicorn_worker_class", worker_class, "is not one of Gunicorn's worker classes (%s)%s; "
              "another class is given by its module path (geventwebsocket.gunicorn.workers."
              "GeventWebSocketWorker), which the app's import check loads" % (
                  ", ".join(GUNICORN_WORKER_CLASSES), "; did you mean %s?" % close[0] if close else ""))
    out["gunicorn_worker_class"] = worker_class
    out["gunicorn_async"] = any(name in worker_class.lower() for name in ASYNC_WORKER_CLASSES)
    if p["gunicorn_workers_per_cpu"] in (None, "", "auto"):
        out["gunicorn_workers_per_cpu"] = (ASYNC_WORKERS_PER_CPU if out["gunicorn_async"]
                                           else SYNC_WORKERS_PER_CPU)
        out["gunicorn_workers_per_cpu_rule"] = "%s workers are %s" % (
            worker_class, "async: 1 per CPU (measured)" if out["gunicorn_async"]
            else "sync: the seed's 2 per CPU")
    else:
        out["gunicorn_workers_per_cpu"] = _positive_number(p["gunicorn_workers_per_cpu"],
                                                           "gunicorn_workers_per_cpu")
        out["gunicorn_workers_per_cpu_rule"] = "given"
    out["gunicorn_preload"] = bool(p["gunicorn_preload"])
    out["gunicorn_worker_connections"] = _positive_number(
        p["gunicorn_worker_connections"], "gunicorn_worker_connections", int)
    if out["gunicorn_worker_connections"] > MAXIMA["gunicorn_worker_connections"]:
        _fail("gunicorn_worker_connections", p["gunicorn_worker_connections"],
              "is over %d (its LimitNOFILE would pass the kernel's nr_open)" % MAXIMA["gunicorn_worker_connections"])
    max_requests = p["gunicorn_max_requests"]
    if isinstance(max_requests, bool) or not str(max_requests).strip().isdigit():
        _fail("gunicorn_max_requests", max_requests, "must be a whole number of requests (0: off)")
    out["gunicorn_max_requests"] = int(str(max_requests).strip())
    out["celery_concurrency"] = _auto_or_positive_int(p["celery_concurrency"], "celery_concurrency")
    out["celery_concurrency_per_cpu"] = _positive_number(p["celery_concurrency_per_cpu"],
                                                         "celery_concurrency_per_cpu")
    out["celery_concurrency_max"] = _positive_number(p["celery_concurrency_max"],
                                                     "celery_concurrency_max", int)

    redis = p["redis_memory_limit"]
    if isinstance(redis, str) and redis.strip().lower() == "auto":
        out["redis_memory_limit"] = ("auto", None)
    else:
        pct = parse_percent(redis, "redis_memory_limit")
        if pct is not None:
            out["redis_memory_limit"] = ("percent", pct)
        else:
            out["redis_memory_limit"] = ("size", parse_size(redis, "redis_memory_limit"))
        if (pct is not None and pct == 0) or out["redis_memory_limit"] == ("size", 0):
            _fail("redis_memory_limit", redis, "must be above 0 (0 means no limit to Redis)")
        if out["redis_memory_limit"][0] == "size" and out["redis_memory_limit"][1] < MIN_SIZE_BYTES:
            _fail("redis_memory_limit", redis, "is %d bytes, under 1 MiB: did you mean %smb?" % (
                out["redis_memory_limit"][1], str(redis).strip()))

    out["image_cache_quotas"] = _quotas(p["image_cache_quotas"])
    out["image_cache_categories"] = _categories(p["image_cache_categories"], out["image_cache_quotas"])
    out["nofile_max"] = (None if p["nofile_max"] is None
                         else _positive_number(p["nofile_max"], "nofile_max", int))

    try:
        interval = int(str(p["monitor_interval"]).strip())
    except ValueError:
        _fail("monitor_interval", p["monitor_interval"], "is not a whole number of seconds")
    if interval < MONITOR_INTERVAL_MIN:
        _fail("monitor_interval", p["monitor_interval"],
              "is under %d seconds" % MONITOR_INTERVAL_MIN)
    if interval > MONITOR_INTERVAL_MAX:
        _fail("monitor_interval", p["monitor_interval"],
              "is over %d seconds (a day): the leak watch and the adaptive policy would react days "
              "late" % MONITOR_INTERVAL_MAX)
    out["monitor_interval"] = interval
    out["monitor_adaptive"] = _bool(p["monitor_adaptive"], "monitor_adaptive")

    budget = p["memory_budget"]
    pct = parse_percent(budget, "memory_budget")
    if pct is not None:
        budget_bytes = int(pct * out["memory_bytes"])
        out["memory_budget_rule"] = "%s%% of memory %s" % (_pct_text(pct), human(out["memory_bytes"]))
    else:
        budget_bytes = parse_size(budget, "memory_budget")
        out["memory_budget_rule"] = "given as %s" % budget
        if budget_bytes < MIN_SIZE_BYTES:
            text = str(budget).strip()
            number = float(text) if text.replace(".", "", 1).isdigit() else None
            hint = None if number is None else ("%g%%" % (number * 100) if number < 1 else text + "mb")
            _fail("memory_budget", budget, "is %d bytes, under 1 MiB%s" % (
                budget_bytes, ": did you mean %s?" % hint if hint else ""))
        if budget_bytes > out["memory_bytes"]:
            _fail("memory_budget", budget, "is above the host's memory (%s)" % human(out["memory_bytes"]))
    if budget_bytes <= 0:
        _fail("memory_budget", budget, "must be above 0")
    out["budget_bytes"] = budget_bytes
    out["estimates"] = _estimates(p["estimates"], out["gunicorn_preload"])
    out["allow_overcommit"] = bool(p["allow_overcommit"])
    left_out = p["services_left_out"] or {}
    if not isinstance(left_out, dict) or any(s not in SERVICES or not isinstance(why, str)
                                             for s, why in left_out.items()):
        _fail("services_left_out", left_out, "must map a service (%s) to the reason it is not "
              "planned" % ", ".join(SERVICES))
    out["services_left_out"] = left_out
    measured = p["measured"] or {}
    if not isinstance(measured, dict) or any(
            kind not in MEASURED_KINDS or not isinstance(rec, dict)
            or not all(isinstance(rec.get(k), int) and rec[k] > 0 for k in ("value", "upper"))
            for kind, rec in measured.items()):
        _fail("measured", sorted(measured) if isinstance(measured, dict) else measured,
              "must map %s to recommendations (value, upper, why)" % ", ".join(MEASURED_KINDS))
    out["measured"] = measured
    out["estimates_given"] = dict(out["estimates"])
    for kind, rec in measured.items():
        out["estimates"][kind] = rec["value"]
    return out
