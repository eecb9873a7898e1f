"""The monitor as a subprocess against a real redis-server and real process trees."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor_testlib import MONITOR_CMD, MONITOR_ENV, MiB, run_monitor
from monitor_testlib import monitor_env, service_tree  # noqa: F401  (fixtures)

FAMILIES = {
    "stackfit_system_memory_bytes", "stackfit_system_memory_percent", "stackfit_system_swap_bytes",
    "stackfit_service_up", "stackfit_service_pss_bytes", "stackfit_service_rss_bytes",
    "stackfit_service_processes", "stackfit_redis_up", "stackfit_redis_used_memory_bytes",
    "stackfit_redis_maxmemory_bytes", "stackfit_redis_fragmentation_ratio",
    "stackfit_redis_maxmemory_policy_info", "stackfit_leak_suspected",
    "stackfit_adaptive_decision", "stackfit_adaptive_target_bytes", "stackfit_adaptive_applied",
    "stackfit_celery_recycle",  # a counter: the parser names the family without "_total"
    "stackfit_monitor_last_run_timestamp_seconds",
    "stackfit_monitor_run_seconds", "stackfit_monitor_cpu_seconds",
    "stackfit_monitor_max_rss_bytes", "stackfit_monitor_info",
}


def fill(client, keys=2000, size=1000):
    pipe = client.pipeline()
    for i in range(keys):
        pipe.set("key:%d" % i, b"v" * size)
    pipe.execute()


def report_of(out):
    return json.loads((Path(out) / "report.json").read_text())


def metrics_of(out):
    """{family name: {frozenset(labels.items()): value}} plus the parsed families."""
    text = (Path(out) / "stackfit.prom").read_text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    values = {}
    for family in families.values():
        for sample in family.samples:
            values.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return families, values


def one(values, name, **labels):
    return values[name][frozenset(labels.items())]


def maxmemory(client):
    return int(client.config_get("maxmemory")["maxmemory"])


def adaptive(floor, middle, ceiling, budget, enabled=True, cooldown=0):
    return {"enabled": enabled, "floor_bytes": floor, "middle_bytes": middle,
            "ceiling_bytes": ceiling, "budget_bytes": budget, "high_percent": 90,
            "warn_percent": 80, "low_percent": 50, "hysteresis_percent": 5,
            "cooldown_seconds": cooldown}


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- one run: numbers, textfile, history --------------------------------------------------------

def test_run_reports_real_numbers(redis_server, service_tree, monitor_env, tmp_path):
    client = redis_server.client()
    fill(client)
    client.config_set("maxmemory", str(64 * MiB))
    client.config_set("maxmemory-policy", "allkeys-lru")
    web = service_tree("gunicorn", hold_mib=8)
    stale = tmp_path / "celery.pid"
    stale.write_text("%d\n" % dead_pid())
    redis_pidfile = tmp_path / "redis.pid"
    redis_pidfile.write_text("%d\n" % redis_server.proc.pid)
    config, out = monitor_env(redis_server.port, services={
        "gunicorn": {"pidfile": str(web.pidfile)},
        "celery": {"pidfile": str(stale)},
        "redis": {"pidfile": str(redis_pidfile)},
        "worker": {"pidfile": str(tmp_path / "missing.pid")},
    })
    started = time.time()
    done = run_monitor("run", "--config", config, check=0)
    report = report_of(out)

    assert report["environment"] == "development"
    assert report["timestamp"].endswith("Z")
    assert started - 1 <= report["timestamp_seconds"] <= time.time() + 1
    system = report["system"]
    assert 0 < system["available"] <= system["total"]
    assert 0 <= system["percent"] <= 100

    procs = report["processes"]
    gunicorn = procs["gunicorn"]
    assert gunicorn["up"] is True
    assert sorted(gunicorn["pids"]) == sorted([web.pid, web.child_pid])
    assert gunicorn["pss"] >= 2 * 8 * MiB  # parent and child each hold 8 MiB
    assert gunicorn["rss"] >= gunicorn["pss"]
    assert procs["celery"]["up"] is False and "stale" in procs["celery"]["reason"]
    assert procs["celery"]["pss"] is None
    assert procs["worker"]["up"] is False and "missing" in procs["worker"]["reason"]
    assert procs["redis"]["up"] is True and procs["redis"]["pss"] > 0
    assert procs["redis"]["pids"] == [redis_server.proc.pid]
    assert procs["monitor"]["up"] is True and procs["monitor"]["pss"] > 0

    redis = report["redis"]
    info = client.info("memory")
    assert redis["used_memory"] > 2000 * 1000
    assert abs(redis["used_memory"] - info["used_memory"]) < max(256 * 1024,
                                                                  0.05 * info["used_memory"])
    assert redis["maxmemory"] == 64 * MiB
    assert redis["used_percent"] == pytest.approx(100.0 * redis["used_memory"] / (64 * MiB),
                                                  abs=0.01)
    assert redis["maxmemory_policy"] == "allkeys-lru"
    assert redis["mem_fragmentation_ratio"] > 0
    assert report["leaks"] == []
    assert report["adaptive"]["decision"] is None  # no adaptive section configured
    assert report["recycle"]["ran"] is False

    monitor = report["monitor"]
    assert 0 < monitor["cpu_seconds"] < 0.3
    assert 0 < monitor["max_rss_bytes"] < 40 * MiB

    families, values = metrics_of(out)
    assert FAMILIES - {"stackfit_adaptive_decision", "stackfit_adaptive_target_bytes",
                       "stackfit_adaptive_applied"} <= set(families)
    for family in families.values():
        assert family.documentation, family.name
        assert family.type in ("gauge", "counter")
    assert one(values, "stackfit_service_up", service="gunicorn") == 1
    assert one(values, "stackfit_service_up", service="celery") == 0
    assert one(values, "stackfit_service_up", service="redis") == 1
    assert one(values, "stackfit_service_pss_bytes", service="gunicorn") == gunicorn["pss"]
    assert one(values, "stackfit_service_rss_bytes", service="gunicorn") == gunicorn["rss"]
    assert one(values, "stackfit_service_processes", service="gunicorn") == 2
    assert frozenset({("service", "celery")}) not in values["stackfit_service_pss_bytes"]
    assert one(values, "stackfit_redis_up") == 1
    assert one(values, "stackfit_redis_used_memory_bytes") == redis["used_memory"]
    assert one(values, "stackfit_redis_maxmemory_bytes") == 64 * MiB
    assert one(values, "stackfit_redis_fragmentation_ratio") == redis["mem_fragmentation_ratio"]
    assert one(values, "stackfit_redis_maxmemory_policy_info", policy="allkeys-lru") == 1
    assert one(values, "stackfit_system_memory_bytes", kind="total") == system["total"]
    assert one(values, "stackfit_system_memory_percent") == system["percent"]
    for service in ("gunicorn", "celery", "redis", "worker"):
        assert one(values, "stackfit_leak_suspected", service=service) == 0
    assert one(values, "stackfit_monitor_last_run_timestamp_seconds") == pytest.approx(
        report["timestamp_seconds"])
    assert one(values, "stackfit_monitor_run_seconds") > 0
    assert one(values, "stackfit_monitor_info", environment="development") == 1

    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) == 1
    sample = json.loads(history[0])
    assert sample["pss"]["gunicorn"] == gunicorn["pss"]
    assert sample["pss"]["celery"] is None
    assert sample["redis_used"] == redis["used_memory"]
    assert sample["redis_max"] == 64 * MiB
    assert not list(out.glob(".*"))  # no temp files left behind
    assert done.stdout == ""


def test_a_second_run_appends_history_and_the_textfile_stays_parseable(redis_server,
                                                                         monitor_env):
    config, out = monitor_env(redis_server.port)
    for _ in range(3):
        run_monitor("run", "--config", config, check=0)
    assert len((out / "history.jsonl").read_text().splitlines()) == 3
    families, _ = metrics_of(out)
    assert "stackfit_redis_used_memory_bytes" in families


def _closed_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_unreachable_still_writes_the_report(monitor_env):
    config, out = monitor_env(_closed_port(), adaptive=adaptive(MiB, 2 * MiB, 4 * MiB, 8 * MiB))
    done = run_monitor("run", "--config", config, check=0)
    report = report_of(out)
    assert "cannot connect" in report["redis"]["error"]
    assert report["adaptive"]["decision"]["action"] == "hold"
    assert "redis unreachable" in report["adaptive"]["decision"]["reason"]
    _, values = metrics_of(out)
    assert one(values, "stackfit_redis_up") == 0
    assert "stackfit_redis_used_memory_bytes" not in values
    assert "redis" in done.stderr


def test_redis_with_a_password(redis_factory, monitor_env):
    server = redis_factory(password="s3cret-pw")
    config, out = monitor_env(server.port, redis={"host": "127.0.0.1", "port": server.port,
                                                  "password": "s3cret-pw", "db": 2})
    run_monitor("run", "--config", config, check=0)
    assert report_of(out)["redis"]["used_memory"] > 0

    config, out = monitor_env(server.port, redis={"host": "127.0.0.1", "port": server.port,
                                                  "password": "wrong-pw"})
    done = run_monitor("run", "--config", config, check=0)
    error = report_of(out)["redis"]["error"]
    assert "WRONGPASS" in error or "invalid" in error
    everything = done.stderr + (out / "report.json").read_text() + \
        (out / "stackfit.prom").read_text() + (out / "history.jsonl").read_text()
    assert "wrong-pw" not in everything and "s3cret-pw" not in everything


def test_unwritable_output_dir_exits_3(redis_server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = tmp_path / "monitor.json"
    config.write_text(json.dumps({"output_dir": str(blocker / "out"),
                                  "redis": {"port": redis_server.port}}))
    done = run_monitor("run", "--config", config)
    assert done.returncode == 3, done.stderr
    assert "output_dir" in done.stderr


# ---- decide -------------------------------------------------------------------------------------

def test_decide_prints_lower_to_floor_and_changes_nothing(redis_server, monitor_env):
    client = redis_server.client()
    fill(client, keys=200)
    client.config_set("maxmemory", str(64 * MiB))
    config, out = monitor_env(redis_server.port,
                              adaptive=adaptive(8 * MiB, 16 * MiB, 32 * MiB, 48 * MiB))
    done = run_monitor("decide", "--memory-percent", "92", "--config", config, check=0)
    decision = json.loads(done.stdout)
    assert decision["action"] == "lower"
    assert decision["target"] == 8 * MiB
    assert decision["band"] == "floor"
    assert decision["current"] == 64 * MiB
    assert decision["source"] == "redis"
    assert "92.0%" in decision["reason"]
    assert maxmemory(client) == 64 * MiB
    assert not (out / "adaptive_state.json").exists()


def test_decide_with_numbers_needs_no_redis(monitor_env):
    config, out = monitor_env(_closed_port(),
                              adaptive=adaptive(8 * MiB, 16 * MiB, 32 * MiB, 48 * MiB))
    done = run_monitor("decide", "--memory-percent", "92", "--used-memory", str(10 * MiB),
                       "--current", str(32 * MiB), "--config", config, check=0)
    decision = json.loads(done.stdout)
    assert (decision["action"], decision["target"]) == ("lower", math.ceil(10 * MiB * 1.1))
    assert "clamped up" in decision["reason"]
    done = run_monitor("decide", "--memory-percent", "92", "--config", config)
    assert done.returncode == 1 and "cannot connect" in done.stdout


# ---- adaptive policy applied --------------------------------------------------------------------

def test_enabled_policy_moves_maxmemory_through_floor_middle_ceiling(redis_server, monitor_env):
    client = redis_server.client()
    fill(client, keys=3000)  # ~3.5 MiB used: the 1 MiB floor must be clamped up
    client.config_set("maxmemory", str(64 * MiB))
    config, out = monitor_env(redis_server.port,
                              adaptive=adaptive(1 * MiB, 16 * MiB, 32 * MiB, 48 * MiB))
    seen = []
    for percent, band in (("95", "floor"), ("85", "middle"), ("40", "ceiling")):
        done = run_monitor("run", "--memory-percent", percent, "--config", config, check=0)
        report = report_of(out)
        decision = report["adaptive"]["decision"]
        assert decision["band"] == band, decision["reason"]
        assert report["adaptive"]["applied"] is True
        assert "adaptive: action=%s" % decision["action"] in done.stderr
        current = maxmemory(client)
        assert current == decision["target"]
        assert current >= math.ceil(decision["used_memory"] * 1.1)
        assert current >= client.info("memory")["used_memory"] * 1.05
        seen.append(current)
        state = json.loads((out / "adaptive_state.json").read_text())
        assert state["band"] == band and state["last_target"] == current
    used = report["redis"]["used_memory"]
    assert seen[0] == pytest.approx(used * 1.1, rel=0.05)  # the floor, clamped up
    assert seen[1:] == [16 * MiB, 32 * MiB]
    _, values = metrics_of(out)
    assert one(values, "stackfit_adaptive_decision", action="raise") == 1
    assert one(values, "stackfit_adaptive_target_bytes") == 32 * MiB
    assert one(values, "stackfit_adaptive_applied") == 1


def test_enabled_policy_respects_cooldown_and_budget(redis_server, monitor_env):
    client = redis_server.client()
    client.config_set("maxmemory", str(16 * MiB))
    config, out = monitor_env(redis_server.port, adaptive=adaptive(
        4 * MiB, 8 * MiB, 64 * MiB, 24 * MiB, cooldown=3600))
    run_monitor("run", "--memory-percent", "20", "--config", config, check=0)
    report = report_of(out)
    assert report["adaptive"]["decision"]["clamps"] == ["budget"]
    assert maxmemory(client) == 24 * MiB  # ceiling 64 MiB clamped down to the budget
    run_monitor("run", "--memory-percent", "95", "--config", config, check=0)
    decision = report_of(out)["adaptive"]["decision"]
    assert decision["action"] == "hold" and "cooldown" in decision["reason"]
    assert maxmemory(client) == 24 * MiB


def test_disabled_policy_reports_but_does_not_apply(redis_server, monitor_env):
    client = redis_server.client()
    client.config_set("maxmemory", str(64 * MiB))
    config, out = monitor_env(redis_server.port, adaptive=adaptive(
        8 * MiB, 16 * MiB, 32 * MiB, 48 * MiB, enabled=False))
    run_monitor("run", "--memory-percent", "95", "--config", config, check=0)
    report = report_of(out)
    assert report["adaptive"]["decision"]["action"] == "lower"
    assert report["adaptive"]["applied"] is False
    assert maxmemory(client) == 64 * MiB


# ---- celery recycle -----------------------------------------------------------------------------

def recycle_config(marker, cooldown, limit=MiB):
    return {"pss_limit_bytes": limit, "cooldown_seconds": cooldown,
            "command": [sys.executable, "-c",
                        "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')",
                        str(marker), "{pid}"]}


def test_celery_recycle_runs_once_under_cooldown(redis_server, service_tree, monitor_env,
                                                 tmp_path):
    celery = service_tree("celery", hold_mib=4)
    marker = tmp_path / "recycled"
    config, out = monitor_env(redis_server.port,
                              services={"celery": {"pidfile": str(celery.pidfile)}},
                              celery_recycle=recycle_config(marker, cooldown=3600))
    for _ in range(3):
        run_monitor("run", "--config", config, check=0)
    assert marker.read_text().splitlines() == [str(celery.pid)]
    recycle = report_of(out)["recycle"]
    assert recycle["ran"] is False and "cooldown" in recycle["reason"]
    assert recycle["count"] == 1
    _, values = metrics_of(out)
    assert one(values, "stackfit_celery_recycle_total") == 1

    config, out = monitor_env(redis_server.port,
                              services={"celery": {"pidfile": str(celery.pidfile)}},
                              celery_recycle=recycle_config(marker, cooldown=0))
    done = run_monitor("run", "--config", config, check=0)
    assert len(marker.read_text().splitlines()) == 2
    recycle = report_of(out)["recycle"]
    assert recycle["ran"] is True and recycle["returncode"] == 0 and recycle["count"] == 2
    assert "celery recycle" in done.stderr


def test_celery_below_the_limit_is_left_alone(redis_server, service_tree, monitor_env,
                                              tmp_path):
    celery = service_tree("celery", hold_mib=1)
    marker = tmp_path / "recycled"
    config, out = monitor_env(redis_server.port,
                              services={"celery": {"pidfile": str(celery.pidfile)}},
                              celery_recycle=recycle_config(marker, 0, limit=1024 * MiB))
    run_monitor("run", "--config", config, check=0)
    assert not marker.exists()
    assert "<= limit" in report_of(out)["recycle"]["reason"]


# ---- leak watch end to end ----------------------------------------------------------------------

GROWER = """
import time
chunks = []
for _ in range(60):
    chunks.append(b"z" * (2 * 1024 * 1024))
    time.sleep(0.25)
time.sleep(60)
"""


def test_a_growing_service_is_suspected(redis_server, monitor_env, tmp_path):
    grower = subprocess.Popen([sys.executable, "-c", GROWER])
    try:
        pidfile = tmp_path / "celery.pid"
        pidfile.write_text("%d\n" % grower.pid)
        config, out = monitor_env(redis_server.port,
                                  services={"celery": {"pidfile": str(pidfile)}},
                                  history={"max_bytes": 65536, "leak_samples": 3,
                                           "leak_min_growth_bytes": 2 * MiB})
        for _ in range(3):
            run_monitor("run", "--config", config, check=0)
            time.sleep(0.6)
        report = report_of(out)
        assert [leak["service"] for leak in report["leaks"]] == ["celery"]
        assert report["leaks"][0]["growth_bytes"] >= 2 * MiB
        _, values = metrics_of(out)
        assert one(values, "stackfit_leak_suspected", service="celery") == 1
    finally:
        grower.kill()
        grower.wait()


# ---- loop ---------------------------------------------------------------------------------------

def test_loop_exits_cleanly_on_sigterm(redis_server, monitor_env):
    config, out = monitor_env(redis_server.port, interval=3600)
    proc = subprocess.Popen([*MONITOR_CMD, "loop", "--config", str(config)], env=MONITOR_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not (out / "report.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "report.json").exists()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert "stopping" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_loop_max_runs(redis_server, monitor_env):
    config, out = monitor_env(redis_server.port, interval=1)
    done = run_monitor("loop", "--max-runs", "2", "--config", config, check=0)
    assert len((out / "history.jsonl").read_text().splitlines()) == 2, done.stderr
