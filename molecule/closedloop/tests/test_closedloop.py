"""Closed-loop sizing under systemd in a container limited to 512 MiB: the estimates' plan (5 heavy
workers, from the CPU rule) is replaced, after a measured load, by one whose workers are capped by
the measured memory; under a new load nothing fails, no process is OOM-killed, and Gunicorn stays
within its unit's MemoryHigh, with MemoryMax between 1.2x and 2x its peak."""

import json

import pytest

import stackfit_testlib as lib

LOAD = r"""
import http.client, json, os, sys, threading, time
def pss(pid):
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0
def parent(p):
    try:
        return open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None
def tree(pid):
    kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and parent(p) == str(pid)]
    return pss(pid) + sum(pss(k) for k in kids)
master = int(sys.argv[1])
counts, stop, peak = {"ok": 0, "failed": 0}, threading.Event(), [0]
def worker():
    conn = http.client.HTTPConnection("127.0.0.1", 5001, timeout=30)
    while not stop.is_set():
        try:
            conn.request("GET", "/"); r = conn.getresponse(); r.read()
            counts["ok" if r.status == 200 else "failed"] += 1
        except Exception:
            counts["failed"] += 1
            conn = http.client.HTTPConnection("127.0.0.1", 5001, timeout=30)
threads = [threading.Thread(target=worker) for _ in range(10)]
[t.start() for t in threads]
end = time.time() + 15
while time.time() < end:
    peak[0] = max(peak[0], tree(master)); time.sleep(0.5)
stop.set(); [t.join() for t in threads]
print(json.dumps(dict(counts, peak=peak[0])))
"""


@pytest.fixture(scope="module")
def plans(host):
    before = json.loads(host.file("/var/lib/stackfit/plan-estimates.json").content_string)
    return before, lib.host_plan(host)


def oom_kills(host):
    v1 = host.file("/sys/fs/cgroup/memory/memory.oom_control")
    if v1.exists:
        fields = dict(line.split() for line in v1.content_string.splitlines() if line.strip())
        return int(fields.get("oom_kill", 0))
    events = host.file("/sys/fs/cgroup/memory.events").content_string
    return int(dict(line.split() for line in events.splitlines()).get("oom_kill", 0))


def test_the_container_is_limited_and_the_estimates_plan_the_cpu_rule(host, plans):
    before, _ = plans
    assert lib.container_resources(host)["memory_limit"] == 512 * 1024 * 1024
    assert before["gunicorn_workers"] == 5 and "gunicorn_worker" not in before["measured"]


def test_the_measured_plan_caps_the_workers_by_memory(host, plans):
    before, after = plans
    assert "gunicorn_worker" in after["measured"]
    assert after["estimates_used"]["gunicorn_worker"] > 3 * before["estimates_used"]["gunicorn_worker"]
    assert after["gunicorn_workers"] < before["gunicorn_workers"]
    line = [l for l in after["explain"] if l.startswith("gunicorn_workers = ")][0]
    assert "capped to %d by memory" % after["gunicorn_workers"] in line, line
    master = int(host.check_output("systemctl show -p MainPID --value stackfit-gunicorn.service"))
    assert len(lib.process_children(host, master)) == after["gunicorn_workers"]
    limits = after["unit_limits"]["web"]
    shown = host.check_output("systemctl show -p MemoryHigh -p MemoryMax --value stackfit-gunicorn.service")
    assert shown.split() == [str(limits["memory_high_bytes"]), str(limits["memory_max_bytes"])]


def test_a_load_fails_nothing_kills_nothing_and_stays_within_the_limits(host, plans):
    _, after = plans
    kills = oom_kills(host)
    master = host.check_output("systemctl show -p MainPID --value stackfit-gunicorn.service")
    out = host.run("python3 -c %s %s", LOAD, master)
    assert out.rc == 0, out.stderr
    result = json.loads(out.stdout)
    limits = after["unit_limits"]["web"]
    print("load: %s; MemoryHigh %d, MemoryMax %d" % (result, limits["memory_high_bytes"],
                                                     limits["memory_max_bytes"]))
    assert result["ok"] > 0 and result["failed"] == 0, result
    assert oom_kills(host) == kills, "OOM kills during the load"
    assert result["peak"] <= limits["memory_high_bytes"], result
    assert 1.2 * result["peak"] <= limits["memory_max_bytes"] <= 2 * result["peak"], result
