"""The adaptive Redis maxmemory policy, decide(): pure, no Redis."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor_testlib  # noqa: F401  (puts the monitor package on sys.path)
from stackfit_monitor import policy as mon

MiB = 1024 * 1024
FLOOR, MIDDLE, CEILING, BUDGET = 100 * MiB, 200 * MiB, 400 * MiB, 500 * MiB
USED = 10 * MiB  # far below every target: no clamp unless a test says so


def cfg(**overrides):
    out = {"enabled": True, "floor_bytes": FLOOR, "middle_bytes": MIDDLE,
           "ceiling_bytes": CEILING, "budget_bytes": BUDGET, "high_percent": 90,
           "warn_percent": 80, "low_percent": 50, "hysteresis_percent": 5,
           "cooldown_seconds": 1800}
    out.update(overrides)
    return out


class Policy:
    """Drives decide() the way `run` does: apply each change, keep the state."""

    def __init__(self, current=CEILING, used=USED, state=None, config=None, now=1_000_000.0):
        self.current, self.used, self.state = current, used, state or {}
        self.cfg, self.now, self.changes = config or cfg(), now, 0

    def step(self, percent, advance=3600):
        self.now += advance
        decision = mon.decide(percent, self.current, self.used, self.state, self.cfg, self.now)
        applied = decision["action"] != "hold"
        if applied:
            assert decision["target"] != self.current
            self.current = decision["target"]
            self.changes += 1
        self.state = mon.next_adaptive_state(self.state, decision, applied, self.now)
        return decision


# ---- each threshold, and back ----------------------------------------------------------------

@pytest.mark.parametrize("percent,action,target,band", [
    (92, "lower", FLOOR, "floor"),
    (85, "lower", MIDDLE, "middle"),
    (65, "hold", CEILING, "hold"),
    (40, "hold", CEILING, "ceiling"),  # already at the ceiling
])
def test_fresh_state_uses_raw_thresholds(percent, action, target, band):
    decision = mon.decide(percent, CEILING, USED, {}, cfg(), 0)
    assert (decision["action"], decision["target"], decision["band"]) == (action, target, band)
    assert "%.1f%%" % percent in decision["reason"]


def test_up_through_every_threshold_and_back_down():
    policy = Policy(current=CEILING)
    seen = []
    for percent in (30, 60, 85, 95, 85, 60, 30):
        decision = policy.step(percent)
        seen.append((decision["band"], decision["action"], policy.current))
    assert seen == [
        ("ceiling", "hold", CEILING),
        ("hold", "hold", CEILING),
        ("middle", "lower", MIDDLE),
        ("floor", "lower", FLOOR),
        ("middle", "raise", MIDDLE),
        ("hold", "hold", MIDDLE),  # between low and warn: keep what we have
        ("ceiling", "raise", CEILING),
    ]


def test_each_threshold_needs_half_the_hysteresis_beyond_it_from_the_adjacent_band():
    c = cfg()
    # up across warn 80 from hold: needs > 82.5
    assert mon.band_for(82.5, c, "hold") == "hold"
    assert mon.band_for(82.6, c, "hold") == "middle"
    # down across warn 80 from middle: needs < 77.5
    assert mon.band_for(77.5, c, "middle") == "middle"
    assert mon.band_for(77.4, c, "middle") == "hold"
    # high 90
    assert mon.band_for(92.5, c, "middle") == "middle"
    assert mon.band_for(92.6, c, "middle") == "floor"
    assert mon.band_for(87.5, c, "floor") == "floor"
    assert mon.band_for(87.4, c, "floor") == "middle"
    # low 50
    assert mon.band_for(47.5, c, "hold") == "hold"
    assert mon.band_for(47.4, c, "hold") == "ceiling"
    assert mon.band_for(52.5, c, "ceiling") == "ceiling"
    assert mon.band_for(52.6, c, "ceiling") == "hold"


def test_a_big_jump_crosses_farther_thresholds_at_their_raw_value():
    c = cfg()
    assert mon.band_for(92, c, "ceiling") == "floor"
    assert mon.band_for(92, c, "hold") == "floor"
    assert mon.band_for(92, c, "middle") == "middle"  # 90 is middle's own boundary
    assert mon.band_for(40, c, "floor") == "ceiling"
    assert mon.band_for(49, c, "middle") == "ceiling"
    assert mon.band_for(49, c, "hold") == "hold"  # 50 is hold's own boundary


def test_zero_hysteresis_is_plain_thresholds():
    c = cfg(hysteresis_percent=0)
    assert mon.band_for(80.1, c, "hold") == "middle"
    assert mon.band_for(79.9, c, "middle") == "hold"
    assert mon.band_for(80, c, "hold") == "hold"  # "above" is strict


# ---- no flapping -------------------------------------------------------------------------------

@pytest.mark.parametrize("start_band,start_current", [("hold", CEILING), ("middle", MIDDLE)])
def test_oscillating_around_80_does_not_flap(start_band, start_current):
    policy = Policy(current=start_current, state={"band": start_band},
                    config=cfg(cooldown_seconds=0))
    for percent in [78, 82, 79, 81, 77.6, 82.4] * 5:
        decision = policy.step(percent)
        assert decision["action"] == "hold", decision["reason"]
    assert policy.current == start_current


@pytest.mark.parametrize("start_band,start_current", [("middle", MIDDLE), ("floor", FLOOR)])
def test_oscillating_around_90_does_not_flap(start_band, start_current):
    policy = Policy(current=start_current, state={"band": start_band},
                    config=cfg(cooldown_seconds=0))
    for percent in [88, 92, 89, 91, 87.6, 92.4] * 5:
        assert policy.step(percent)["action"] == "hold"
    assert policy.current == start_current


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(mon.BANDS),
       threshold=st.sampled_from([50, 80, 90]),
       offsets=st.lists(st.floats(min_value=-2.5, max_value=2.5, allow_nan=False), min_size=1,
                        max_size=40))
def test_any_oscillation_within_the_hysteresis_changes_maxmemory_at_most_once(
        start, threshold, offsets):
    """From any band, a percent that stays within threshold +- hysteresis/2 moves maxmemory
    at most once (the first step may leave a band that is not next to the threshold)."""
    start_current = {"ceiling": CEILING, "hold": CEILING, "middle": MIDDLE, "floor": FLOOR}[start]
    policy = Policy(current=start_current, state={"band": start}, config=cfg(cooldown_seconds=0))
    bands = []
    for offset in offsets:
        bands.append(policy.step(threshold + offset)["band"])
    assert policy.changes <= 1
    assert all(band == bands[0] for band in bands), bands


# ---- cooldown ----------------------------------------------------------------------------------

def test_cooldown_holds_a_change_until_it_has_passed():
    c = cfg(cooldown_seconds=1800)
    state = {"band": "middle", "last_change": 10_000.0}
    held = mon.decide(95, MIDDLE, USED, state, c, 10_000.0 + 600)
    assert held["action"] == "hold"
    assert held["band"] == "floor"
    assert held["target"] == MIDDLE
    assert held["cooldown_remaining"] == pytest.approx(1200)
    assert "cooldown" in held["reason"] and "600s ago" in held["reason"]
    done = mon.decide(95, MIDDLE, USED, state, c, 10_000.0 + 1800)
    assert (done["action"], done["target"]) == ("lower", FLOOR)


def test_cooldown_counts_from_the_last_change_not_the_last_decision():
    policy = Policy(current=CEILING, config=cfg(cooldown_seconds=1800))
    assert policy.step(95, advance=0)["action"] == "lower"
    for _ in range(5):  # holds do not restart the cooldown
        assert policy.step(70, advance=100)["action"] == "hold"
    assert policy.step(30, advance=100)["action"] == "hold"  # 600 s after the change
    assert policy.step(30, advance=1199)["action"] == "hold"  # 1799 s after it
    assert policy.step(30, advance=1)["action"] == "raise"  # 1800 s after it


# ---- clamps ------------------------------------------------------------------------------------

def test_never_below_used_memory_times_1_1():
    used = 150 * MiB
    decision = mon.decide(95, CEILING, used, {}, cfg(), 0)
    assert decision["action"] == "lower"
    assert decision["target"] == math.ceil(used * 1.1)
    assert decision["target"] >= used * 1.1
    assert decision["clamps"] == ["used_memory"]
    assert "clamped up" in decision["reason"]


def test_never_above_budget():
    decision = mon.decide(10, FLOOR, USED, {}, cfg(budget_bytes=300 * MiB), 0)
    assert (decision["action"], decision["target"]) == ("raise", 300 * MiB)
    assert decision["clamps"] == ["budget"]
    assert "clamped down to budget" in decision["reason"]


def test_used_memory_above_budget_is_a_conflict_and_holds():
    decision = mon.decide(95, CEILING, 480 * MiB, {}, cfg(), 0)
    assert decision["action"] == "hold"
    assert decision["target"] == CEILING
    assert decision["clamps"] == ["conflict"]
    assert "exceeds budget" in decision["reason"]


def test_a_clamp_never_turns_a_lowering_into_a_raise():
    # Redis full at 120 MiB (LRU caches sit at their limit): lowering to the floor would clamp
    # to 132 MiB, which is a raise: hold instead of ratcheting maxmemory up.
    decision = mon.decide(95, 120 * MiB, 119 * MiB, {}, cfg(), 0)
    assert decision["action"] == "hold"
    assert decision["target"] == 120 * MiB
    assert "hold" in decision["reason"]


def test_unlimited_maxmemory_is_lowered_to_the_band_target():
    decision = mon.decide(92, 0, USED, {}, cfg(), 0)
    assert (decision["action"], decision["target"]) == ("lower", FLOOR)
    assert "unlimited" in decision["reason"]


def test_hold_band_keeps_current_even_above_budget():
    decision = mon.decide(65, 600 * MiB, USED, {}, cfg(), 0)
    assert (decision["action"], decision["target"]) == ("hold", 600 * MiB)


def test_reason_is_one_line_with_the_numbers():
    decision = mon.decide(92, CEILING, USED, {"band": "hold"}, cfg(), 0)
    reason = decision["reason"]
    assert "\n" not in reason
    for text in ("92.0%", "high 90%", "400.0 MiB", "100.0 MiB"):
        assert text in reason, reason


@settings(max_examples=500, deadline=None)
@given(percent=st.floats(min_value=0, max_value=100, allow_nan=False),
       current=st.integers(min_value=0, max_value=1024 * MiB),
       used=st.integers(min_value=0, max_value=600 * MiB),
       band=st.sampled_from((None,) + mon.BANDS),
       last_change=st.one_of(st.none(), st.floats(min_value=0, max_value=10_000)))
def test_invariants(percent, current, used, band, last_change):
    state = {"band": band, "last_change": last_change}
    decision = mon.decide(percent, current, used, state, cfg(), 10_000.0)
    assert decision["action"] in ("lower", "raise", "hold")
    assert decision["band"] in mon.BANDS
    if decision["action"] == "hold":
        assert decision["target"] == current
    else:
        target = decision["target"]
        assert target * 10 >= used * 11
        assert target <= BUDGET
        effective = current or float("inf")
        assert (target < effective) == (decision["action"] == "lower")
        assert last_change is None or 10_000.0 - last_change >= 1800
