"""Each service's restarts and its supervisor, for the report: systemd's NRestarts under systemd,
stackfit-supervisor's state elsewhere; a service down at a run comes with the last lines of its
own log. Read-only: nothing here starts or stops anything."""
import json
import subprocess

from .stackfit_daemon import tail, trusted_pid

LOG_LINES = 10


def _systemd(unit):
    try:
        out = subprocess.run(["systemctl", "show", unit, "-p", "NRestarts", "-p", "ActiveState",
                              "-p", "Result"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    restarts = props.get("NRestarts", "")
    return {"restarts": int(restarts) if restarts.isdigit() else None,
            "state": props.get("ActiveState"), "result": props.get("Result")}


def _supervisor(path):
    """The supervisor's state file and whether the supervisor itself runs."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        return {"running": False, "reason": "no state: %s" % exc}, {}
    if not isinstance(state, dict):
        return {"running": False, "reason": "state is not an object"}, {}
    own = state.get("supervisor") if isinstance(state.get("supervisor"), dict) else {}
    pidfile = path.rsplit("/", 1)[0] + "/supervisor.pid"
    pid, why = trusted_pid(pidfile, "stackfit-supervisor")
    services = state.get("services") if isinstance(state.get("services"), dict) else {}
    return {"running": bool(pid and own.get("running")), "pid": pid, "reason": why}, services


def supervision(cfg, processes):
    """The report's "supervision": the supervisor (without systemd) and, per watched service, its
    restarts (count and last time), its state, and the last lines of its log when it is down."""
    out = {"manager": cfg["manager"], "services": {}}
    states = {}
    if cfg["manager"] == "script" and cfg.get("supervisor_state"):
        out["supervisor"], states = _supervisor(cfg["supervisor_state"])
    for name, spec in cfg["services"].items():
        entry = {}
        if cfg["manager"] == "systemd" and spec.get("unit"):
            entry.update(_systemd(spec["unit"]))
        elif isinstance(states.get(name), dict):
            state = states[name]
            entry.update({key: state.get(key) for key in ("restarts", "last_restart", "state", "last_error")})
        if not (processes.get(name) or {}).get("up") and spec.get("log"):
            entry["log_tail"] = tail(spec["log"], LOG_LINES)
        out["services"][name] = entry
    return out
