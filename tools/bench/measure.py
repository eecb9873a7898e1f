"""What the harness measures: the stack's PSS and RSS over its pidfiles' process trees, loads (wrk
or a Python load generator) and wrk's output, ansible-playbook's PLAY RECAP, the monitor's CPU
time and peak RSS, and the machine and its versions."""
from __future__ import annotations

import datetime
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from .common import APP_JSON, HOST, MIB, MONITOR_CMD, PIDFILES, PORT, ROUTE, STACK_VENV, WRK


# ---------------------------------------------------------------------------------------------
# ansible-playbook's output

def recap(output):
    """PLAY RECAP summed over its hosts: ok and changed task counts, and how many hosts ended with
    nothing unreachable or failed."""
    rows = re.findall(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      output, re.MULTILINE)
    if not rows:
        return {}
    return {"ok": sum(int(r[0]) for r in rows), "changed": sum(int(r[1]) for r in rows),
            "hosts_ok": sum(1 for r in rows if r[2] == "0" and r[3] == "0")}


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


# ---------------------------------------------------------------------------------------------
# The monitor, the machine and versions

# A fresh interpreter starts the monitor and reports its rusage (os.wait4). Not the harness itself:
# a child's ru_maxrss counts the memory of the process it was forked from (the kernel keeps the old
# address space's high-water mark at exec), and the harness holds 40 MiB and more by then.
WAIT4 = r"""
import json, os, subprocess, sys, threading, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
timer = threading.Timer(float(sys.argv[1]), proc.kill)
timer.start()
_, status, usage = os.wait4(proc.pid, 0)
timer.cancel()
wall = time.perf_counter() - start
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "err": proc.stderr.read().decode(errors="replace")[-800:],
                  "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime, "sys": usage.ru_stime,
                  "maxrss": usage.ru_maxrss / 1024, "wall": wall}))
"""


def measure_monitor(count):
    """CPU time and peak RSS of one monitor run, as its own rusage (WAIT4)."""
    results = []
    cmd = [sys.executable, "-c", WAIT4, "120",
           "setpriv", "--reuid=stackfit", "--regid=stackfit", "--init-groups", "--"] + MONITOR_CMD
    env = dict(os.environ, STACKFIT_CONFIG=APP_JSON)
    for _ in range(count):
        out = subprocess.run(cmd, cwd="/opt/stackfit/current", env=env, capture_output=True, text=True,
                             timeout=180)
        if out.returncode != 0:
            raise RuntimeError("measuring the monitor failed: %s" % out.stderr[-800:])
        run = json.loads(out.stdout.strip().splitlines()[-1])
        if run.pop("code") != 0:
            raise RuntimeError("monitor run failed: %s" % run["err"])
        run.pop("err")
        results.append(run)
    return {"runs": results,
            **{key: statistics.median(r[key] for r in results) for key in ("cpu", "user", "sys", "maxrss", "wall")}}


def measure_supervisor():
    """PSS and RSS (MiB) of stackfit-supervisor on the dev stack (hosts without systemd)."""
    try:
        with open("/run/stackfit-supervisor/supervisor.pid", encoding="ascii") as handle:
            info = psutil.Process(int(handle.read().split()[0])).memory_full_info()
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return {"pss": info.pss / MIB, "rss": info.rss / MIB}


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
