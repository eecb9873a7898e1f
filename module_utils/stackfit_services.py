# -*- coding: utf-8 -*-
"""stackfit's services, described once: how each one runs, stops, reloads and reports.

Pure functions, no Ansible imports. ``describe()`` gives, per service a host runs, everything that
roles, playbooks/stop.yml, stop.sh, the rollout tasks, the monitor's configuration and the
``stackfit_service`` module need to know about it: its systemd unit, its pidfile, its start script,
its stop signal and timeout, its reload signal, where it listens, its log files (the last lines of
which explain a failure), the files that define it (a rollout snapshots them), the paths it may
write, what stop.yml's purge removes besides the stack's directories, and ``match``: a string its
command line contains (a pid is trusted only while it does). The plan carries the result as
``stackfit_plan.units`` (and /etc/stackfit/plan.json on each host), in stop order.
"""
from __future__ import annotations

# The plan's services (inventory groups) and the program that serves each.
PROGRAMS = {"web": "gunicorn", "worker": "celery", "cache": "redis", "monitor": "monitor"}
# Stop order: nothing is brought back (the supervisor, without systemd), nothing new is measured,
# then no new requests, then running tasks finish, then the queue they read from.
STOP_ORDER = ("supervisor", "monitor", "gunicorn", "celery", "redis")
# Without systemd, stackfit-supervisor restarts a service that died (root's: its state lives in a
# root-owned directory, never the app user's /run/stackfit).
SUPERVISOR_DIR = "/run/stackfit-supervisor"
MANAGERS = ("systemd", "script")

DEFAULT_LAYOUT = {
    "prefix": "/opt/stackfit",
    "bin_dir": "/opt/stackfit/bin",
    "config_dir": "/etc/stackfit",
    "log_dir": "/var/log/stackfit",
    "state_dir": "/var/lib/stackfit",
    "run_dir": "/run/stackfit",
    "data_dir": "/var/lib/stackfit/data",
}
DEFAULT_SETTINGS = {
    "gunicorn_bind": "127.0.0.1:5001",
    "gunicorn_graceful_timeout": 30,
    "gunicorn_workers": 0,
    "celery_task_time_limit": 300,
    "redis_port": 6379,
}
# Seconds a stop may take beyond the service's own grace before SIGKILL.
STOP_MARGIN = {"gunicorn": 5, "celery": 30}
MONITOR_STOP_TIMEOUT = 10
REDIS_STOP_TIMEOUT = 30


class ServiceError(ValueError):
    """Bad input: the message names the option and the value."""


def parse_bind(value, option="gunicorn_bind"):
    """(host, port) of a ``host:port`` bind address (IPv6 as ``[::1]:5001``)."""
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ServiceError("%s: %r must be host:port (e.g. 127.0.0.1:5001)" % (option, value))
    number = int(port)
    if not 1 <= number <= 65535:
        raise ServiceError("%s: %r has port %d, outside 1-65535" % (option, value, number))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, number


def _connect_host(bind_host):
    """Where a local client reaches a server bound to ``bind_host``."""
    if bind_host in ("0.0.0.0", "*", ""):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host


def _positive_int(settings, key):
    value = settings[key]
    if isinstance(value, bool):
        raise ServiceError("%s: %r must be a whole number of seconds above 0" % (key, value))
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ServiceError("%s: %r must be a whole number of seconds above 0" % (key, value)) from None
    if number <= 0:
        raise ServiceError("%s: %r must be a whole number of seconds above 0" % (key, value))
    return number


def describe(services, manager, layout=None, settings=None, environment="development"):
    """Every service of ``services`` (plan services: web, worker, cache, monitor), in stop order.

    ``manager`` is ``systemd`` where PID 1 is systemd, ``script`` elsewhere (start scripts with
    pidfiles). ``layout`` holds the stack's directories (DEFAULT_LAYOUT), ``settings`` the few
    values that shape a service's control (DEFAULT_SETTINGS).
    """
    if manager not in MANAGERS:
        raise ServiceError("manager: %r must be one of %s" % (manager, ", ".join(MANAGERS)))
    lay = dict(DEFAULT_LAYOUT)
    lay.update({k: v for k, v in (layout or {}).items() if v})
    unknown = sorted(set(lay) - set(DEFAULT_LAYOUT))
    if unknown:
        raise ServiceError("layout: %s unknown (known: %s)" % (", ".join(unknown), ", ".join(DEFAULT_LAYOUT)))
    opts = dict(DEFAULT_SETTINGS)
    opts.update({k: v for k, v in (settings or {}).items() if v is not None})
    unknown = sorted(set(opts) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ServiceError("settings: %s unknown (known: %s)" % (", ".join(unknown), ", ".join(DEFAULT_SETTINGS)))
    systemd = manager == "systemd"
    bin_dir, log_dir, config_dir = lay["bin_dir"], lay["log_dir"], lay["config_dir"]
    programs = [PROGRAMS[s] for s in services] + ([] if systemd else ["supervisor"])
    units = {}

    def run_dir(unit):
        # Under systemd a service's runtime directory is its unit's own (RuntimeDirectory=).
        return "/run/" + unit if systemd else lay["run_dir"]

    for name in STOP_ORDER:
        if name not in programs:
            continue
        if name == "gunicorn":
            host, port = parse_bind(opts["gunicorn_bind"])
            grace = _positive_int(opts, "gunicorn_graceful_timeout")
            unit = "stackfit-gunicorn"
            script = "start_production.sh" if environment == "production" else "start.sh"
            units[name] = {
                "unit": unit + ".service",
                "pidfile": run_dir(unit) + "/gunicorn.pid",
                "control_socket": run_dir(unit) + "/gunicorn.ctl",
                "match": "gunicorn",
                "start": [bin_dir + "/" + script],
                "stop_signal": "TERM",
                "stop_timeout": grace + STOP_MARGIN["gunicorn"],
                "reload_signal": "HUP",
                "bind": "%s:%d" % (host, port) if ":" not in host else "[%s]:%d" % (host, port),
                "bind_host": host,
                "host": _connect_host(host),
                "port": port,
                # Ready: the port accepts and this many workers booted (they stay up).
                "workers": int(opts["gunicorn_workers"] or 0),
                "config": config_dir + "/gunicorn.conf.py",
                "logs": {"out": log_dir + "/gunicorn.out", "error": log_dir + "/gunicorn-error.log",
                         "access": log_dir + "/gunicorn-access.log"},
                "files": [config_dir + "/gunicorn.conf.py", config_dir + "/app.json",
                          bin_dir + "/start.sh", bin_dir + "/start_production.sh"]
                + (["/etc/systemd/system/%s.service" % unit] if systemd else []),
                "purge": ["/etc/systemd/system/%s.service" % unit],
                "writable": [log_dir, lay["data_dir"]],
            }
        elif name == "celery":
            limit = _positive_int(opts, "celery_task_time_limit")
            unit = "stackfit-celery"
            units[name] = {
                "unit": unit + ".service",
                "pidfile": run_dir(unit) + "/celery.pid",
                "match": "celery",
                "start": [bin_dir + "/start_celery.sh"],
                # TERM is Celery's warm shutdown: running tasks finish within their time limit.
                "stop_signal": "TERM",
                "stop_timeout": limit + STOP_MARGIN["celery"],
                "reload_signal": None,
                "logs": {"out": log_dir + "/celery.log"},
                # Celery's worker logs "<hostname> ready." once it consumes from its queues.
                "ready_log": " ready.",
                "files": [config_dir + "/app.json", bin_dir + "/start_celery.sh",
                          bin_dir + "/stackfit-celery"]
                + (["/etc/systemd/system/%s.service" % unit] if systemd else []),
                "purge": ["/etc/systemd/system/%s.service" % unit],
                "writable": [log_dir, lay["data_dir"]],
            }
        elif name == "redis":
            port = opts["redis_port"]
            if isinstance(port, bool) or not str(port).strip().isdigit() or not 1 <= int(port) <= 65535:
                raise ServiceError("redis_port: %r must be a TCP port (1-65535)" % (port,))
            units[name] = {
                # Debian's package: its unit, its init script, its pidfile and log.
                "unit": "redis-server.service",
                "pidfile": "/run/redis/redis-server.pid",
                "match": "redis-server",
                "start": ["/etc/init.d/redis-server", "start"],
                "stop_signal": "TERM",
                "stop_timeout": REDIS_STOP_TIMEOUT,
                "reload_signal": None,
                "host": "127.0.0.1",
                "port": int(port),
                "config": "/etc/redis/redis.conf",
                "memory_config": "/etc/redis/stackfit-memory.conf",
                "logs": {"out": "/var/log/redis/redis-server.log"},
                "files": ["/etc/redis/redis.conf", "/etc/redis/stackfit-memory.conf"],
                # Debian's package stays; stackfit's own files go (stop.yml -e stackfit_purge=true).
                "purge": ["/etc/systemd/system/redis-server.service.d/stackfit.conf",
                          "/etc/redis/stackfit-memory.conf"],
                "writable": ["/var/lib/redis", "/var/log/redis"],
            }
        elif name == "supervisor":
            units[name] = {
                "unit": None,
                "pidfile": SUPERVISOR_DIR + "/supervisor.pid",
                "match": "stackfit-supervisor",
                "start": [bin_dir + "/start_supervisor.sh"],
                "stop_signal": "TERM",
                "stop_timeout": 5,
                "reload_signal": None,
                "state": SUPERVISOR_DIR + "/supervisor.json",
                # What it watches (below): it is restarted when this file changes, not the plan.
                "config": config_dir + "/supervisor.json",
                "logs": {"out": "/var/log/stackfit-supervisor.log"},
                "files": [config_dir + "/supervisor.json"],
                "purge": ["/var/log/stackfit-supervisor.log", SUPERVISOR_DIR],
                "writable": [SUPERVISOR_DIR],
            }
        else:
            units[name] = {
                # Under systemd a timer starts one run every interval; elsewhere a shell loop.
                "unit": "stackfit-monitor.timer",
                "service_unit": "stackfit-monitor.service",
                "pidfile": lay["run_dir"] + "/monitor.pid",
                "match": "start_monitor.sh",
                "start": [bin_dir + "/start_monitor.sh"],
                "stop_signal": "TERM",
                "stop_timeout": MONITOR_STOP_TIMEOUT,
                "reload_signal": None,
                "config": config_dir + "/monitor.json",
                "output_dir": lay["state_dir"] + "/monitor",
                "logs": {"out": log_dir + "/monitor.log"},
                "files": [config_dir + "/monitor.json"],
                "purge": ["/etc/systemd/system/stackfit-monitor.service",
                          "/etc/systemd/system/stackfit-monitor.timer"],
                "writable": [lay["state_dir"] + "/monitor"],
            }
        units[name]["manager"] = manager
    if "monitor" in units:
        # What the monitor measures: every other service of this host, found by its pidfile.
        units["monitor"]["watch"] = {name: {"pidfile": unit["pidfile"], "match": unit["match"],
                                            "unit": unit["unit"], "log": unit["logs"]["out"]}
                                     for name, unit in units.items()
                                     if name not in ("monitor", "supervisor")}
        if "supervisor" in units:
            units["monitor"]["supervisor_state"] = units["supervisor"]["state"]
    if "supervisor" in units:
        # What the supervisor restarts, in start order: a new worker count leaves it alone.
        units["supervisor"]["watch"] = {
            "manager": manager,
            "stop_order": [name for name in STOP_ORDER if name in units and name != "supervisor"],
            "units": {name: {"pidfile": unit["pidfile"], "match": unit["match"], "start": unit["start"]}
                      for name, unit in units.items() if name != "supervisor"}}
    return units
