"""tools/together.sh (how `make test` runs pytest beside the scenarios): every phase runs, the run
fails when one failed, and what failed is printed again at the end, where a CI log's tail shows it."""
from __future__ import annotations

import subprocess

from conftest import ROOT


def test_a_failed_phase_fails_the_run_and_its_failures_are_repeated_at_the_end():
    out = subprocess.run(
        [str(ROOT / "tools/together.sh"),
         "tests", "echo 'FAILED tests/x.py::test_y - boom'; echo fine",
         "scenarios", "echo '[m1] scenario a: 12 s'; echo '[m2] scenario b: FAILED after 3 s'; exit 2"],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    tail = out.stdout[out.stdout.index("== phases run together"):]
    assert "tests: exit 0 after" in tail and "scenarios: exit 2 after" in tail
    assert "== tests: what it reported\nFAILED tests/x.py::test_y - boom\n" in tail
    assert "[m1] scenario a: 12 s\n[m2] scenario b: FAILED after 3 s" in tail
    assert "fine" not in tail  # only the summary lines come again


def test_phases_that_pass_pass_the_run():
    out = subprocess.run([str(ROOT / "tools/together.sh"), "one", "true", "two", "echo ok"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "what it reported" not in out.stdout
