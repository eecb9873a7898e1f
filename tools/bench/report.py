"""The harness's report: the issue's targets evaluated, three PNG charts (matplotlib, imported only
here) and <out>/benchmarks.md."""
from __future__ import annotations

from pathlib import Path

from .common import WRK
from .fullload import full_load_lines


def charts(out, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = results["configs"]
    labels = ["(%s) %s" % (key, c["name"]) for key, c in configs.items()]
    files = {}

    fig, ax = plt.subplots(figsize=(9, 4.8))
    width = 0.26
    for i, (phase, title) in enumerate((("idle", "idle"), ("warm", "after warm-up"),
                                        ("after", "after sustained load"))):
        values = [c[phase]["total"]["pss"] for c in configs.values()]
        bars = ax.bar([x + (i - 1) * width for x in range(len(configs))], values, width, label="PSS " + title)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.scatter(range(len(configs)), [c["idle"]["total"]["rss"] for c in configs.values()],
               marker="_", s=600, color="black", label="RSS idle (sum)", zorder=3)
    ax.set_xticks(range(len(configs)), labels, fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_title("Stack memory per configuration (gunicorn + celery + redis)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files["memory"] = "bench-memory.png"
    fig.savefig(Path(out) / files["memory"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.8))
    values = [c["throughput"]["per_100mib"] for c in configs.values()]
    bars = ax.bar(range(len(configs)), values, color="tab:green")
    ax.bar_label(bars, labels=["%.0f req/s per 100 MiB\n(%.0f req/s)" % (v, c["throughput"]["rps"])
                               for v, c in zip(values, configs.values())], fontsize=8)
    ax.set_xticks(range(len(configs)), labels, fontsize=8)
    ax.set_ylabel("req/s per 100 MiB PSS")
    ax.set_ylim(0, max(values) * 1.25)
    ax.set_title("Throughput per memory (/api/work; median PSS under load)")
    fig.tight_layout()
    files["efficiency"] = "bench-efficiency.png"
    fig.savefig(Path(out) / files["efficiency"], dpi=110)
    plt.close(fig)

    sweep = results["sweep"]
    xs = sorted(sweep)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    rps = [sweep[x]["throughput"]["rps"] for x in xs]
    low = [r - sweep[x]["throughput"]["rps_min"] for x, r in zip(xs, rps)]
    high = [sweep[x]["throughput"]["rps_max"] - r for x, r in zip(xs, rps)]
    ax.errorbar(xs, rps, yerr=[low, high], marker="o", capsize=4, label="req/s (median, min-max)")
    ax.set_xlabel("gunicorn workers (production plan's other settings)")
    ax.set_ylabel("req/s")
    ax.set_ylim(0, max(rps) * 1.2)
    ax2 = ax.twinx()
    ax2.plot(xs, [sweep[x]["throughput"]["per_100mib"] for x in xs], marker="s", color="tab:green",
             label="req/s per 100 MiB")
    ax2.set_ylabel("req/s per 100 MiB PSS")
    ax2.set_ylim(0, max(sweep[x]["throughput"]["per_100mib"] for x in xs) * 1.2)
    chosen = results["plans"]["production"]["gunicorn_workers"]
    ax.axvline(chosen, color="tab:red", linestyle="--", label="production plan: %d" % chosen)
    best = max(xs, key=lambda x: sweep[x]["throughput"]["rps"])
    ax.axvline(best, color="tab:gray", linestyle=":", label="best req/s: %d" % best)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower right")
    ax.set_xticks(xs)
    ax.set_title("Gunicorn worker sweep (gevent, --preload, %g CPUs)" % results["machine"]["cpus"])
    fig.tight_layout()
    files["sweep"] = "bench-sweep.png"
    fig.savefig(Path(out) / files["sweep"], dpi=110)
    plt.close(fig)

    if results.get("closed_loop"):
        from .closedloop import chart
        fig, ax = plt.subplots(figsize=(9, 4.8))
        chart(ax, results["closed_loop"])
        fig.tight_layout()
        files["closed_loop"] = "bench-closed-loop.png"
        fig.savefig(Path(out) / files["closed_loop"], dpi=110)
        plt.close(fig)
    return files


def evaluate(results):
    """The issue's targets. The best req/s is the best of everything measured in the run (the
    configurations and the sweep); (d)'s efficiency is compared among the configurations (a)-(d),
    as the issue words it, and also, for the record, among those and the sweep's points."""
    configs, sweep = results["configs"], results["sweep"]
    named = [("(%s)" % k, c) for k, c in configs.items()]
    points = named + [("sweep %d workers" % w, s) for w, s in sorted(sweep.items())]
    best_name, best = max(points, key=lambda p: p[1]["throughput"]["rps"])
    best_rps = best["throughput"]["rps"]

    def most_efficient(candidates):
        fast = [(n, p) for n, p in candidates if p["throughput"]["rps"] >= 0.95 * best_rps]
        return max(fast, key=lambda p: p[1]["throughput"]["per_100mib"]) if fast else (None, None)
    eff_name, eff = most_efficient(named)
    all_name, all_eff = most_efficient(points)
    c, a, d = configs["c"], configs["a"], configs["d"]
    c_idle, a_idle = c["idle"]["total"]["pss"], a["idle"]["total"]["pss"]
    c_share = c["throughput"]["rps"] / best_rps
    d_rate = d["throughput"]["per_100mib"]
    d_eff = d_rate / eff["throughput"]["per_100mib"] if eff else 0.0
    return {
        "best_rps": best_rps, "best_rps_at": best_name,
        "best_eff": eff["throughput"]["per_100mib"] if eff else None, "best_eff_at": eff_name,
        "best_eff_all": all_eff["throughput"]["per_100mib"] if all_eff else None, "best_eff_all_at": all_name,
        "d_eff_share_all": d_rate / all_eff["throughput"]["per_100mib"] if all_eff else 0.0,
        "c_idle": c_idle, "a_idle": a_idle, "c_quarter": c_idle <= a_idle / 4,
        "c_110": c_idle <= 110, "c_rps_share": c_share, "c_fast": c_share >= 0.95,
        "c_met": c_idle <= 110 and c_idle <= a_idle / 4 and c_share >= 0.95,
        "d_eff_share": d_eff, "d_met": d_eff >= 0.95,
        "d_fast": d["throughput"]["rps"] >= 0.95 * best_rps,
    }


def _f(value, fmt="%.1f"):
    return "n/a" if value is None else fmt % value


def _rounds(tput):
    return " / ".join("%.0f" % r for r in tput.get("round_rps", []))


def report(out, results, files, opts):
    m, v = results["machine"], results["machine"]["versions"]
    configs, sweep, ev = results["configs"], results["sweep"], results["evaluation"]
    dev, prod = results["plans"]["development"], results["plans"]["production"]
    tool = "wrk -t2 -c50 -d%ds --latency" % opts.duration if WRK else \
        "a Python load generator (50 keep-alive clients, %d s)" % opts.duration
    lines = [
        "# Benchmarks",
        "",
        "Measured by `tools/bench` (`make bench`)%s in one run on one machine, so that the ratios "
        "between configurations hold on a shared, noisy CPU; absolute numbers move from run to run." % (
            " (**smoke run: tiny durations, not meaningful**)" if opts.smoke else ""),
        "",
        "## Machine",
        "",
        "| | |", "|---|---|",
        "| date | %s |" % m["date"],
        "| CPU | %s, %d cores (%g usable by the stack) |" % (m["cpu_model"], m["cores"], m["cpus"]),
        "| memory | %.1f GiB |" % m["memory"],
        "| OS, kernel | %s, %s |" % (m["os"], m["kernel"]),
        "| stack | Python %s, gunicorn %s (gevent %s), celery %s, Flask %s, redis-py %s, redis-server %s |" % (
            v.get("python"), v.get("gunicorn"), v.get("gevent"), v.get("celery"), v.get("flask"),
            v.get("redis-py"), v.get("redis-server")),
        "| tools | ansible-core %s, psutil %s, %s |" % (v["ansible-core"], v["psutil"], v["wrk"]),
        "| load average (1 min) at start / end | %s / %s (other work on the machine shares its CPUs) |" % (
            _f((m.get("loadavg_start") or [None])[0], "%.2f"), _f((m.get("loadavg_end") or [None])[0], "%.2f")),
        "",
        "## Method",
        "",
        "- Each configuration is one `site.yml` run on `inventories/dev` with extra vars, after "
        "`playbooks/stop.yml`: the stack starts from its start scripts, as `make dev` starts it.",
        "- Memory: PSS (RSS beside it) summed over the process trees of gunicorn's, celery's and "
        "redis-server's pidfiles (psutil `memory_full_info()`); *idle* once the sum stops moving after "
        "startup, *warm* after a %d s warm-up load, *after load* after the first round's %d "
        "throughput runs and a %d s sustained load." % (opts.warmup, opts.runs, opts.sustained),
        "- Throughput: `%s` on `http://127.0.0.1:5001/api/work` (~1 ms of CPU and one Redis round "
        "trip); %d rounds over all the points (the configurations and the sweep), each round "
        "provisioning each point afresh, warming it up for %d s and loading it %d times; the rounds "
        "visit the points in opposite orders, so that a drift of the machine's speed weighs on every "
        "point alike. Per point: median req/s of all its runs (each round's median beside it), the "
        "min-max, p50/p99 of the median run, errors = "
        "non-2xx + socket errors over all runs. req/s per 100 MiB divides the median req/s by the "
        "median of the stack's PSS sampled every second while the runs load it (*under load*): a "
        "single snapshot after a load moves by up to 20 MiB as greenlets and allocator arenas come "
        "and go." % (tool, opts.rounds, opts.warmup, opts.runs),
        "",
        "## 1-2. Memory and throughput per configuration",
        "",
        "| configuration | workers | preload | celery -c | redis maxmemory | PSS idle | warm | after load | RSS idle | warm | after load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in configs.items():
        lines.append("| (%s) %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            key, c["name"], c["workers"], "yes" if c["preload"] else "no", c["celery"], c["redis"],
            _f(c["idle"]["total"]["pss"]), _f(c["warm"]["total"]["pss"]), _f(c["after"]["total"]["pss"]),
            _f(c["idle"]["total"]["rss"]), _f(c["warm"]["total"]["rss"]), _f(c["after"]["total"]["rss"])))
    lines += ["", "MiB. Per service, PSS idle (gunicorn / celery / redis):", ""]
    for key, c in configs.items():
        lines.append("- (%s): %s / %s / %s MiB" % (key, *(_f(c["idle"][s]["pss"]) for s in ("gunicorn", "celery", "redis"))))
    lines += [
        "",
        "| configuration | req/s (median) | per round | min-max | p50 ms | p99 ms | errors | PSS under load | req/s per 100 MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in configs.items():
        t = c["throughput"]
        lines.append("| (%s) %s | %.0f | %s | %.0f-%.0f | %s | %s | %d | %.1f | %.0f |" % (
            key, c["name"], t["rps"], _rounds(t), t["rps_min"], t["rps_max"], _f(t["p50"]), _f(t["p99"]),
            t["errors"], t["memory"]["pss"], t["per_100mib"]))
    lines += ["", "![memory](%s)" % files["memory"], "", "![req/s per 100 MiB](%s)" % files["efficiency"], ""]
    lines += full_load_lines(configs, results.get("monitor"))

    lines += [
        "## 3. Gunicorn worker sweep",
        "",
        "The production plan's other settings (gevent, `--preload`, celery -c %d, redis %s); the plan "
        "picks **%d** workers here (`gunicorn_workers_per_cpu` %g x %g CPUs + 1). Before the rule "
        "change it picked the seed's CPU x 2 + 1 = %d (still available as "
        "`-e stackfit_gunicorn_workers_per_cpu=2`): compare the two rows below." % (
            prod["celery_concurrency"], prod["redis_maxmemory"], prod["gunicorn_workers"],
            results["plans"]["workers_per_cpu"], m["cpus"], int(2 * m["cpus"] + 1)),
        "",
        "| workers | req/s (median) | per round | min-max | p50 ms | p99 ms | errors | PSS idle | PSS under load | req/s per 100 MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w in sorted(sweep):
        s, t = sweep[w], sweep[w]["throughput"]
        mark = " (plan)" if w == prod["gunicorn_workers"] else ""
        lines.append("| %d%s | %.0f | %s | %.0f-%.0f | %s | %s | %d | %s | %s | %.0f |" % (
            w, mark, t["rps"], _rounds(t), t["rps_min"], t["rps_max"], _f(t["p50"]), _f(t["p99"]), t["errors"],
            _f(s["idle"]["total"]["pss"]), _f(t["memory"]["pss"]), t["per_100mib"]))
    best_w = max(sweep, key=lambda w: sweep[w]["throughput"]["rps"])
    best_e = max(sweep, key=lambda w: sweep[w]["throughput"]["per_100mib"])
    chosen = prod["gunicorn_workers"]
    if chosen in sweep:
        lines += ["", "Best req/s at %d workers (%.0f); best req/s per 100 MiB at %d workers (%.0f). The plan's "
                  "%d workers: %.0f%% of the best req/s, %.0f%% of the best req/s per 100 MiB." % (
                      best_w, sweep[best_w]["throughput"]["rps"], best_e, sweep[best_e]["throughput"]["per_100mib"],
                      chosen, 100 * sweep[chosen]["throughput"]["rps"] / sweep[best_w]["throughput"]["rps"],
                      100 * sweep[chosen]["throughput"]["per_100mib"] / sweep[best_e]["throughput"]["per_100mib"])]
    lines += ["", "![worker sweep](%s)" % files["sweep"], ""]

    p = results["provisioning"]
    one = p["one_task"]["wall"]
    lines += [
        "## 4. Provisioning",
        "",
        "| run (inventories/dev) | wall s | x one-task playbook | changed |",
        "|---|---|---|---|",
        "| site.yml, first run (%s) | %.1f | %.1f | %s |" % (
            "after `stop.yml -e stackfit_purge=true`: new venv" if p["first"]["purged"] else "after stop.yml, no purge",
            p["first"]["wall"], p["first"]["wall"] / one, p["first"]["changed"]),
        "| site.yml, no-change re-run (median) | %.1f | %.1f | %s |" % (p["rerun"]["wall"], p["rerun"]["wall"] / one, p["rerun"]["changed"]),
        "| one-task playbook (one debug task, median) | %.1f | 1.0 | |" % one,
        "",
        "| plan.yml, hypothetical hosts (8 CPUs, 16gb, production + web/worker/cache) | wall s | "
        "one-task playbook, same hosts, s | x one-task | ms per host |",
        "|---|---|---|---|---|",
    ]
    for count, r in sorted(p["plan"].items(), key=lambda item: int(item[0])):
        base = r.get("one_task")  # absent from runs before the one-task column
        lines.append("| %s | %.1f | %s | %s | %.0f |" % (
            count, r["wall"], "%.1f" % base if base else "-", "%.1f" % (r["wall"] / base) if base else "-",
            1000 * r["wall"] / int(count)))

    mon = results["monitor"]
    lines += [
        "",
        "## 5. The memory monitor",
        "",
        "One `stackfit-monitor run` on the dev stack (as the stack's user, as its start script runs "
        "it), median of %d: CPU %.2f s (user %.2f, sys %.2f), peak RSS %.1f MiB, wall %.2f s." % (
            len(mon["runs"]), mon["cpu"], mon["user"], mon["sys"], mon["maxrss"], mon["wall"]),
        "",
    ]
    if mon.get("note"):
        lines += ["(%s.)" % (mon["note"][:1].upper() + mon["note"][1:]), ""]
    sup = results.get("supervisor")
    if sup:
        lines += ["stackfit-supervisor (restarts a service that dies, without systemd), resident on the "
                  "dev stack: PSS %.1f MiB, RSS %.1f MiB." % (sup["pss"], sup["rss"]), ""]
    if results.get("closed_loop"):
        from .closedloop import table
        loop = results["closed_loop"]
        lines += [
            "## 6. Closed-loop sizing: measure, then plan",
            "",
            "Each app from nothing on the development plan: deployed on the estimates, loaded for "
            "%d s (20 clients on its probe paths) while each service's PSS is sampled, then "
            "`playbooks/measure.yml` and a re-plan (site.yml), and the same load again. MiB; "
            "workers %s." % (20 if not opts.smoke else 3, ", ".join(
                "%s %d -> %d" % (app, d["workers"]["before"], d["workers"]["after"])
                for app, d in loop.items())),
            "",
        ] + table(loop) + [""] + (["![closed loop](%s)" % files["closed_loop"], ""]
                                  if "closed_loop" in files else [])
    lines += [
        "## The issue's targets",
        "",
        "Best req/s of the run: %.0f (%s)." % (ev["best_rps"], ev["best_rps_at"]),
        "",
        "- (c) idle PSS <= 110 MiB: %.1f MiB: **%s**; <= a quarter of (a) (%.1f / 4 = %.1f): **%s**; "
        ">= 95%% of the best req/s: %.0f%%: **%s**. Overall: **%s**." % (
            ev["c_idle"], "met" if ev["c_110"] else "missed", ev["a_idle"], ev["a_idle"] / 4,
            "met" if ev["c_quarter"] else "missed", 100 * ev["c_rps_share"],
            "met" if ev["c_fast"] else "missed", "met" if ev["c_met"] else "missed"),
        "- (d) within 5%% of the best req/s per 100 MiB among the configurations (a)-(d) reaching 95%% "
        "of the best req/s (best: %s, %s): (d) has %.0f%% of it: **%s**%s." % (
            _f(ev["best_eff"], "%.0f"), ev["best_eff_at"] or "none", 100 * ev["d_eff_share"],
            "met" if ev["d_met"] else "missed",
            "" if ev["d_fast"] else " ((d) itself is under 95% of the best req/s)"),
        "- For the record, with the sweep's points as candidates too (the sweep's point with the "
        "plan's worker count is (d)'s configuration measured again): best %s (%s); (d) has %.0f%% of it." % (
            _f(ev["best_eff_all"], "%.0f"), ev["best_eff_all_at"] or "none", 100 * ev["d_eff_share_all"]),
        "",
    ]
    (Path(out) / "benchmarks.md").write_text("\n".join(lines))
