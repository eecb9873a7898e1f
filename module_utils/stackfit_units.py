# -*- coding: utf-8 -*-
"""Sizes and percentages as stackfit's inputs spell them, and the error that names a bad one.

Sizes follow redis.conf's units. Pure, standard library only: the sizing rules, the Redis memory
module and the tests share it.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

# Sizes follow redis.conf: 1k = 1000, 1kb = 1024, 1m = 1000000, 1mb = 1024*1024 ...; the IEC
# spellings (kib, mib, gib, tib) are binary too.
_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1024, "kib": 1024,
    "m": 1000 ** 2, "mb": 1024 ** 2, "mib": 1024 ** 2,
    "g": 1000 ** 3, "gb": 1024 ** 3, "gib": 1024 ** 3,
    "t": 1000 ** 4, "tb": 1024 ** 4, "tib": 1024 ** 4,
}
_SIZE_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_PERCENT_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


class SizingError(ValueError):
    """Bad input: the message names the option and the value."""


def _fail(option, value, why):
    raise SizingError("%s: %r %s" % (option, value, why))


def parse_size(value, option="size"):
    """A size in bytes from an int or a redis.conf spelling ("100mb", "1gb", "512MiB", "4096")."""
    if isinstance(value, bool):
        _fail(option, value, "is not a size")
    if isinstance(value, int):
        if value < 0:
            _fail(option, value, "is negative")
        return value
    if isinstance(value, float):
        if value < 0 or not math.isfinite(value):
            _fail(option, value, "is not a size")
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        _fail(option, value, "is not a size (use bytes or a unit: 100mb, 1gb, 512MiB)")
    number, unit = match.groups()
    if unit.lower() not in _UNITS:
        _fail(option, value, "has an unknown unit %r (known: %s)" % (
            unit, ", ".join(u for u in _UNITS if u)))
    if number.startswith("-"):
        _fail(option, value, "is negative")
    return int(Fraction(number) * _UNITS[unit.lower()])


def parse_percent(value, option):
    """Return a Fraction for "25%", or None when value is not a percentage."""
    match = _PERCENT_RE.match(str(value))
    if not match:
        return None
    pct = Fraction(match.group(1))
    if pct < 0:
        _fail(option, value, "is a percentage under 0")
    if pct > 100:
        _fail(option, value, "is a percentage over 100")
    return pct / 100


def format_size(nbytes):
    """redis.conf spelling of a size: the largest binary unit that divides it ("100mb", "1gb")."""
    for unit in ("gb", "mb", "kb"):
        if nbytes and nbytes % _UNITS[unit] == 0:
            return "%d%s" % (nbytes // _UNITS[unit], unit)
    return str(nbytes)


def _pct_text(fraction):
    value = float(fraction * 100)
    return ("%d" % value) if value == int(value) else ("%.1f" % value)
