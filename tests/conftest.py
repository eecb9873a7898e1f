"""Shared fixtures: the project's paths on sys.path, and a real redis-server per test session."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "module_utils"))
# The checkout's tools (tools/bench, tested in tests/bench) import as the package `tools`.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

# Let `from ansible.module_utils.stackfit_x import ...` (what library/ modules do) resolve in tests.
import ansible.module_utils  # noqa: E402

if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))


MEASURED = []


def measured(line):
    """A figure a test saw (a first-run time, a PSS, requests during a reload): printed with the test's
    output and again at the end of the session, so that every run's log carries the numbers."""
    print(line)
    MEASURED.append(line)


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured")
        for line in MEASURED:
            terminalreporter.write_line(line)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on 127.0.0.1, started and stopped by its PID."""

    def __init__(self, workdir, password=None, extra=()):
        self.port = free_port()
        self.password = password
        self.workdir = Path(workdir)
        self.conf = self.workdir / "redis.conf"
        lines = ["bind 127.0.0.1", "port %d" % self.port, "dir %s" % self.workdir,
                 "save \"\"", "appendonly no", "daemonize no",
                 "logfile %s" % (self.workdir / "redis.log")]
        if password:
            lines.append("requirepass %s" % password)
        lines.extend(extra)
        self.conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen([binary, str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def client(self, **kwargs):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server for one test (no password)."""
    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        pytest.fail("redis-server is not installed: .ci/run installs Debian's redis-server")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def redis_factory(tmp_path):
    """Start redis-servers with options: redis_factory(password=..., extra=[...])."""
    servers = []

    def make(password=None, extra=()):
        workdir = tmp_path / ("redis%d" % len(servers))
        workdir.mkdir()
        server = RedisServer(workdir, password=password, extra=extra)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def load_library(name):
    """A module of library/ loaded by path (its main() runs in-process)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("library_" + name, ROOT / "library" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(name, args, capsys):
    """Run library/<name>.py's main() with these module arguments: (exit code, result dict)."""
    import json
    from ansible.module_utils.testing import patch_module_args
    module = load_library(name)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)
