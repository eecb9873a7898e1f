"""Without systemd a crashed service comes back: on this machine's dev stack, kill -9 of the
Gunicorn master, the Celery worker and Redis, one at a time under load, is healed by
stackfit-supervisor within 5 s and counted in the monitor's report; a service that dies at every
start is given up after 5 tries, reported, and taken back after a reset."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import measured

from test_dev_stack import Load, get, playbook, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")

PIDFILES = {"gunicorn": "/run/stackfit/gunicorn.pid", "celery": "/run/stackfit/celery.pid",
            "redis": "/run/redis/redis-server.pid"}
STATE = "/run/stackfit-supervisor/supervisor.json"
SUPERVISOR = "/opt/stackfit/bin/stackfit-supervisor"


def pid_of(name):
    try:
        with open(PIDFILES[name], encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def state():
    with open(STATE, encoding="utf-8") as handle:
        return json.load(handle)


def monitor_report():
    out = subprocess.run(["runuser", "-u", "stackfit", "--", "/opt/stackfit/bin/stackfit-monitor",
                          "run", "--config", "/etc/stackfit/monitor.json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with open("/var/lib/stackfit/monitor/report.json", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module", autouse=True)
def stack():
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    playbook("site.yml")
    assert wait_for(lambda: state()["supervisor"]["running"], 30)
    yield
    playbook("playbooks/stop.yml")


@pytest.mark.parametrize("name", ["gunicorn", "celery", "redis"])
def test_a_killed_service_serves_again_within_5_s_and_is_counted(name):
    before = pid_of(name)
    restarts = state()["services"][name]["restarts"]
    with Load(30) as load:
        time.sleep(1)
        os.kill(before, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: pid_of(name) not in (None, before) and alive(pid_of(name)), 5, 0.1), name
        back = time.monotonic() - killed
        if name == "gunicorn":
            assert wait_for(lambda: _healthz() == 200, 5 - back, 0.1)
        time.sleep(1)
    measured("%s: running again %.1f s after kill -9; %d requests ok, %d failed meanwhile" % (
        name, back, load.ok, load.failed))
    assert state()["services"][name]["restarts"] == restarts + 1
    report = monitor_report()
    assert report["supervision"]["services"][name]["restarts"] == restarts + 1
    assert report["supervision"]["supervisor"]["running"] is True


def _healthz():
    try:
        return get("/healthz")[0]
    except OSError:
        return None


def test_a_service_that_dies_at_every_start_is_given_up_and_reported():
    # Every start now fails at import, with a traceback in its log.
    module = os.path.join(os.path.realpath("/opt/stackfit/current"), "app", "celery_utils.py")
    os.chmod(module, 0)
    try:
        os.kill(pid_of("celery"), signal.SIGKILL)
        assert wait_for(lambda: state()["services"]["celery"]["state"] == "fatal", 120, 0.5)
        failed = state()["services"]["celery"]
        assert failed["last_error"], failed
        report = monitor_report()
        assert report["supervision"]["services"]["celery"]["state"] == "fatal"
        assert "PermissionError" in report["supervision"]["services"]["celery"]["log_tail"]  # its own last lines
        time.sleep(3)
        assert state()["services"]["celery"]["state"] == "fatal"  # not restarted forever
    finally:
        os.chmod(module, 0o644)
    reset = subprocess.run([SUPERVISOR, "reset", "celery"], capture_output=True, text=True, timeout=30)
    assert reset.returncode == 0, reset.stderr
    assert wait_for(lambda: pid_of("celery") and alive(pid_of("celery")), 30, 0.5)
