"""Closed-loop sizing on this machine: measure, then plan. A heavy app (each Gunicorn worker holds
40 MiB of its own) is deployed on the estimates, which are too small and the monitor says so;
playbooks/measure.yml samples it under load; site.yml plans from the samples; under a second load
no service passes its MemoryHigh and each MemoryMax lies between 1.2x and 2x the measured peak.
The sample app goes through the same cycle."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import ROOT, measured
from test_dev_stack import RUN, playbook, recap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")

HEAVY = ROOT / "examples" / "heavyapp"
HEAVY_VARS = ["-e", "app_source=%s" % HEAVY, "-e", "app_wsgi=wsgi:app", "-e", "app_celery=",
              "-e", '{"app_probe_paths": ["/healthz", "/"]}']
STORE = "/var/lib/stackfit/monitor/measurements.json"


def plan():
    with open("/etc/stackfit/plan.json", encoding="utf-8") as handle:
        return json.load(handle)


def gunicorn_tree_pss():
    """PSS of Gunicorn's master and workers (bytes), from smaps_rollup."""
    import psutil
    with open(os.path.join(RUN, "gunicorn.pid"), encoding="ascii") as handle:
        master = psutil.Process(int(handle.read().split()[0]))
    total = 0
    for proc in [master] + master.children():
        try:
            total += proc.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total


def load_and_peak(seconds=20, paths=("/healthz", "/")):
    """A bounded load (measure.yml's, 127.0.0.1 only) while sampling Gunicorn's PSS: the peak."""
    import sys
    sys.path.insert(0, str(ROOT / "module_utils"))
    from stackfit_loadtest import load
    peak = [0]

    def sample():
        peak[0] = max(peak[0], gunicorn_tree_pss())
    result = load("127.0.0.1", 5001, list(paths), 20, seconds, sample=sample)
    assert result["ok"] > 0 and result["failed"] == 0, result
    return peak[0]


def monitor_run():
    out = subprocess.run(["runuser", "-u", "stackfit", "--", "/opt/stackfit/bin/stackfit-monitor",
                          "run", "--config", "/etc/stackfit/monitor.json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with open("/var/lib/stackfit/monitor/report.json", encoding="utf-8") as handle:
        return json.load(handle)


def cycle(extra):
    """From nothing (the store holds one app's samples), deploy on the estimates, measure,
    re-plan: the plans before and after."""
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    playbook("site.yml", *extra)
    before = plan()
    out = playbook("playbooks/measure.yml", *extra, "-e", "stackfit_measure_seconds=20")
    assert recap(out)["failed"] == 0
    replanned = playbook("site.yml", *extra)
    assert recap(replanned)["failed"] == 0
    return before, plan()


@pytest.fixture(scope="module", autouse=True)
def from_nothing():
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    yield
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")


def test_the_heavy_apps_estimates_are_too_small_and_the_monitor_says_so():
    playbook("site.yml", *HEAVY_VARS)
    estimate = plan()
    assert "gunicorn_worker" not in estimate["measured"]
    high = estimate["unit_limits"]["web"]["memory_high_bytes"]
    peak = load_and_peak(10)
    assert peak > high, (peak, high)  # the plan was too small ...
    report = monitor_run()
    assert any("plan too small for gunicorn" in line for line in report["plan_too_small"])  # ... and said so
    assert report["headroom_bytes"]["gunicorn"] < 0


@pytest.mark.parametrize("name, extra, paths", [
    ("heavy", HEAVY_VARS, ("/healthz", "/")),
    ("sample", ["-e", '{"app_probe_paths": ["/healthz", "/api/work"]}'], ("/healthz", "/api/work"))])
def test_after_one_cycle_no_service_passes_memoryhigh_and_memorymax_fits_the_peak(name, extra, paths):
    before, after = cycle(extra)
    for kind in ("gunicorn_master", "gunicorn_worker"):
        assert kind in after["measured"], (kind, after["explain"])
        assert any(line.startswith(kind + " = ") and "measured" in line for line in after["explain"])
    limits = after["unit_limits"]["web"]
    peak = load_and_peak(20, paths)
    measured("%s: estimate MemoryHigh %.1f MiB; measured plan MemoryHigh %.1f MiB, MemoryMax %.1f MiB; "
          "peak under load %.1f MiB" % (name, before["unit_limits"]["web"]["memory_high_bytes"] / 2**20,
                                        limits["memory_high_bytes"] / 2**20,
                                        limits["memory_max_bytes"] / 2**20, peak / 2**20))
    assert peak <= limits["memory_high_bytes"], (peak, limits)
    assert 1.2 * peak <= limits["memory_max_bytes"] <= 2 * peak, (peak, limits)
    # A second re-plan on the same measurements keeps the values (no flapping).
    playbook("site.yml", *extra)
    assert plan()["estimates_used"] == after["estimates_used"]
    # The store holds the load test's samples and the monitor's.
    with open(STORE, encoding="utf-8") as handle:
        sources = {entry[2] for entry in json.load(handle)["samples"]["gunicorn_worker"]}
    assert "measure" in sources
