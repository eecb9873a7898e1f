# -*- coding: utf-8 -*-
"""What the app really uses: the host's store of PSS samples per process kind.

``/var/lib/stackfit/monitor/measurements.json`` holds, per kind (a Gunicorn master, one Gunicorn
worker (the workers' mean at one instant), the Celery worker at rest, one running Celery task),
samples ``[timestamp, bytes, source]`` from two sources: ``playbooks/measure.yml`` (a load test;
source "measure") and every memory monitor run (source "monitor"); and events
``[timestamp, kind, service]`` (an OOM kill, a memory recycle). stackfit_sizing recommends each
kind's value from them (stackfit_recommend).

Standard library only, shared by the measure module (module_utils) and the monitor (a symlink in
its package); reading PSS needs no psutil: /proc/<pid>/smaps_rollup.
"""
from __future__ import annotations

import json
import math
import os
import time

try:  # inside Ansible (AnsiballZ), in the monitor's package, in tests through ansible.module_utils
    from .stackfit_daemon import children as child_pids
except ImportError:  # plain import with module_utils/ on sys.path
    from stackfit_daemon import children as child_pids  # type: ignore[no-redef]

KINDS = ("gunicorn_master", "gunicorn_worker", "celery_base", "celery_task")
EVENT_KINDS = ("oom", "recycle")
MAX_SAMPLES = 600       # per kind: the newest are kept (about 4 days of monitor runs every 10 min)
MAX_EVENTS = 100
STORE_NAME = "measurements.json"


def empty():
    return {"version": 1, "samples": {kind: [] for kind in KINDS}, "events": []}


def _valid_sample(entry):
    return (isinstance(entry, list) and len(entry) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in entry[:2]) and entry[1] > 0)


def normalise(data):
    """A store from parsed JSON: unknown kinds and malformed entries dropped (counted in
    ``skipped``), never an exception."""
    store, skipped = empty(), 0
    if not isinstance(data, dict):
        return store, 1 if data is not None else 0
    samples = data.get("samples") if isinstance(data.get("samples"), dict) else {}
    for kind in KINDS:
        entries = samples.get(kind) if isinstance(samples.get(kind), list) else []
        good = [e[:3] for e in entries if _valid_sample(e)]
        skipped += len(entries) - len(good)
        store["samples"][kind] = good[-MAX_SAMPLES:]
    events = data.get("events") if isinstance(data.get("events"), list) else []
    good = [e[:3] for e in events if isinstance(e, list) and len(e) >= 2
            and isinstance(e[0], (int, float)) and e[1] in EVENT_KINDS]
    skipped += len(events) - len(good)
    store["events"] = good[-MAX_EVENTS:]
    return store, skipped


def load(path):
    """(store, skipped): an empty store when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return normalise(json.load(handle))
    except FileNotFoundError:
        return empty(), 0
    except (OSError, ValueError):
        return empty(), 1


def add(store, kind, value, source, now=None):
    if kind not in KINDS or not value:
        return
    entries = store["samples"][kind]
    entries.append([round(now if now is not None else time.time(), 1), int(value), source])
    del entries[:-MAX_SAMPLES]


def add_event(store, kind, service, now=None):
    if kind in EVENT_KINDS:
        store["events"].append([round(now if now is not None else time.time(), 1), kind, service])
        del store["events"][:-MAX_EVENTS]


def save(path, store, owner=None):
    """Write atomically in the store's directory (never following a planted link), chowned to
    ``owner`` (uid, gid) when given: the monitor, as the stack's user, writes it too."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(store, handle, separators=(",", ":"))
        if owner:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def series(store, kind):
    """(timestamp, bytes) pairs of a kind, as the recommender takes them."""
    return [(entry[0], entry[1]) for entry in store["samples"].get(kind, [])]


# Samples move a plan once they include a load test (playbooks/measure.yml) or a day of monitor
# runs: a few samples of an idle stack, taken just after a deploy, would plan it too small.
EVIDENCE_SPAN_SECONDS = 24 * 3600


def evidence(store, kind, now):
    """(enough, why): whether a kind's samples may plan it, and what they are."""
    entries = store["samples"].get(kind, [])
    if not entries:
        return False, "no measurement yet"
    loads = sum(1 for entry in entries if len(entry) > 2 and entry[2] == "measure")
    span = now - min(entry[0] for entry in entries)
    if loads or span >= EVIDENCE_SPAN_SECONDS:
        return True, ""
    # Stable words (no counts): plan.json records the explain lines, and must not change with
    # every monitor run.
    return False, "monitor samples of less than a day so far, no load test"


def events(store, services):
    """(timestamp, kind) of the events of these services (a kind's service: gunicorn, celery)."""
    return [(entry[0], entry[1]) for entry in store["events"]
            if len(entry) < 3 or entry[2] in services]


SERVICE_OF = {"gunicorn_master": "gunicorn", "gunicorn_worker": "gunicorn",
              "celery_base": "celery", "celery_task": "celery"}


def pss(pid):
    """PSS of one process in bytes (smaps_rollup), None when it is gone or not readable."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_pss(pid):
    """PSS summed over ``pid`` and its descendants (None when ``pid`` is not readable)."""
    own = pss(pid)
    if own is None:
        return None
    return own + sum(tree_pss(child) or 0 for child in child_pids(pid))


def sample_services(pids, store, source, now=None):
    """One sample per kind from the services' main pids ({"gunicorn": pid, "celery": pid}):
    Gunicorn's master, the mean of its workers, Celery's whole tree. Returns what it added."""
    added = {}
    master = pids.get("gunicorn")
    if master:
        value = pss(master)
        if value:
            add(store, "gunicorn_master", value, source, now)
            added["gunicorn_master"] = [value]
        # One sample per instant: the workers' mean. The plan multiplies this figure by the worker
        # count, so the figure whose multiple is the unit's real total is the mean at one instant.
        # A single worker's PSS follows how many connections it holds (one async worker may accept
        # most of them); as samples of their own, two idle workers of three outvote the loaded one
        # and the p95 misses the total (measured: one of three gevent workers at 32 MiB, the others
        # at 21 MiB, a worker p95 of 25.8 MiB).
        workers = [v for v in (pss(child) for child in child_pids(master)) if v]
        if workers:
            value = -(-sum(workers) // len(workers))
            add(store, "gunicorn_worker", value, source, now)
            added["gunicorn_worker"] = [value]
    celery = pids.get("celery")
    if celery:
        value = tree_pss(celery)
        if value:
            add(store, "celery_base", value, source, now)
            added["celery_base"] = [value]
    return added
