"""The whole stack under systemd, in the host's groups: units, plan, round trips, hardening, files.

Each test reads the host's groups from Molecule's inventory and checks only what those groups run,
so the same file serves a host with every role (default) and hosts split by role (production).
"""

import json
import time

import pytest

import stackfit_testlib as lib

UNITS = {
    "cache": ["redis-server.service"],
    "web": ["stackfit-gunicorn.service"],
    "worker": ["stackfit-celery.service"],
    "monitor": ["stackfit-monitor.timer"],
}
HARDENED = {"web": "stackfit-gunicorn.service", "worker": "stackfit-celery.service",
            "monitor": "stackfit-monitor.service"}
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def groups(host):
    return lib.inventory_groups(host)


@pytest.fixture(scope="module")
def app(host):
    return lib.app_json(host)


def _needs(groups, group):
    if group not in groups:
        pytest.skip(f"not a {group} host")


@pytest.mark.parametrize("group", ["cache", "web", "worker", "monitor"])
def test_units_are_active_and_enabled(host, groups, group):
    if group != "monitor":
        _needs(groups, group)
    for unit in UNITS[group]:
        assert host.run("systemctl is-active %s", unit).stdout.strip() == "active", unit
        assert host.run("systemctl is-enabled %s", unit).stdout.strip() == "enabled", unit


def test_celery_runs_through_its_launcher(host, groups):
    """The worker's main process is stackfit-celery (its shebang: the venv's python), with celery's arguments."""
    _needs(groups, "worker")
    pid = host.run("systemctl show -p MainPID --value stackfit-celery.service").stdout.strip()
    assert pid and pid != "0"
    argv = host.file(f"/proc/{pid}/cmdline").content.split(b"\0")
    assert argv[0].endswith(b"/venv/bin/python") and argv[1] == f"{lib.BIN_DIR}/stackfit-celery".encode()
    assert argv[2:5] == [b"-A", b"app.celery_utils.celery", b"worker"], argv


def test_the_plan_follows_the_container(host, groups, app):
    """The recorded plan is this container's (its CPUs and memory, its groups' services, under
    systemd), and app.json holds its values."""
    resources = lib.container_resources(host)
    plan = lib.host_plan(host)
    assert (plan["cpus"], plan["memory_bytes"]) == (resources["cpus"], resources["memory_bytes"])
    assert set(plan["services"]) == {g for g in groups if g in ("web", "worker", "cache")} | {"monitor"}
    assert plan["manager"] == "systemd"
    if app is None:  # the app only where it runs: a cache host has no app.json
        assert not {"web", "worker"} & groups
        return
    assert plan["environment"] == app["environment"]
    got = {k: app[k] for k in ("gunicorn_workers", "celery_concurrency", "redis_maxmemory_bytes",
                               "monitor_interval")}
    assert got == {k: plan[k] for k in got}, plan["explain"]
    if app["environment"] == "development" and "web" in groups:
        assert app["gunicorn_workers"] == 3  # the dev profile's fixed value


def _gunicorn_workers(host):
    master = int(host.check_output("systemctl show -p MainPID --value stackfit-gunicorn.service"))
    assert master > 0
    return master, lib.process_children(host, master)


def test_gunicorn_runs_the_planned_workers_in_its_unit(host, groups, app):
    _needs(groups, "web")
    deadline = time.monotonic() + 30
    master, workers = _gunicorn_workers(host)
    while len(workers) != app["gunicorn_workers"] and time.monotonic() < deadline:
        time.sleep(1)
        master, workers = _gunicorn_workers(host)
    assert len(workers) == app["gunicorn_workers"]
    for pid in [master] + workers:
        cgroup = host.file(f"/proc/{pid}/cgroup").content_string
        assert "stackfit-gunicorn.service" in cgroup, f"pid {pid}: {cgroup}"
        assert host.check_output("ps -o user= -p %s", str(pid)) == "stackfit"


def test_celery_round_trip_through_redis(host, groups):
    _needs(groups, "web")  # the caller: the app, where the web serves it
    out = lib.app_python(host, lib.CELERY_ROUND_TRIP)
    assert out.rc == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "5"


def test_redis_maxmemory_is_the_plan(host, groups):
    _needs(groups, "cache")
    plan = lib.host_plan(host)
    password = lib.redis_password(host)
    if password:  # the password redis.conf holds is the one Redis asks for
        refused = lib.redis_cli(host, "PING")
        assert "NOAUTH" in refused.stdout + refused.stderr, refused.stdout
    got = lib.redis_cli(host, "CONFIG", "GET", "maxmemory", password=password)
    assert got.rc == 0, got.stderr
    assert got.stdout.split()[-1] == str(plan["redis_maxmemory_bytes"])
    policy = lib.redis_cli(host, "CONFIG", "GET", "maxmemory-policy", password=password)
    assert policy.stdout.split()[-1] == "volatile-lru"
    conf = host.file("/etc/redis/stackfit-memory.conf").content_string
    assert f"maxmemory {plan['redis_maxmemory_bytes']}" in conf.splitlines()


def test_monitor_timer_runs_and_its_report_is_fresh(host):
    assert host.run("systemctl is-active stackfit-monitor.timer").stdout.strip() == "active"
    path = lib.MONITOR_REPORT
    # The timer fires 5 s after it starts: allow a first run to finish.
    deadline = time.monotonic() + 60
    while not host.file(path).exists and time.monotonic() < deadline:
        time.sleep(2)
    report = host.file(path)
    assert report.exists
    age = int(host.check_output("date +%s")) - report.mtime.timestamp()
    assert age <= 2 * lib.host_plan(host)["monitor_interval"], f"report is {age:.0f} s old"
    data = json.loads(report.content_string)
    assert {"system", "processes"} <= set(data)
    result = host.check_output("systemctl show -p Result --value stackfit-monitor.service")
    assert result == "success"


def test_healthz(host, groups):
    _needs(groups, "web")
    status, body = lib.http_get(host, "/healthz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"


def test_admin_memory_endpoint_needs_the_token(host, groups, app):
    _needs(groups, "web")
    assert lib.http_get(host, "/api/admin/system/memory")[0] == 401
    assert lib.http_get(host, "/api/admin/system/memory", token="wrong-token-0123456789")[0] == 401
    status, body = lib.http_get(host, "/api/admin/system/memory", token=app["admin_token"])
    assert status == 200
    assert app["admin_token"] not in body


@pytest.mark.parametrize("group", ["web", "worker", "monitor"])
def test_units_are_hardened(host, groups, group):
    if group != "monitor":
        _needs(groups, group)
    exposure = lib.unit_exposure(host, HARDENED[group])
    print(f"systemd-analyze security {HARDENED[group]}: exposure {exposure} (at most {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, f"{HARDENED[group]}: exposure {exposure}"


@pytest.mark.parametrize("path, user, group, mode", [
    ("/etc/stackfit", "root", "stackfit", 0o750),
    ("/etc/stackfit/app.json", "root", "stackfit", 0o640),
    ("/var/lib/stackfit/monitor", "stackfit", "stackfit", 0o750),
    ("/opt/stackfit/bin", "root", "stackfit", 0o755),
])
def test_stack_paths(host, groups, path, user, group, mode):
    f = host.file(path)
    if path == lib.APP_JSON and not {"web", "worker"} & groups:
        assert not f.exists, "the app only where it runs"
        return
    assert f.exists, path
    assert (f.user, f.group, f.mode) == (user, group, mode), path


def test_scripts_are_root_owned_executables(host):
    names = host.check_output("ls %s", lib.BIN_DIR).split()
    assert {"stop.sh", "stackfit-daemon", "start_monitor.sh", "verify-unit"} <= set(names)
    for name in names:
        f = host.file(f"{lib.BIN_DIR}/{name}")
        if f.is_symlink:
            assert f.linked_to == f"{lib.BIN_DIR}/start.sh", name  # start_production.sh
            continue
        assert (f.user, f.group, f.mode) == ("root", "root", 0o755), name


@pytest.mark.parametrize("group", ["cache", "web", "worker", "monitor"])
def test_unit_files_are_root_0644(host, groups, group):
    if group != "monitor":
        _needs(groups, group)
    paths = {
        "cache": ["/etc/systemd/system/redis-server.service.d/stackfit.conf"],
        "web": ["/etc/systemd/system/stackfit-gunicorn.service"],
        "worker": ["/etc/systemd/system/stackfit-celery.service"],
        "monitor": ["/etc/systemd/system/stackfit-monitor.service",
                    "/etc/systemd/system/stackfit-monitor.timer"],
    }[group]
    for path in paths:
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o644), path
