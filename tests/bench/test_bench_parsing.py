"""The harness's parsers (tools/bench/measure.py), on real output: wrk's report and
ansible-playbook's PLAY RECAP."""
from __future__ import annotations

import pytest

from tools.bench import measure as bench

RECAP = """
PLAY RECAP *********************************************************************
host001.bench.invalid      : ok=3    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
host002.bench.invalid      : ok=3    changed=1    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
host003.bench.invalid      : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
"""


def test_recap_sums_every_host_and_counts_the_hosts_that_passed():
    assert bench.recap(RECAP) == {"ok": 7, "changed": 1, "hosts_ok": 2}


def test_recap_of_an_output_without_one_is_empty():
    assert bench.recap("ERROR! the playbook could not be found") == {}


WRK = """Running 10s test @ http://127.0.0.1:5001/api/work
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    52.10ms   40.22ms 756.00ms   91.20%
    Req/Sec   540.12     80.31   720.00     70.00%
  Latency Distribution
     50%   42.11ms
     75%   55.20ms
     90%   80.02ms
     99%  753.10ms
  10741 requests in 10.00s, 2.01MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1074.05
Transfer/sec:    205.70KB
"""


def test_parse_wrk_reads_rate_latency_and_errors():
    got = bench.parse_wrk(WRK)
    assert got["rps"] == pytest.approx(1074.05)
    assert got["p50"] == pytest.approx(42.11) and got["p99"] == pytest.approx(753.10)
    assert got["requests"] == 10741 and got["errors"] == 3


def _round(rps, pss):
    runs = [{"rps": r, "p50": 40.0 + i, "p99": 900.0 + i, "errors": i % 2, "requests": int(r * 10)}
            for i, r in enumerate(rps)]
    return {"runs": runs, "memory": {"pss_samples": pss, "rss_samples": [p * 2 for p in pss]}}


def test_summarize_merges_rounds_into_one_median_per_point():
    first, second = _round([1000, 1100, 1050], [120, 130]), _round([900, 950, 1200], [125, 127, 200])
    got = bench.summarize([first, second])
    assert got["rps"] == 1025.0  # median of the six runs, not of the two rounds' medians
    assert got["round_rps"] == [1050, 950]
    assert (got["rps_min"], got["rps_max"]) == (900, 1200)
    assert got["memory"]["pss"] == 127 and got["memory"]["samples"] == 5
    assert got["per_100mib"] == pytest.approx(1025.0 / 127 * 100)
    assert got["errors"] == 2 and got["requests"] == 62000
    assert got["p50"] == 42.0  # the median run (1050 req/s, the third of the first round)
