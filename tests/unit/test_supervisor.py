"""stackfit-supervisor against real processes: start scripts that launch a sleeper through
stackfit_daemon's CLI (as the roles' start scripts do), a supervisor run as its own program."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import stackfit_daemon as sd
from conftest import ROOT

PY = sys.executable
DAEMON = ROOT / "module_utils" / "stackfit_daemon.py"
SUPERVISOR = ROOT / "module_utils" / "stackfit_supervisor.py"
# A service: its command line carries a tag (its match); it lives for argv[2] s (bounded).
SLEEPER = textwrap.dedent("""
    import sys, time
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        time.sleep(0.05)
""")


class Host:
    """Start scripts, a plan and a supervisor in tmp_path; everything it started is killed after."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        (tmp_path / "sleeper.py").write_text(SLEEPER)
        (tmp_path / "state").mkdir(mode=0o700)
        self.state = tmp_path / "state" / "supervisor.json"
        self.units, self.proc = {}, None

    def script(self, name, body):
        path = self.root / ("start_%s.sh" % name)
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(0o755)
        self.units[name] = {"pidfile": str(self.root / "run" / (name + ".pid")), "match": "tag-" + name,
                            "start": [str(path)], "stop_signal": "TERM", "stop_timeout": 5}
        return self.units[name]

    def launch_line(self, name, lifetime=60):
        return "exec %s %s launch %s %s %s --match tag-%s -- %s %s tag-%s %s\n" % (
            PY, DAEMON, name, self.root / "run" / (name + ".pid"), self.root / (name + ".log"), name,
            PY, self.root / "sleeper.py", name, lifetime)

    def service(self, name, lifetime=60):
        return self.script(name, self.launch_line(name, lifetime))

    def start(self, *options):
        plan = self.root / "plan.json"
        plan.write_text(json.dumps({"manager": "script", "units": self.units,
                                    "stop_order": list(self.units)}))
        self.log = open(self.root / "supervisor.log", "wb")
        self.proc = subprocess.Popen([PY, str(SUPERVISOR), "run", "--plan", str(plan), "--state",
                                      str(self.state), *options], stdout=self.log, stderr=subprocess.STDOUT)
        return self.proc

    def read(self):
        try:
            return json.loads(self.state.read_text())
        except (OSError, ValueError):
            return {}

    def service_state(self, name):
        return self.read().get("services", {}).get(name, {})

    def wait(self, predicate, timeout, what):
        assert sd.wait_until(predicate, timeout, 0.05), "%s within %ss; state %s; log:\n%s" % (
            what, timeout, self.read(), (self.root / "supervisor.log").read_text())

    def pid(self, name):
        return sd.running_pid(self.units[name]["pidfile"], self.units[name]["match"])

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
            self.log.close()
        mine = str(self.root).encode()
        for entry in os.listdir("/proc"):  # sleepers and start scripts in flight
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        if mine in handle.read():
                            os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def host(tmp_path):
    made = Host(tmp_path)
    yield made
    made.cleanup()


def test_a_killed_service_runs_again_within_5s_and_the_restart_is_counted(host):
    host.service("web")
    host.service("worker")
    for name in ("web", "worker"):
        subprocess.run(host.units[name]["start"], check=True, capture_output=True)
    first, worker = host.pid("web"), host.pid("worker")
    host.start()
    host.wait(lambda: host.service_state("web").get("pid") == first, 5, "the supervisor sees web")
    assert host.service_state("web")["restarts"] == 0 and host.service_state("web")["state"] == "running"
    killed_at = time.time()
    os.kill(first, signal.SIGKILL)
    host.wait(lambda: host.pid("web") not in (None, first), 5, "web runs again")
    assert time.time() - killed_at < 5
    host.wait(lambda: host.service_state("web").get("pid") == host.pid("web"), 2, "the state shows it")
    web = host.service_state("web")
    assert web["up"] and web["state"] == "running" and web["restarts"] == 1
    assert killed_at <= web["last_restart"] <= time.time()
    assert host.pid("worker") == worker and host.service_state("worker")["restarts"] == 0


def test_a_service_whose_start_keeps_failing_is_given_up_until_reset(host):
    counter = host.root / "attempts"
    host.script("web", "echo run >> %s\necho 'ImportError: no module named app' >&2\nexit 1\n" % counter)
    host.start("--backoff", "0.05")
    host.wait(lambda: host.service_state("web").get("state") == "fatal", 10, "web is given up")
    web = host.service_state("web")
    assert web["restarts"] == 5 and not web["up"]
    assert "exited 1" in web["last_error"] and "no module named app" in web["last_error"]
    time.sleep(1.5)
    assert len(counter.read_text().split()) == 5  # not retried forever
    assert host.proc.poll() is None  # the supervisor itself runs on
    out = subprocess.run([PY, str(SUPERVISOR), "status", "--state", str(host.state)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "fatal" in out.stdout and "no module named app" in out.stdout
    out = subprocess.run([PY, str(SUPERVISOR), "reset", "web", "--state", str(host.state)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    host.wait(lambda: len(counter.read_text().split()) > 5, 3, "web is tried again after a reset")


def test_a_service_that_dies_soon_after_each_start_is_given_up(host):
    """Gunicorn whose workers fail to boot: the start succeeds, the master exits seconds later."""
    pidfile = host.root / "run" / "web.pid"
    host.script("web", "mkdir -p %s\n%s %s tag-web 0.3 &\necho $! > %s\n" % (
        pidfile.parent, PY, host.root / "sleeper.py", pidfile))
    host.start("--backoff", "0.05", "--startsecs", "5")
    host.wait(lambda: host.service_state("web").get("state") == "fatal", 20, "web is given up")
    assert host.service_state("web")["restarts"] == 5
    assert "exited within 5s of its start" in host.service_state("web")["last_error"]


def test_sigterm_exits_at_once_and_leaves_the_services_running(host):
    host.service("web")
    host.script("slow", "sleep 5\nexit 1\n")  # a start script in flight at SIGTERM
    host.start()
    host.wait(lambda: host.service_state("web").get("up") and host.service_state("slow").get("restarts"),
              5, "web runs and slow's start script is running")
    web = host.pid("web")
    began = time.monotonic()
    host.proc.send_signal(signal.SIGTERM)
    assert host.proc.wait(timeout=3) == 0
    assert time.monotonic() - began < 1.0
    assert host.pid("web") == web and sd.is_alive(web)
    assert host.read()["supervisor"]["running"] is False


def test_the_state_is_replaced_atomically_and_a_planted_symlink_is_not_followed(host):
    victim = host.root / "victim"
    victim.write_text("precious\n")
    host.state.symlink_to(victim)
    (host.root / "state" / "supervisor.json.tmp").symlink_to(victim)
    host.service("web")
    host.start()
    host.wait(lambda: host.service_state("web").get("up"), 5, "web runs")
    first_inode = os.stat(host.state).st_ino
    os.kill(host.pid("web"), signal.SIGKILL)
    reads, deadline = 0, time.monotonic() + 5
    while time.monotonic() < deadline and host.service_state("web").get("restarts", 0) < 2:
        with open(host.state) as handle:
            json.load(handle)  # never a partly written file
        reads += 1
    assert host.service_state("web")["restarts"] == 2 and reads > 10
    assert victim.read_text() == "precious\n"
    assert not host.state.is_symlink() and os.stat(host.state).st_ino != first_inode
    assert sorted(os.listdir(host.root / "state")) == ["supervisor.json"]


def test_a_state_directory_others_can_change_is_refused(host):
    host.service("web")
    (host.root / "state").chmod(0o777)
    proc = host.start()
    assert proc.wait(timeout=5) == 2
    assert "writable by others" in (host.root / "supervisor.log").read_text()
    assert host.pid("web") is None
    if os.geteuid() == 0:
        (host.root / "state").chmod(0o755)
        os.chown(host.root / "state", 65534, 65534)  # the app user's directory
        assert host.start().wait(timeout=5) == 2
        assert "belongs to uid 65534" in (host.root / "supervisor.log").read_text()


def test_a_restart_by_someone_else_is_not_doubled(host):
    """start_celery.sh --recycle (the monitor's remedy): stop, then launch; the supervisor waits."""
    unit = host.service("worker")
    recycle = host.root / "recycle.sh"
    recycle.write_text("#!/bin/bash\n%s %s stop worker %s --match tag-worker\nsleep 1.5\n%s" % (
        PY, DAEMON, unit["pidfile"], host.launch_line("worker")))
    recycle.chmod(0o755)
    unit["start"] = [str(recycle)]  # its start script, called with --recycle by the monitor
    subprocess.run(host.launch_line("worker")[5:].split(), check=True, capture_output=True)
    first = host.pid("worker")
    host.start()
    host.wait(lambda: host.service_state("worker").get("pid") == first, 5, "the supervisor sees it")
    subprocess.run([str(recycle), "--recycle"], check=True, capture_output=True, timeout=20)
    second = host.pid("worker")
    assert second not in (None, first)
    host.wait(lambda: host.service_state("worker").get("pid") == second, 3, "the state shows it")
    assert host.service_state("worker")["restarts"] == 0  # it did not start one of its own
    assert sum(b"tag-worker" in open("/proc/%s/cmdline" % p, "rb").read()
               for p in os.listdir("/proc") if p.isdigit() and os.path.exists("/proc/%s/cmdline" % p)) == 1


def test_on_a_host_it_loads_stackfit_daemon_installed_next_to_it(tmp_path):
    """/opt/stackfit/bin holds stackfit-daemon and stackfit-supervisor, no importable module."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(DAEMON, bin_dir / "stackfit-daemon")
    shutil.copy(SUPERVISOR, bin_dir / "stackfit-supervisor")
    program = [PY, "-I", str(bin_dir / "stackfit-supervisor")]  # -I: no script directory on sys.path
    out = subprocess.run(program + ["status", "--state", str(tmp_path / "none.json")], capture_output=True,
                         text=True)
    assert out.returncode == 3 and "no state" in out.stdout, out.stderr
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"manager": "systemd", "units": {}}))
    out = subprocess.run(program + ["run", "--plan", str(plan), "--state", str(tmp_path / "s.json")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "systemd" in out.stderr
    assert open(bin_dir / "stackfit-supervisor").readline() == "#!/usr/bin/python3\n"
