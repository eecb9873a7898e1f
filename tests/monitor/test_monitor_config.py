"""Configuration validation: every bad value fails naming the key and the value (exit 2)."""
from __future__ import annotations

import copy
import json

import pytest

import monitor_testlib  # noqa: F401  (puts the monitor package on sys.path)
from stackfit_monitor import config as mon
from monitor_testlib import run_monitor

MiB = 1024 * 1024

GOOD = {
    "environment": "production",
    "output_dir": "/var/lib/stackfit/monitor",
    "interval": 600,
    "redis": {"host": "127.0.0.1", "port": 6379, "password": None, "db": 0},
    "services": {"gunicorn": {"pidfile": "/run/stackfit/gunicorn.pid"},
                 "celery": {"pidfile": "/run/stackfit/celery.pid"},
                 "redis": {"pidfile": "/run/redis/redis-server.pid"}},
    "history": {"max_bytes": 1048576, "leak_samples": 6, "leak_min_growth_bytes": 8388608},
    "adaptive": {"enabled": True, "floor_bytes": 64 * MiB, "middle_bytes": 256 * MiB,
                 "ceiling_bytes": 1024 * MiB, "budget_bytes": 1536 * MiB, "high_percent": 90,
                 "warn_percent": 80, "low_percent": 50, "hysteresis_percent": 5,
                 "cooldown_seconds": 1800},
    "celery_recycle": {"pss_limit_bytes": 512 * MiB,
                       "command": ["/bin/kill", "-TERM", "{pid}"]},
}


def with_value(path, value):
    cfg = copy.deepcopy(GOOD)
    node = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return cfg


def without(path):
    cfg = copy.deepcopy(GOOD)
    node = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return cfg


def test_the_full_config_validates_unchanged():
    cfg = mon.validate_config(copy.deepcopy(GOOD))
    assert cfg["redis"]["port"] == 6379
    assert cfg["adaptive"]["floor_bytes"] == 64 * MiB
    assert cfg["celery_recycle"]["cooldown_seconds"] == 1800  # follows adaptive's by default
    assert set(cfg["services"]) == {"gunicorn", "celery", "redis"}


def test_a_minimal_config_gets_defaults():
    cfg = mon.validate_config({"output_dir": "/tmp/x"})
    assert cfg["environment"] == "development"
    assert cfg["interval"] == 1800
    assert cfg["redis"] == {"host": "127.0.0.1", "port": 6379, "password": None,
                            "username": None, "db": 0, "timeout": 2.0}
    assert cfg["services"] == {}
    assert cfg["history"] == {"max_bytes": 1048576, "leak_samples": 6,
                              "leak_min_growth_bytes": 8388608}
    assert cfg["adaptive"] is None
    assert cfg["celery_recycle"]["pss_limit_bytes"] is None


def test_underscore_keys_are_comments():
    cfg = copy.deepcopy(GOOD)
    cfg["_comment"] = "Ansible managed"
    cfg["redis"]["_note"] = "x"
    cfg["services"]["_comment"] = "y"
    assert set(mon.validate_config(cfg)["services"]) == {"gunicorn", "celery", "redis"}


def test_null_pss_limit_disables_recycle():
    cfg = mon.validate_config(with_value("celery_recycle", {"pss_limit_bytes": None,
                                                            "command": None}))
    assert cfg["celery_recycle"]["pss_limit_bytes"] is None


@pytest.mark.parametrize("path,value,words", [
    ("redis.port", "6379", ['redis.port', '"6379"', "integer"]),
    ("redis.port", 70000, ["redis.port", "70000", "<= 65535"]),
    ("redis.port", True, ["redis.port", "true", "integer"]),
    ("redis.db", -1, ["redis.db", "-1"]),
    ("redis.host", "", ["redis.host", '""']),
    ("interval", 0, ["interval", "0", ">= 1"]),
    ("interval", "30m", ["interval", '"30m"', "number"]),
    ("output_dir", "relative/dir", ["output_dir", '"relative/dir"', "absolute"]),
    ("environment", 3, ["environment", "3"]),
    ("services", [], ["services", "[]", "object"]),
    ("services.gunicorn.pidfile", "gunicorn.pid", ["services.gunicorn.pidfile", "absolute"]),
    ("services.gunicorn", "/run/g.pid", ["services.gunicorn", "pidfile"]),
    ("services.Web-1", {"pidfile": "/run/w.pid"}, ["services.Web-1", "service name"]),
    ("services.monitor", {"pidfile": "/run/m.pid"}, ["services.monitor", "monitor"]),
    ("history.max_bytes", "1mb", ["history.max_bytes", '"1mb"', "integer"]),
    ("history.max_bytes", 100, ["history.max_bytes", "100", ">= 4096"]),
    ("history.leak_samples", 1, ["history.leak_samples", "1", ">= 2"]),
    ("history.leak_min_growth_bytes", -5, ["history.leak_min_growth_bytes", "-5"]),
    ("adaptive.enabled", "yes", ["adaptive.enabled", '"yes"', "true or false"]),
    ("adaptive.floor_bytes", "64mb", ["adaptive.floor_bytes", '"64mb"', "integer"]),
    ("adaptive.floor_bytes", 0, ["adaptive.floor_bytes", "0", ">= 1"]),
    ("adaptive.middle_bytes", 32 * MiB, ["adaptive.middle_bytes", str(32 * MiB),
                                         "floor_bytes"]),
    ("adaptive.ceiling_bytes", 128 * MiB, ["adaptive.ceiling_bytes", str(128 * MiB),
                                           "middle_bytes"]),
    ("adaptive.high_percent", 75, ["adaptive.high_percent", "75", "warn_percent"]),
    ("adaptive.high_percent", 101, ["adaptive.high_percent", "101", "<= 100"]),
    ("adaptive.warn_percent", 40, ["adaptive.warn_percent", "40", "low_percent"]),
    ("adaptive.low_percent", 0, ["adaptive.low_percent", "0", "> 0"]),
    ("adaptive.hysteresis_percent", 10, ["adaptive.hysteresis_percent", "10", "gap"]),
    ("adaptive.hysteresis_percent", -1, ["adaptive.hysteresis_percent", "-1"]),
    ("adaptive.cooldown_seconds", -1, ["adaptive.cooldown_seconds", "-1"]),
    ("celery_recycle.pss_limit_bytes", 0, ["celery_recycle.pss_limit_bytes", "0"]),
    ("celery_recycle.command", "kill -TERM 1", ["celery_recycle.command", '"kill -TERM 1"',
                                                "list"]),
    ("celery_recycle.command", [], ["celery_recycle.command", "[]"]),
    ("celery_recycle.command", ["kill", 15], ["celery_recycle.command", "15"]),
    ("histroy", {}, ["histroy", "known key"]),
    ("redis.passwd", "x", ["redis.passwd", "known key"]),
    ("adaptive.floor", 1, ["adaptive.floor", "known key"]),
])
def test_bad_values_name_the_key_and_the_value(path, value, words):
    with pytest.raises(mon.ConfigError) as info:
        mon.validate_config(with_value(path, value))
    message = str(info.value)
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("path", ["output_dir", "adaptive.floor_bytes", "adaptive.budget_bytes",
                                  "services.celery.pidfile", "celery_recycle.command"])
def test_missing_required_keys_are_named(path):
    with pytest.raises(mon.ConfigError, match=path.replace(".", r"\.") + ".*missing"):
        mon.validate_config(without(path))


def test_the_password_is_never_shown():
    with pytest.raises(mon.ConfigError) as info:
        mon.validate_config(with_value("redis.password", ["hunter2"]))
    assert "redis.password" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "<hidden>" in str(info.value)


def test_cli_exits_2_on_a_bad_config(tmp_path):
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps(with_value("redis.port", "6379")))
    for command in ("run", "decide", "loop", "check-config"):
        done = run_monitor(command, "--config", path)
        assert done.returncode == 2, (command, done.stderr)
        assert 'redis.port: "6379"' in done.stderr
    assert not (tmp_path / "out").exists()


def test_cli_exits_2_on_missing_or_broken_json(tmp_path):
    done = run_monitor("run", "--config", tmp_path / "nope.json")
    assert done.returncode == 2 and "not found" in done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{'output_dir': 1}")
    done = run_monitor("run", "--config", broken)
    assert done.returncode == 2 and "invalid JSON" in done.stderr


def test_check_config_accepts_the_full_config(tmp_path):
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps(GOOD))
    done = run_monitor("check-config", "--config", path, check=0)
    assert "ok" in done.stdout
