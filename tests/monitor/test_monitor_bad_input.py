"""Issue 15 for the monitor: a non-finite or out-of-range configuration value fails naming the key
and the value; a malformed history line or Redis reply is skipped and counted in the report
(report["skipped"]), never a traceback."""
from __future__ import annotations

import copy
import json
import socket
import threading

import pytest

import monitor_testlib  # noqa: F401  (puts the monitor package on sys.path)
from stackfit_monitor import config as mon_config
from stackfit_monitor import history as mon_history
from stackfit_monitor import measure as mon_measure
from stackfit_monitor import resp as mon_resp
from stackfit_monitor import run as mon_run
from stackfit_monitor.errors import ConfigError, MalformedReplyError
from test_monitor_config import GOOD, with_value

NAN, INF = float("nan"), float("inf")


# --- configuration -------------------------------------------------------------------------------

BAD_CONFIG = [  # (key, value, what the message must hold besides the key)
    ("interval", NAN, "NaN"),
    ("interval", INF, "Infinity"),
    ("interval", -INF, "-Infinity"),
    ("interval", 86401, "86401"),
    ("interval", 10 ** 7, "10000000"),
    ("interval", -600, "-600"),
    ("redis.timeout", NAN, "NaN"),
    ("redis.timeout", INF, "Infinity"),
    ("redis.timeout", -1, "-1"),
    ("adaptive.hysteresis_percent", 0, "0"),
    ("adaptive.hysteresis_percent", NAN, "NaN"),
    ("adaptive.hysteresis_percent", 100, "100"),
    ("adaptive.hysteresis_percent", -0.5, "-0.5"),
    ("adaptive.low_percent", NAN, "NaN"),
    ("adaptive.warn_percent", INF, "Infinity"),
    ("adaptive.high_percent", NAN, "NaN"),
    ("adaptive.cooldown_seconds", INF, "Infinity"),
    ("adaptive.cooldown_seconds", NAN, "NaN"),
    ("celery_recycle.cooldown_seconds", INF, "Infinity"),
    ("celery_recycle.cooldown_seconds", -1, "-1"),
    ("adaptive.floor_bytes", -1, "-1"),
    ("adaptive.budget_bytes", -1024, "-1024"),
    ("adaptive.ceiling_bytes", 2 ** 63, str(2 ** 63)),
    ("adaptive.floor_bytes", 1.5, "1.5"),
    ("history.max_bytes", -4096, "-4096"),
    ("history.max_bytes", 2 ** 64, str(2 ** 64)),
    ("history.leak_min_growth_bytes", -1, "-1"),
    ("history.leak_min_growth_bytes", NAN, "NaN"),
    ("services.gunicorn.memory_high", -1, "-1"),
    ("services.gunicorn.memory_high", 2 ** 63, str(2 ** 63)),
    ("celery_recycle.pss_limit_bytes", -1, "-1"),
    ("celery_recycle.pss_limit_bytes", INF, "Infinity"),
]


@pytest.mark.parametrize("key,value,shown", BAD_CONFIG)
def test_bad_config_value_names_the_key_and_the_value(key, value, shown):
    with pytest.raises(ConfigError) as info:
        mon_config.validate_config(with_value(key, value))
    message = str(info.value)
    assert "config key %s:" % key in message and shown in message, message


@pytest.mark.parametrize("literal,shown", [("NaN", "NaN"), ("Infinity", "Infinity"),
                                           ("-Infinity", "-Infinity"), ("1e999", "Infinity")])
def test_non_finite_json_literals_in_the_file_are_named(tmp_path, literal, shown):
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps(GOOD).replace('"interval": 600', '"interval": %s' % literal))
    with pytest.raises(ConfigError) as info:
        mon_config.load_config(str(path))
    assert "config key interval:" in str(info.value) and shown in str(info.value)


def test_the_good_config_still_validates():
    assert mon_config.validate_config(copy.deepcopy(GOOD))["adaptive"]["hysteresis_percent"] == 5


# --- history -------------------------------------------------------------------------------------

GOOD_LINE = '{"ts": 1, "percent": 40.0, "pss": {"celery": 100}, "pid": {"celery": 7}}'
BAD_HISTORY = [
    b"[1, 2]",
    b'"a string"',
    b"42",
    b"null",
    b'{"ts": 2, "pss": {"celery": 1',
    b"not json at all",
    b"\xff\xfe\xfd",
    b'{"ts": 2, "pss": [1, 2]}',
    b'{"ts": 2, "pss": {"celery": [100]}}',
    b'{"ts": 2, "pss": {"celery": "100"}}',
    b'{"ts": 2, "pss": {"celery": true}}',
    b'{"ts": 2, "pid": "7"}',
    b'{"ts": 2, "pid": {"celery": 7.5}}',
    b'{"ts": "yesterday"}',
    b'{"ts": [2]}',
    b'{"ts": 2, "percent": {"x": 1}}',
    b'{"ts": 2, "redis_used": "1mb"}',
]


@pytest.mark.parametrize("bad", BAD_HISTORY)
def test_a_malformed_history_line_is_skipped_and_counted(tmp_path, bad):
    path = tmp_path / "history.jsonl"
    path.write_bytes(GOOD_LINE.encode() + b"\n" + bad + b"\n" + GOOD_LINE.encode() + b"\n")
    samples, skipped = mon_history.read_history(str(path), 6)
    assert skipped == 1 and len(samples) == 2
    assert mon_history.detect_leaks(samples, ["celery"], 2, 0)  # the good ones still count


def test_run_reports_skipped_history_lines(tmp_path):
    cfg = _cfg(tmp_path, free_port())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "history.jsonl").write_bytes(b"".join(line + b"\n" for line in BAD_HISTORY))
    report = mon_run.run_once(cfg)
    assert report["skipped"]["history"] == len(BAD_HISTORY)
    assert report["skipped"]["redis"] == 0 and "error" in report["redis"]  # nothing listens


def test_a_malformed_cgroup_file_is_skipped_and_counted(tmp_path, monkeypatch):
    def broken():
        raise ValueError("/sys/fs/cgroup/memory.max: '' is not 'max' or a byte count")
    monkeypatch.setattr(mon_measure, "read_cgroup_limits", broken)
    report = mon_run.run_once(_cfg(tmp_path, free_port()))
    assert report["skipped"]["cgroup"] == 1
    assert "memory.max" in report["system"]["cgroup_error"] and report["system"]["total"]


# --- Redis replies -------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cfg(tmp_path, port):
    """A minimal configuration; the leak watch reads the last 2 x 10 history lines."""
    raw = {"output_dir": str(tmp_path / "out"), "redis": {"port": port, "timeout": 2},
           "history": {"leak_samples": 10}}
    return mon_config.validate_config(raw)


class CannedRedis:
    """A TCP server that answers every request with the same bytes."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    while conn.recv(4096):
                        conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def bulk(text):
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


BAD_REPLIES = [
    (b"$abc\r\n", "malformed reply"),
    (b":12x\r\n", "malformed reply"),
    (b"*z\r\n", "malformed reply"),
    (b"?what\r\n", "unexpected reply"),
    (bulk("# Memory\r\nused_memory:abc\r\nmaxmemory:0\r\n"), "used_memory='abc'"),
    (bulk("# Memory\r\nused_memory:-5\r\nmaxmemory:0\r\n"), "used_memory=-5"),
    (bulk("# Memory\r\nused_memory:100\r\nmaxmemory:nan\r\n"), "maxmemory=nan"),
    (bulk("# Memory\r\nused_memory:100\r\nmaxmemory:1.5\r\n"), "maxmemory=1.5"),
    (bulk("# Memory\r\nmaxmemory:0\r\n"), "used_memory=None"),
    (b":42\r\n", "malformed INFO reply: 42"),
]


@pytest.mark.parametrize("reply,words", BAD_REPLIES)
def test_a_malformed_redis_reply_is_skipped_and_counted(tmp_path, reply, words):
    server = CannedRedis(reply)
    try:
        report = mon_run.run_once(_cfg(tmp_path, server.port))
    finally:
        server.close()
    assert report["skipped"]["redis"] == 1
    assert words in report["redis"]["error"], report["redis"]
    assert report["adaptive"]["decision"] is None or report["adaptive"]["decision"]["action"] == "hold"


@pytest.mark.parametrize("field,value", [("used_memory_rss", "lots"), ("used_memory_peak", "-1"),
                                         ("mem_fragmentation_ratio", "nan")])
def test_a_malformed_optional_figure_is_null_and_counted(tmp_path, field, value):
    server = CannedRedis(bulk("used_memory:100\r\nmaxmemory:0\r\n%s:%s\r\n" % (field, value)))
    try:
        report = mon_run.run_once(_cfg(tmp_path, server.port))
    finally:
        server.close()
    assert report["redis"][field] is None and report["redis"]["used_memory"] == 100
    assert report["skipped"]["redis"] == 1
    assert any(item.startswith(field + "=") for item in report["redis"]["malformed"])


def test_redis_summary_refuses_a_non_dict():
    with pytest.raises(MalformedReplyError):
        mon_resp.redis_summary(42)
