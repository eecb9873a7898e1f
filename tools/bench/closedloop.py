"""Closed-loop sizing, measured: for the sample app and a heavy app (examples/heavyapp), the plan
made from the estimates against the memory each service really reaches under load, then the same
after playbooks/measure.yml and a re-plan (planned, MemoryHigh, MemoryMax, peak PSS per service)."""
from __future__ import annotations

import json
import os

from .common import MIB, ROOT, log
from .measure import memory
from .provision import playbook

import stackfit_loadtest  # noqa: E402  (module_utils, on sys.path through .common)

PLAN_JSON = "/etc/stackfit/plan.json"
MEASUREMENTS = "/var/lib/stackfit/monitor/measurements.json"  # measure.yml's and the monitor's samples
APPS = {
    "sample": {"extra": {"app_probe_paths": ["/healthz", "/api/work"]},
               "paths": ["/healthz", "/api/work"]},
    "heavy": {"extra": {"app_source": str(ROOT / "examples" / "heavyapp"), "app_wsgi": "wsgi:app",
                        "app_celery": "", "app_probe_paths": ["/healthz", "/"]},
              "paths": ["/healthz", "/"]},
}
SERVICES = {"gunicorn": "web", "celery": "worker"}


def _plan():
    with open(PLAN_JSON, encoding="utf-8") as handle:
        return json.load(handle)


def _peaks(paths, seconds):
    """A bounded load on 127.0.0.1:5001 while sampling each service's PSS: the peaks in MiB."""
    peaks = {name: 0.0 for name in SERVICES}

    def sample():
        now = memory()
        for name in SERVICES:
            peaks[name] = max(peaks[name], now.get(name, {}).get("pss", 0.0))
    result = stackfit_loadtest.load("127.0.0.1", 5001, paths, 20, seconds, sample=sample)
    return peaks, {k: result[k] for k in ("ok", "failed", "requests_per_second")}


def _numbers(plan, peaks):
    out = {}
    for name, service in SERVICES.items():
        if service in plan["services"]:
            limits = plan["unit_limits"][service]
            out[name] = {"planned": plan["service_bytes"][service] / MIB,
                         "memory_high": limits["memory_high_bytes"] / MIB,
                         "memory_max": limits["memory_max_bytes"] / MIB, "peak": peaks[name]}
    return out


def measure_closed_loop(seconds, apps=tuple(APPS), fresh=True):
    """Each app from nothing: estimates -> load -> measure.yml -> re-plan -> load. Without `fresh`
    (the smoke run) the running dev stack is the start, and the samples are removed at the end
    instead of the stack: tests/e2e/test_closed_loop.py runs the loop from nothing."""
    results = {}
    try:
        for name, spec in ((name, APPS[name]) for name in apps):
            log("closed loop: %s" % name)
            if fresh:
                playbook("playbooks/stop.yml", args=("-e", "stackfit_purge=true"))
            playbook("site.yml", extra=spec["extra"])
            before = _plan()
            peaks_before, load_before = _peaks(spec["paths"], seconds)
            playbook("playbooks/measure.yml", extra=dict(spec["extra"], stackfit_measure_seconds=seconds))
            playbook("site.yml", extra=spec["extra"])
            after = _plan()
            peaks_after, load_after = _peaks(spec["paths"], seconds)
            results[name] = {
                "before": _numbers(before, peaks_before), "after": _numbers(after, peaks_after),
                "load": {"before": load_before, "after": load_after},
                "workers": {"before": before["gunicorn_workers"], "after": after["gunicorn_workers"]},
                "explain": [line for line in after["explain"]
                            if line.startswith(("gunicorn_", "celery_", "unit memory limits web"))],
            }
    finally:
        if fresh:
            playbook("playbooks/stop.yml", args=("-e", "stackfit_purge=true"))
        elif os.path.exists(MEASUREMENTS):
            os.remove(MEASUREMENTS)  # the plan from the estimates again, as before the loop
        playbook("site.yml")
    return results


def table(results):
    """The report's rows: per app and service, before and after the loop (MiB)."""
    rows = ["| app | service | plan | planned | MemoryHigh | MemoryMax | peak under load | "
            "peak / MemoryHigh | MemoryMax / peak |", "|---|---|---|---|---|---|---|---|---|"]
    for app, data in results.items():
        for when in ("before", "after"):
            for service, n in data[when].items():
                rows.append("| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |" % (
                    app, service, "estimates" if when == "before" else "measured", n["planned"],
                    n["memory_high"], n["memory_max"], n["peak"], n["peak"] / n["memory_high"],
                    n["memory_max"] / n["peak"] if n["peak"] else 0))
    return rows


def chart(ax, results):
    """Grouped bars: per app, Gunicorn's MemoryHigh and peak, before and after."""
    labels, high, peak = [], [], []
    for app, data in results.items():
        for when in ("before", "after"):
            n = data[when].get("gunicorn")
            if n:
                labels.append("%s\n%s" % (app, "estimates" if when == "before" else "measured"))
                high.append(n["memory_high"])
                peak.append(n["peak"])
    positions = range(len(labels))
    ax.bar([p - 0.2 for p in positions], high, 0.4, label="MemoryHigh (planned limit)")
    ax.bar([p + 0.2 for p in positions], peak, 0.4, label="peak PSS under load")
    ax.set_xticks(list(positions), labels)
    ax.set_ylabel("MiB (Gunicorn)")
    ax.set_title("Closed loop: the plan's limit against the measured peak")
    ax.legend()
