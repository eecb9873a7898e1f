"""One run: collect, decide, act, write (the glue between the other modules)."""
import os
import time

from .closedloop import feed_store, headroom, recycle_gunicorn_worker
from .supervision import supervision
from .errors import MalformedReplyError, RedisError, is_int as _is_int, log
from .files import (ADAPTIVE_STATE_NAME, HISTORY_NAME, PROM_NAME, RECYCLE_STATE_NAME, REPORT_NAME,
                    atomic_write, ensure_output_dir, read_state, write_json)
from .history import append_history, detect_leaks, read_history
from .measure import collect_self, collect_services, measure_tree, self_usage, system_memory
from .metrics import render_prom
from .policy import decide, next_adaptive_state, should_recycle
from .resp import parse_info, redis_connect, redis_summary

RECYCLE_TIMEOUT = 30


def _adaptive_step(cfg, redis_info, memory_percent, conn, now, apply):
    """Decide (and when enabled and apply, CONFIG SET). Returns the report's "adaptive" part."""
    acfg = cfg["adaptive"]
    if acfg is None:
        return {"enabled": False, "decision": None, "applied": False,
                "reason": "no adaptive section in the configuration"}
    out = {"enabled": acfg["enabled"], "applied": False}
    if conn is None or "error" in redis_info:
        out["decision"] = {"action": "hold", "band": None, "target": None,
                           "memory_percent": memory_percent,
                           "reason": "redis unreachable: %s" % redis_info.get("error")}
        log("adaptive: action=hold reason=%s" % out["decision"]["reason"])
        return out
    state_path = os.path.join(cfg["output_dir"], ADAPTIVE_STATE_NAME)
    state = read_state(state_path)
    decision = decide(memory_percent, redis_info["maxmemory"], redis_info["used_memory"],
                      state, acfg, now)
    out["decision"] = decision
    if decision["action"] != "hold" and acfg["enabled"] and apply:
        try:
            conn.call("CONFIG", "SET", "maxmemory", str(decision["target"]))
            out["applied"] = True
            out["previous_maxmemory"] = decision["current"]
            out["maxmemory"] = decision["target"]
        except RedisError as exc:
            out["error"] = "CONFIG SET maxmemory %d failed: %s" % (decision["target"], exc)
            log("adaptive: %s" % out["error"])
    elif decision["action"] != "hold" and not acfg["enabled"]:
        out["note"] = "adaptive.enabled is false: decision reported, not applied"
    log("adaptive: action=%s target=%s applied=%s reason=%s" % (
        decision["action"], decision["target"], out["applied"], decision["reason"]))
    if apply:
        write_json(state_path, next_adaptive_state(state, decision, out["applied"], now))
    return out


def _recycle_step(cfg, processes, now):
    rcfg = cfg["celery_recycle"]
    state_path = os.path.join(cfg["output_dir"], RECYCLE_STATE_NAME)
    state = read_state(state_path)
    celery = processes.get("celery") or {}
    out = {"pss_limit_bytes": rcfg["pss_limit_bytes"], "pss": celery.get("pss"),
           "ran": False, "count": state.get("count", 0), "last_run": state.get("last_run")}
    run, reason = should_recycle(celery.get("pss"), rcfg["pss_limit_bytes"], state,
                                 rcfg["cooldown_seconds"], now)
    out["reason"] = reason
    if not run:
        return out
    import subprocess
    pid = celery.get("main_pid")
    argv = [part.replace("{pid}", str(pid)) for part in rcfg["command"]]
    out["command"] = argv
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=RECYCLE_TIMEOUT, check=False)
        out["returncode"] = done.returncode
        output = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()
        if output:
            out["output"] = output[-500:]
    except subprocess.TimeoutExpired:
        out["returncode"] = None
        out["error"] = "timed out after %ds" % RECYCLE_TIMEOUT
    except OSError as exc:
        out["returncode"] = None
        out["error"] = "cannot run %s: %s" % (argv[0], exc.strerror or exc)
    out["ran"] = True
    out["count"] = out["count"] + 1 if _is_int(out["count"]) else 1
    out["last_run"] = now
    # The attempt counts for the cooldown even when the command failed: no hammering.
    write_json(state_path, {"last_run": now, "count": out["count"],
                            "last_returncode": out.get("returncode")})
    log("celery recycle: ran %s -> returncode %s (%s)" % (argv, out.get("returncode"), reason))
    return out


def _redis_process(conn, entry, redis_info):
    """Redis found with the permissions the monitor has: its pidfile (0660 redis:redis under
    systemd) may be unreadable to the stack's user, INFO server's process_id is not; and where its
    PSS is not readable (another user's process), INFO's used_memory_rss stands in, said so."""
    if not entry["up"]:
        pid = parse_info(conn.call("INFO", "server")).get("process_id")
        if isinstance(pid, int) and pid > 0:
            entry.update(measure_tree([pid]), main_pid=pid, up=True, found_by="INFO process_id",
                         pidfile_reason=entry.pop("reason", None))
    if entry["up"] and entry.get("pss") is None and redis_info.get("used_memory_rss"):
        entry["pss_source"] = "INFO used_memory_rss (PSS not readable by the monitor's user)"
        entry["pss"] = redis_info["used_memory_rss"]
    elif entry["up"]:
        entry["pss_source"] = "smaps_rollup"


def run_once(cfg, memory_percent=None, now=None):
    """Collect, decide, act, write. Returns the report. Raises OutputError."""
    now = time.time() if now is None else now
    output_dir = cfg["output_dir"]
    ensure_output_dir(output_dir)

    system = system_memory()
    # Input this run could not read and left out, by source (each also said where it was met).
    skipped = {"history": 0, "redis": 0, "cgroup": 1 if "cgroup_error" in system else 0}
    if memory_percent is not None:
        system["percent_measured"] = system["percent"]
        system["percent"] = memory_percent
        system["percent_override"] = True
    processes = collect_services(cfg["services"])
    processes["monitor"] = collect_self()

    conn = None
    try:
        conn = redis_connect(cfg["redis"])
        redis_info = redis_summary(conn.info_memory())
        skipped["redis"] += len(redis_info.get("malformed", ()))
        if "redis" in processes:
            _redis_process(conn, processes["redis"], redis_info)
    except RedisError as exc:
        redis_info = {"error": str(exc)}
        skipped["redis"] += isinstance(exc, MalformedReplyError)
        log("redis: %s" % exc)
        if conn is not None:
            conn.close()
            conn = None

    try:
        sample = {
            "ts": round(now, 3),
            "percent": system["percent"],
            "pss": {name: processes[name]["pss"] for name in cfg["services"]},
            "pid": {name: processes[name]["main_pid"] for name in cfg["services"]},
            "redis_used": redis_info.get("used_memory"),
            "redis_max": redis_info.get("maxmemory"),
        }
        history_path = os.path.join(output_dir, HISTORY_NAME)
        append_history(history_path, sample, cfg["history"]["max_bytes"])
        samples, skipped["history"] = read_history(history_path, cfg["history"]["leak_samples"])
        if skipped["history"]:
            log("history: %d malformed line(s) of %s skipped" % (skipped["history"], history_path))
        leaks = detect_leaks(samples, list(cfg["services"]), cfg["history"]["leak_samples"],
                             cfg["history"]["leak_min_growth_bytes"])
        for leak in leaks:
            log("leak suspected: %s" % leak["reason"])

        adaptive = _adaptive_step(cfg, redis_info, system["percent"], conn, now, apply=True)
    finally:
        if conn is not None:
            conn.close()
    recycle = _recycle_step(cfg, processes, now)
    gunicorn_recycle = recycle_gunicorn_worker(cfg, processes, now)
    rooms, too_small = headroom(cfg, processes)
    measurements = feed_store(cfg, processes, [name for name, step in (
        ("celery", recycle), ("gunicorn", gunicorn_recycle)) if step.get("ran")], now)

    report = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "timestamp_seconds": round(now, 3),
        "environment": cfg["environment"],
        "system": system,
        "redis": redis_info,
        "processes": processes,
        "services": sorted(cfg["services"]),
        "leaks": leaks,
        "adaptive": adaptive,
        "recycle": recycle,
        "gunicorn_recycle": gunicorn_recycle,
        "headroom_bytes": rooms,
        "plan_too_small": too_small,
        "measurements": measurements,
        "supervision": supervision(cfg, processes),
        "skipped": skipped,
        "monitor": self_usage(),
    }
    write_json(os.path.join(output_dir, REPORT_NAME), report)
    atomic_write(os.path.join(output_dir, PROM_NAME), render_prom(report).encode("utf-8"))
    return report
