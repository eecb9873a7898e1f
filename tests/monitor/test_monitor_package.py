"""The monitor package's shape: small modules, a pure policy module, the shared constants through
a relative symlink, and a launcher template that renders to a working program."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor_testlib import FILES_DIR, MONITOR_ENV, PACKAGE_DIR, ROOT, render_launcher, write_config

MAX_LINES = 400
MODULES = sorted(PACKAGE_DIR.glob("*.py"))
# The package's own modules; the module_utils files linked in (stackfit_common, stackfit_daemon)
# follow the tree's rule for module_utils (under 500 lines, tests/unit/test_layout.py).
OWN_MODULES = [path for path in MODULES if not path.is_symlink()]


def test_the_package_has_its_modules():
    names = {path.stem for path in MODULES}
    assert {"__init__", "__main__", "cli", "config", "resp", "measure", "history", "policy",
            "metrics", "run", "stackfit_common"} <= names
    assert not (FILES_DIR / "stackfit_monitor.py").exists()  # the former single file is gone


@pytest.mark.parametrize("path", OWN_MODULES, ids=lambda path: path.name)
def test_every_module_is_under_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines < MAX_LINES, "%s has %d lines" % (path.name, lines)


@pytest.mark.parametrize("name", ["stackfit_common.py", "stackfit_daemon.py"])
def test_shared_modules_are_relative_symlinks_to_module_utils(name):
    link = PACKAGE_DIR / name
    assert link.is_symlink()
    target = os.readlink(link)
    assert target == "../../../../module_utils/" + name
    assert link.resolve() == (ROOT / "module_utils" / name).resolve()


def test_policy_is_pure():
    """policy.py imports nothing but the package's errors and the shared constants, and calls no
    I/O (open, print, os, socket, subprocess, time)."""
    tree = ast.parse((PACKAGE_DIR / "policy.py").read_text())
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.append("." * node.level + (node.module or ""))
    assert sorted(set(imports)) == [".errors", ".stackfit_common"]
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"open", "print", "os", "socket", "subprocess", "time", "sys"}


def test_policy_imported_directly_decides_with_the_shared_margin():
    from stackfit_monitor import policy
    from stackfit_monitor.stackfit_common import min_maxmemory

    mib = 1024 * 1024
    cfg = {"floor_bytes": 100 * mib, "middle_bytes": 200 * mib, "ceiling_bytes": 400 * mib,
           "budget_bytes": 500 * mib, "high_percent": 90, "warn_percent": 80, "low_percent": 50,
           "hysteresis_percent": 5, "cooldown_seconds": 1800}
    decision = policy.decide(95, 400 * mib, 150 * mib, {}, cfg, 0)
    assert decision["action"] == "lower"
    assert decision["target"] == min_maxmemory(150 * mib) == 165 * mib
    assert decision["clamps"] == ["used_memory"]
    assert "x 1.1 = 165.0 MiB" in decision["reason"]
    assert policy.should_recycle(3 * mib, 2 * mib, {}, 60, 0) == (
        True, "celery PSS 3.0 MiB > limit 2.0 MiB")


def _launcher(tmp_path, python):
    return render_launcher(tmp_path / "stackfit-monitor", python)


def test_launcher_renders_to_a_working_program(tmp_path):
    launcher = _launcher(tmp_path, sys.executable)
    text = launcher.read_text()
    assert text.splitlines()[0] == "#!%s" % sys.executable
    assert "Ansible managed" in text
    compile(text, str(launcher), "exec")
    config = write_config(tmp_path / "monitor.json", tmp_path / "out", 6379)
    cmd = [str(launcher)]  # through its shebang
    done = subprocess.run(cmd + ["check-config", "--config", str(config)], env=MONITOR_ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "config %s: ok" % config
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"output_dir": "relative/dir"}))
    done = subprocess.run(cmd + ["check-config", "--config", str(bad)], env=MONITOR_ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "config key output_dir" in done.stderr
    assert not (PACKAGE_DIR / "__pycache__").exists()


def test_python_dash_m_runs_the_same_cli(tmp_path):
    config = write_config(tmp_path / "monitor.json", tmp_path / "out", 6379)
    env = dict(MONITOR_ENV, PYTHONPATH=str(FILES_DIR))
    done = subprocess.run([sys.executable, "-m", "stackfit_monitor", "check-config", "--config",
                           str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "config %s: ok" % config


def test_the_config_refuses_an_interval_over_a_day():
    from stackfit_monitor import config
    from stackfit_monitor.stackfit_common import MONITOR_INTERVAL_MAX

    base = {"output_dir": "/var/lib/stackfit/monitor"}
    assert config.validate_config(dict(base, interval=MONITOR_INTERVAL_MAX))["interval"] == 86400
    with pytest.raises(config.ConfigError, match=r"config key interval: 86401 is not a number "
                                                 r"<= 86400"):
        config.validate_config(dict(base, interval=86401))


@pytest.mark.parametrize("params", [
    dict(cpus=2, memory_bytes=24 * 1024 ** 3, redis_memory_limit="100mb", memory_budget="25%",
         monitor_interval=1800),
    dict(cpus=8, memory_bytes=16 * 1024 ** 3, redis_memory_limit="1gb", memory_budget="75%",
         monitor_adaptive=True, services=["cache", "monitor"]),
    dict(cpus=1, memory_bytes=512 * 1024 ** 2, redis_memory_limit="1mb", monitor_interval=10,
         allow_overcommit=True),
])
def test_the_plans_monitor_section_is_a_valid_configuration(params):
    """What the role renders (monitor.json.j2): the plan's sections as they are."""
    import stackfit_sizing
    from stackfit_monitor import config

    plan = stackfit_sizing.plan(params)
    raw = {"output_dir": "/var/lib/stackfit/monitor", "interval": plan["monitor_interval"],
           "history": plan["monitor"]["history"], "adaptive": plan["monitor"]["adaptive"],
           "celery_recycle": dict(plan["monitor"]["celery_recycle"],
                                  command=["/opt/stackfit/bin/start_celery.sh", "--recycle"])}
    cfg = config.validate_config(json.loads(json.dumps(raw)))
    assert cfg["adaptive"] == plan["monitor"]["adaptive"]
    assert cfg["history"] == plan["monitor"]["history"]
