"""Closed-loop sizing in each run: feed the host's measurements store, report each service's
headroom to its MemoryHigh (and "plan too small" past it), and replace a Gunicorn worker whose PSS
passes its share of the web service's MemoryHigh (graceful: the master starts a new one).

The store (stackfit_measurements, shared with playbooks/measure.yml) is what stackfit_sizing
plans from; see module_utils/stackfit_recommend.py for how samples become a plan.
"""
import os
import signal

from .errors import log
from .files import read_state, write_json
from .stackfit_measurements import STORE_NAME, add_event, child_pids, load, pss, sample_services, save

GUNICORN_RECYCLE_STATE = "gunicorn_recycle_state.json"
TOO_SMALL = ("plan too small for %s: PSS %d bytes > MemoryHigh %d; measure and re-plan: "
             "ansible-playbook playbooks/measure.yml, then site.yml")


def feed_store(cfg, processes, recycled, now):
    """One sample per kind into the store; a recycle as an event. Returns the counts added."""
    path = os.path.join(cfg["output_dir"], STORE_NAME)
    store, skipped = load(path)
    pids = {name: processes[name]["main_pid"] for name in ("gunicorn", "celery")
            if processes.get(name, {}).get("up")}
    added = sample_services(pids, store, "monitor", now)
    for service in recycled:
        add_event(store, "recycle", service, now)
    try:
        save(path, store)
    except OSError as exc:
        log("measurements: cannot write %s: %s" % (path, exc))
        return {"error": str(exc)}
    out = {kind: len(values) for kind, values in added.items()}
    if skipped:
        out["skipped"] = skipped
    return out


def headroom(cfg, processes):
    """Per watched service with a MemoryHigh: headroom (bytes, negative past it); the services
    past it, each with the message that says what to do."""
    rooms, too_small = {}, []
    for name, spec in cfg["services"].items():
        high, entry = spec.get("memory_high"), processes.get(name) or {}
        if high and entry.get("pss") is not None:
            rooms[name] = high - entry["pss"]
            if entry["pss"] > high:
                too_small.append(TOO_SMALL % (name, entry["pss"], high))
    for line in too_small:
        log(line)
    return rooms, too_small


def recycle_gunicorn_worker(cfg, processes, now):
    """SIGTERM to the one worker whose PSS passes (MemoryHigh - master) / workers, when another
    worker covers for it (never the only one) and the cooldown allows. Returns what it did."""
    spec, entry = cfg["services"].get("gunicorn") or {}, processes.get("gunicorn") or {}
    high, master = spec.get("memory_high"), entry.get("main_pid")
    if not (high and master and entry.get("up")):
        return {"ran": False, "reason": "no MemoryHigh or Gunicorn not running"}
    workers = {pid: pss(pid) for pid in child_pids(master)}
    workers = {pid: value for pid, value in workers.items() if value}
    if len(workers) < 2:
        return {"ran": False, "reason": "%d worker(s): a recycle needs another to cover" % len(workers)}
    share = (high - (pss(master) or 0)) // len(workers)
    pid, value = max(workers.items(), key=lambda item: item[1])
    out = {"ran": False, "share_bytes": share, "largest_worker": {"pid": pid, "pss": value}}
    if value <= share:
        out["reason"] = "every worker within its share"
        return out
    state_path = os.path.join(cfg["output_dir"], GUNICORN_RECYCLE_STATE)
    state = read_state(state_path)
    cooldown = cfg["celery_recycle"]["cooldown_seconds"]
    if state.get("last_run") is not None and now - state["last_run"] < cooldown:
        out["reason"] = "cooldown: last recycle %ds ago" % (now - state["last_run"])
        return out
    try:
        os.kill(pid, signal.SIGTERM)  # graceful: finishes its requests; the master replaces it
        out["ran"] = True
        out["reason"] = "worker %d PSS %d > share %d" % (pid, value, share)
    except OSError as exc:
        out["error"] = str(exc)
    write_json(state_path, {"last_run": now, "count": state.get("count", 0) + 1})
    log("gunicorn recycle: %s" % out.get("reason", out.get("error")))
    return out
