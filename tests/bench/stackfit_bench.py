#!/usr/bin/env python3
"""stackfit's benchmarks (issue 7): the planned stack against the seed's configurations, side by side.

    sudo .venv/bin/python tests/bench/stackfit_bench.py --out docs/ [--duration S] [--runs N] [--smoke]

Provisions this machine's dev stack (inventories/dev, started through the start scripts) once per
configuration with `site.yml -e ...`, measures it, and writes <out>/benchmarks.md and three PNG
charts. Everything runs in one go so that ratios between configurations hold on a noisy machine.

1. memory: PSS (and RSS) summed over the stack's process trees (gunicorn master + workers, the
   celery worker, redis-server) idle, after a warm-up and after a sustained load;
2. throughput: a bounded wrk load on 127.0.0.1:5001/api/work (a Python load generator if wrk is
   absent): median req/s of --runs runs, p50/p99, errors, req/s per 100 MiB of PSS;
3. a gunicorn worker sweep 1..2xCPU+1 under the production plan's other settings;
4. provisioning: site.yml's first run and a no-change re-run against a one-task playbook, and
   plan.yml for 1, 10 and 100 hypothetical hosts;
5. the memory monitor: CPU time and peak RSS of one run.

Needs root (it provisions this machine). Every load is bounded in time; every process it starts
itself is waited for or stopped by its PID. At the end the dev stack is restored (site.yml without
extra vars).
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "module_utils"))
import stackfit_hostinfo  # noqa: E402
import stackfit_sizing  # noqa: E402

BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
OVERRIDES = ("REDIS_MEMORY_LIMIT", "GUNICORN_WORKERS", "CELERY_CONCURRENCY", "MEMORY_MONITOR_INTERVAL")
MIB = 1024 * 1024
HOST, PORT, ROUTE = "127.0.0.1", 5001, "/api/work"
APP_JSON = "/etc/stackfit/app.json"
PIDFILES = {
    "gunicorn": "/run/stackfit/gunicorn.pid",
    "celery": "/run/stackfit/celery.pid",
    "redis": "/run/redis/redis-server.pid",
}
STACK_VENV = "/opt/stackfit/current/venv"
# The launcher (roles/monitor/templates/stackfit-monitor.j2): the venv's python, the package.
MONITOR_CMD = ["/opt/stackfit/bin/stackfit-monitor", "run", "--config", "/etc/stackfit/monitor.json"]
WRK = shutil.which("wrk") or ("/usr/bin/wrk" if os.path.exists("/usr/bin/wrk") else None)

# The production profile's values (group_vars/production.yml) as extra vars on the dev inventory.
PRODUCTION = {"stackfit_gunicorn_workers": "auto", "stackfit_gunicorn_preload": True,
              "stackfit_celery_concurrency": 1000, "stackfit_redis_memory_limit": "1gb",
              "stackfit_memory_budget": "75%"}
CONFIGS = [
    ("a", "seed before", "17 workers, no preload, celery -c 1000, redis 500mb",
     {"stackfit_gunicorn_workers": 17, "stackfit_gunicorn_preload": False,
      "stackfit_celery_concurrency": 1000, "stackfit_redis_memory_limit": "500mb"}),
    ("b", "seed hand-fixed dev", "3 workers, no preload, celery -c 20, redis 100mb",
     {"stackfit_gunicorn_workers": 3, "stackfit_gunicorn_preload": False,
      "stackfit_celery_concurrency": 20, "stackfit_redis_memory_limit": "100mb"}),
    ("c", "stackfit dev plan", "group_vars/development.yml as is", {}),
    ("d", "stackfit production plan", "group_vars/production.yml's values", dict(PRODUCTION)),
]


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------------------------------------
# Ansible

def _others_running():
    """Other ansible-playbook runs on the dev inventory (e.g. the e2e tests) that would collide."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["pid"] == me or not any("ansible-playbook" in c for c in cmd[:3]):
            continue
        # Only runs on this machine's dev inventory (the default one) collide; molecule's do not.
        inventory = None
        for i, arg in enumerate(cmd):
            if arg in ("-i", "--inventory", "--inventory-file") and i + 1 < len(cmd):
                inventory = cmd[i + 1]
            elif arg.startswith("--inventory="):
                inventory = arg.split("=", 1)[1]
        if inventory is not None and "inventories/dev" not in inventory:
            continue
        try:
            if me in [p.pid for p in proc.parents()]:
                continue
        except psutil.Error:
            continue
        found.append(proc.info["pid"])
    return found


def wait_quiet(limit=900):
    """Wait (bounded) until no other ansible-playbook runs, so two provisionings do not collide."""
    deadline = time.monotonic() + limit
    warned = False
    while _others_running() and time.monotonic() < deadline:
        if not warned:
            log("another ansible-playbook runs (pids %s): waiting" % _others_running())
            warned = True
        time.sleep(3)


def playbook(path, inventory="inventories/dev", extra=None, args=(), timeout=1800, retries=2,
             quiet_wait=True):
    """Run a playbook; return (wall seconds, stdout). Retries after a collision."""
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    cmd = [ANSIBLE_PLAYBOOK, str(path), "-i", str(inventory), *args]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    for attempt in range(retries + 1):
        if quiet_wait:
            wait_quiet()
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - start
        if out.returncode == 0:
            return wall, out.stdout
        log("%s failed (attempt %d): %s" % (path, attempt + 1, out.stdout[-1500:] + out.stderr[-800:]))
        time.sleep(5)
    raise RuntimeError("%s failed %d times" % (path, retries + 1))


def recap(output):
    """PLAY RECAP summed over its hosts: ok and changed task counts, and how many hosts ended with
    nothing unreachable or failed."""
    rows = re.findall(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      output, re.MULTILINE)
    if not rows:
        return {}
    return {"ok": sum(int(r[0]) for r in rows), "changed": sum(int(r[1]) for r in rows),
            "hosts_ok": sum(1 for r in rows if r[2] == "0" and r[3] == "0")}


def provision(extra, fresh=True):
    """stop.yml then site.yml with `extra`: each configuration starts from its start scripts."""
    if fresh:
        playbook("playbooks/stop.yml")
    wall, out = playbook("site.yml", extra=extra or None)
    with open(APP_JSON, encoding="utf-8") as handle:
        app = json.load(handle)
    wait_ready(int(app["gunicorn_workers"]))
    return app, wall


# ---------------------------------------------------------------------------------------------
# The stack's processes and memory

def read_pid(name):
    try:
        with open(PIDFILES[name], encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def tree(name):
    pid = read_pid(name)
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def memory():
    """PSS and RSS in MiB per service and in total, over each pidfile's process tree."""
    result = {"total": {"pss": 0.0, "rss": 0.0, "procs": 0}}
    for name in PIDFILES:
        pss = rss = 0
        procs = 0
        for proc in tree(name):
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            pss += info.pss
            rss += info.rss
            procs += 1
        result[name] = {"pss": pss / MIB, "rss": rss / MIB, "procs": procs}
        for key, value in (("pss", pss / MIB), ("rss", rss / MIB), ("procs", procs)):
            result["total"][key] += value
    return result


def settle(minimum=4.0, limit=30.0, step=1.0):
    """Wait until the stack's PSS stops moving (two samples within 1 MiB), then measure it."""
    time.sleep(minimum)
    deadline = time.monotonic() + limit
    last = memory()
    while time.monotonic() < deadline:
        time.sleep(step)
        now = memory()
        if abs(now["total"]["pss"] - last["total"]["pss"]) < 1.0:
            return now
        last = now
    return last


def get(path="/healthz", timeout=5):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def wait_ready(workers, limit=90):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            gunicorn = tree("gunicorn")
            if get() == 200 and len(gunicorn) == workers + 1 and tree("celery") and tree("redis"):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the stack did not come up with %d gunicorn workers in %ds" % (workers, limit))


def fingerprint():
    return tuple(read_pid(name) for name in PIDFILES) + (len(tree("gunicorn")),)


# ---------------------------------------------------------------------------------------------
# Load

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(value, unit):
    return float(value) * _UNITS[unit]


def parse_wrk(text):
    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for pct in ("50", "99"):
        match = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
        out["p" + pct] = _ms(*match.groups()) if match else None
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    out["requests"] = int(match.group(1)) if match else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    out["socket_errors"] = sum(int(x) for x in sock.groups()) if sock else 0
    out["errors"] = out["non2xx"] + out["socket_errors"]
    return out


def wrk(duration, threads=2, connections=50):
    cmd = [WRK, "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency",
           "--timeout", "5s", "http://%s:%d%s" % (HOST, PORT, ROUTE)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        proc.kill()  # by its PID: the Popen object's own
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError("wrk failed: %s" % text)
    return parse_wrk(text)


def pyload(duration, connections=50):
    """Fallback load generator: `connections` keep-alive clients for `duration` seconds."""
    lock = threading.Lock()
    lat, counts = [], {"ok": 0, "non2xx": 0, "socket": 0}
    end = time.monotonic() + duration

    def client():
        conn = None
        mine = []
        while time.monotonic() < end:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
                start = time.perf_counter()
                conn.request("GET", ROUTE)
                response = conn.getresponse()
                response.read()
                mine.append((time.perf_counter() - start) * 1000)
                key = "ok" if 200 <= response.status < 400 else "non2xx"
            except (OSError, http.client.HTTPException):
                key = "socket"
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                counts[key] += 1
        if conn is not None:
            conn.close()
        with lock:
            lat.extend(mine)

    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
    elapsed = time.monotonic() - start
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    total = counts["ok"] + counts["non2xx"]
    return {"rps": total / elapsed, "p50": pct(0.50), "p99": pct(0.99), "requests": total,
            "non2xx": counts["non2xx"], "socket_errors": counts["socket"],
            "errors": counts["non2xx"] + counts["socket"]}


def load(duration):
    return wrk(duration) if WRK else pyload(duration)


class Sampler(threading.Thread):
    """Samples the stack's PSS and RSS every `step` seconds until stopped (used while load runs)."""

    def __init__(self, step=1.0):
        super().__init__(daemon=True)
        self.step, self.samples, self.done = step, [], threading.Event()

    def run(self):
        while not self.done.wait(self.step):
            total = memory()["total"]
            self.samples.append((total["pss"], total["rss"]))

    def stop(self):
        self.done.set()
        self.join(self.step + 30)
        if not self.samples:  # a load shorter than one step: measure once now
            total = memory()["total"]
            self.samples.append((total["pss"], total["rss"]))
        return {"pss_samples": [p for p, _ in self.samples], "rss_samples": [r for _, r in self.samples]}


def throughput(duration, runs):
    """`runs` loads, with the stack's PSS sampled each second while they run: the memory that
    served that throughput (a single snapshot after a load moves by +-20 MiB as gevent's
    greenlets and pymalloc's arenas come and go)."""
    sampler = Sampler()
    sampler.start()
    try:
        results = [load(duration) for _ in range(runs)]
    finally:
        under_load = sampler.stop()
    return summarize([{"runs": results, "memory": under_load}])


def summarize(rounds):
    """One point's throughput over its rounds: median req/s of all runs, min-max, p50/p99 of the
    median run, errors and requests summed, the median of all PSS samples under load."""
    results = [r for rnd in rounds for r in rnd["runs"]]
    rps = [r["rps"] for r in results]
    middle = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
    pss = [p for rnd in rounds for p in rnd["memory"]["pss_samples"]]
    rss = [r for rnd in rounds for r in rnd["memory"]["rss_samples"]]
    memory = {"pss": statistics.median(pss), "rss": statistics.median(rss), "samples": len(pss)}
    return {"rounds": rounds, "runs": results, "rps": statistics.median(rps), "rps_min": min(rps),
            "rps_max": max(rps), "round_rps": [statistics.median(r["rps"] for r in rnd["runs"]) for rnd in rounds],
            "p50": middle["p50"], "p99": middle["p99"], "errors": sum(r["errors"] for r in results),
            "requests": sum(r["requests"] or 0 for r in results), "memory": memory,
            "per_100mib": statistics.median(rps) / memory["pss"] * 100}


def remeasure(point, extra, opts):
    """Another round of throughput for a point measured before: provision it again, warm it up,
    load it, and merge the runs and the PSS samples into its numbers."""
    provision(extra)
    time.sleep(opts.settle_short)
    load(opts.warmup)
    again = throughput(opts.duration, opts.runs)
    point["throughput"] = summarize(point["throughput"]["rounds"] + again["rounds"])


# ---------------------------------------------------------------------------------------------
# The measurements

def measure_config(extra, opts, sustained):
    """Provision, then memory idle / after warm-up / after load, and throughput."""
    for attempt in range(3):
        app, wall = provision(extra)
        before = fingerprint()
        idle = settle(minimum=opts.settle, limit=opts.settle_limit)
        load(opts.warmup)
        warm = settle(minimum=opts.settle_short, limit=opts.settle_limit)
        busy = bool(_others_running())
        tput = throughput(opts.duration, opts.runs)
        busy = busy or bool(_others_running())
        if sustained:
            load(sustained)
        after = settle(minimum=opts.settle_short, limit=opts.settle_limit)
        if fingerprint() == before and (not busy or attempt == 2):
            break
        log("the stack changed or another ansible-playbook ran during the measurement: again")
    else:
        raise RuntimeError("the stack kept changing under the measurement")
    return {"workers": int(app["gunicorn_workers"]), "celery": int(app["celery_concurrency"]),
            "redis": app["redis_memory_limit"], "preload": plan_preload(extra),
            "idle": idle, "warm": warm, "after": after, "throughput": tput, "site_wall": wall}


def plan_preload(extra):
    return bool(extra.get("stackfit_gunicorn_preload", True))


def plans(host):
    """stackfit's development and production plans for this machine (module_utils' plan())."""
    common = {"cpus": host["cpus"], "memory_bytes": host["memory_bytes"],
              "services": ["web", "worker", "cache", "monitor"]}
    dev = stackfit_sizing.plan(dict(common, gunicorn_workers=3, gunicorn_preload=True,
                                    celery_concurrency=20, redis_memory_limit="100mb",
                                    memory_budget="25%", monitor_interval=1800))
    prod = stackfit_sizing.plan(dict(common, gunicorn_workers="auto", gunicorn_preload=True,
                                     celery_concurrency=1000, redis_memory_limit="1gb",
                                     memory_budget="75%"))
    return dev, prod


def measure_monitor(count):
    """CPU time and peak RSS of one monitor run (os.wait4: this child's own rusage)."""
    results = []
    cmd = ["setpriv", "--reuid=stackfit", "--regid=stackfit", "--init-groups", "--"] + MONITOR_CMD
    env = dict(os.environ, STACKFIT_CONFIG=APP_JSON)
    for _ in range(count):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd="/opt/stackfit/current", env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        timer = threading.Timer(120, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if proc.returncode != 0:
            raise RuntimeError("monitor run failed (%d): %s" % (proc.returncode, err[-800:]))
        results.append({"cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime,
                        "sys": usage.ru_stime, "maxrss": usage.ru_maxrss / 1024, "wall": wall})
    return {"runs": results,
            **{key: statistics.median(r[key] for r in results) for key in ("cpu", "user", "sys", "maxrss", "wall")}}


def plan_inventory(directory, count):
    names = ["host%03d.bench.invalid" % i for i in range(1, count + 1)]
    hosts = "".join("        %s:\n" % n for n in names)
    lines = ["---", "all:", "  children:", "    production:", "      hosts:", hosts.rstrip("\n")]
    for group in ("web", "worker", "cache"):
        lines += ["    %s:" % group, "      hosts:", hosts.rstrip("\n")]
    path = Path(directory) / ("plan-%d" % count)
    path.mkdir()
    (path / "hosts.yml").write_text("\n".join(lines) + "\n")
    (path / "group_vars").symlink_to(ROOT / "group_vars")
    return path


def measure_provisioning(opts):
    """site.yml first run and no-change re-runs, a one-task playbook, plan.yml for N hosts.
    Ends with the dev stack provisioned (site.yml without extra vars)."""
    result = {}
    reps = 1 if opts.smoke else 3
    with tempfile.TemporaryDirectory(prefix="stackfit-bench-") as tmp:
        one = Path(tmp) / "one-task.yml"
        one.write_text("---\n- name: One task\n  hosts: all\n  gather_facts: false\n  tasks:\n"
                       "    - name: Say hello\n      ansible.builtin.debug:\n        msg: hello\n")
        purge = not opts.smoke
        if purge:
            try:
                playbook("playbooks/stop.yml", extra={"stackfit_purge": True}, retries=0)
            except RuntimeError as exc:
                # e.g. userdel refusing while a process of the stack's user still runs
                log("purge failed (%s): first run after a plain stop instead" % exc)
                result["purge_error"] = str(exc)
                purge = False
        playbook("playbooks/stop.yml")
        wall, out = playbook("site.yml")
        result["first"] = {"wall": wall, "changed": recap(out).get("changed"), "purged": purge}
        with open(APP_JSON, encoding="utf-8") as handle:
            wait_ready(int(json.load(handle)["gunicorn_workers"]))
        reruns = [playbook("site.yml") for _ in range(reps)]
        result["rerun"] = {"wall": statistics.median(w for w, _ in reruns),
                           "changed": max(recap(o).get("changed", -1) for _, o in reruns)}
        result["one_task"] = {"wall": statistics.median(playbook(one)[0] for _ in range(reps))}
        result["plan"] = {}
        for count in opts.plan_hosts:
            inv = plan_inventory(tmp, count)
            walls = []
            for _ in range(1 if count >= 100 or opts.smoke else reps):
                wall, out = playbook("playbooks/plan.yml", inventory=inv, quiet_wait=False,
                                     extra={"stackfit_assume_cpus": 8, "stackfit_assume_memory": "16gb"})
                if recap(out).get("hosts_ok", 0) != count:
                    raise RuntimeError("plan.yml did not plan %d hosts" % count)
                walls.append(wall)
            result["plan"][count] = {"wall": statistics.median(walls)}
    return result


# ---------------------------------------------------------------------------------------------
# Machine and versions

def _first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "n/a"


def machine(host):
    model = "n/a"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    os_name = "n/a"
    if os.path.exists("/etc/os-release"):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    code = ("import importlib.metadata as m, sys\n"
            "print(sys.version.split()[0], *[m.version(p) for p in ('gunicorn','celery','gevent','flask','redis')])")
    stack = _first_line([STACK_VENV + "/bin/python", "-c", code]).split()
    names = ["python", "gunicorn", "celery", "gevent", "flask", "redis-py"]
    versions = dict(zip(names, stack)) if len(stack) == len(names) else {}
    redis_v = re.search(r"v=(\S+)", _first_line(["redis-server", "--version"]))
    versions["redis-server"] = redis_v.group(1) if redis_v else "n/a"
    import importlib.metadata as md
    versions["ansible-core"] = md.version("ansible-core")
    versions["psutil"] = md.version("psutil")
    versions["wrk"] = _first_line([WRK, "-v"]).split(" [")[0] if WRK else "absent (Python load generator)"
    return {"cpu_model": model, "cores": host["cpu_count"], "cpus": host["cpus"],
            "memory": host["memory_bytes"] / 1024 ** 3, "kernel": platform.release(), "os": os_name,
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "versions": versions}


# ---------------------------------------------------------------------------------------------
# Charts and report

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
        "Measured by `tests/bench/stackfit_bench.py`%s in one run on one machine, so that the ratios "
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
        "| plan.yml, hypothetical hosts (8 CPUs, 16gb, production + web/worker/cache) | wall s | ms per host |",
        "|---|---|---|",
    ]
    for count, r in sorted(p["plan"].items()):
        lines.append("| %d | %.1f | %.0f |" % (count, r["wall"], 1000 * r["wall"] / count))

    mon = results["monitor"]
    lines += [
        "",
        "## 5. The memory monitor",
        "",
        "One `stackfit-monitor run` on the dev stack (as the stack's user, as its start script runs "
        "it), median of %d: CPU %.2f s (user %.2f, sys %.2f), peak RSS %.1f MiB, wall %.2f s." % (
            len(mon["runs"]), mon["cpu"], mon["user"], mon["sys"], mon["maxrss"], mon["wall"]),
        "",
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


# ---------------------------------------------------------------------------------------------

def dump(opts, results):
    """The raw results so far (--json), so that a failure late in the run keeps what was measured;
    --from-json redraws the report from a complete file."""
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=str)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
                        help="tiny run for tests: 1 s loads, 1 run, sweep 1-2 workers, plan 1 and 3 hosts")
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
        opts.rounds = 2  # the second round's code path too, on the smoke's tiny loads
        opts.monitor_runs = 1
    opts.settle_short = 1.0 if opts.smoke else 2.0
    opts.settle_limit = 4.0 if opts.smoke else 30.0
    if os.geteuid() != 0:
        parser.error("needs root: it provisions this machine")
    os.makedirs(opts.out, exist_ok=True)

    host = stackfit_hostinfo.host_facts()
    cpus = host["cpus"]
    dev_plan, prod_plan = plans(host)
    max_workers = int(2 * cpus + 1)
    opts.sweep = [1, 2] if opts.smoke else list(range(1, max_workers + 1))
    opts.plan_hosts = [1, 3] if opts.smoke else [1, 10, 100]
    results = {"machine": machine(host), "configs": {}, "sweep": {},
               "plans": {"development": dev_plan, "production": prod_plan,
                         "workers_per_cpu": prod_plan["gunicorn_workers_per_cpu"]},
               "options": {k: v for k, v in vars(opts).items()}}
    results["machine"]["loadavg_start"] = os.getloadavg()
    log("machine: %s; load: %s" % (results["machine"]["cpu_model"], WRK or "python"))

    try:
        for key, name, what, extra in CONFIGS:
            log("configuration (%s) %s: %s" % (key, name, extra or "defaults"))
            res = measure_config(extra, opts, opts.sustained)
            res.update(name=name, what=what)
            results["configs"][key] = res
            log("  idle PSS %.1f MiB, %.0f req/s" % (res["idle"]["total"]["pss"], res["throughput"]["rps"]))
            dump(opts, results)
        for workers in opts.sweep:
            extra = dict(PRODUCTION, stackfit_gunicorn_workers=workers)
            log("sweep: %d workers" % workers)
            res = measure_config(extra, opts, 0)
            results["sweep"][workers] = res
            log("  idle PSS %.1f MiB, %.0f req/s" % (res["idle"]["total"]["pss"], res["throughput"]["rps"]))
        dump(opts, results)
        # Further throughput rounds visit the points in the opposite order each time, so that a
        # drift of the machine's speed during the run weighs on every point alike.
        points = [(results["configs"][key], extra, "(%s)" % key) for key, _, _, extra in CONFIGS] + \
                 [(results["sweep"][w], dict(PRODUCTION, stackfit_gunicorn_workers=w), "sweep %d" % w)
                  for w in opts.sweep]
        for number in range(2, opts.rounds + 1):
            for point, extra, label in (points[::-1] if number % 2 == 0 else points):
                log("round %d: %s" % (number, label))
                remeasure(point, extra, opts)
                log("  %.0f req/s this round, %.0f over its rounds" % (
                    point["throughput"]["round_rps"][-1], point["throughput"]["rps"]))
            dump(opts, results)
        log("provisioning")
        results["provisioning"] = measure_provisioning(opts)  # ends with the dev stack up
        log("monitor")
        results["monitor"] = measure_monitor(opts.monitor_runs)
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
