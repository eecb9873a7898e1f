# -*- coding: utf-8 -*-
"""A memory recommendation per process kind from measured PSS samples, in the manner of the
Kubernetes Vertical Pod Autoscaler's recommender: ``recommend(samples, now, ...)``.

Pure standard library, no Ansible imports, no I/O. The rules, and why each:

- Weights: a sample ``age`` seconds old weighs ``0.5 ** (age / half_life)`` (VPA's decaying
  histogram, half-life 24 h): yesterday's load counts half as much as today's. Only the ratios
  matter, so the age is taken from the newest valid sample (a set that is weeks old keeps its
  own decay instead of underflowing) and every weight becomes an integer: ``ceil(2**53 x w)``,
  at least 1. Integer sums are exact, so no percentile depends on summation order or rounding.
- Weighted percentile ``p_q``: the smallest sample value ``x`` whose cumulative weight (samples
  sorted by value) reaches ``q`` of the total weight (the inverse of the weighted CDF, compared
  exactly in integers). It is always a measured value (no interpolation past what was seen), it
  is deterministic, it is monotone in ``q``, and it never drops when any sample grows (the
  weights depend on the timestamps only, and the CDF at every point can only fall).
- Kish's effective sample size ``n_eff = (sum w)**2 / sum(w**2)``: 412 samples mostly weeks old
  are little evidence; ``n_eff`` counts what the weights leave of them.
- ``widening = 1 + 1 / sqrt(n_eff)``: a sample quantile's standard error shrinks as
  ``1 / sqrt(n)``, so the bounds open wide on one sample (x2) and close towards the margins alone
  as evidence grows; duplicating the evidence only narrows them.
- ``lower = p50 x (1 + margin) / widening``, ``upper = p95 x (1 + margin) x widening``,
  ``target = p90 x (1 + margin)`` raised to ``lower`` and clipped to ``upper`` (VPA's
  percentiles and 15 % safety margin; the clamp only guards the order lower <= target <= upper,
  which these formulas already give).
- ``confidence = n_eff / (n_eff + 1)``: in (0, 1), 0.5 for one sample, 0.95 for 19 of equal weight.
- An "oom" or "recycle" event at most 7 days old (VPA's OOM bump) multiplies the rounded target
  and upper by ``bump`` once, however many events: the memory the plan gave was demonstrably too
  little, whatever the samples say; lower stays, it is what the samples support.
- No flapping: a re-plan keeps ``previous`` (the running plan's value) while it lies within
  [lower, upper]; the plan moves only when the evidence leaves it outside.
- Every size is rounded up to whole bytes (exact arithmetic: margin and bump are taken as the
  decimals they are written as, 0.15 = 3/20), so a plan never undershoots.
- Malformed samples (not a pair, a non-number or bool, NaN or infinity, bytes <= 0, a timestamp
  after ``now``) are skipped and counted; malformed events and a malformed ``previous`` are
  ignored. Bad parameters (``now``, ``half_life <= 0``, ``margin < 0``, ``bump < 1``) raise
  ValueError: they are the caller's bug, not the host's data.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction

try:
    from .stackfit_common import human
except ImportError:
    from stackfit_common import human  # type: ignore[no-redef]

HOUR = 3600
DAY = 24 * HOUR
HALF_LIFE_SECONDS = DAY
MARGIN = 0.15
OOM_BUMP = 1.2
EVENT_WINDOW_SECONDS = 7 * DAY
WEIGHT_SCALE = 2 ** 53
PERCENTS = (50, 90, 95)
EVENTS = {"oom": "an OOM kill", "recycle": "a memory recycle"}


def _number(value):
    """value when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return value if math.isfinite(value) else None
    except (OverflowError, TypeError, ValueError):
        return None


def _exact(value):
    """A number as an exact Fraction; a float as the decimal it prints as (0.15 -> 3/20)."""
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _valid(samples, now):
    """([(timestamp, int bytes rounded up)], number skipped)."""
    kept, skipped = [], 0
    try:
        entries = iter(samples)
    except TypeError:
        return kept, skipped
    for entry in entries:
        try:
            stamp, size = entry
        except (TypeError, ValueError):
            skipped += 1
            continue
        stamp, size = _number(stamp), _number(size)
        if stamp is None or size is None or stamp > now or size <= 0:
            skipped += 1
            continue
        kept.append((stamp, math.ceil(size)))
    return kept, skipped


def _weights(stamps, half_life):
    """Integer decay weights, relative to the newest timestamp (see the module docstring)."""
    newest = max(stamps)
    return [max(1, math.ceil(WEIGHT_SCALE * 0.5 ** ((newest - stamp) / half_life)))
            for stamp in stamps]


def _percentiles(sizes, weights):
    """{percent: the smallest size whose cumulative weight reaches percent % of the total}."""
    total, cumulative, found = sum(weights), 0, {}
    wanted = list(PERCENTS)
    for size, weight in sorted(zip(sizes, weights)):
        cumulative += weight
        while wanted and cumulative * 100 >= wanted[0] * total:
            found[wanted.pop(0)] = size
    return found


def _latest_event(events, now):
    """(timestamp, kind) of the newest valid event at most EVENT_WINDOW_SECONDS old, or None."""
    latest = None
    try:
        entries = iter(events if events is not None else ())
    except TypeError:
        return None
    for entry in entries:
        try:
            stamp, kind = entry
        except (TypeError, ValueError):
            continue
        stamp = _number(stamp)
        if stamp is None or not isinstance(kind, str) or kind not in EVENTS:
            continue
        if now - EVENT_WINDOW_SECONDS <= stamp <= now and (latest is None or stamp > latest[0]):
            latest = (stamp, kind)
    return latest


def _duration(seconds):
    """A duration for people: "40 s", "12 min", "3 h", "2.0 d"."""
    if seconds < 60:
        return "%d s" % seconds
    if seconds < HOUR:
        return "%d min" % (seconds // 60)
    if seconds < DAY:
        return "%d h" % (seconds // HOUR)
    return "%.1f d" % (seconds / DAY)


def _bounds(lower, upper):
    """"27.0-36.1 MiB" (the unit once when both share it)."""
    low, high = human(lower), human(upper)
    if low.split()[-1] == high.split()[-1]:
        low = low.rsplit(" ", 1)[0]
    return "%s-%s" % (low, high)


def recommend(samples, now, events=(), previous=None, half_life=HALF_LIFE_SECONDS,
              margin=MARGIN, bump=OOM_BUMP):
    """The recommendation for one process kind from its PSS samples; None without a valid one.

    samples: iterable of (timestamp_seconds, bytes); malformed entries are skipped and counted.
    events: iterable of (timestamp_seconds, "oom" | "recycle"); one at most 7 days old bumps
    target and upper by ``bump`` (once). previous: the running plan's value (bytes) or None.
    Returns {value, target, lower, upper, p50, p90, p95, peak, samples, skipped, span_seconds,
    confidence, bumped, kept_previous, why}: see the module docstring for the rules.
    """
    now = _number(now)
    half_life, margin, bump = _number(half_life), _number(margin), _number(bump)
    if now is None or half_life is None or margin is None or bump is None:
        raise ValueError("now, half_life, margin and bump must be finite numbers")
    if half_life <= 0 or margin < 0 or bump < 1:
        raise ValueError("need half_life > 0, margin >= 0 and bump >= 1")
    valid, skipped = _valid(samples, now)
    if not valid:
        return None
    stamps = [stamp for stamp, _size in valid]
    sizes = [size for _stamp, size in valid]
    weights = _weights(stamps, half_life)
    total = sum(weights)
    n_eff = total * total / sum(weight * weight for weight in weights)
    widening = Fraction(1 + 1 / math.sqrt(n_eff))
    confidence = n_eff / (n_eff + 1)
    pct = _percentiles(sizes, weights)
    grow = 1 + _exact(margin)
    lower = math.ceil(pct[50] * grow / widening)
    upper = base_upper = math.ceil(pct[95] * grow * widening)
    target = base_target = min(max(math.ceil(pct[90] * grow), lower), upper)
    span = now - min(stamps)
    why = "p90 of %d sample%s over %s + %s %% = %s (bounds %s, confidence %.2f)" % (
        len(valid), "" if len(valid) == 1 else "s", _duration(span), "%g" % (margin * 100),
        human(base_target), _bounds(lower, base_upper), confidence)
    event = _latest_event(events, now)
    if event is not None:
        target = math.ceil(target * _exact(bump))
        upper = math.ceil(upper * _exact(bump))
        why += ", x%g after %s %s ago = %s (upper %s)" % (
            bump, EVENTS[event[1]], _duration(now - event[0]), human(target), human(upper))
    kept = _number(previous)
    kept = math.ceil(kept) if kept is not None and kept > 0 else None
    kept_previous = kept is not None and lower <= kept <= upper
    if kept_previous:
        why += "; kept %s (the running plan's, within the bounds)" % human(kept)
    return {
        "value": kept if kept_previous else target,
        "target": target, "lower": lower, "upper": upper,
        "p50": pct[50], "p90": pct[90], "p95": pct[95], "peak": max(sizes),
        "samples": len(valid), "skipped": skipped, "span_seconds": span,
        "confidence": confidence, "bumped": event is not None, "kept_previous": kept_previous,
        "why": why,
    }
