"""The benchmark harness (tools/bench) end to end with tiny durations (--smoke), so that it cannot rot.

It provisions this machine's dev stack like tests/e2e (root, no systemd as PID 1) and restores it
(site.yml without extra vars) at the end; it checks that the report and the charts come out with
numbers in them, not that the issue's targets are met (that needs the full run: `make bench`)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # where `python -m tools.bench` finds the harness

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")


def test_smoke_run_writes_the_report_and_the_charts(tmp_path):
    raw = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_MEMORY_LIMIT", "GUNICORN_WORKERS", "CELERY_CONCURRENCY", "MEMORY_MONITOR_INTERVAL")}
    cmd = [sys.executable, "-m", "tools.bench", "--smoke", "--out", str(tmp_path), "--json", str(raw)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    report = (tmp_path / "benchmarks.md").read_text()
    for heading in ("## Machine", "## 1-2. Memory and throughput", "## 3. Gunicorn worker sweep",
                    "## 4. Provisioning", "## 5. The memory monitor", "## The issue's targets",
                    "## 2a. Under full load", "### Seed fixes: claimed vs measured here"):
        assert heading in report
    for key in ("a", "b", "c", "d"):
        row = re.search(r"^\| \(%s\) [^|]+ \| (\d+) \| (yes|no) \| (\d+) \| \w+ \| ([\d.]+) \|" % key, report, re.M)
        assert row and float(row.group(4)) > 0, key
    assert re.search(r"^\| 1 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|$", report, re.M)  # plan.yml for 1 host
    assert re.search(r"^\| 3 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|$", report, re.M)  # ... and 3 hosts
    assert re.search(r"CPU [\d.]+ s .* peak RSS [\d.]+ MiB", report)

    for name in ("bench-memory.png", "bench-efficiency.png", "bench-sweep.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, name
        assert "(%s)" % name in report

    results = json.loads(raw.read_text())
    assert set(results["sweep"]) == {"1", "2"}
    for res in list(results["configs"].values()) + list(results["sweep"].values()):
        assert res["throughput"]["rps"] > 0 and res["throughput"]["runs"]
        assert len(res["throughput"]["round_rps"]) == 1  # the smoke's one round reached every point
        assert res["idle"]["total"]["pss"] > 0 and res["idle"]["total"]["procs"] >= 4
    assert results["monitor"]["maxrss"] > 0
    for key, res in results["configs"].items():
        full = res["full"]  # the full workload ran: images in every category, every slot busy
        assert full["fill"]["puts"] > 0 and full["fill"]["errors"] == 0, key
        assert all(entry["bytes"] > 0 for entry in full["stored"].values()) and len(full["stored"]) == 6, key
        assert full["held"].keys() == full["stored"].keys(), key
        assert full["tasks"]["active"] == res["celery"], key
        assert full["memory"]["total"]["pss"] > res["idle"]["total"]["pss"], key

    # the dev stack is restored: the development plan, as site.yml without extra vars makes it
    with open("/etc/stackfit/app.json", encoding="utf-8") as handle:
        app = json.load(handle)
    assert app["environment"] == "development" and app["gunicorn_workers"] == 3
    assert app["celery_concurrency"] == 20 and app["redis_maxmemory_bytes"] == 100 * 1024 * 1024
