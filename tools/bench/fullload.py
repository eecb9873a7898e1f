"""The full workload (#17): a configuration's Redis filled to its maxmemory with images in every
image cache category, then Celery with its concurrency's worth of tasks in flight, and the memory
of every service while they run; and the report's tables from it: per configuration, and per seed
fix what it saved here under that load beside what the seed claimed."""
from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import threading
import time

import redis

from .common import APP_JSON, HOST, MIB, PORT, STACK_VENV
from .measure import memory

IMAGE_BYTES = 256 * 1024
# Each category receives this many times its quota: the app's own eviction keeps it within quota,
# and the categories together reach Redis' maxmemory (the seed's "before" quotas sum to 100 %).
FILL_FACTOR = 1.25
TASK_SECONDS = 10.0  # app.tasks.generate sleeps at most 10 s
PUT_CLIENTS = 8

# Run by the stack's own venv in its release: sends `count` generate tasks, then asks the workers
# (celery inspect) until all are active or the tasks would end; prints what it saw as JSON.
SEND_TASKS = r"""
import json, sys, time
from app.celery_utils import celery
from app.tasks import generate
count, seconds = int(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
for _ in range(count):
    generate.apply_async(("bench", seconds))
sent = time.monotonic() - start
active = 0
while time.monotonic() - start < seconds - 2:
    replies = celery.control.inspect(timeout=1.0).active() or {}
    active = sum(len(tasks) for tasks in replies.values())
    if active >= count:
        break
print(json.dumps({"sent": count, "send_s": sent, "active": active,
                  "elapsed_s": time.monotonic() - start}))
"""


def app_config():
    with open(APP_JSON, encoding="utf-8") as handle:
        return json.load(handle)


def fill_images(quota_bytes, cap_bytes=None, size=IMAGE_BYTES, factor=FILL_FACTOR, clients=PUT_CLIENTS):
    """PUT distinct images of `size` bytes into each category until `factor` x its quota went in
    (at most `cap_bytes` in all, for the smoke run); the categories take turns. Returns the counts
    of PUTs, of non-201 answers and socket errors, and the bytes sent."""
    per_category = {cat: -(-int(quota * factor) // size) for cat, quota in quota_bytes.items()}
    if cap_bytes is not None:
        share = max(1, cap_bytes // size // max(1, len(per_category)))
        per_category = {cat: min(count, share) for cat, count in per_category.items()}
    jobs = queue.Queue()
    for index in range(max(per_category.values(), default=0)):
        for cat, count in sorted(per_category.items()):
            if index < count:
                jobs.put((cat, index))
    base = os.urandom(size)
    counts = {"puts": 0, "errors": 0, "bytes": 0}
    lock = threading.Lock()

    def client():
        conn = None
        while True:
            try:
                cat, index = jobs.get_nowait()
            except queue.Empty:
                break
            prefix = ("%s-%08d" % (cat, index)).encode()
            body = prefix + base[len(prefix):]
            status = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
                conn.request("PUT", "/api/images/%s/bench-%d" % (cat, index), body=body,
                             headers={"Content-Type": "application/octet-stream"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                counts["puts"] += 1
                counts["bytes"] += len(body)
                counts["errors"] += status != 201
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def image_bytes_held(config):
    """Per category the bytes and images the app's memory report says Redis holds."""
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    try:
        conn.request("GET", "/api/admin/system/memory",
                     headers={"Authorization": "Bearer " + config["admin_token"]})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError("the memory report answered %d: %s" % (response.status, body[:300]))
    caches = json.loads(body)["image_caches"]
    return {cat: {"bytes": entry["bytes"], "images": entry["images"]} for cat, entry in caches.items()}


def image_bytes_stored(client, categories):
    """Per category the bytes and images Redis really holds (STRLEN over its image keys, in every
    db: the web's REDIS_URL picks its own): Redis' own eviction removes images behind the app's
    counters when the quotas leave it no room."""
    out = {cat: {"bytes": 0, "images": 0} for cat in categories}
    for name in client.info("keyspace"):
        pool = redis.ConnectionPool(**dict(client.connection_pool.connection_kwargs, db=int(name[2:])))
        dbclient = redis.Redis(connection_pool=pool)
        for cat in categories:
            keys = list(dbclient.scan_iter(match="img:%s:*" % cat, count=1000))
            pipe = dbclient.pipeline(transaction=False)
            for key in keys:
                pipe.strlen(key)
            sizes = pipe.execute() if keys else []
            out[cat]["bytes"] += sum(sizes)
            out[cat]["images"] += sum(1 for size in sizes if size)
        pool.disconnect()
    return out


def wait_no_bgsave(client, limit=120):
    """A BGSAVE's forked child would count in Redis' tree: measure once none runs."""
    deadline = time.monotonic() + limit
    while client.info("persistence").get("rdb_bgsave_in_progress") and time.monotonic() < deadline:
        time.sleep(0.5)


def tasks_in_flight(count, seconds=TASK_SECONDS):
    out = subprocess.run([STACK_VENV + "/bin/python", "-c", SEND_TASKS, str(count), str(seconds)],
                         cwd="/opt/stackfit/current", capture_output=True, text=True, timeout=120,
                         env={"STACKFIT_CONFIG": APP_JSON, "PATH": os.environ["PATH"]})
    if out.returncode != 0:
        raise RuntimeError("sending the tasks failed: %s" % out.stderr[-1500:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_full_load(concurrency, cap_bytes=None):
    """Fill Redis with images, put `concurrency` tasks in flight, measure every service; then let
    the tasks end and empty Redis (the next stop would save the filled dataset to disk)."""
    config = app_config()
    client = redis.Redis.from_url(config["redis_url"], socket_timeout=30)
    start = time.monotonic()
    fill = fill_images(config["image_cache_quota_bytes"], cap_bytes)
    fill["seconds"] = time.monotonic() - start
    wait_no_bgsave(client)
    held = image_bytes_held(config)
    stored = image_bytes_stored(client, sorted(config["image_cache_quota_bytes"]))
    sent_at = time.monotonic()
    tasks = tasks_in_flight(concurrency)
    tasks["measured_after_s"] = time.monotonic() - sent_at
    mem = memory()
    info = client.info("memory")
    stats = client.info("stats")
    result = {"fill": fill, "held": held, "stored": stored, "tasks": tasks, "memory": mem,
              "redis_info": {"used_memory": info["used_memory"], "used_memory_rss": info["used_memory_rss"],
                             "maxmemory": info["maxmemory"], "evicted_keys": stats["evicted_keys"]},
              "capped": cap_bytes is not None}
    time.sleep(max(0.0, TASK_SECONDS + 2 - (time.monotonic() - sent_at)))
    wait_no_bgsave(client)
    client.flushall()
    return result


# ---------------------------------------------------------------------------------------------
# The report's section

SEED_GB = 2.98  # the seed's local stack before its fixes
ORDER = ("a", "b", "c", "d")


def _pct(before, after):
    return "%+.0f %%" % (100.0 * (after - before) / before) if before else "n/a"


def _held(full, source="stored"):
    """MiB of images: what Redis holds ("stored"), or what the app's counters say ("held")."""
    return sum(entry["bytes"] for entry in full[source].values()) / MIB


def full_load_lines(measured, monitor):
    """Section 2a for the configurations (report's configs) that ran the full load."""
    configs = {key: measured[key] for key in ORDER if measured.get(key, {}).get("full")}
    if not configs:
        return []
    lines = [
        "## 2a. Under full load",
        "",
        "Each configuration, after its throughput runs: %d KiB images PUT into every image cache "
        "category until %.2f x its quota went in (8 clients), then as many `app.tasks.generate` "
        "tasks as its Celery concurrency (each sleeps %d s); memory is taken once `celery inspect "
        "active` counts them all running, and after any BGSAVE ended. Then Redis is emptied." % (
            IMAGE_BYTES // 1024, FILL_FACTOR, TASK_SECONDS),
        "",
        "| configuration | maxmemory | images in Redis | app's count | used_memory | evicted keys "
        "| tasks in flight | PSS gunicorn | celery | redis | total | RSS total |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, res in configs.items():
        full = res["full"]
        info, mem = full["redis_info"], full["memory"]
        lines.append("| (%s) %s | %s | %.1f (%.0f %%) | %.1f | %.1f | %d | %d of %d | %.1f | %.1f | %.1f | %.1f "
                     "| %.1f |" % (
            key, res["name"], res["redis"], _held(full), 100.0 * _held(full) * MIB / info["maxmemory"],
            _held(full, "held"), info["used_memory"] / MIB, info["evicted_keys"], full["tasks"]["active"], res["celery"],
            mem["gunicorn"]["pss"], mem["celery"]["pss"], mem["redis"]["pss"], mem["total"]["pss"],
            mem["total"]["rss"]))
    lines += ["", "MiB. Images in Redis: STRLEN summed over the image keys, as a share of maxmemory; "
              "the app's count: the bytes its memory report (`image_caches`) says it holds. Where "
              "they differ, Redis itself evicted images (maxmemory-policy) behind the app's quota "
              "counters. PUT errors: %s." % ", ".join(
                  "(%s) %d of %d" % (k, r["full"]["fill"]["errors"], r["full"]["fill"]["puts"])
                  for k, r in configs.items())]
    if any(r["full"]["capped"] for r in configs.values()):
        lines += ["", "**Smoke run: the fill was capped, so Redis is not full.**"]
    if "a" in configs and "b" in configs:
        lines += [""] + seed_fix_lines(configs["a"], configs["b"], monitor)
    return lines + [""]


def seed_fix_lines(before, after, monitor):
    """Per seed fix, (a) -> (b) under full load, beside the seed's claim."""
    fa, fb = before["full"], after["full"]
    ma, mb = fa["memory"], fb["memory"]
    share_a = 100.0 * _held(fa) * MIB / fa["redis_info"]["maxmemory"]
    share_b = 100.0 * _held(fb) * MIB / fb["redis_info"]["maxmemory"]
    lines = [
        "### Seed fixes: claimed vs measured here",
        "",
        "(a) the seed's \"before\" against (b) its hand-fixed dev setup, both under the full load "
        "above. The seed's claim is the change of the setting itself.",
        "",
        "| seed fix | claimed | measured here, full load | |",
        "|---|---|---|---|",
        "| Gunicorn workers 17 -> 3 | %s processes | gunicorn PSS %.1f -> %.1f MiB | %s |" % (
            _pct(17, 3), ma["gunicorn"]["pss"], mb["gunicorn"]["pss"],
            _pct(ma["gunicorn"]["pss"], mb["gunicorn"]["pss"])),
        "| Celery -c 1000 -> 20 (gevent) | %s greenlets | celery PSS %.1f -> %.1f MiB, each with its "
        "concurrency's tasks in flight | %s |" % (
            _pct(1000, 20), ma["celery"]["pss"], mb["celery"]["pss"],
            _pct(ma["celery"]["pss"], mb["celery"]["pss"])),
        "| Redis maxmemory 500mb -> 100mb | %s | redis PSS %.1f -> %.1f MiB, filled | %s |" % (
            _pct(500, 100), ma["redis"]["pss"], mb["redis"]["pss"],
            _pct(ma["redis"]["pss"], mb["redis"]["pss"])),
        "| image cache quotas 100 %% -> 60 %% of maxmemory | %s of the cache | images in Redis %.0f %% "
        "-> %.0f %% of maxmemory (%.1f -> %.1f MiB) | %s |" % (
            _pct(100, 60), share_a, share_b, _held(fa), _held(fb), _pct(share_a, share_b)),
    ]
    if monitor:
        lines.append("| monitor every 10 -> 30 min | %s runs | CPU %.2f -> %.2f s per hour (%.2f s a run); "
                     "no resident memory (%.1f MiB peak RSS while it runs) | %s |" % (
                         _pct(6, 2), 6 * monitor["cpu"], 2 * monitor["cpu"], monitor["cpu"],
                         monitor["maxrss"], _pct(6, 2)))
    lines.append("| all of them | ~3 GB (%.2f GB) before | stack PSS %.1f -> %.1f MiB (RSS %.1f -> %.1f) "
                 "| %s |" % (SEED_GB, ma["total"]["pss"], mb["total"]["pss"], ma["total"]["rss"],
                             mb["total"]["rss"], _pct(ma["total"]["pss"], mb["total"]["pss"])))
    seed_mib = SEED_GB * 1e9 / MIB
    per_worker_rss = ma["gunicorn"]["rss"] / max(1, ma["gunicorn"]["procs"])
    rest = ma["celery"]["rss"] + ma["redis"]["rss"]
    needed = (seed_mib - rest) / 17
    lines += [
        "",
        "**Why the seed's %.2f GB (%.0f MiB) is not this machine's %.0f MiB.** Three differences, "
        "each measured above. *What is counted*: PSS shares a page among the processes that map it; "
        "a sum of RSS, what `ps` and `top` show, counts every shared page once per process: (a) is "
        "%.0f MiB in RSS against %.0f in PSS here. *The app's size*: a gunicorn process of the "
        "sample app is %.1f MiB RSS; for the seed's total, with celery and redis as measured here "
        "(%.0f MiB RSS), each of 17 workers would hold %.0f MiB, %.1f times a process of the sample "
        "app: an app that imports that much more. "
        "*Filled caches and tasks*: the full load adds %.0f MiB PSS to (a)'s idle %.0f (gunicorn "
        "%+.0f, celery %+.0f, redis %+.0f)." % (
            SEED_GB, seed_mib, ma["total"]["pss"], ma["total"]["rss"], ma["total"]["pss"],
            per_worker_rss, rest, needed, needed / per_worker_rss,
            ma["total"]["pss"] - before["idle"]["total"]["pss"],
            before["idle"]["total"]["pss"],
            *(ma[s]["pss"] - before["idle"][s]["pss"] for s in ("gunicorn", "celery", "redis"))),
    ]
    return lines
