"""The harness's shape: a package under tools/ whose modules import without provisioning anything
and stay under 400 lines, run as `python -m tools.bench` (what `make bench` runs)."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "tools" / "bench"
MODULES = sorted(PACKAGE_DIR.glob("*.py"))


def test_the_package_has_its_modules_and_the_former_script_is_gone():
    assert {path.stem for path in MODULES} == {"__init__", "__main__", "common", "measure", "provision",
                                               "sweep", "report", "closedloop", "fullload"}
    assert not (ROOT / "tests" / "bench" / "stackfit_bench.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_each_module_imports_and_is_under_400_lines(path):
    name = "tools.bench" if path.stem == "__init__" else "tools.bench." + path.stem
    assert importlib.import_module(name).__doc__
    lines = len(path.read_text().splitlines())
    assert lines < 400, "%s has %d lines" % (path.name, lines)


def test_help_lists_the_options_and_make_bench_runs_the_package():
    out = subprocess.run([sys.executable, "-m", "tools.bench", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    for option in ("--out", "--duration", "--runs", "--rounds", "--warmup", "--sustained", "--settle",
                   "--monitor-runs", "--smoke", "--json", "--from-json"):
        assert option in out.stdout
    assert "-m tools.bench " in (ROOT / "Makefile").read_text()
