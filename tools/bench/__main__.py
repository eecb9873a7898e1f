"""The harness's options and its run: `python -m tools.bench` from the checkout (see the package's
docstring), or --from-json to redraw the report from a former run's raw results."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .closedloop import measure_closed_loop
from .common import ROOT, WRK, dump, log
from .measure import machine, measure_monitor, measure_supervisor
from .provision import measure_provisioning, playbook
from .report import charts, evaluate, report
from .sweep import measure_points, plans

import stackfit_hostinfo  # noqa: E402  (module_utils, on sys.path through .common)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bench",
                                     description=PACKAGE_DOC.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where benchmarks.md and the PNGs go")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured load run")
    parser.add_argument("--runs", type=int, default=4, help="measured load runs per configuration and round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="throughput rounds over all the points, in alternating order")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up load")
    parser.add_argument("--sustained", type=int, default=30,
                        help="seconds of extra sustained load before the 'after load' memory")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds to wait after startup at least")
    parser.add_argument("--monitor-runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run for tests: 1 s loads, 1 run, 1 round, sweep 1-2 workers, plan 1 and 3 hosts")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--from-json", help="only redraw the report and charts from a --json file")
    opts = parser.parse_args(argv)
    if opts.from_json:
        with open(opts.from_json, encoding="utf-8") as handle:
            results = json.load(handle)
        results["sweep"] = {int(k): v for k, v in results["sweep"].items()}
        results["provisioning"]["plan"] = {int(k): v for k, v in results["provisioning"]["plan"].items()}
        for key, value in results["options"].items():
            if key not in ("out", "json", "from_json"):
                setattr(opts, key, value)
        opts.from_json = True
        os.makedirs(opts.out, exist_ok=True)
        results["evaluation"] = evaluate(results)
        report(opts.out, results, charts(opts.out, results), opts)
        return 0
    if opts.smoke:
        opts.duration, opts.runs, opts.warmup, opts.sustained, opts.settle = 1, 1, 1, 1, 1.0
        # One round: every further round provisions each point again (six site.yml runs, most of
        # the smoke's time); their merge is unit-tested (tests/bench/test_bench_parsing.py).
        opts.rounds = 1
        opts.monitor_runs = 1
    opts.settle_short = 1.0 if opts.smoke else 2.0
    opts.settle_limit = 4.0 if opts.smoke else 30.0
    # The smoke run fills at most 24 MiB of images a configuration: the code path, not a full Redis.
    opts.fill_cap = 24 * 1024 * 1024 if opts.smoke else None
    if os.geteuid() != 0:
        parser.error("needs root: it provisions this machine")
    os.makedirs(opts.out, exist_ok=True)

    host = stackfit_hostinfo.host_facts()
    cpus = host["cpus"]
    dev_plan, prod_plan = plans(host)
    max_workers = int(2 * cpus + 1)
    opts.sweep = [1, 2] if opts.smoke else list(range(1, max_workers + 1))
    opts.plan_hosts = [1, 3] if opts.smoke else [1, 100, 1000]
    results = {"machine": machine(host), "configs": {}, "sweep": {},
               "plans": {"development": dev_plan, "production": prod_plan,
                         "workers_per_cpu": prod_plan["gunicorn_workers_per_cpu"]},
               "options": {k: v for k, v in vars(opts).items()}}
    results["machine"]["loadavg_start"] = os.getloadavg()
    log("machine: %s; load: %s" % (results["machine"]["cpu_model"], WRK or "python"))

    try:
        measure_points(opts, results)
        log("provisioning")
        results["provisioning"] = measure_provisioning(opts)  # ends with the dev stack up
        log("monitor")
        results["monitor"] = measure_monitor(opts.monitor_runs)
        results["supervisor"] = measure_supervisor()
        log("closed loop")
        # The smoke run takes the sample app only, from the running stack: tests/e2e/test_closed_loop.py
        # runs both from nothing.
        results["closed_loop"] = (measure_closed_loop(3, ("sample",), fresh=False) if opts.smoke
                                  else measure_closed_loop(20))
    finally:
        # Restore the dev stack whatever happened (site.yml without extra vars).
        try:
            if not results.get("monitor"):
                playbook("site.yml")
        except Exception as exc:  # noqa: BLE001 - report, do not hide the first error
            log("restoring the dev stack failed: %s" % exc)

    results["machine"]["loadavg_end"] = os.getloadavg()
    results["evaluation"] = evaluate(results)
    files = charts(opts.out, results)
    report(opts.out, results, files, opts)
    dump(opts, results)
    log("wrote %s" % (Path(opts.out) / "benchmarks.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
