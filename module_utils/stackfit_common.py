# -*- coding: utf-8 -*-
"""Constants and helpers that stackfit defines once: the plan (stackfit_sizing), the Redis module
(stackfit_redis) and the host's memory monitor all use these.

Pure standard library, no Ansible imports. module_utils import it as
``from .stackfit_common import ...`` (with the plain-import fallback); the monitor package
reaches it through the relative symlink roles/monitor/files/stackfit_monitor/stackfit_common.py,
which Ansible's copy follows (local_follow defaults to true), so a host gets a real file.
"""
from __future__ import annotations

from fractions import Fraction

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3

# Redis maxmemory must leave this much room over what Redis already uses (used_memory): below it
# Redis evicts keys (or refuses writes under noeviction) at once.
USED_MEMORY_MARGIN = Fraction(11, 10)

# Seconds between two monitor runs. Under 10 s the monitor's own cost (about 0.05 s CPU a run)
# stops being negligible and Redis' INFO is read more often than it changes; over a day, the leak
# watch (a few samples in a row) and the adaptive policy would react days late.
MONITOR_INTERVAL_MIN = 10
MONITOR_INTERVAL_MAX = 86400


def min_maxmemory(used_memory):
    """The smallest maxmemory allowed: ceil(used_memory x USED_MEMORY_MARGIN), exact in integers.

    0 when used_memory is unknown (None) or 0."""
    used = int(used_memory or 0)
    return -(-used * USED_MEMORY_MARGIN.numerator // USED_MEMORY_MARGIN.denominator)


def human(nbytes):
    """A size for people, binary units with one decimal: "512 B", "1.5 KiB", "12.3 MiB",
    "1.5 GiB" (GiB is the largest unit); "unknown" for None."""
    if nbytes is None:
        return "unknown"
    value = float(nbytes)
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(value) >= size:
            return "%.1f %s" % (value / size, unit)
    return "%d B" % value


# The monitor's policy numbers. The plan (stackfit_sizing.monitor_policy) puts them in
# stackfit_plan.monitor with the reason for each, and the role renders them into the monitor's
# configuration; the monitor falls back to them only for a key its configuration lacks.
ADAPTIVE_HIGH_PERCENT = 90        # system memory above it: maxmemory to the floor
ADAPTIVE_WARN_PERCENT = 80        # above it: to the middle
ADAPTIVE_LOW_PERCENT = 50         # below it: back to the ceiling
ADAPTIVE_HYSTERESIS_PERCENT = 5   # a band is left only half of this past its boundary
ADAPTIVE_COOLDOWN_MAX = 1800      # seconds: the longest wait between two maxmemory changes
HISTORY_MAX_BYTES = MIB           # history.jsonl's size cap
LEAK_SAMPLES = 6                  # runs of steady PSS growth that make a leak suspect
LEAK_MIN_GROWTH_BYTES = 8 * MIB   # and the growth over them
