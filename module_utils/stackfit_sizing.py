# -*- coding: utf-8 -*-
"""stackfit's sizing rules: from CPUs, memory and a profile to every size of the stack.

Pure functions, no Ansible imports: plain pytest and hypothesis test this file. Every value comes
with the sentence that explains it (the pgtune model). Bad input raises SizingError naming the
option and the value; nothing is computed then (the inputs: stackfit_inputs).
"""
from __future__ import annotations

import math
from fractions import Fraction

try:  # inside Ansible (AnsiballZ) and in tests through ansible.module_utils
    from .stackfit_common import MIB, MONITOR_INTERVAL_MAX, MONITOR_INTERVAL_MIN, human
    from .stackfit_inputs import (
        ASYNC_WORKER_CLASSES, ASYNC_WORKERS_PER_CPU, CELERY_SHARE_WITH_WEB, DEFAULT_ESTIMATES,
        DEFAULTS, MEASURED_KINDS, MEASURED_MAX_FACTOR, MEMORY_HIGH_FACTOR, MEMORY_MAX_FACTOR,
        PRELOAD_ESTIMATES, REDIS_AUTO_SHARE_ALONE, REDIS_AUTO_SHARE_SHARED, SERVICES,
        SYNC_WORKERS_PER_CPU, validate)
    from .stackfit_monitor_plan import monitor_policy
    from .stackfit_units import SizingError, _pct_text, format_size, parse_percent, parse_size
except ImportError:  # plain import with module_utils/ on sys.path
    from stackfit_common import (  # type: ignore[no-redef]
        MIB, MONITOR_INTERVAL_MAX, MONITOR_INTERVAL_MIN, human)
    from stackfit_inputs import (  # type: ignore[no-redef]
        ASYNC_WORKER_CLASSES, ASYNC_WORKERS_PER_CPU, CELERY_SHARE_WITH_WEB, DEFAULT_ESTIMATES,
        DEFAULTS, MEASURED_KINDS, MEASURED_MAX_FACTOR, MEMORY_HIGH_FACTOR, MEMORY_MAX_FACTOR,
        PRELOAD_ESTIMATES, REDIS_AUTO_SHARE_ALONE, REDIS_AUTO_SHARE_SHARED, SERVICES,
        SYNC_WORKERS_PER_CPU, validate)
    from stackfit_monitor_plan import monitor_policy  # type: ignore[no-redef]
    from stackfit_units import (  # type: ignore[no-redef]
        SizingError, _pct_text, format_size, parse_percent, parse_size)

# Re-exported: callers (the modules, tests, molecule's checks) take them from here.
__all__ = ["ASYNC_WORKER_CLASSES", "ASYNC_WORKERS_PER_CPU", "DEFAULT_ESTIMATES", "DEFAULTS",
           "MEASURED_KINDS", "PRELOAD_ESTIMATES", "SERVICES", "SYNC_WORKERS_PER_CPU", "SizingError",
           "format_size", "parse_percent", "parse_size", "plan", "validate"]

AUTO_OPTIONS = ("gunicorn_workers", "celery_concurrency", "redis_memory_limit")


def plan(params):
    """Compute the plan. ``params`` are the module's options; see DEFAULTS for what may be left out.

    When the stack cannot fit with the values given, the error says whether it fits with the auto
    ones, with those values and the options to set."""
    try:
        return _plan(params)
    except SizingError as exc:
        given = [k for k in AUTO_OPTIONS if str(params.get(k, "auto")).strip().lower() != "auto"]
        if "hold the stack" not in str(exc) or not given:
            raise
        try:
            auto = _plan(dict(params, **{k: "auto" for k in given}))
        except SizingError:
            raise exc from None
        raise SizingError("%s. With %s auto it fits: gunicorn_workers %d, celery_concurrency %d, "
                          "redis_maxmemory %s (planned %s of %s): run with %s" % (
                              exc, ", ".join(given), auto["gunicorn_workers"],
                              auto["celery_concurrency"], auto["redis_maxmemory"],
                              human(auto["planned_bytes"]), human(auto["budget_bytes"]),
                              " ".join("-e stackfit_%s=auto" % k for k in given))) from None


def _plan(params):
    p = validate(params)
    est = p["estimates"]
    services = p["services"]
    web, worker, cache, monitor = (s in services for s in SERVICES)
    budget = p["budget_bytes"]
    cpus = p["cpus"]
    explain = ["memory_budget = %s (%s) for services %s." % (
        human(budget), p["memory_budget_rule"], ", ".join(services) or "none")]
    explain += ["%s: not planned: %s." % (service, why)
                for service, why in sorted(p["services_left_out"].items())]

    # Redis maxmemory: depends on memory only (never on CPUs), so the other values can grow freely.
    kind, value = p["redis_memory_limit"]
    if kind == "size":
        maxmemory = value
        explain.append("redis_maxmemory = %s: given." % format_size(maxmemory))
    elif kind == "percent":
        maxmemory = int(value * p["memory_bytes"])
        explain.append("redis_maxmemory = %s: %s%% of memory %s." % (
            format_size(maxmemory), _pct_text(value), human(p["memory_bytes"])))
    else:
        share = REDIS_AUTO_SHARE_SHARED if (web or worker) else REDIS_AUTO_SHARE_ALONE
        room = int(budget * share) - est["redis_base"]
        maxmemory = max(MIB, int(room / est["redis_overhead"]) // MIB * MIB)
        explain.append(
            "redis_maxmemory = %s: auto = (%s%% of the budget %s - Redis base %s) / overhead %.2f, "
            "rounded down to MiB%s." % (
                format_size(maxmemory), _pct_text(share), human(budget), human(est["redis_base"]),
                est["redis_overhead"], " (shared host)" if (web or worker) else " (cache-only host)"))

    redis_planned = est["redis_base"] + int(maxmemory * est["redis_overhead"]) if cache else 0
    fixed = {
        "web": est["gunicorn_master"] if web else 0,
        "worker": est["celery_base"] if worker else 0,
        "cache": redis_planned,
        "monitor": est["monitor"] if monitor else 0,
    }
    elastic = budget - sum(fixed.values())

    # Celery: greenlets cost little memory; the rule scales with CPUs, bounded by a max and a share
    # of the elastic memory. Its reservation depends on memory only, so workers stay monotone.
    concurrency = 0
    celery_reserve = 0
    if worker:
        celery_cap_bytes = max(0, elastic * CELERY_SHARE_WITH_WEB if web else elastic)
        if p["celery_concurrency"] == "auto":
            base = max(1, min(int(round(p["celery_concurrency_per_cpu"] * cpus)),
                              p["celery_concurrency_max"]))
            cap = int(celery_cap_bytes // est["celery_task"])
            concurrency = max(1, min(base, cap))
            celery_reserve = int(min(celery_cap_bytes,
                                     p["celery_concurrency_max"] * est["celery_task"]))
            line = ("celery_concurrency = %d: auto = %g per CPU x %g CPUs = %d (max %d)" % (
                concurrency, p["celery_concurrency_per_cpu"], cpus,
                int(round(p["celery_concurrency_per_cpu"] * cpus)), p["celery_concurrency_max"]))
            if cap < base:
                line += ", capped to %d by memory: %s for running tasks / %s per task" % (
                    cap, human(celery_cap_bytes), human(est["celery_task"]))
            explain.append(line + ".")
        else:
            concurrency = p["celery_concurrency"]
            celery_reserve = concurrency * est["celery_task"]
            explain.append("celery_concurrency = %d: given." % concurrency)

    # Gunicorn workers: the seed's CPU x 2 + 1, capped by what memory is left.
    workers = 0
    if web:
        worker_room = elastic - celery_reserve
        if p["gunicorn_workers"] == "auto":
            base = int(math.floor(p["gunicorn_workers_per_cpu"] * cpus + 1))
            cap = int(max(0, worker_room) // est["gunicorn_worker"])
            workers = max(1, min(base, cap))
            line = "gunicorn_workers = %d: auto = %g per CPU (%s) x %g CPUs + 1 = %d" % (
                workers, p["gunicorn_workers_per_cpu"], p["gunicorn_workers_per_cpu_rule"], cpus, base)
            if cap < base:
                line += ", capped to %d by memory: %s left / %s per worker" % (
                    max(cap, 1), human(max(0, worker_room)), human(est["gunicorn_worker"]))
            explain.append(line + ".")
        else:
            workers = p["gunicorn_workers"]
            explain.append("gunicorn_workers = %d: given." % workers)
        # Worker recycling (leaks): a worker is replaced after max_requests (+ jitter, so that
        # workers never recycle together). A single worker has nobody to cover for it, so its
        # replacement boots first (gunicorn.conf.py: TTIN, then TTOU retires the old one).
        max_requests = p["gunicorn_max_requests"]
        cover = workers < 2 and max_requests > 0
        if cover:
            explain.append("gunicorn_max_requests = %d (+ jitter %d), with cover: one worker, so "
                           "after that many requests it has the master boot a second one (TTIN) "
                           "and retires once that one has loaded the app (TTOU); a second "
                           "worker's PSS for a moment, within MemoryHigh." % (
                               max_requests, max_requests // 10))
        elif max_requests:
            explain.append("gunicorn_max_requests = %d (+ jitter %d): a worker is replaced after "
                           "that many requests, never all at once." % (
                               max_requests, max_requests // 10))
        else:
            explain.append("gunicorn_max_requests = 0: given, recycling off.")
    else:
        max_requests, cover = 0, False

    service_bytes = {
        "web": fixed["web"] + workers * est["gunicorn_worker"],
        "worker": fixed["worker"] + concurrency * est["celery_task"],
        "cache": fixed["cache"],
        "monitor": fixed["monitor"],
    }
    planned = sum(service_bytes.values())
    minimal = sum(fixed.values()) + (est["gunicorn_worker"] if web else 0) + (
        (concurrency if p["celery_concurrency"] != "auto" else 1) * est["celery_task"] if worker else 0)
    if minimal > budget and not p["allow_overcommit"]:
        raise SizingError(
            "memory_budget: %r (%s) cannot hold the stack even at one worker: it needs %s "
            "(gunicorn %s, celery %s, redis %s, monitor %s); raise memory_budget, lower "
            "redis_memory_limit, or set allow_overcommit: true" % (
                params.get("memory_budget", DEFAULTS["memory_budget"]), human(budget),
                human(minimal), human(fixed["web"] + (est["gunicorn_worker"] if web else 0)),
                human(service_bytes["worker"]), human(fixed["cache"]), human(fixed["monitor"])))
    fits = planned <= budget
    if not fits and not p["allow_overcommit"]:
        raise SizingError(
            "memory_budget: %r (%s) does not hold the stack as given: planned %s (gunicorn %s, "
            "celery %s, redis %s, monitor %s) is %s over it; lower the given values, raise "
            "memory_budget, or set allow_overcommit: true" % (
                params.get("memory_budget", DEFAULTS["memory_budget"]), human(budget),
                human(planned), human(service_bytes["web"]), human(service_bytes["worker"]),
                human(service_bytes["cache"]), human(service_bytes["monitor"]),
                human(planned - budget)))

    for name in SERVICES:
        if name in services:
            explain.append("planned %s = %s (%s)." % (name, human(service_bytes[name]), {
                "web": "master %s + %d workers x %s" % (
                    human(est["gunicorn_master"]), workers, human(est["gunicorn_worker"])),
                "worker": "base %s + %d tasks x %s" % (
                    human(est["celery_base"]), concurrency, human(est["celery_task"])),
                "cache": "base %s + maxmemory %s x %.2f" % (human(est["redis_base"]),
                                                            format_size(maxmemory),
                                                            est["redis_overhead"]),
                "monitor": "one run's peak",
            }[name]))
    if fits:
        explain.append("fits: planned %s <= budget %s (%d%% used)." % (
            human(planned), human(budget), round(100 * planned / budget)))
    else:
        explain.append("does not fit: planned %s > budget %s by %s%s." % (
            human(planned), human(budget), human(planned - budget),
            "; allow_overcommit is true"))

    quota_bytes = {name: int(fraction * maxmemory) for name, fraction in
                   p["image_cache_quotas"].items()}
    if quota_bytes:
        total = sum(p["image_cache_quotas"].values(), Fraction(0))
        explain.append("image_cache_quota_bytes: each quota x redis_maxmemory %s; the quotas sum to "
                       "%s%%, %s for image caches in all." % (
                           format_size(maxmemory), _pct_text(total), human(sum(quota_bytes.values()))))
    explain.append("monitor_interval = %ds: given (%d s to %d s)." % (
        p["monitor_interval"], MONITOR_INTERVAL_MIN, MONITOR_INTERVAL_MAX))

    measured = p["measured"]
    for kind, service in MEASURED_KINDS.items():
        if service in services:
            explain.append("%s = %s: %s." % (kind, human(est[kind]), (
                "measured (upper bound %s; the samples: plan.yml)" % human(measured[kind]["upper"]))
                if kind in measured
                else "estimate, not measured under load yet (playbooks/measure.yml measures it; "
                "monitor samples count after a day)"))
    counts = {"gunicorn_master": 1, "gunicorn_worker": workers, "celery_base": 1,
              "celery_task": concurrency}
    limits = {}
    for name in services:
        kinds = [kind for kind, service in MEASURED_KINDS.items() if service == name]
        if any(kind in measured for kind in kinds):
            upper = sum(counts[kind] * (measured[kind]["upper"] if kind in measured
                                        else est[kind] * MEMORY_HIGH_FACTOR) for kind in kinds)
            high, top = upper, upper * MEASURED_MAX_FACTOR
            terms = " + ".join("%d x %s" % (counts[k], human(measured[k]["upper"] if k in measured
                                                             else est[k] * MEMORY_HIGH_FACTOR))
                               for k in kinds)
            explain.append("unit memory limits %s: MemoryHigh = %s, the measured upper bounds (%s); "
                           "MemoryMax = x %.2f." % (name, human(high), terms, MEASURED_MAX_FACTOR))
        else:
            high = service_bytes[name] * MEMORY_HIGH_FACTOR
            top = service_bytes[name] * MEMORY_MAX_FACTOR
        limits[name] = {"memory_high_bytes": int(math.ceil(high / MIB)) * MIB,
                        "memory_max_bytes": int(math.ceil(top / MIB)) * MIB}
    if limits:
        explain.append("unit memory limits: MemoryHigh = planned x %.1f, MemoryMax = planned x %.1f "
                       "where nothing is measured (room for load peaks; the budget counts the "
                       "planned values)." % (MEMORY_HIGH_FACTOR, MEMORY_MAX_FACTOR))
    nofile = {
        "web": max(1024, 2 * p["gunicorn_worker_connections"] + 256),
        "worker": max(1024, 2 * max(concurrency, 1) + 256),
    }
    if p["nofile_max"] is not None:
        for runs, kind, option, value in (
                (web, "web", "gunicorn_worker_connections", p["gunicorn_worker_connections"]),
                (worker, "worker", "celery_concurrency", concurrency)):
            if runs and nofile[kind] > p["nofile_max"]:
                raise SizingError("%s: %d gives LimitNOFILE %d, over the host's nr_open %d "
                                  "(/proc/sys/fs/nr_open): the unit would not start" % (
                                      option, value, nofile[kind], p["nofile_max"]))
    monitor_section, monitor_lines = monitor_policy(
        maxmemory, budget, p["monitor_interval"], p["monitor_adaptive"], cache,
        limits["worker"]["memory_high_bytes"] if worker else None, MEMORY_HIGH_FACTOR)
    explain.extend(monitor_lines)
    if web or worker:
        explain.append("LimitNOFILE: web %d = 2 x %d worker connections + 256 (a client socket and "
                       "a Redis socket each); worker %d = 2 x concurrency + 256; at least 1024." % (
                           nofile["web"], p["gunicorn_worker_connections"], nofile["worker"]))

    return {
        "cpus": cpus,
        "memory_bytes": p["memory_bytes"],
        "services": services,
        "gunicorn_workers": workers,
        "gunicorn_preload": p["gunicorn_preload"],
        "gunicorn_worker_class": p["gunicorn_worker_class"],
        "gunicorn_workers_per_cpu": p["gunicorn_workers_per_cpu"],
        "gunicorn_worker_connections": p["gunicorn_worker_connections"],
        "gunicorn_max_requests": max_requests,
        "gunicorn_max_requests_jitter": max_requests // 10,
        "gunicorn_recycle_cover": cover,
        "celery_concurrency": concurrency,
        "redis_maxmemory_bytes": maxmemory,
        "redis_maxmemory": format_size(maxmemory),
        "image_cache_quotas": {k: float(v) for k, v in p["image_cache_quotas"].items()},
        "image_cache_quota_bytes": quota_bytes,
        "monitor_interval": p["monitor_interval"],
        "monitor": monitor_section,
        "budget_bytes": budget,
        "planned_bytes": planned,
        "service_bytes": {k: v for k, v in service_bytes.items() if k in services},
        "unit_limits": limits,
        # What each process kind was planned at: the next plan keeps a measured value while it
        # stays within the new bounds (no flapping).
        "estimates_used": {kind: est[kind] for kind in MEASURED_KINDS},
        "estimates_given": {kind: p["estimates_given"][kind] for kind in MEASURED_KINDS},
        # What the measured kinds are planned at (stable: plan.json records it, the next plan
        # keeps it while the new bounds allow), and the recommendations' detail (for plan.yml).
        "measured": {kind: {"value": rec["value"], "upper": rec["upper"]} for kind, rec in measured.items()},
        "measured_detail": {kind: dict(rec) for kind, rec in measured.items()},
        "nofile": nofile,
        "fits": fits,
        "explain": explain,
    }
