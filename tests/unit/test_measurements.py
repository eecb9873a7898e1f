"""stackfit_measurements.sample_services against real processes: a master whose two children
hold very different amounts of memory (as one async Gunicorn worker that accepted most
connections and one idle one)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import stackfit_measurements as sm

# A parent forks two children: one touches 40 MiB of its own, one nothing; all then wait.
TREE = textwrap.dedent("""
    import os, sys, time
    for size in (40 << 20, 0):
        if os.fork() == 0:
            held = bytearray(size)
            for i in range(0, size, 4096):
                held[i] = 1
            print("ready", flush=True)
            time.sleep(60)
            os._exit(0)
    time.sleep(60)
""")


def test_one_worker_sample_per_instant_is_the_workers_mean():
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(2):
            assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        store = sm.empty()
        added = sm.sample_services({"gunicorn": proc.pid}, store, "measure", now=1000.0)
        workers = [sm.pss(child) for child in sm.child_pids(proc.pid)]
        assert len(workers) == 2 and max(workers) - min(workers) > 30 << 20, workers
        (value,) = added["gunicorn_worker"]
        # The mean (to a page of drift between the two reads), not each worker apart: three
        # workers planned at this figure hold what three of these do at that instant.
        assert abs(value - sum(workers) / 2) < 256 << 10, (value, workers)
        assert [entry[:3] for entry in store["samples"]["gunicorn_worker"]] == [[1000.0, value, "measure"]]
        assert added["gunicorn_master"] == [store["samples"]["gunicorn_master"][0][1]]
    finally:
        proc.kill()
        subprocess.run(["pkill", "-P", str(proc.pid)], check=False)
        proc.wait()
