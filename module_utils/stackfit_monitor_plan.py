# -*- coding: utf-8 -*-
"""The memory monitor's numbers in the plan: the adaptive Redis policy's bands, thresholds,
hysteresis and cooldown, the Celery recycle limit and the leak watch, each with its explain line.

Pure, no Ansible imports; stackfit_sizing.plan() calls monitor_policy().
"""
from __future__ import annotations

from fractions import Fraction

try:  # inside Ansible (AnsiballZ) and in tests through ansible.module_utils
    from .stackfit_common import (
        ADAPTIVE_COOLDOWN_MAX, ADAPTIVE_HIGH_PERCENT, ADAPTIVE_HYSTERESIS_PERCENT,
        ADAPTIVE_LOW_PERCENT, ADAPTIVE_WARN_PERCENT, HISTORY_MAX_BYTES, LEAK_MIN_GROWTH_BYTES,
        LEAK_SAMPLES, USED_MEMORY_MARGIN, human)
    from .stackfit_units import format_size
except ImportError:  # plain import with module_utils/ on sys.path
    from stackfit_common import (  # type: ignore[no-redef]
        ADAPTIVE_COOLDOWN_MAX, ADAPTIVE_HIGH_PERCENT, ADAPTIVE_HYSTERESIS_PERCENT,
        ADAPTIVE_LOW_PERCENT, ADAPTIVE_WARN_PERCENT, HISTORY_MAX_BYTES, LEAK_MIN_GROWTH_BYTES,
        LEAK_SAMPLES, USED_MEMORY_MARGIN, human)
    from stackfit_units import format_size  # type: ignore[no-redef]

# The monitor's adaptive Redis policy: maxmemory bands as shares of the plan's maxmemory (the
# ceiling is all of it), and the cooldown between two changes in monitor runs (at most
# ADAPTIVE_COOLDOWN_MAX seconds). The thresholds and the leak watch are in stackfit_common.
ADAPTIVE_FLOOR_SHARE = Fraction(1, 2)
ADAPTIVE_MIDDLE_SHARE = Fraction(3, 4)
ADAPTIVE_COOLDOWN_RUNS = 3


def monitor_policy(maxmemory, budget, interval, adaptive, cache, worker_memory_high=None,
                   memory_high_factor=1.5):
    """The monitor's numbers for a host: (section, explain lines). Pure.

    maxmemory: the plan's Redis maxmemory (bytes); budget: the plan's budget; interval: seconds
    between monitor runs; adaptive: the monitor_adaptive option; cache: the host runs Redis;
    worker_memory_high: the Celery worker unit's MemoryHigh (bytes), None without a worker, and
    memory_high_factor the MemoryHigh = planned x factor rule that made it (for its explain line).

    The section has the shape of the monitor configuration's sections (adaptive, celery_recycle
    without its command, history), so the role renders it as it is.
    """
    enabled = bool(adaptive and cache)
    floor = max(1, int(maxmemory * ADAPTIVE_FLOOR_SHARE))
    middle = max(floor, int(maxmemory * ADAPTIVE_MIDDLE_SHARE))
    ceiling = max(middle, maxmemory)
    cooldown = min(interval * ADAPTIVE_COOLDOWN_RUNS, ADAPTIVE_COOLDOWN_MAX)
    section = {
        "adaptive": {
            "enabled": enabled,
            "floor_bytes": floor,
            "middle_bytes": middle,
            "ceiling_bytes": ceiling,
            "budget_bytes": budget,
            "high_percent": ADAPTIVE_HIGH_PERCENT,
            "warn_percent": ADAPTIVE_WARN_PERCENT,
            "low_percent": ADAPTIVE_LOW_PERCENT,
            "hysteresis_percent": ADAPTIVE_HYSTERESIS_PERCENT,
            "cooldown_seconds": cooldown,
        },
        "celery_recycle": {"pss_limit_bytes": worker_memory_high, "cooldown_seconds": cooldown},
        "history": {"max_bytes": HISTORY_MAX_BYTES, "leak_samples": LEAK_SAMPLES,
                    "leak_min_growth_bytes": LEAK_MIN_GROWTH_BYTES},
    }
    if enabled:
        why = ("monitor_adaptive is true and this host runs Redis (cache): the monitor moves "
               "maxmemory with memory pressure")
    elif not adaptive:
        why = ("monitor_adaptive is false (the production profile sets it true): decisions are "
               "reported, never applied")
    else:
        why = ("monitor_adaptive is true but this host does not run Redis (cache): only the cache "
               "host's monitor changes maxmemory, so two hosts never act on one Redis; decisions "
               "are reported, never applied")
    lines = [
        "monitor.adaptive.enabled = %s: %s." % (str(enabled).lower(), why),
        "monitor.adaptive floor/middle/ceiling = %s / %s / %s: %s, %s and all of redis_maxmemory "
        "%s; a change never goes below Redis used_memory x %s nor above the budget %s." % (
            human(floor), human(middle), human(ceiling), _share_text(ADAPTIVE_FLOOR_SHARE),
            _share_text(ADAPTIVE_MIDDLE_SHARE), format_size(maxmemory),
            float(USED_MEMORY_MARGIN), human(budget)),
        "monitor.adaptive high/warn/low = %d%% / %d%% / %d%%, hysteresis %d: system memory above "
        "high takes maxmemory to the floor, above warn to the middle, below low back to the "
        "ceiling, hold in between; a band is left only %g points past its boundary, so noise "
        "at a boundary never flaps." % (
            ADAPTIVE_HIGH_PERCENT, ADAPTIVE_WARN_PERCENT, ADAPTIVE_LOW_PERCENT,
            ADAPTIVE_HYSTERESIS_PERCENT, ADAPTIVE_HYSTERESIS_PERCENT / 2.0),
        "monitor.adaptive.cooldown_seconds = %d: min(%d x monitor_interval %ds, %ds): a change is "
        "watched for %d runs before the next one, and never waits more than %d minutes." % (
            cooldown, ADAPTIVE_COOLDOWN_RUNS, interval, ADAPTIVE_COOLDOWN_MAX,
            ADAPTIVE_COOLDOWN_RUNS, ADAPTIVE_COOLDOWN_MAX // 60),
    ]
    if worker_memory_high is None:
        lines.append("monitor.celery_recycle.pss_limit_bytes = none: this host runs no Celery "
                     "worker.")
    else:
        lines.append("monitor.celery_recycle.pss_limit_bytes = %s: the worker unit's MemoryHigh "
                     "(planned x %.1f): a warm restart before systemd throttles it; at most one "
                     "every %ds (the adaptive cooldown)." % (
                         human(worker_memory_high), memory_high_factor, cooldown))
    lines.append("monitor.history = %d samples, %s growth, %s: a service whose PSS grew at each "
                 "of its last %d runs (leak_samples), by %s or more in all "
                 "(leak_min_growth_bytes), is a leak suspect; history.jsonl is capped at %s "
                 "(max_bytes)." % (
                     LEAK_SAMPLES, human(LEAK_MIN_GROWTH_BYTES), human(HISTORY_MAX_BYTES),
                     LEAK_SAMPLES, human(LEAK_MIN_GROWTH_BYTES), human(HISTORY_MAX_BYTES)))
    return section, lines


def _share_text(fraction):
    return "%d/%d" % (fraction.numerator, fraction.denominator)
