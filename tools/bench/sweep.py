"""The points the harness measures: the configurations (a)-(d), the gunicorn worker sweep under the
production plan's other settings, and the throughput rounds over all of them; stackfit's own plans
for this machine."""
from __future__ import annotations

import time

from .common import dump, log
from .fullload import measure_full_load
from .measure import fingerprint, load, settle, summarize, throughput
from .provision import others_running, provision

import stackfit_sizing  # noqa: E402  (module_utils, on sys.path through .common)


# The production profile's values (group_vars/production.yml) as extra vars on the dev inventory.
PRODUCTION = {"stackfit_gunicorn_workers": "auto", "stackfit_gunicorn_preload": True,
              "stackfit_celery_concurrency": 1000, "stackfit_redis_memory_limit": "1gb",
              "stackfit_memory_budget": "75%"}
# The seed's "before": image caches allowed all of Redis (the production profile's quotas sum to 100 %).
SEED_QUOTAS = {"article": 0.30, "post": 0.25, "dynamic": 0.15, "profile": 0.10, "cover": 0.10,
               "general": 0.10}
CONFIGS = [
    ("a", "seed before", "17 workers, no preload, celery -c 1000, redis 500mb, quotas 100 %, monitor 10 min",
     {"stackfit_gunicorn_workers": 17, "stackfit_gunicorn_preload": False,
      "stackfit_celery_concurrency": 1000, "stackfit_redis_memory_limit": "500mb",
      "stackfit_image_cache_quotas": SEED_QUOTAS, "stackfit_monitor_interval": 600}),
    ("b", "seed hand-fixed dev", "3 workers, no preload, celery -c 20, redis 100mb, quotas 60 %, monitor 30 min",
     {"stackfit_gunicorn_workers": 3, "stackfit_gunicorn_preload": False,
      "stackfit_celery_concurrency": 20, "stackfit_redis_memory_limit": "100mb"}),
    ("c", "stackfit dev plan", "group_vars/development.yml as is", {}),
    ("d", "stackfit production plan", "group_vars/production.yml's values", dict(PRODUCTION)),
]


def remeasure(point, extra, opts):
    """Another round of throughput for a point measured before: provision it again, warm it up,
    load it, and merge the runs and the PSS samples into its numbers."""
    provision(extra)
    time.sleep(opts.settle_short)
    load(opts.warmup)
    again = throughput(opts.duration, opts.runs)
    point["throughput"] = summarize(point["throughput"]["rounds"] + again["rounds"])


def measure_config(extra, opts, sustained, full=False):
    """Provision, then memory idle / after warm-up / after load, and throughput; with `full`, the
    full workload after them (fullload.py)."""
    for attempt in range(3):
        app, wall = provision(extra)
        before = fingerprint()
        idle = settle(minimum=opts.settle, limit=opts.settle_limit)
        load(opts.warmup)
        warm = settle(minimum=opts.settle_short, limit=opts.settle_limit)
        busy = bool(others_running())
        tput = throughput(opts.duration, opts.runs)
        busy = busy or bool(others_running())
        if sustained:
            load(sustained)
        after = settle(minimum=opts.settle_short, limit=opts.settle_limit)
        if fingerprint() == before and (not busy or attempt == 2):
            break
        log("the stack changed or another ansible-playbook ran during the measurement: again")
    else:
        raise RuntimeError("the stack kept changing under the measurement")
    result = {"workers": int(app["gunicorn_workers"]), "celery": int(app["celery_concurrency"]),
              "redis": app["redis_memory_limit"], "preload": plan_preload(extra),
              "idle": idle, "warm": warm, "after": after, "throughput": tput, "site_wall": wall}
    if full:
        result["full"] = measure_full_load(int(app["celery_concurrency"]), opts.fill_cap)
    return result


def plan_preload(extra):
    return bool(extra.get("stackfit_gunicorn_preload", True))


def plans(host):
    """stackfit's development and production plans for this machine (module_utils' plan())."""
    common = {"cpus": host["cpus"], "memory_bytes": host["memory_bytes"],
              "services": ["web", "worker", "cache", "monitor"]}
    dev = stackfit_sizing.plan(dict(common, gunicorn_workers=3, gunicorn_preload=True,
                                    celery_concurrency=20, redis_memory_limit="100mb",
                                    memory_budget="25%", monitor_interval=1800))
    prod = stackfit_sizing.plan(dict(common, gunicorn_workers="auto", gunicorn_preload=True,
                                     celery_concurrency=1000, redis_memory_limit="1gb",
                                     memory_budget="75%"))
    return dev, prod


def measure_points(opts, results):
    """Every configuration, then every sweep point, into `results` (dumped as it goes), then the
    further throughput rounds."""
    for key, name, what, extra in CONFIGS:
        log("configuration (%s) %s: %s" % (key, name, extra or "defaults"))
        res = measure_config(extra, opts, opts.sustained, full=True)
        res.update(name=name, what=what)
        results["configs"][key] = res
        log("  idle PSS %.1f MiB, %.0f req/s; full load %.1f MiB (%d tasks in flight)" % (
            res["idle"]["total"]["pss"], res["throughput"]["rps"], res["full"]["memory"]["total"]["pss"],
            res["full"]["tasks"]["active"]))
        dump(opts, results)
    for workers in opts.sweep:
        extra = dict(PRODUCTION, stackfit_gunicorn_workers=workers)
        log("sweep: %d workers" % workers)
        res = measure_config(extra, opts, 0)
        results["sweep"][workers] = res
        log("  idle PSS %.1f MiB, %.0f req/s" % (res["idle"]["total"]["pss"], res["throughput"]["rps"]))
    dump(opts, results)
    # Further throughput rounds visit the points in the opposite order each time, so that a
    # drift of the machine's speed during the run weighs on every point alike.
    points = [(results["configs"][key], extra, "(%s)" % key) for key, _, _, extra in CONFIGS] + \
             [(results["sweep"][w], dict(PRODUCTION, stackfit_gunicorn_workers=w), "sweep %d" % w)
              for w in opts.sweep]
    for number in range(2, opts.rounds + 1):
        for point, extra, label in (points[::-1] if number % 2 == 0 else points):
            log("round %d: %s" % (number, label))
            remeasure(point, extra, opts)
            log("  %.0f req/s this round, %.0f over its rounds" % (
                point["throughput"]["round_rps"][-1], point["throughput"]["rps"]))
        dump(opts, results)
