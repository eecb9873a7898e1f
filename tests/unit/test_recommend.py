"""module_utils/stackfit_recommend.py: hand-computed examples, then the recommender's properties
(ordered bounds, monotone, margin, no flapping, evidence narrows, decay, bump, malformed input)."""
from __future__ import annotations

import ast
import math
import sys
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
import stackfit_recommend as rec
from stackfit_recommend import recommend

MIB = 1024 ** 2
HOUR = 3600
DAY = 24 * HOUR
NOW = 1_700_000_000
GROW = 1 + Fraction("0.15")
FAST = settings(max_examples=200, deadline=None)

stamps = st.integers(NOW - 60 * DAY, NOW)
sizes = st.integers(1, 1 << 34)
sample_sets = st.lists(st.tuples(stamps, sizes), min_size=1, max_size=40)
recent_sets = st.lists(st.tuples(st.integers(NOW - 7 * DAY, NOW), sizes), min_size=1, max_size=40)
event_sets = st.lists(st.tuples(st.integers(NOW - 10 * DAY, NOW + DAY),
                                st.sampled_from(["oom", "recycle", "other"])), max_size=4)


def widening(n_eff):
    return Fraction(1 + 1 / math.sqrt(n_eff))


# --- examples ---------------------------------------------------------------------------------

def test_one_sample():
    r = recommend([(NOW, 10 * MIB)], NOW)
    assert (r["p50"], r["p90"], r["p95"], r["peak"]) == (10 * MIB,) * 4
    # n_eff = 1: widening 2, confidence 1/2.
    assert r["target"] == 12058624 == 10 * MIB * 23 // 20
    assert r["lower"] == 6029312 and r["upper"] == 24117248
    assert r["confidence"] == 0.5 and r["value"] == r["target"]
    assert (r["samples"], r["skipped"], r["span_seconds"]) == (1, 0, 0)
    assert not r["bumped"] and not r["kept_previous"]
    assert r["why"] == ("p90 of 1 sample over 0 s + 15 % = 11.5 MiB "
                        "(bounds 5.8-23.0 MiB, confidence 0.50)")


def test_ten_equal_weights():
    """Sizes 1..10 MiB at one timestamp: p50 is the 5th (5/10 >= 0.5), p90 the 9th, p95 the 10th."""
    r = recommend([(NOW - HOUR, k * MIB) for k in range(10, 0, -1)], NOW)
    assert (r["p50"], r["p90"], r["p95"], r["peak"]) == (5 * MIB, 9 * MIB, 10 * MIB, 10 * MIB)
    assert r["confidence"] == pytest.approx(10 / 11)
    assert r["target"] == math.ceil(9 * MIB * GROW)
    assert r["lower"] == math.ceil(5 * MIB * GROW / widening(10))
    assert r["upper"] == math.ceil(10 * MIB * GROW * widening(10))
    assert r["span_seconds"] == HOUR


def test_decayed_weights():
    """100 B now (weight 1) and 200 B a day ago (weight 1/2): 100 holds 2/3 of the weight, so
    p50 = 100 and p90 = p95 = 200; n_eff = 1.5**2 / 1.25 = 1.8."""
    r = recommend([(NOW - DAY, 200), (NOW, 100)], NOW)
    assert (r["p50"], r["p90"], r["p95"]) == (100, 200, 200)
    assert r["confidence"] == pytest.approx(1.8 / 2.8)
    assert r["upper"] == math.ceil(200 * GROW * widening(1.8))
    # Three fresh samples outweigh one two days old (weight 1/4 of 3.25 < 10 %): p90 ignores it.
    r = recommend([(NOW, 100)] * 3 + [(NOW - 2 * DAY, 1000)], NOW)
    assert (r["p90"], r["p95"], r["peak"]) == (100, 1000, 1000)


def test_why_bumped_and_kept():
    r = recommend([(NOW - 2 * DAY + k * 420, 29 * MIB + k * 1000) for k in range(412)], NOW,
                  events=[(NOW - 3 * HOUR, "oom"), (NOW - 2 * DAY, "recycle")])
    assert r["bumped"] and r["target"] > r["p90"] * 1.2
    again = recommend([(NOW - 2 * DAY + k * 420, 29 * MIB + k * 1000) for k in range(412)], NOW,
                      events=[(NOW - 3 * HOUR, "oom")], previous=r["lower"])
    assert again["kept_previous"] and again["value"] == r["lower"]
    assert again["why"].startswith("p90 of 412 samples over 2.0 d + 15 % = ")
    assert ", x1.2 after an OOM kill 3 h ago = " in again["why"]
    assert again["why"].endswith("; kept %s (the running plan's, within the bounds)"
                                 % rec.human(r["lower"]))


def test_malformed_samples_are_skipped_and_counted():
    junk = [(None, 5), ("x", 1), (1, -5), (1, float("nan")), (NOW + 1, 10), (1, 0), (True, 5),
            (1, float("inf")), None, 7, (1, 2, 3), "ab", (), [1]]
    assert recommend(junk, NOW) is None
    r = recommend(junk + [(NOW, 4096), [NOW, 2048.5]], NOW)
    assert (r["samples"], r["skipped"], r["peak"]) == (2, len(junk), 4096)
    assert r["p50"] == 2049      # 2048.5 B rounded up; equal weights: half the weight
    assert recommend([], NOW) is None and recommend(None, NOW) is None
    # Malformed events and previous are ignored.
    r2 = recommend([(NOW, 4096), (NOW, 2049)], NOW, events=[None, ("oom",), (None, "oom"),
                   (NOW, ["oom"]), (NOW + 5, "oom")], previous="x")
    assert not r2["bumped"] and not r2["kept_previous"] and r2["value"] == r["target"]


@pytest.mark.parametrize("kwargs", [{"now": float("nan")}, {"now": None}, {"half_life": 0},
                                    {"margin": -0.1}, {"bump": 0.9}])
def test_bad_parameters_raise(kwargs):
    args = {"now": NOW, **kwargs}
    with pytest.raises(ValueError):
        recommend([(1, 1)], args.pop("now"), **args)


def test_standard_library_only_and_short():
    path = ROOT / "module_utils" / "stackfit_recommend.py"
    assert len(path.read_text().splitlines()) < 250
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - {"stackfit_common"} <= sys.stdlib_module_names


# --- properties -------------------------------------------------------------------------------

@FAST
@given(sample_sets, event_sets, st.none() | sizes)
def test_bounds_ordered_and_value_is_previous_or_target(samples, events, previous):
    r = recommend(samples, NOW, events=events, previous=previous)
    assert r["lower"] <= r["target"] <= r["upper"]
    assert r["p50"] <= r["p90"] <= r["p95"] <= r["peak"]
    assert 0 < r["confidence"] <= 1
    assert all(isinstance(r[k], int) for k in ("value", "target", "lower", "upper"))
    if r["kept_previous"]:
        assert r["value"] == previous and r["lower"] <= previous <= r["upper"]
    else:
        assert r["value"] == r["target"]
        assert previous is None or not r["lower"] <= previous <= r["upper"]


@FAST
@given(sample_sets, st.data())
def test_monotone_in_samples(samples, data):
    raises = data.draw(st.lists(st.integers(0, 1 << 30), min_size=len(samples),
                                max_size=len(samples)))
    before = recommend(samples, NOW)
    after = recommend([(t, b + d) for (t, b), d in zip(samples, raises)], NOW)
    for key in ("target", "lower", "upper", "p50", "p90", "p95", "peak"):
        assert after[key] >= before[key], key


@FAST
@given(sample_sets, st.sampled_from([0, 0.05, 0.15, 0.3]))
def test_margin_honoured(samples, margin):
    r = recommend(samples, NOW, margin=margin)
    grow = 1 + Fraction(str(margin))
    assert r["target"] >= math.ceil(r["p90"] * grow) and r["target"] >= r["p90"] * (1 + margin)
    assert r["upper"] >= math.ceil(r["p95"] * grow) and r["upper"] >= r["p95"] * (1 + margin)


@FAST
@given(sample_sets, event_sets, st.data())
def test_no_flapping(samples, events, data):
    first = recommend(samples, NOW, events=events)
    previous = data.draw(st.integers(first["lower"], first["upper"]))
    kept = recommend(samples, NOW, events=events, previous=previous)
    assert kept["value"] == previous and kept["kept_previous"]
    second = recommend(samples, NOW, events=events, previous=first["value"])
    assert second["value"] == first["value"] and second["kept_previous"]


@FAST
@given(sample_sets, st.integers(2, 4))
def test_more_evidence_narrows(samples, copies):
    one = recommend(samples, NOW)
    more = recommend(samples * copies, NOW)
    assert (more["p50"], more["p90"], more["p95"], more["target"]) == \
        (one["p50"], one["p90"], one["p95"], one["target"])
    assert Fraction(more["upper"], more["target"]) <= Fraction(one["upper"], one["target"])
    assert more["lower"] >= one["lower"] and more["confidence"] > one["confidence"]


@FAST
@given(recent_sets)
def test_decay_an_old_spike_matters_less(samples):
    spike = 10 * max(b for _, b in samples)
    fresh = recommend(samples + [(NOW, spike)], NOW)
    old = recommend(samples + [(NOW - 30 * DAY, spike)], NOW)
    assert fresh["p95"] >= old["p95"] and fresh["p90"] >= old["p90"]
    assert fresh["peak"] == old["peak"] == spike


def test_decay_example():
    base = [(NOW - HOUR, 10 * MIB)] * 10
    fresh = recommend(base + [(NOW, 100 * MIB)], NOW)
    old = recommend(base + [(NOW - 30 * DAY, 100 * MIB)], NOW)
    assert fresh["p95"] == 100 * MIB and old["p95"] == 10 * MIB    # weight 9.3 % vs 1e-10
    assert fresh["upper"] > 5 * old["upper"]


@FAST
@given(sample_sets, st.sampled_from(["oom", "recycle"]), st.integers(0, 7 * DAY),
       st.integers(1, 3))
def test_bump_within_seven_days(samples, kind, age, count):
    plain = recommend(samples, NOW)
    bumped = recommend(samples, NOW, events=[(NOW - age, kind)] * count)
    assert bumped["bumped"] and not plain["bumped"]
    assert bumped["target"] == math.ceil(plain["target"] * Fraction(6, 5))
    assert bumped["upper"] == math.ceil(plain["upper"] * Fraction(6, 5))
    assert bumped["lower"] == plain["lower"]
    late = recommend(samples, NOW, events=[(NOW - 8 * DAY, kind), (NOW + HOUR, kind)])
    assert late == plain


@FAST
@given(st.lists(st.one_of(
    st.tuples(stamps, sizes),
    st.tuples(st.one_of(st.none(), st.text(max_size=2), st.floats(), st.booleans()),
              st.one_of(st.integers(-5, 5), st.floats(), st.none())),
    st.tuples(st.integers(NOW + 1, NOW + DAY), sizes),
    st.none(), st.integers(), st.text(max_size=3)), max_size=30))
def test_malformed_input_never_raises(samples):
    r = recommend(samples, NOW)
    good = sum(1 for s in samples if isinstance(s, tuple) and len(s) == 2
               and recommend([s], NOW) is not None)
    if good == 0:
        assert r is None
    else:
        assert r["samples"] == good and r["samples"] + r["skipped"] == len(samples)
