"""stackfit memory monitor: measure the stack's memory, keep a history, watch for leaks,
adapt Redis maxmemory to memory pressure and recycle a bloated Celery worker.

Usage (through the launcher /opt/stackfit/bin/stackfit-monitor, or ``python -m stackfit_monitor``
with this package's parent directory on sys.path)::

    stackfit-monitor run          [--config PATH] [--memory-percent P]
    stackfit-monitor loop         [--config PATH] [--max-runs N]
    stackfit-monitor decide       [--config PATH] [--memory-percent P]
                                  [--used-memory BYTES] [--current BYTES]
    stackfit-monitor check-config [--config PATH]

Files written to ``output_dir`` (every one atomically: temp file in the same directory, fsync,
``os.replace``): ``report.json``, ``stackfit.prom`` (node_exporter textfile collector),
``history.jsonl`` (appended; rewritten atomically when capped), ``adaptive_state.json`` and
``recycle_state.json``.

Exit codes: 0 report written (also when Redis is down: the report carries the error),
2 bad configuration, 3 output directory not writable, 1 anything unexpected.

Modules: config (validation), resp (a minimal RESP2 client), measure (system memory, pidfiles,
process trees, PSS), history (history file, leak watch), policy (adaptive bands and the recycle
decision: pure), metrics (Prometheus textfile), files (atomic writes, state files), errors (exit
codes, exceptions, log), run (one run), cli (argparse), stackfit_common (shared with module_utils:
a symlink in the repository, a real file on a host).

Cost: a run must stay cheap (target <= 150 ms CPU, <= 40 MiB peak RSS). Imports are lazy (each
module imports psutil, socket, subprocess... where it needs them), and only the standard library
and psutil are needed: see resp.py and metrics.py for the measured cost of redis-py and
prometheus_client instead.
"""
import time

# When this process started its work, for the report's run_seconds (the package is imported first).
STARTED = time.perf_counter()
