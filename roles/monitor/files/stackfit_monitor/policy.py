"""The adaptive Redis maxmemory policy and the Celery recycle decision. Pure: no I/O.

The numbers (floor/middle/ceiling bytes, thresholds, hysteresis, cooldowns) come from the
configuration, which the role renders from the plan (stackfit_plan.monitor).
"""
from .errors import is_number as _is_number
from .stackfit_common import USED_MEMORY_MARGIN, human, min_maxmemory

# Adaptive bands, ordered by rising memory pressure. Boundary i (low, warn, high) lies between
# BANDS[i] and BANDS[i + 1].
BANDS = ("ceiling", "hold", "middle", "floor")


def band_for(percent, cfg, last_band):
    """The band for memory `percent`, given the band of the last decision (or None).

    Thresholds low < warn < high split the percent axis into four bands: ceiling (< low),
    hold (low..warn), middle (warn..high), floor (> high).

    Hysteresis rule: with h = hysteresis_percent / 2, leaving the last decision's band across one
    of its own boundaries t needs percent > t + h (moving up, towards more pressure) or
    percent < t - h (moving down). Thresholds further away, which a large jump crosses after the
    band's own boundary, apply at their raw value: hysteresis is there to absorb noise at the
    boundary the policy sits next to, and a jump from 40 % to 92 % is not noise (it lands in
    floor, not in middle). Without a last band (first run, state lost) raw thresholds apply:
    > high floor, > warn middle, < low ceiling, otherwise hold.

    Why it cannot flap: after any move the band sits next to the threshold it just crossed, so
    going back needs a move of at least 2h past it. A percent oscillating within t +- h (e.g.
    78 <-> 82 around 80 with the default 5) keeps whatever band it had.
    """
    thresholds = (cfg["low_percent"], cfg["warn_percent"], cfg["high_percent"])
    if last_band in BANDS:
        margin = cfg["hysteresis_percent"] / 2.0
        index = BANDS.index(last_band)
    else:
        margin = 0.0
        index = BANDS.index("hold")
    start = index
    while index < len(thresholds) and percent > thresholds[index] + (
            margin if index == start else 0.0):
        index += 1
    if index == start:
        while index > 0 and percent < thresholds[index - 1] - (
                margin if index == start else 0.0):
            index -= 1
    return BANDS[index]


def _band_reason(percent, cfg, last_band, band):
    names = ("low", "warn", "high")
    thresholds = (cfg["low_percent"], cfg["warn_percent"], cfg["high_percent"])
    new = BANDS.index(band)
    if last_band not in BANDS:
        if band == "floor":
            return "memory %.1f%% > high %s%%" % (percent, cfg["high_percent"])
        if band == "middle":
            return "memory %.1f%% > warn %s%%" % (percent, cfg["warn_percent"])
        if band == "ceiling":
            return "memory %.1f%% < low %s%%" % (percent, cfg["low_percent"])
        return "memory %.1f%% between low %s%% and warn %s%%" % (
            percent, cfg["low_percent"], cfg["warn_percent"])
    margin = cfg["hysteresis_percent"] / 2.0
    old = BANDS.index(last_band)
    if new > old:
        own, last = old, new - 1
        text = "memory %.1f%% > %s %s%% + %s hysteresis" % (
            percent, names[own], thresholds[own], margin)
        if last != own:
            text += " and > %s %s%%" % (names[last], thresholds[last])
        return text + ": band %s -> %s" % (last_band, band)
    if new < old:
        own, last = old - 1, new
        text = "memory %.1f%% < %s %s%% - %s hysteresis" % (
            percent, names[own], thresholds[own], margin)
        if last != own:
            text += " and < %s %s%%" % (names[last], thresholds[last])
        return text + ": band %s -> %s" % (last_band, band)
    bounds = []
    if new < 3:
        bounds.append("above %s%%" % (thresholds[new] + margin))
    if new > 0:
        bounds.append("below %s%%" % (thresholds[new - 1] - margin))
    return "memory %.1f%% stays in band %s (leaves it %s)" % (percent, band, " or ".join(bounds))


def decide(memory_percent, current_maxmemory, used_memory, state, cfg, now):
    """Decide Redis maxmemory from system memory pressure. Pure: no I/O.

    memory_percent: system memory used, 0-100. current_maxmemory: Redis maxmemory in bytes
    (0 = unlimited). used_memory: Redis used_memory in bytes (None if unknown). state: the last
    state ({"band": ..., "last_change": epoch seconds}). cfg: the adaptive config section.

    Band (see band_for) -> wanted target: floor / middle / ceiling bytes, or no change in the
    hold band. The target is then clamped: never below used_memory x USED_MEMORY_MARGIN
    (stackfit_common.min_maxmemory; clamp up), never above budget_bytes (clamp down); if the two
    bounds conflict, or a clamp would turn the move around (e.g. "lower" becoming a raise because
    Redis is full), the decision is hold. No change within cooldown_seconds of the last change.

    Returns {"action": "lower"|"raise"|"hold", "target", "current", "band", "reason", ...};
    target is the maxmemory the action leads to (= current for hold).
    """
    state = state or {}
    last_band = state.get("band")
    band = band_for(memory_percent, cfg, last_band)
    reasons = [_band_reason(memory_percent, cfg, last_band, band)]
    decision = {
        "action": "hold",
        "band": band,
        "previous_band": last_band if last_band in BANDS else None,
        "memory_percent": round(float(memory_percent), 2),
        "current": current_maxmemory,
        "used_memory": used_memory,
        "target": current_maxmemory,
        "wanted": None,
        "clamps": [],
        "cooldown_remaining": 0,
    }
    effective = current_maxmemory if current_maxmemory else float("inf")
    wanted = {"floor": cfg["floor_bytes"], "middle": cfg["middle_bytes"],
              "ceiling": cfg["ceiling_bytes"]}.get(band)
    if wanted is None:
        reasons.append("hold maxmemory at %s" % _maxmemory_text(current_maxmemory))
        decision["reason"] = "; ".join(reasons)
        return decision
    decision["wanted"] = wanted
    target = wanted
    lower_bound = min_maxmemory(used_memory)  # ceil(used x the margin), 0 when unknown
    budget = cfg["budget_bytes"]
    if lower_bound > budget:
        reasons.append("used_memory x %.1f = %s exceeds budget %s: cannot respect both, hold "
                       "maxmemory at %s" % (float(USED_MEMORY_MARGIN), human(lower_bound), human(budget),
                                            _maxmemory_text(current_maxmemory)))
        decision["clamps"] = ["conflict"]
        decision["reason"] = "; ".join(reasons)
        return decision
    if target < lower_bound:
        decision["clamps"].append("used_memory")
        reasons.append("%s %s clamped up to used_memory %s x %.1f = %s" % (
            band, human(wanted), human(used_memory), float(USED_MEMORY_MARGIN), human(lower_bound)))
        target = lower_bound
    if target > budget:
        decision["clamps"].append("budget")
        reasons.append("%s %s clamped down to budget %s" % (band, human(wanted), human(budget)))
        target = budget
    want_dir = (wanted > effective) - (wanted < effective)
    move_dir = (target > effective) - (target < effective)
    if move_dir == 0:
        reasons.append("maxmemory already %s" % _maxmemory_text(current_maxmemory))
    elif move_dir != want_dir:
        reasons.append("clamped target %s would %s instead of %s maxmemory %s: hold" % (
            human(target), "raise" if move_dir > 0 else "lower",
            "keeping" if want_dir == 0 else ("raising" if want_dir > 0 else "lowering"),
            _maxmemory_text(current_maxmemory)))
    else:
        action = "raise" if move_dir > 0 else "lower"
        last_change = state.get("last_change")
        elapsed = now - last_change if _is_number(last_change) else None
        cooldown = cfg["cooldown_seconds"]
        if elapsed is not None and 0 <= elapsed < cooldown:
            decision["cooldown_remaining"] = round(cooldown - elapsed, 1)
            reasons.append("would %s maxmemory %s -> %s but cooldown: last change %ds ago < %ss"
                           % (action, _maxmemory_text(current_maxmemory), human(target),
                              elapsed, cooldown))
        else:
            decision["action"] = action
            decision["target"] = target
            reasons.append("%s maxmemory %s -> %s (%s)" % (
                action, _maxmemory_text(current_maxmemory), human(target), band))
    decision["reason"] = "; ".join(reasons)
    return decision


def _maxmemory_text(value):
    return "unlimited (0)" if not value else human(value)


def next_adaptive_state(state, decision, applied, now):
    """The state to store after a decision: its band, and the time of the last applied change."""
    new = {"band": decision["band"], "last_change": (state or {}).get("last_change"),
           "last_target": (state or {}).get("last_target"), "updated": now}
    if applied:
        new["last_change"] = now
        new["last_target"] = decision["target"]
    return new


def should_recycle(pss, limit, state, cooldown, now):
    """(run?, reason). Run when pss > limit and the last run is >= cooldown seconds ago."""
    if limit is None:
        return False, "celery_recycle.pss_limit_bytes not set"
    if pss is None:
        return False, "celery PSS unknown (down or unreadable)"
    if pss <= limit:
        return False, "celery PSS %s <= limit %s" % (human(pss), human(limit))
    last = (state or {}).get("last_run")
    if _is_number(last) and 0 <= now - last < cooldown:
        return False, "celery PSS %s > limit %s but cooldown: last recycle %ds ago < %ss" % (
            human(pss), human(limit), now - last, cooldown)
    return True, "celery PSS %s > limit %s" % (human(pss), human(limit))
