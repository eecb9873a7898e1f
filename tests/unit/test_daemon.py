"""stackfit_daemon: a real background service managed by its start script and pidfile."""
from __future__ import annotations

import os
import signal
import textwrap

import pytest

import stackfit_daemon as sd
from test_modules import run_main


@pytest.fixture
def service(tmp_path):
    """A start script that backgrounds a Python loop which counts HUPs in a file."""
    pidfile = tmp_path / "svc.pid"
    hups = tmp_path / "hups"
    program = tmp_path / "svc.py"
    program.write_text(textwrap.dedent("""
        import signal, sys, time
        def hup(*_):
            with open(sys.argv[1], "a") as f:
                f.write("hup\\n")
        signal.signal(signal.SIGHUP, hup)
        with open(sys.argv[1], "a") as f:
            f.write("ready\\n")
        end = time.time() + 120  # bounded: never outlives the test run by much
        while time.time() < end:
            time.sleep(0.05)
    """))
    script = tmp_path / "start.sh"
    script.write_text("#!/bin/bash\nset -e\nsetsid nohup %s %s %s >/dev/null 2>&1 </dev/null &\necho $! > %s\n"
                      % (os.environ.get("PYTHON", "python3"), program, hups, pidfile))
    script.chmod(0o755)
    yield {"name": "svc", "pidfile": str(pidfile), "start": [str(script)], "timeout": 10}, hups
    pid = sd.read_pid(str(pidfile))
    if sd.is_alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_started_is_idempotent_and_check_mode_changes_nothing(service, capsys):
    args, _ = service
    code, result = run_main("stackfit_daemon", dict(args, _ansible_check_mode=True), capsys)
    assert code == 0 and result["changed"] is True
    assert sd.running_pid(args["pidfile"]) is None  # check mode started nothing
    code, result = run_main("stackfit_daemon", args, capsys)
    assert result["changed"] is True and sd.is_alive(result["pid"])
    first = result["pid"]
    code, result = run_main("stackfit_daemon", args, capsys)
    assert result["changed"] is False and result["pid"] == first


def test_reloaded_signals_and_restarted_replaces_and_stopped_stops(service, capsys):
    args, hups = service
    _, started = run_main("stackfit_daemon", args, capsys)
    assert sd.wait_until(lambda: hups.exists() and "ready" in hups.read_text(), 10)
    _, reloaded = run_main("stackfit_daemon", dict(args, state="reloaded"), capsys)
    assert reloaded["changed"] and reloaded["pid"] == started["pid"]
    assert sd.wait_until(lambda: hups.exists() and "hup" in hups.read_text(), 5)
    _, restarted = run_main("stackfit_daemon", dict(args, state="restarted"), capsys)
    assert restarted["changed"] and restarted["pid"] != started["pid"]
    assert not sd.is_alive(started["pid"])
    _, stopped = run_main("stackfit_daemon", dict(args, state="stopped"), capsys)
    assert stopped["changed"] and not sd.is_alive(restarted["pid"])
    _, again = run_main("stackfit_daemon", dict(args, state="stopped"), capsys)
    assert again["changed"] is False


def test_a_start_script_that_fails_is_a_clear_error(tmp_path, capsys):
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\necho 'cannot bind 127.0.0.1:5001' >&2\nexit 3\n")
    script.chmod(0o755)
    code, result = run_main("stackfit_daemon", {"name": "web", "pidfile": str(tmp_path / "p"),
                                                "start": [str(script)], "timeout": 5}, capsys)
    assert code == 1 and "exited 3" in result["msg"] and "cannot bind" in result["msg"]


def test_unknown_signal_names_the_option(service, capsys):
    args, _ = service
    code, result = run_main("stackfit_daemon", dict(args, stop_signal="NOPE"), capsys)
    assert code == 1 and "stop_signal/reload_signal" in result["msg"] and "SIGNOPE" in result["msg"]
