"""The start-script mode: no systemd, every service from /opt/stackfit/bin with a pidfile.

The last test stops the stack with stop.sh and starts it again with the start scripts, leaving
it as converge did.
"""

import json
import time

import pytest

import stackfit_testlib as lib

RUN = "/run/stackfit"
PIDFILES = {
    "gunicorn": (f"{RUN}/gunicorn.pid", "stackfit"),
    "celery": (f"{RUN}/celery.pid", "stackfit"),
    "monitor": (f"{RUN}/monitor.pid", "stackfit"),
    "redis": ("/run/redis/redis-server.pid", "redis"),
}
START = [
    "/etc/init.d/redis-server start",
    f"{lib.BIN_DIR}/start.sh",
    f"{lib.BIN_DIR}/start_celery.sh",
    f"{lib.BIN_DIR}/start_monitor.sh",
]


@pytest.fixture(scope="module")
def app(host):
    return lib.app_json(host)


def _pid(host, pidfile):
    text = host.run("cat %s", pidfile).stdout.strip()
    return int(text) if text.isdigit() else None


def _alive(host, pid):
    # A zombie is not alive: its state is Z.
    state = host.run("ps -o stat= -p %s", str(pid)).stdout.strip()
    return bool(state) and not state.startswith("Z")


def _wait(predicate, timeout=60, step=1.0):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def test_no_systemd(host):
    assert host.file("/proc/1/comm").content_string.strip() != "systemd"
    for unit in ("stackfit-gunicorn.service", "stackfit-celery.service",
                 "stackfit-monitor.service", "stackfit-monitor.timer"):
        assert not host.file(f"/etc/systemd/system/{unit}").exists, unit
    # verify-unit is rendered only for systemd hosts
    assert not host.file(f"{lib.BIN_DIR}/verify-unit").exists


def test_scripts_are_installed(host):
    for name in ("start.sh", "start_celery.sh", "start_monitor.sh", "stop.sh", "stackfit-daemon"):
        f = host.file(f"{lib.BIN_DIR}/{name}")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o755), name
    # One Gunicorn start script behind the seed's two names.
    assert host.file(f"{lib.BIN_DIR}/start_production.sh").linked_to == f"{lib.BIN_DIR}/start.sh"


@pytest.mark.parametrize("service", list(PIDFILES))
def test_services_run_from_their_pidfiles(host, service):
    pidfile, user = PIDFILES[service]
    pid = _pid(host, pidfile)
    assert pid and _alive(host, pid), f"{service}: {pidfile} -> {pid}"
    assert host.check_output("ps -o user= -p %s", str(pid)) == user


def test_the_plan_follows_the_container(host, app):
    resources = lib.container_resources(host)
    plan = lib.host_plan(host)
    assert (plan["cpus"], plan["memory_bytes"]) == (resources["cpus"], resources["memory_bytes"])
    assert plan["manager"] == "script"
    for key in ("gunicorn_workers", "celery_concurrency", "redis_maxmemory_bytes", "monitor_interval"):
        assert app[key] == plan[key], key
    assert app["gunicorn_workers"] == 3
    # every service's pidfile is the one its description names
    for name, (pidfile, _) in PIDFILES.items():
        assert plan["units"][name]["pidfile"] == pidfile, name


def test_gunicorn_runs_the_planned_workers(host, app):
    master = _pid(host, PIDFILES["gunicorn"][0])
    assert _wait(lambda: len(lib.process_children(host, master)) == app["gunicorn_workers"], 30)


def test_healthz_and_admin_token(host, app):
    status, body = lib.http_get(host, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert lib.http_get(host, "/api/admin/system/memory")[0] == 401
    assert lib.http_get(host, "/api/admin/system/memory", token=app["admin_token"])[0] == 200


def test_celery_round_trip(host):
    out = lib.app_python(host, lib.CELERY_ROUND_TRIP)
    assert out.rc == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "5"


def test_redis_maxmemory_is_the_plan(host, app):
    got = lib.redis_cli(host, "CONFIG", "GET", "maxmemory")
    assert got.stdout.split()[-1] == str(app["redis_maxmemory_bytes"])
    conf = host.file("/etc/redis/stackfit-memory.conf").content_string
    assert f"maxmemory {app['redis_maxmemory_bytes']}" in conf.splitlines()


def test_monitor_loop_writes_its_report(host, app):
    report = host.file(lib.MONITOR_REPORT)
    assert _wait(lambda: report.exists, 60)
    age = int(host.check_output("date +%s")) - report.mtime.timestamp()
    assert age <= 2 * app["monitor_interval"]
    data = json.loads(report.content_string)
    assert {"system", "processes"} <= set(data)
    # the loop: a shell (start_monitor.sh --loop) sleeping between runs, no Python resident
    pid = _pid(host, PIDFILES["monitor"][0])
    args = host.check_output("ps -o args= -p %s", str(pid))
    assert "python" not in args.split()[0], args
    assert "start_monitor.sh" in args or args.split()[0].endswith("bash"), args


def test_stop_sh_stops_everything_and_the_start_scripts_bring_it_back(host, app):
    pids = {name: _pid(host, pidfile) for name, (pidfile, _) in PIDFILES.items()}
    out = host.run(f"{lib.BIN_DIR}/stop.sh")
    assert out.rc == 0, out.stdout + out.stderr
    for name, pid in pids.items():
        assert _wait(lambda pid=pid: not _alive(host, pid), 30), f"{name} (pid {pid}) still runs"
        assert not host.file(PIDFILES[name][0]).exists, name
    assert host.run("python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 5001), 2)").rc != 0

    for command in START:
        started = host.run(command)
        assert started.rc == 0, f"{command}: {started.stdout} {started.stderr}"
    assert _wait(lambda: lib.http_get(host, "/healthz")[0] == 200 if host.run(
        "python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 5001), 2)").rc == 0
        else False, 60)
    for name, (pidfile, _) in PIDFILES.items():
        pid = _pid(host, pidfile)
        assert pid and pid != pids[name] and _alive(host, pid), name
    again = lib.app_python(host, lib.CELERY_ROUND_TRIP)
    assert again.rc == 0 and again.stdout.split()[-1] == "5", again.stderr[-2000:]


def test_start_production_sh_runs_as_the_seeds_script(host):
    """The seed's production script by its name: --preload, and API_HOST/API_PORT when set."""
    pidfile = PIDFILES["gunicorn"][0]
    stopped = host.run(f"{lib.BIN_DIR}/stackfit-daemon stop gunicorn {pidfile} --timeout 35")
    assert stopped.rc == 0, stopped.stderr
    started = host.run(f"API_HOST=127.0.0.1 API_PORT=5002 {lib.BIN_DIR}/start_production.sh")
    assert started.rc == 0, started.stdout + started.stderr
    try:
        pid = _pid(host, pidfile)
        args = host.check_output("ps -o args= -p %s", str(pid))
        assert "--preload" in args and "--bind 127.0.0.1:5002" in args, args
        assert _wait(lambda: lib.http_get(host, "/healthz", port=5002)[0] == 200 if host.run(
            "python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 5002), 2)").rc == 0
            else False, 60)
    finally:
        host.run(f"{lib.BIN_DIR}/stackfit-daemon stop gunicorn {pidfile} --timeout 35")
        assert host.run(f"{lib.BIN_DIR}/start.sh").rc == 0  # as converge left it
    assert _wait(lambda: lib.http_get(host, "/healthz")[0] == 200 if host.run(
        "python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 5001), 2)").rc == 0
        else False, 60)
