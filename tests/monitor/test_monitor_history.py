"""History file (append, cap, tail) and the leak watch: pure functions and real files."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

import monitor_testlib  # noqa: F401  (puts the monitor package on sys.path)
from stackfit_monitor import history as mon

MiB = 1024 * 1024


def samples(series, service="celery", pid=100):
    return [{"ts": i, "pss": {service: value}, "pid": {service: pid}}
            for i, value in enumerate(series)]


# ---- leak watch --------------------------------------------------------------------------------

def test_monotonic_growth_by_the_minimum_is_suspected():
    history = samples([100 * MiB + i * 2 * MiB for i in range(6)])  # +10 MiB over 6 samples
    leaks = mon.detect_leaks(history, ["celery"], 6, 8 * MiB)
    assert len(leaks) == 1
    leak = leaks[0]
    assert leak["service"] == "celery"
    assert leak["growth_bytes"] == 10 * MiB
    assert (leak["first_pss"], leak["last_pss"]) == (100 * MiB, 110 * MiB)
    assert "celery" in leak["reason"] and "10.0 MiB" in leak["reason"]


def test_equal_samples_do_not_break_monotonic_growth():
    history = samples([100 * MiB, 100 * MiB, 104 * MiB, 104 * MiB, 108 * MiB, 108 * MiB])
    assert [leak["service"] for leak in mon.detect_leaks(history, ["celery"], 6, 8 * MiB)] == \
        ["celery"]


def test_any_drop_clears_the_suspicion():
    history = samples([100 * MiB, 104 * MiB, 103 * MiB + 1023 * 1024, 108 * MiB, 110 * MiB,
                       112 * MiB])
    assert mon.detect_leaks(history, ["celery"], 6, 8 * MiB) == []


def test_growth_below_the_minimum_is_not_a_leak():
    history = samples([100 * MiB + i * MiB for i in range(6)])  # +5 MiB
    assert mon.detect_leaks(history, ["celery"], 6, 8 * MiB) == []


def test_too_few_samples_are_not_a_leak():
    history = samples([100 * MiB + i * 5 * MiB for i in range(5)])
    assert mon.detect_leaks(history, ["celery"], 6, 8 * MiB) == []


def test_only_the_last_leak_samples_count():
    history = samples([500 * MiB] + [100 * MiB + i * 2 * MiB for i in range(6)])
    assert len(mon.detect_leaks(history, ["celery"], 6, 8 * MiB)) == 1


def test_a_missing_pss_or_a_restart_breaks_the_run():
    history = samples([100 * MiB + i * 2 * MiB for i in range(6)])
    history[3]["pss"]["celery"] = None
    assert mon.detect_leaks(history, ["celery"], 6, 8 * MiB) == []
    history = samples([100 * MiB + i * 2 * MiB for i in range(6)])
    history[4]["pid"]["celery"] = 101  # restarted: a new process, not the same one growing
    assert mon.detect_leaks(history, ["celery"], 6, 8 * MiB) == []


def test_services_are_judged_separately():
    history = [{"ts": i, "pss": {"gunicorn": 50 * MiB - i, "celery": 100 * MiB + i * 2 * MiB},
                "pid": {"gunicorn": 1, "celery": 2}} for i in range(6)]
    leaks = mon.detect_leaks(history, ["gunicorn", "celery", "redis"], 6, 8 * MiB)
    assert [leak["service"] for leak in leaks] == ["celery"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200 * MiB), min_size=0, max_size=12),
       st.integers(min_value=2, max_value=8), st.integers(min_value=0, max_value=50 * MiB))
def test_leak_rule_matches_its_definition(series, count, growth):
    suspected = bool(mon.detect_leaks(samples(series), ["celery"], count, growth))
    window = series[-count:]
    expected = (len(window) == count
                and all(b >= a for a, b in zip(window, window[1:]))
                and window[-1] - window[0] >= growth)
    assert suspected == expected


# ---- capping -----------------------------------------------------------------------------------

def test_cap_lines_drops_the_oldest():
    lines = [b"%d\n" % i for i in range(10)]  # 2 bytes each
    assert mon.cap_lines(lines, 7) == [b"7\n", b"8\n", b"9\n"]
    assert mon.cap_lines(lines, 100) == lines
    assert mon.cap_lines(lines, 1) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\n", b"") + b"\n"),
                max_size=50),
       st.integers(min_value=0, max_value=600))
def test_cap_lines_keeps_the_longest_suffix_that_fits(lines, max_bytes):
    kept = mon.cap_lines(lines, max_bytes)
    assert kept == lines[len(lines) - len(kept):]
    assert sum(map(len, kept)) <= max_bytes
    if len(kept) < len(lines):
        assert sum(map(len, kept)) + len(lines[len(lines) - len(kept) - 1]) > max_bytes


def test_append_history_caps_the_file_and_keeps_the_newest(tmp_path):
    path = tmp_path / "history.jsonl"
    max_bytes = 4096
    trimmed = 0
    for i in range(200):
        trimmed += mon.append_history(str(path), {"ts": i, "pad": "x" * 40}, max_bytes)
        assert path.stat().st_size <= max_bytes
    assert trimmed >= 1
    lines = path.read_text().splitlines()
    values = [json.loads(line)["ts"] for line in lines]
    assert values == list(range(200 - len(values), 200))  # contiguous, newest kept
    assert len(values) >= 40  # trimmed to 3/4 of the cap, not to nothing
    assert not list(tmp_path.glob(".*.tmp"))


def test_append_history_recovers_from_a_torn_last_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b'{"ts": 1}\n{"ts": 2, "pss": {"cel')  # a run died mid-write
    mon.append_history(str(path), {"ts": 3}, 1 << 20)
    assert [sample["ts"] for sample in mon.read_history_tail(str(path), 10)] == [1, 3]
    assert path.read_bytes().endswith(b'{"ts":3}\n')


def test_read_history_tail_reads_only_what_it_needs(tmp_path):
    path = tmp_path / "history.jsonl"
    with open(path, "w") as handle:
        for i in range(5000):
            handle.write(json.dumps({"ts": i, "pad": "y" * 100}) + "\n")
    tail = mon.read_history_tail(str(path), 6)
    assert [sample["ts"] for sample in tail] == list(range(4994, 5000))
    assert mon.read_history_tail(str(tmp_path / "missing.jsonl"), 6) == []
    small = tmp_path / "small.jsonl"
    small.write_text('{"ts": 1}\nnot json\n{"ts": 2}\n')
    assert [sample["ts"] for sample in mon.read_history_tail(str(small), 6)] == [1, 2]
