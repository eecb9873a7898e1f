"""stackfit_daemon (the one pidfile implementation: launch, stop, trust) and the stackfit_service
module in start-script mode, against real background processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import stackfit_daemon as sd
from conftest import ROOT
from conftest import run_main

DAEMON = [sys.executable, str(ROOT / "module_utils" / "stackfit_daemon.py")]

# A service: counts HUPs in a file, says "ready." after a delay, listens on a port when given one.
SERVICE = textwrap.dedent("""
    import signal, socket, sys, time
    marks, delay, port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    def hup(*_):
        with open(marks, "a") as f:
            f.write("hup\\n")
    signal.signal(signal.SIGHUP, hup)
    print("booting", flush=True)
    time.sleep(delay)
    if port:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.listen(5)
    print("svc ready.", flush=True)
    end = time.time() + 120  # bounded: never outlives the test run by much
    while time.time() < end:
        time.sleep(0.05)
""")


@pytest.fixture
def service(tmp_path):
    """A start script that launches the service through stackfit-daemon (as the roles' do)."""
    from conftest import free_port
    program = tmp_path / "svc.py"
    program.write_text(SERVICE)
    pidfile, log, marks = tmp_path / "run" / "svc.pid", tmp_path / "svc.log", tmp_path / "marks"
    port = free_port()
    script = tmp_path / "start.sh"
    script.write_text("#!/bin/bash\nexec %s launch svc %s %s --match svc.py -- %s %s %s ${DELAY:-0} %d\n" % (
        " ".join(DAEMON), pidfile, log, sys.executable, program, marks, port))
    script.chmod(0o755)
    unit = {"pidfile": str(pidfile), "start": [str(script)], "stop_signal": "TERM", "stop_timeout": 10,
            "reload_signal": "HUP", "host": "127.0.0.1", "port": port, "match": "svc.py",
            "logs": {"out": str(log)}, "ready_log": " ready."}
    yield {"name": "svc", "unit": unit, "manager": "script", "timeout": 15}, marks
    pid = sd.read_pid(str(pidfile))
    if sd.is_alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_started_is_idempotent_ready_and_check_mode_changes_nothing(service, capsys):
    args, _ = service
    code, result = run_main("stackfit_service", dict(args, _ansible_check_mode=True), capsys)
    assert code == 0 and result["changed"] is True and result["actions"] == ["start"]
    assert sd.running_pid(args["unit"]["pidfile"]) is None  # check mode started nothing
    code, result = run_main("stackfit_service", args, capsys)
    assert code == 0 and result["changed"] is True and sd.is_alive(result["pid"]), result["msg"]
    assert sd.port_open("127.0.0.1", args["unit"]["port"])  # ready means accepting
    first = result["pid"]
    code, result = run_main("stackfit_service", args, capsys)
    assert result["changed"] is False and result["pid"] == first


def test_reloaded_signals_restarted_replaces_stopped_stops(service, capsys):
    args, marks = service
    _, started = run_main("stackfit_service", args, capsys)
    _, reloaded = run_main("stackfit_service", dict(args, state="reloaded"), capsys)
    assert reloaded["changed"] and reloaded["pid"] == started["pid"]
    assert sd.wait_until(lambda: marks.exists() and "hup" in marks.read_text(), 5)
    _, restarted = run_main("stackfit_service", dict(args, state="restarted"), capsys)
    assert restarted["changed"] and restarted["pid"] != started["pid"]
    assert not sd.is_alive(started["pid"])
    _, stopped = run_main("stackfit_service", dict(args, state="stopped"), capsys)
    assert stopped["changed"] and not sd.is_alive(restarted["pid"])
    assert not os.path.exists(args["unit"]["pidfile"])
    _, again = run_main("stackfit_service", dict(args, state="stopped"), capsys)
    assert again["changed"] is False


def test_a_service_that_dies_at_start_fails_at_once_with_its_own_output(tmp_path, capsys):
    log = tmp_path / "bad.log"
    script = tmp_path / "start.sh"
    script.write_text("#!/bin/bash\nexec %s launch bad %s %s -- %s -c %s\n" % (
        " ".join(DAEMON), tmp_path / "bad.pid", log, sys.executable,
        repr("import time; time.sleep(1.5); raise SystemExit('ImportError: no module named app')")))
    script.chmod(0o755)
    unit = {"pidfile": str(tmp_path / "bad.pid"), "start": [str(script)], "port": 1,
            "logs": {"out": str(log)}}
    began = time.monotonic()
    code, result = run_main("stackfit_service", {"name": "bad", "unit": unit, "manager": "script",
                                                 "timeout": 60}, capsys)
    assert code == 1 and time.monotonic() - began < 10  # not the 60 s timeout
    assert "no module named app" in result["msg"] and str(log) in result["msg"]
    assert not (tmp_path / "bad.pid").exists()  # a dead service's pidfile is removed


def test_a_start_script_that_fails_is_a_clear_error(tmp_path, capsys):
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\necho 'cannot bind 127.0.0.1:5001' >&2\nexit 3\n")
    script.chmod(0o755)
    code, result = run_main("stackfit_service", {"name": "web", "manager": "script", "timeout": 5,
                                                 "unit": {"pidfile": str(tmp_path / "p"),
                                                          "start": [str(script)]}}, capsys)
    assert code == 1 and "exited 3" in result["msg"] and "cannot bind" in result["msg"]


def test_unknown_signal_names_the_option(service, capsys):
    args, _ = service
    unit = dict(args["unit"], stop_signal="NOPE")
    run_main("stackfit_service", args, capsys)
    code, result = run_main("stackfit_service", dict(args, unit=unit, state="stopped"), capsys)
    assert code == 1 and "unit.stop_signal" in result["msg"] and "SIGNOPE" in result["msg"]


def test_a_reused_pid_is_not_trusted(tmp_path):
    """A pidfile older than the process it names (the pid was reused) or naming another program."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile = tmp_path / "old.pid"
        pidfile.write_text("%d\n" % sleeper.pid)
        assert sd.running_pid(str(pidfile)) == sleeper.pid
        assert sd.running_pid(str(pidfile), match="gunicorn") is None  # not the service
        past = time.time() - 3600
        os.utime(pidfile, (past, past))  # written an hour before this process started
        pid, why = sd.trusted_pid(str(pidfile))
        assert pid is None and "reused" in why
        assert sd.stop(str(pidfile), signal.SIGTERM, 5) is None  # never signalled
        assert sleeper.poll() is None
        assert not pidfile.exists()  # the stale pidfile is gone
    finally:
        sleeper.kill()
        sleeper.wait()


def test_launch_never_follows_a_planted_log_symlink(tmp_path):
    target = tmp_path / "victim"
    target.write_text("precious\n")
    log = tmp_path / "svc.log"
    log.symlink_to(target)
    out = subprocess.run(DAEMON + ["launch", "svc", str(tmp_path / "svc.pid"), str(log), "--",
                                   "/bin/true"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "svc.log" in out.stderr
    assert target.read_text() == "precious\n"


def test_cli_status_and_stop(service):
    args, _ = service
    unit = args["unit"]
    assert subprocess.run(unit["start"], timeout=30).returncode == 0
    assert sd.wait_until(lambda: sd.running_pid(unit["pidfile"]), 5)
    status = subprocess.run(DAEMON + ["status", "svc", unit["pidfile"]], capture_output=True, text=True)
    assert status.returncode == 0 and "svc runs" in status.stdout
    stop = subprocess.run(DAEMON + ["stop", "svc", unit["pidfile"], "--timeout", "5"],
                          capture_output=True, text=True, timeout=30)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    status = subprocess.run(DAEMON + ["status", "svc", unit["pidfile"]], capture_output=True, text=True)
    assert status.returncode == 3 and "not running" in status.stdout


def test_env_file_syntax(tmp_path):
    env = tmp_path / "app.env"
    env.write_text('# comment\nA=1\nB="two words"\nC=\'x=y\'\n\nD="a\\"b"\n')
    assert sd.read_env_file(str(env)) == {"A": "1", "B": "two words", "C": "x=y", "D": 'a"b'}
    env.write_text("not an assignment\n")
    with pytest.raises(ValueError, match="line 1"):
        sd.read_env_file(str(env))
