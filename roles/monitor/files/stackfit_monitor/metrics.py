"""stackfit.prom: the report as a Prometheus textfile (node_exporter's textfile collector).

Why not prometheus_client's write_to_textfile (it is in the venv already)?

Measured in one sitting (Debian 12, 2 shared cores, Python 3.11, psutil 7.2.2, redis-server 7.0
on 127.0.0.1 with 20000 keys; 10 interleaved `run`s of each variant, /usr/bin/time user+sys and
max RSS, medians; each variant swapped in for resp.py or metrics.py, same report):

    this package as it is                          0.05 s CPU   15.1 MiB peak RSS
    prometheus_client 0.26 write_to_textfile       0.09 s       25.0 MiB   (+0.04 s, +10 MiB)
    redis-py 8.1 instead of resp.py                0.15 s       32.4 MiB   (+0.10 s, +17 MiB)
    both                                           0.17 s       34.3 MiB

Decision: keep this renderer. The library costs +80 % CPU and +65 % peak RSS a run (importing it
loads 143 modules: its HTTP and WSGI servers, email, ssl, urllib) to write ~25 families, and it
would change the file: integers written as floats (25276502016 -> 2.5276502016e+10), and no
fsync before its rename (files.atomic_write fsyncs). Its parser still checks this output in the
tests (tests/monitor/test_monitor_integration.py).
"""
from .errors import is_int as _is_int


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if _is_int(value):
        return str(value)
    return repr(float(value))


def render_prom(report):
    families = []

    def family(name, kind, help_text, samples):
        samples = [(labels, value) for labels, value in samples if value is not None]
        if samples:
            families.append((name, kind, help_text, samples))

    system = report["system"]
    family("stackfit_system_memory_bytes", "gauge", "System memory in bytes by kind.",
           [({"kind": kind}, system[kind]) for kind in ("total", "available", "used", "free")])
    family("stackfit_system_memory_percent", "gauge",
           "System memory in use, percent (psutil virtual_memory().percent).",
           [({}, system["percent"])])
    family("stackfit_system_swap_bytes", "gauge", "Swap in bytes by kind.",
           [({"kind": "total"}, system["swap_total"]), ({"kind": "used"}, system["swap_used"])])
    services = sorted(report["processes"].items())
    family("stackfit_service_up", "gauge", "1 when the service's pidfile names a live process.",
           [({"service": name}, entry["up"]) for name, entry in services])
    family("stackfit_service_pss_bytes", "gauge",
           "PSS summed over the service's process tree, bytes.",
           [({"service": name}, entry["pss"]) for name, entry in services])
    family("stackfit_service_rss_bytes", "gauge",
           "RSS summed over the service's process tree, bytes (overstates shared memory).",
           [({"service": name}, entry["rss"]) for name, entry in services])
    family("stackfit_service_processes", "gauge", "Processes in the service's tree.",
           [({"service": name}, len(entry["pids"])) for name, entry in services])
    supervised = sorted((report.get("supervision") or {}).get("services", {}).items())
    family("stackfit_service_restarts_total", "counter",
           "Restarts of the service (systemd's NRestarts, or stackfit-supervisor's count).",
           [({"service": name}, entry.get("restarts")) for name, entry in supervised])
    family("stackfit_service_given_up", "gauge",
           "1 when the supervisor gave up on the service (5 failed starts in 60 s).",
           [({"service": name}, entry.get("state") == "fatal") for name, entry in supervised
            if "state" in entry and report["supervision"]["manager"] == "script"])
    supervisor = (report.get("supervision") or {}).get("supervisor")
    if supervisor is not None:
        family("stackfit_supervisor_up", "gauge", "1 when stackfit-supervisor runs.",
               [({}, supervisor.get("running"))])
    family("stackfit_service_headroom_bytes", "gauge",
           "MemoryHigh minus PSS, bytes (negative: the plan is too small; measure and re-plan).",
           [({"service": name}, room) for name, room in sorted(report.get("headroom_bytes", {}).items())])
    redis = report["redis"]
    family("stackfit_redis_up", "gauge", "1 when Redis answered INFO memory.",
           [({}, "error" not in redis)])
    if "error" not in redis:
        family("stackfit_redis_used_memory_bytes", "gauge", "Redis used_memory, bytes.",
               [({}, redis["used_memory"])])
        family("stackfit_redis_maxmemory_bytes", "gauge", "Redis maxmemory, bytes (0 = no limit).",
               [({}, redis["maxmemory"])])
        family("stackfit_redis_used_memory_percent", "gauge",
               "Redis used_memory as percent of maxmemory (absent when maxmemory is 0).",
               [({}, redis["used_percent"])])
        family("stackfit_redis_fragmentation_ratio", "gauge", "Redis mem_fragmentation_ratio.",
               [({}, redis["mem_fragmentation_ratio"])])
        if redis.get("maxmemory_policy"):
            family("stackfit_redis_maxmemory_policy_info", "gauge",
                   "Redis maxmemory-policy, as a label.",
                   [({"policy": redis["maxmemory_policy"]}, 1)])
    suspects = {leak["service"] for leak in report["leaks"]}
    family("stackfit_leak_suspected", "gauge",
           "1 when the service's PSS grew monotonically over the last leak_samples runs.",
           [({"service": name}, name in suspects) for name in sorted(report["services"])])
    decision = (report.get("adaptive") or {}).get("decision")
    if decision:
        family("stackfit_adaptive_decision", "gauge",
               "The adaptive policy's last decision (1 for the action taken).",
               [({"action": action}, decision["action"] == action)
                for action in ("lower", "raise", "hold")])
        family("stackfit_adaptive_target_bytes", "gauge",
               "Redis maxmemory the adaptive decision leads to, bytes.",
               [({}, decision["target"])])
        family("stackfit_adaptive_applied", "gauge",
               "1 when this run changed Redis maxmemory.",
               [({}, report["adaptive"].get("applied", False))])
    recycle = report.get("recycle") or {}
    family("stackfit_celery_recycle_total", "counter",
           "Celery recycle commands run (kept in recycle_state.json).",
           [({}, recycle.get("count"))])
    family("stackfit_celery_recycle_last_timestamp_seconds", "gauge",
           "When the celery recycle command last ran, Unix time.",
           [({}, recycle.get("last_run"))])
    monitor = report["monitor"]
    family("stackfit_monitor_last_run_timestamp_seconds", "gauge",
           "When the monitor last ran, Unix time.", [({}, report["timestamp_seconds"])])
    family("stackfit_monitor_run_seconds", "gauge", "Wall time of the monitor's last run.",
           [({}, monitor["run_seconds"])])
    family("stackfit_monitor_cpu_seconds", "gauge", "CPU time of the monitor's last run.",
           [({}, monitor["cpu_seconds"])])
    family("stackfit_monitor_max_rss_bytes", "gauge", "Peak RSS of the monitor's last run.",
           [({}, monitor["max_rss_bytes"])])
    family("stackfit_monitor_info", "gauge", "The monitor's environment, as a label.",
           [({"environment": report["environment"]}, 1)])

    out = []
    for name, kind, help_text, samples in families:
        out.append("# HELP %s %s\n# TYPE %s %s\n" % (name, help_text, name, kind))
        for labels, value in samples:
            text = ",".join('%s="%s"' % (key, _escape(val)) for key, val in labels.items())
            out.append("%s%s %s\n" % (name, "{%s}" % text if text else "", _fmt(value)))
    return "".join(out)
