"""`make dev` for real on this machine: site.yml on inventories/dev brings the stack up, a re-run and
--check change nothing, GUNICORN_WORKERS=2 reloads Gunicorn alone without a failed request, and
playbooks/stop.yml stops everything. Needs root (CI runs as root) and no systemd as PID 1."""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import redis

from conftest import ROOT, measured

BIN = os.path.dirname(sys.executable)
OVERRIDES = ("REDIS_MEMORY_LIMIT", "GUNICORN_WORKERS", "CELERY_CONCURRENCY", "MEMORY_MONITOR_INTERVAL")
APP_JSON = "/etc/stackfit/app.json"
RUN = "/run/stackfit"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")


def run_playbook(*args, env=None, timeout=1200):
    """ansible-playbook on the dev inventory, without the seed's overrides unless ``env`` sets
    them: the finished process, whatever its exit."""
    full_env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    full_env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    full_env.update(env or {})
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), *args, "-i", "inventories/dev"],
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def playbook(*args, env=None, timeout=1200):
    out = run_playbook(*args, env=env, timeout=timeout)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    return out.stdout


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(4))}


def changed_tasks(output):
    names, current = [], None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            current = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            names.append(current)
    return names


def get(path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", 5001, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def pid(name):
    with open(os.path.join(RUN, name + ".pid"), encoding="ascii") as handle:
        return int(handle.read())


def gunicorn_workers():
    import psutil
    return len(psutil.Process(pid("gunicorn")).children())


def wait_for(predicate, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Load:
    """A bounded load on 127.0.0.1:5001 (4 threads, at most `seconds`), counting failures."""

    def __init__(self, seconds):
        self.seconds, self.ok, self.failed, self.errors = seconds, 0, 0, {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(4)]

    def run(self):
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and not self.stop.is_set():
            try:
                status, _ = get("/api/work")
                ok, why = status == 200, status
            except OSError as exc:
                ok, why = False, type(exc).__name__
            with self.lock:
                if ok:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors[why] = self.errors.get(why, 0) + 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


@pytest.fixture(scope="module")
def stack():
    # From nothing, whatever an earlier run (make dev, a killed test) left on this machine.
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    first = playbook("site.yml")
    yield first
    playbook("playbooks/stop.yml")


def test_stack_comes_up_as_planned(stack):
    assert recap(stack)["failed"] == 0
    status, body = get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    with open(APP_JSON, encoding="utf-8") as handle:
        app = json.load(handle)
    # the development profile, as planned for this machine
    assert app["environment"] == "development"
    assert app["gunicorn_workers"] == 3 and app["celery_concurrency"] == 20
    assert app["redis_maxmemory_bytes"] == 100 * 1024 * 1024 and app["monitor_interval"] == 1800
    assert app["image_cache_quota_bytes"]["article"] == int(0.2 * 100 * 1024 * 1024)
    assert wait_for(lambda: gunicorn_workers() == app["gunicorn_workers"], 30)
    client = redis.Redis(port=6379)
    assert int(client.config_get("maxmemory")["maxmemory"]) == app["redis_maxmemory_bytes"]
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    with open("/etc/redis/stackfit-memory.conf", encoding="ascii") as handle:
        assert "maxmemory %d" % app["redis_maxmemory_bytes"] in handle.read()


def test_celery_task_runs_end_to_end_through_redis(stack):
    code = ("from app.tasks import add, generate\n"
            "print(add.delay(2, 3).get(timeout=30), generate.delay('hi').get(timeout=30))\n")
    out = subprocess.run(["/opt/stackfit/current/venv/bin/python", "-c", code], cwd="/opt/stackfit/current",
                         env={"STACKFIT_CONFIG": APP_JSON, "PATH": os.environ["PATH"]},
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "5"


def test_memory_endpoint_needs_the_token_and_the_monitor_reports(stack):
    with open(APP_JSON, encoding="utf-8") as handle:
        token = json.load(handle)["admin_token"]
    assert get("/api/admin/system/memory")[0] == 401
    assert get("/api/admin/system/memory", {"Authorization": "Bearer wrong"})[0] == 401
    status, body = get("/api/admin/system/memory", {"Authorization": "Bearer " + token})
    assert status == 200
    report = json.loads(body)
    assert report["redis"]["maxmemory"] == 100 * 1024 * 1024
    assert token.encode() not in body
    path = "/var/lib/stackfit/monitor/report.json"
    assert wait_for(lambda: os.path.exists(path), 30)
    with open(path, encoding="utf-8") as handle:
        monitor = json.load(handle)
    assert time.time() - os.path.getmtime(path) < 300
    assert {"system", "redis", "processes"} <= set(monitor)
    assert monitor["processes"]["gunicorn"]["pss"] > 0


def test_rerun_and_check_mode_change_nothing(stack):
    rerun = playbook("site.yml")
    assert recap(rerun)["changed"] == 0, changed_tasks(rerun)
    check = playbook("site.yml", "--check", "--diff")
    assert recap(check)["changed"] == 0, changed_tasks(check)


def test_fewer_workers_reload_gunicorn_alone_without_a_failed_request(stack):
    celery_before = pid("celery")
    gunicorn_before = pid("gunicorn")
    with Load(120) as load:
        time.sleep(1)
        out = playbook("site.yml", env={"GUNICORN_WORKERS": "2"})
        assert wait_for(lambda: gunicorn_workers() == 2, 60)
        time.sleep(1)
    measured("requests during the reload: %d ok, %d failed" % (load.ok, load.failed))
    assert load.ok > 0 and load.failed == 0, load.errors
    # The monitor follows the web service's new MemoryHigh (its headroom report): its loop restarts.
    # plan.json is one of the stack's base files (one stackfit_files call).
    assert set(changed_tasks(out)) == {"stackfit : Install the stack's base (directories, plan.json, "
                                       "stackfit-daemon, stop.sh and the rest)",
                                       "app : Render the app's configuration",
                                       "gunicorn : Render Gunicorn's configuration",
                                       "gunicorn : Reload gunicorn",
                                       "monitor : Render the monitor's configuration",
                                       "monitor : Restart monitor"}
    assert pid("gunicorn") == gunicorn_before  # a HUP, not a restart
    assert pid("celery") == celery_before      # Celery untouched
    playbook("site.yml")
    assert wait_for(lambda: gunicorn_workers() == 3, 60)


def test_rollout_on_a_host_that_runs_every_service_restarts_what_runs_the_release(stack, tmp_path):
    """playbooks/rollout.yml on this machine, which is web, worker and cache at once: the new
    release restarts Gunicorn (--preload: HUP would keep the old code) and Celery on it."""
    import shutil
    source = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "synspirit", source)
    (source / "RELEASE").write_text("a release made by the rollout test\n")
    before = {name: pid(name) for name in ("gunicorn", "celery")}
    out = playbook("playbooks/rollout.yml", "-e", "app_source=%s" % source)
    assert recap(out)["failed"] == 0
    release = os.path.realpath("/opt/stackfit/current")
    assert os.path.exists(os.path.join(release, "RELEASE"))
    for name in ("gunicorn", "celery"):
        assert pid(name) != before[name], name
        assert os.readlink("/proc/%d/cwd" % pid(name)) == release, name
    assert wait_for(lambda: gunicorn_workers() == 3, 60)
    assert get("/healthz")[0] == 200
    playbook("site.yml")  # back to the sample app as it is
    assert not os.path.exists(os.path.join(os.path.realpath("/opt/stackfit/current"), "RELEASE"))


def test_stop_playbook_stops_every_service(stack):
    import psutil
    pids = {name: pid(name) for name in ("gunicorn", "celery", "monitor")}
    playbook("playbooks/stop.yml")
    for name, number in pids.items():
        assert not psutil.pid_exists(number) or psutil.Process(number).status() == psutil.STATUS_ZOMBIE, name
    with pytest.raises(OSError):
        get("/healthz")
    # and site.yml brings it back (the fixture's final stop.yml runs after)
    playbook("site.yml")
    assert get("/healthz")[0] == 200
