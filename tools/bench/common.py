"""Paths and constants the harness's modules share, its log and its raw results (--json); puts
module_utils on sys.path."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "module_utils") not in sys.path:
    sys.path.insert(0, str(ROOT / "module_utils"))

BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
OVERRIDES = ("REDIS_MEMORY_LIMIT", "GUNICORN_WORKERS", "CELERY_CONCURRENCY", "MEMORY_MONITOR_INTERVAL")
MIB = 1024 * 1024
HOST, PORT, ROUTE = "127.0.0.1", 5001, "/api/work"
APP_JSON = "/etc/stackfit/app.json"
PIDFILES = {
    "gunicorn": "/run/stackfit/gunicorn.pid",
    "celery": "/run/stackfit/celery.pid",
    "redis": "/run/redis/redis-server.pid",
}
STACK_VENV = "/opt/stackfit/current/venv"
# The launcher (roles/monitor/templates/stackfit-monitor.j2): the venv's python, the package.
MONITOR_CMD = ["/opt/stackfit/bin/stackfit-monitor", "run", "--config", "/etc/stackfit/monitor.json"]
WRK = shutil.which("wrk") or ("/usr/bin/wrk" if os.path.exists("/usr/bin/wrk") else None)


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def dump(opts, results):
    """The raw results so far (--json), so that a failure late in the run keeps what was measured;
    --from-json redraws the report from a complete file."""
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=str)
