"""An app that dies at import, under a real Gunicorn started the way the roles start it (a start
script through stackfit-daemon, controlled by stackfit_service): the failure is reported within
10 s of the start, with the app's own traceback from Gunicorn's log, and no pidfile is left."""
from __future__ import annotations

import os
import sys
import time

import pytest

from conftest import ROOT, free_port, run_main

DAEMON = "%s %s" % (sys.executable, ROOT / "module_utils" / "stackfit_daemon.py")
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


@pytest.fixture
def broken_app(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "brokenapp.py").write_text(
        "raise RuntimeError('the app cannot start: DATABASE_URL is not set')\n")
    log = tmp_path / "gunicorn.out"
    pidfile = tmp_path / "run" / "gunicorn.pid"
    port = free_port()
    script = tmp_path / "start.sh"
    # No --preload: each worker imports the app, fails, and the master gives up ("Worker failed to
    # boot"); with --preload the master itself fails at import. Both must be reported at once.
    script.write_text(
        "#!/bin/bash\nexec %s launch gunicorn %s %s --cwd %s --match gunicorn -- %s "
        "--no-control-socket -k gevent -w 2 -b 127.0.0.1:%d ${PRELOAD:-} brokenapp:app\n" % (
            DAEMON, pidfile, log, app, GUNICORN, port))
    script.chmod(0o755)
    unit = {"pidfile": str(pidfile), "start": [str(script)], "host": "127.0.0.1", "port": port,
            "workers": 2, "match": "gunicorn", "logs": {"out": str(log)}}
    return {"name": "gunicorn", "unit": unit, "manager": "script", "timeout": 60}


@pytest.mark.parametrize("preload", ["", "--preload"])
def test_an_app_that_dies_at_import_is_reported_at_once_with_its_traceback(broken_app, capsys,
                                                                            monkeypatch, preload):
    monkeypatch.setenv("PRELOAD", preload)
    began = time.monotonic()
    code, result = run_main("stackfit_service", broken_app, capsys)
    took = time.monotonic() - began
    assert code == 1, result
    assert took < 10, "reported after %.1f s" % took
    assert "DATABASE_URL is not set" in result["msg"]  # the app's own error, from its log
    assert "gunicorn.out" in result["msg"]
    assert not os.path.exists(broken_app["unit"]["pidfile"])
