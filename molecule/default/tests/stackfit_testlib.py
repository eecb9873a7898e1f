"""Helpers shared by the scenarios' testinfra tests (default, production, scripts).

The tests run on the controller (pytest + testinfra over ``podman://``). Everything about a host is
read inside its container, through ``host.run``: its plan is /etc/stackfit/plan.json, which the
converge wrote, and the tests check that the container's real CPUs and memory went into it and
that the running services follow it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "module_utils"))

import stackfit_sizing  # noqa: E402  (from the repository, after the path change)

APP_JSON = "/etc/stackfit/app.json"
PLAN_JSON = "/etc/stackfit/plan.json"
APP_DIR = "/opt/stackfit/current"
VENV_PYTHON = "/opt/stackfit/current/venv/bin/python"
BIN_DIR = "/opt/stackfit/bin"
MONITOR_REPORT = "/var/lib/stackfit/monitor/report.json"
GUNICORN_PORT = 5001
# cgroup v1 reports "no limit" as a page-aligned value near 2**63.
_NO_LIMIT = 1 << 60


def host_name(host) -> str:
    return host.backend.name


def inventory_groups(host) -> set[str]:
    """The host's groups in Molecule's inventory (MOLECULE_INVENTORY_FILE, set for verify)."""
    path = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert path, "MOLECULE_INVENTORY_FILE is not set: run the tests through `molecule verify`"
    inventory = yaml.safe_load(Path(path).read_text())
    name = host_name(host)
    return {group for group, body in inventory.items()
            if group != "all" and name in ((body or {}).get("hosts") or {})}


def container_resources(host) -> dict:
    """CPUs and memory as the container sees them: nproc (affinity), the container's cgroup CPU
    quota and memory limit (v1 or v2, read at the container's cgroup mount), MemTotal."""
    script = r"""
nproc
awk '/^MemTotal:/ {print $2}' /proc/meminfo
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "max 100000"
  cat /sys/fs/cgroup/memory.max 2>/dev/null || echo max
else
  echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
  cat /sys/fs/cgroup/memory/memory.limit_in_bytes
fi
"""
    nproc, memtotal, cpu, memory = host.check_output(script).splitlines()[:4]
    cpus = float(nproc)
    quota, period = cpu.split()
    if quota not in ("max", "-1"):
        cpus = min(cpus, int(quota) / int(period))
    memory_bytes = int(memtotal) * 1024  # kB in /proc/meminfo
    if memory not in ("max",) and int(memory) < _NO_LIMIT:
        memory_bytes = min(memory_bytes, int(memory))
    return {"cpus": round(cpus, 3), "memory_bytes": memory_bytes,
            "memory_limit": None if memory == "max" or int(memory) >= _NO_LIMIT else int(memory),
            "cpu_quota": None if quota in ("max", "-1") else int(quota) / int(period)}


def host_plan(host) -> dict:
    """The plan the converge recorded on the host (/etc/stackfit/plan.json)."""
    return json.loads(host.file(PLAN_JSON).content_string)


def app_json(host) -> dict | None:
    """app.json, where the app runs (web and worker hosts); None on a host without it (cache only)."""
    if not host.file(APP_JSON).exists:
        return None
    return json.loads(host.file(APP_JSON).content_string)


def redis_password(host) -> str | None:
    """requirepass as redis.conf holds it, the role's quoting (backslash escapes) undone."""
    for line in host.file("/etc/redis/redis.conf").content_string.splitlines():
        if line.startswith("requirepass "):
            value = line[len("requirepass "):].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r'\\(.)', lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)),
                               value[1:-1])
            return value or None
    return None


def http_get(host, path: str, token: str | None = None, address: str = "127.0.0.1",
             port: int = GUNICORN_PORT) -> tuple[int, str]:
    """GET inside the container with its Python (the image has no curl): (status, body)."""
    code = r"""
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        status, body = resp.status, resp.read()
except urllib.error.HTTPError as err:
    status, body = err.code, err.read()
sys.stdout.write("%d\n" % status)
sys.stdout.write(body.decode("utf-8", "replace"))
"""
    # The token travels in an argument of `podman exec`, never in the test's output.
    out = host.run("python3 -c %s %s %s", code, f"http://{address}:{port}{path}", token or "")
    assert out.rc == 0, out.stderr
    status, _, body = out.stdout.partition("\n")
    return int(status), body


def app_python(host, code: str, timeout: int = 90):
    """Run code with the deployed venv in the current release, as the stackfit user."""
    return host.run(
        "cd %s && timeout %s runuser -u stackfit -- env STACKFIT_CONFIG=%s %s -c %s",
        APP_DIR, str(timeout), APP_JSON, VENV_PYTHON, code)


CELERY_ROUND_TRIP = "from app.tasks import add; print(add.delay(2, 3).get(timeout=30))"


def redis_cli(host, *args: str, address: str = "127.0.0.1", password: str | None = None):
    """redis-cli inside the container; the password goes through REDISCLI_AUTH, not argv."""
    env = "REDISCLI_AUTH=%s " if password else ""
    params = ([password] if password else []) + [address] + list(args)
    return host.run(env + "redis-cli --no-auth-warning -h %s" + " %s" * len(args), *params)


def unit_exposure(host, unit: str) -> float:
    out = host.run("systemd-analyze security --offline=no --no-pager %s", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out.stdout)
    assert match, f"{unit}: no exposure level in {out.stdout[-500:]!r} {out.stderr!r}"
    return float(match.group(1))


def process_children(host, pid: int) -> list[int]:
    out = host.run("pgrep -P %s", str(pid))
    return [int(p) for p in out.stdout.split()]
