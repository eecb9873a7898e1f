"""Helpers and fixtures for the monitor tests (no conftest.py here: tests/unit does
`from conftest import ROOT`, and a second conftest module would shadow that name).

Importing this module puts roles/monitor/files on sys.path, so that tests import the monitor
package as the host does (`from stackfit_monitor import policy`). It also renders the launcher
(roles/monitor/templates/stackfit-monitor.j2) once, for running the monitor as a subprocess
(MONITOR_CMD), next to stand-in service process trees."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES_DIR = ROOT / "roles" / "monitor" / "files"
PACKAGE_DIR = FILES_DIR / "stackfit_monitor"
LAUNCHER_TEMPLATE = ROOT / "roles" / "monitor" / "templates" / "stackfit-monitor.j2"

# No __pycache__ inside roles/monitor/files: the role copies that directory to the hosts.
sys.dont_write_bytecode = True
if str(FILES_DIR) not in sys.path:
    sys.path.insert(0, str(FILES_DIR))


def _comment(text):
    """Ansible's `comment` filter, plain style. (Importing ansible.plugins.filter here would load
    Ansible's plugin machinery at collection time and change how the in-process module tests in
    tests/unit see their warnings; tests/integration renders the templates with Ansible itself.)"""
    return "#\n" + "\n".join("# " + line for line in text.splitlines()) + "\n#"


def render_launcher(dest, python, package=FILES_DIR):
    """Render the launcher template as the role does (``python`` its interpreter), executable.
    ``package``: what it puts on sys.path (the host's zip; here the package's directory)."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(comment=_comment, to_json=json.dumps)
    text = env.from_string(LAUNCHER_TEMPLATE.read_text()).render(
        ansible_managed="Ansible managed", monitor_python=str(python), __monitor_package=str(package))
    Path(dest).write_text(text)
    os.chmod(dest, 0o755)
    return Path(dest)


_LAUNCHER_DIR = tempfile.mkdtemp(prefix="stackfit-monitor-launcher-")
atexit.register(shutil.rmtree, _LAUNCHER_DIR, True)
LAUNCHER = render_launcher(Path(_LAUNCHER_DIR) / "stackfit-monitor", sys.executable)
# Run by this interpreter (the shebang names <venv>/bin/python, which a test run may not have).
MONITOR_CMD = [sys.executable, str(LAUNCHER)]
# Subprocesses write no bytecode into the package either.
MONITOR_ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")


MiB = 1024 * 1024

# A parent that starts a child; both hold `hold` MiB of written (resident) memory and sleep.
_TREE = """
import subprocess, sys, time
hold = int(sys.argv[1])
data = b"x" * (hold * 1024 * 1024)
if len(sys.argv) > 2:
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; d = b'y' * (%d * 1024 * 1024); time.sleep(60)" % hold])
    open(sys.argv[2], "w").write("%d\\n" % child.pid)
time.sleep(60)
"""


class ServiceTree:
    """A stand-in service: a sleeping python parent and one child; pidfile names the parent."""

    def __init__(self, workdir, name, hold_mib=4):
        self.pidfile = Path(workdir) / ("%s.pid" % name)
        childfile = Path(workdir) / ("%s.child" % name)
        self.proc = subprocess.Popen([sys.executable, "-c", _TREE, str(hold_mib), str(childfile)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if childfile.exists() and childfile.read_text().endswith("\n"):
                break
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("service tree %s did not start" % name)
        self.child_pid = int(childfile.read_text())
        self.pid = self.proc.pid
        self.pidfile.write_text("%d\n" % self.pid)
        time.sleep(0.2)  # let both write their memory

    def stop(self):
        for pid in (getattr(self, "child_pid", None), self.proc.pid):
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_monitor(*args, check=None, timeout=60):
    """Run the monitor as a subprocess; returns CompletedProcess (text)."""
    done = subprocess.run([*MONITOR_CMD, *map(str, args)], env=MONITOR_ENV,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def write_config(path, output_dir, redis_port, **overrides):
    cfg = {
        "environment": "development",
        "output_dir": str(output_dir),
        "interval": 1800,
        "redis": {"host": "127.0.0.1", "port": redis_port, "password": None, "db": 0},
        "services": {},
        "history": {"max_bytes": 1048576, "leak_samples": 6, "leak_min_growth_bytes": 8 * MiB},
    }
    for key, value in overrides.items():
        cfg[key] = value
    Path(path).write_text(json.dumps(cfg))
    return Path(path)

@pytest.fixture
def service_tree(tmp_path):
    """service_tree(name, hold_mib=4): a sleeping parent + child; stopped by PID afterwards."""
    trees = []

    def make(name, hold_mib=4):
        tree = ServiceTree(tmp_path, name, hold_mib)
        trees.append(tree)
        return tree

    yield make
    for tree in trees:
        tree.stop()


@pytest.fixture
def monitor_env(tmp_path):
    """monitor_env(redis_port, **top_level_overrides) -> (config path, output dir)."""
    def make(redis_port, **overrides):
        out = tmp_path / "out"
        return write_config(tmp_path / "monitor.json", out, redis_port, **overrides), out
    return make
