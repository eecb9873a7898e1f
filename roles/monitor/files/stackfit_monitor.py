#!/usr/bin/env python3
"""stackfit memory monitor: measure the stack's memory, keep a history, watch for leaks,
adapt Redis maxmemory to memory pressure and recycle a bloated Celery worker.

Usage::

    stackfit_monitor.py run          [--config PATH] [--memory-percent P]
    stackfit_monitor.py loop         [--config PATH] [--max-runs N]
    stackfit_monitor.py decide       [--config PATH] [--memory-percent P]
                                     [--used-memory BYTES] [--current BYTES]
    stackfit_monitor.py check-config [--config PATH]

Files written to ``output_dir`` (every one atomically: temp file in the same directory, fsync,
``os.replace``): ``report.json``, ``stackfit.prom`` (node_exporter textfile collector),
``history.jsonl`` (appended; rewritten atomically when capped), ``adaptive_state.json`` and
``recycle_state.json``.

Exit codes: 0 report written (also when Redis is down: the report carries the error),
2 bad configuration, 3 output directory not writable, 1 anything unexpected.

Cost: a run must stay cheap (target <= 150 ms CPU, <= 40 MiB peak RSS). Imports are lazy, and
Redis is spoken to with the few RESP2 commands needed (AUTH, SELECT, INFO memory, CONFIG SET)
over a plain socket instead of importing redis-py, whose import alone costs ~75 ms CPU and
~20 MiB RSS. Only the standard library and psutil are needed.
"""
from __future__ import annotations

import json
import os
import sys
import time

_STARTED = time.perf_counter()

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_OUTPUT = 3

DEFAULT_CONFIG = "/etc/stackfit/monitor.json"
REPORT_NAME = "report.json"
PROM_NAME = "stackfit.prom"
HISTORY_NAME = "history.jsonl"
ADAPTIVE_STATE_NAME = "adaptive_state.json"
RECYCLE_STATE_NAME = "recycle_state.json"

RECYCLE_TIMEOUT = 30
USED_MEMORY_MARGIN = 1.1
# When history.jsonl grows past max_bytes it is rewritten down to this share of max_bytes, so
# the rewrite happens once every few hundred runs rather than on every run once the cap is hit.
HISTORY_TRIM_RATIO = 0.75

# Adaptive bands, ordered by rising memory pressure. Boundary i (low, warn, high) lies between
# BANDS[i] and BANDS[i + 1].
BANDS = ("ceiling", "hold", "middle", "floor")


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and the value."""


class OutputError(Exception):
    """The output directory or one of its files cannot be written."""


class RedisError(Exception):
    """Redis could not be reached or answered with an error."""


def log(message):
    sys.stderr.write("stackfit-monitor: %s\n" % message)
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

_SECRET_KEYS = {"redis.password"}


def _show(key, value):
    if key in _SECRET_KEYS and value is not None:
        return "<hidden>"
    return json.dumps(value)


def _fail(key, value, expected):
    raise ConfigError("config key %s: %s is not %s" % (key, _show(key, value), expected))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown(data, allowed):
    """Keys not in allowed; keys starting with "_" are comments ("_comment": ansible_managed)."""
    return sorted(key for key in set(data) - set(allowed)
                  if not (isinstance(key, str) and key.startswith("_")))


def _section(raw, key, allowed):
    value = raw.get(key, {})
    if not isinstance(value, dict):
        _fail(key, value, "an object")
    unknown = _unknown(value, allowed)
    if unknown:
        _fail("%s.%s" % (key, unknown[0]), value[unknown[0]],
              "a known key (allowed: %s)" % ", ".join(sorted(allowed)))
    return value


def _int(section, data, key, default=None, minimum=None, maximum=None, required=False,
         nullable=False):
    full = "%s.%s" % (section, key) if section else key
    if key not in data:
        if required:
            raise ConfigError("config key %s: missing (required)" % full)
        return default
    value = data[key]
    if value is None and nullable:
        return None
    if not _is_int(value):
        _fail(full, value, "an integer" + (" or null" if nullable else ""))
    if minimum is not None and value < minimum:
        _fail(full, value, "an integer >= %d" % minimum)
    if maximum is not None and value > maximum:
        _fail(full, value, "an integer <= %d" % maximum)
    return value


def _num(section, data, key, default, minimum=None, maximum=None, exclusive_min=False):
    full = "%s.%s" % (section, key) if section else key
    value = data.get(key, default)
    if not _is_number(value):
        _fail(full, value, "a number")
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        _fail(full, value, "a number %s %s" % (">" if exclusive_min else ">=", minimum))
    if maximum is not None and value > maximum:
        _fail(full, value, "a number <= %s" % maximum)
    return value


def _str(section, data, key, default=None, nullable=False, required=False):
    full = "%s.%s" % (section, key) if section else key
    if key not in data:
        if required:
            raise ConfigError("config key %s: missing (required)" % full)
        return default
    value = data[key]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        _fail(full, value, "a non-empty string" + (" or null" if nullable else ""))
    return value


def validate_config(raw):
    """Check a parsed configuration and return it normalised (defaults filled in).

    Raises ConfigError naming the first bad key and its value (a password is never shown).
    Unknown keys are rejected so that a typo does not silently fall back to a default; keys
    starting with "_" are comments and ignored at every level.
    """
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a JSON object, got %s"
                          % type(raw).__name__)
    top = {"environment", "output_dir", "interval", "redis", "services", "history",
           "adaptive", "celery_recycle"}
    unknown = _unknown(raw, top)
    if unknown:
        _fail(unknown[0], raw[unknown[0]], "a known key (allowed: %s)" % ", ".join(sorted(top)))
    cfg = {}
    cfg["environment"] = _str("", raw, "environment", "development")
    output_dir = _str("", raw, "output_dir", required=True)
    if not os.path.isabs(output_dir):
        _fail("output_dir", output_dir, "an absolute path")
    cfg["output_dir"] = output_dir
    cfg["interval"] = _num("", raw, "interval", 1800, minimum=1)

    redis = _section(raw, "redis", {"host", "port", "password", "username", "db", "timeout"})
    cfg["redis"] = {
        "host": _str("redis", redis, "host", "127.0.0.1"),
        "port": _int("redis", redis, "port", 6379, minimum=1, maximum=65535),
        "password": _str("redis", redis, "password", None, nullable=True),
        "username": _str("redis", redis, "username", None, nullable=True),
        "db": _int("redis", redis, "db", 0, minimum=0),
        "timeout": _num("redis", redis, "timeout", 2.0, minimum=0, exclusive_min=True),
    }

    services = raw.get("services", {})
    if not isinstance(services, dict):
        _fail("services", services, "an object")
    cfg["services"] = {}
    for name, spec in services.items():
        if name.startswith("_"):
            continue
        key = "services.%s" % name
        if not name or not (name[0].isalpha() and name.replace("_", "a").isalnum()
                            and name.isascii() and name.lower() == name) or name == "monitor":
            _fail(key, name, "a service name of [a-z][a-z0-9_]* other than 'monitor'")
        if not isinstance(spec, dict):
            _fail(key, spec, "an object with a pidfile")
        extra = _unknown(spec, {"pidfile"})
        if extra:
            _fail("%s.%s" % (key, extra[0]), spec[extra[0]], "a known key (allowed: pidfile)")
        pidfile = _str(key, spec, "pidfile", required=True)
        if not os.path.isabs(pidfile):
            _fail(key + ".pidfile", pidfile, "an absolute path")
        cfg["services"][name] = {"pidfile": pidfile}

    history = _section(raw, "history", {"max_bytes", "leak_samples", "leak_min_growth_bytes"})
    cfg["history"] = {
        "max_bytes": _int("history", history, "max_bytes", 1048576, minimum=4096),
        "leak_samples": _int("history", history, "leak_samples", 6, minimum=2),
        "leak_min_growth_bytes": _int("history", history, "leak_min_growth_bytes", 8388608,
                                      minimum=0),
    }

    cfg["adaptive"] = None
    if "adaptive" in raw:
        cfg["adaptive"] = _validate_adaptive(raw)

    recycle = _section(raw, "celery_recycle", {"pss_limit_bytes", "command", "cooldown_seconds"})
    limit = _int("celery_recycle", recycle, "pss_limit_bytes", None, minimum=1, nullable=True)
    command = recycle.get("command")
    if command is not None:
        if (not isinstance(command, list) or not command
                or not all(isinstance(part, str) and part for part in command)):
            _fail("celery_recycle.command", command, "a non-empty list of non-empty strings")
    if limit is not None and command is None:
        raise ConfigError("config key celery_recycle.command: missing (required when "
                          "celery_recycle.pss_limit_bytes is set)")
    default_cooldown = cfg["adaptive"]["cooldown_seconds"] if cfg["adaptive"] else 1800
    cfg["celery_recycle"] = {
        "pss_limit_bytes": limit,
        "command": command,
        "cooldown_seconds": _num("celery_recycle", recycle, "cooldown_seconds",
                                 default_cooldown, minimum=0),
    }
    return cfg


def _validate_adaptive(raw):
    data = _section(raw, "adaptive", {
        "enabled", "floor_bytes", "middle_bytes", "ceiling_bytes", "budget_bytes",
        "high_percent", "warn_percent", "low_percent", "hysteresis_percent", "cooldown_seconds"})
    enabled = data.get("enabled", False)
    if not isinstance(enabled, bool):
        _fail("adaptive.enabled", enabled, "true or false")
    out = {"enabled": enabled}
    for key in ("floor_bytes", "middle_bytes", "ceiling_bytes", "budget_bytes"):
        out[key] = _int("adaptive", data, key, minimum=1, required=True)
    if out["middle_bytes"] < out["floor_bytes"]:
        _fail("adaptive.middle_bytes", out["middle_bytes"],
              ">= adaptive.floor_bytes (%d)" % out["floor_bytes"])
    if out["ceiling_bytes"] < out["middle_bytes"]:
        _fail("adaptive.ceiling_bytes", out["ceiling_bytes"],
              ">= adaptive.middle_bytes (%d)" % out["middle_bytes"])
    out["low_percent"] = _num("adaptive", data, "low_percent", 50, minimum=0, exclusive_min=True)
    out["warn_percent"] = _num("adaptive", data, "warn_percent", 80, maximum=100)
    out["high_percent"] = _num("adaptive", data, "high_percent", 90, maximum=100)
    if not out["low_percent"] < out["warn_percent"]:
        _fail("adaptive.warn_percent", out["warn_percent"],
              "> adaptive.low_percent (%s)" % out["low_percent"])
    if not out["warn_percent"] < out["high_percent"]:
        _fail("adaptive.high_percent", out["high_percent"],
              "> adaptive.warn_percent (%s)" % out["warn_percent"])
    gap = min(out["warn_percent"] - out["low_percent"], out["high_percent"] - out["warn_percent"])
    hysteresis = _num("adaptive", data, "hysteresis_percent", 5, minimum=0)
    if hysteresis >= gap:
        _fail("adaptive.hysteresis_percent", hysteresis,
              "smaller than the narrowest gap between thresholds (%s)" % gap)
    out["hysteresis_percent"] = hysteresis
    out["cooldown_seconds"] = _num("adaptive", data, "cooldown_seconds", 1800, minimum=0)
    return out


def load_config(path):
    try:
        with open(path, "rb") as handle:
            raw = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file %s: not found" % path) from None
    except OSError as exc:
        raise ConfigError("config file %s: cannot read: %s" % (path, exc.strerror)) from None
    except ValueError as exc:
        raise ConfigError("config file %s: invalid JSON: %s" % (path, exc)) from None
    return validate_config(raw)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def atomic_write(path, data, mode=0o644):
    """Write bytes to path atomically: a temp file in the same directory, fsync, os.replace.

    The temp name starts with a dot and ends with .tmp, so node_exporter's textfile collector
    (which reads *.prom) never sees a half-written file.
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.%d.tmp" % (name, os.getpid()))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def write_json(path, obj):
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def read_state(path):
    """A JSON state file as a dict; {} when missing or unreadable (logged)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log("ignoring unreadable state file %s: %s" % (path, exc))
        return {}
    return data if isinstance(data, dict) else {}


def ensure_output_dir(path):
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot create output_dir %s: %s" % (path, exc.strerror)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError("output_dir %s is not writable" % path)


# --------------------------------------------------------------------------------------------
# History and leak watch (pure functions + thin file helpers)
# --------------------------------------------------------------------------------------------

def cap_lines(lines, max_bytes):
    """Keep the newest lines (bytes, each ending in a newline) whose total size <= max_bytes.

    Returns the kept lines in their original order; the oldest are dropped first.
    """
    kept = []
    total = 0
    for line in reversed(lines):
        if total + len(line) > max_bytes:
            break
        kept.append(line)
        total += len(line)
    kept.reverse()
    return kept


def append_history(path, sample, max_bytes):
    """Append one JSON line; when the file exceeds max_bytes, rewrite it atomically keeping the
    newest lines that fit in HISTORY_TRIM_RATIO x max_bytes. Returns True when it was trimmed."""
    line = (json.dumps(sample, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a previous run died mid-line: start on a fresh line
            os.write(fd, line)
            size += len(line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError("cannot append to %s: %s" % (path, exc.strerror)) from None
    if size <= max_bytes:
        return False
    with open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    lines = [item for item in lines if item.strip()]
    atomic_write(path, b"".join(cap_lines(lines, int(max_bytes * HISTORY_TRIM_RATIO))))
    return True


def read_history_tail(path, count):
    """The last `count` parseable samples of a JSON-lines file, oldest first.

    Reads only the file's tail (growing the chunk until enough lines are in it)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        chunk = 8192
        while True:
            start = max(0, end - chunk)
            handle.seek(start)
            data = handle.read(end - start)
            lines = data.split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first piece may be a partial line
            lines = [item for item in lines if item.strip()]
            if len(lines) > count or start == 0:
                break
            chunk *= 4
    samples = []
    for item in lines[-count * 2:]:
        try:
            sample = json.loads(item)
        except ValueError:
            continue
        if isinstance(sample, dict):
            samples.append(sample)
    return samples[-count:]


def detect_leaks(samples, services, leak_samples, min_growth_bytes):
    """Services whose PSS grew monotonically over the last `leak_samples` samples.

    A service is suspected when, over its last `leak_samples` samples, every PSS is >= the one
    before (no drop at all) and the total growth is >= min_growth_bytes. A sample without a PSS
    for the service (down, unreadable) or with another main PID (a restart) breaks the run, so
    fewer than `leak_samples` comparable samples never raise a suspicion.
    """
    window = samples[-leak_samples:]
    suspects = []
    if len(window) < leak_samples:
        return suspects
    for service in services:
        series = []
        pids = set()
        for sample in window:
            value = (sample.get("pss") or {}).get(service)
            if not _is_int(value):
                break
            series.append(value)
            pids.add((sample.get("pid") or {}).get(service))
        if len(series) < leak_samples or len(pids) > 1:
            continue
        if all(later >= earlier for earlier, later in zip(series, series[1:])):
            growth = series[-1] - series[0]
            if growth >= min_growth_bytes:
                suspects.append({
                    "service": service,
                    "samples": leak_samples,
                    "first_pss": series[0],
                    "last_pss": series[-1],
                    "growth_bytes": growth,
                    "since": window[0].get("ts"),
                    "reason": "PSS of %s grew monotonically over the last %d samples by %s "
                              "(>= %s)" % (service, leak_samples, human(growth),
                                           human(min_growth_bytes)),
                })
    return suspects


# --------------------------------------------------------------------------------------------
# Adaptive Redis maxmemory policy (pure)
# --------------------------------------------------------------------------------------------

def human(value):
    if value is None:
        return "unknown"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return "%d B" % value if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%.1f GiB" % value  # pragma: no cover


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
    hold band. The target is then clamped: never below used_memory x 1.1 (clamp up), never above
    budget_bytes (clamp down); if the two bounds conflict, or a clamp would turn the move around
    (e.g. "lower" becoming a raise because Redis is full), the decision is hold. No change
    within cooldown_seconds of the last change.

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
    lower_bound = -(-int(used_memory) * 11 // 10) if used_memory else 0  # ceil(used x 1.1)
    budget = cfg["budget_bytes"]
    if lower_bound > budget:
        reasons.append("used_memory x %.1f = %s exceeds budget %s: cannot respect both, hold "
                       "maxmemory at %s" % (USED_MEMORY_MARGIN, human(lower_bound), human(budget),
                                            _maxmemory_text(current_maxmemory)))
        decision["clamps"] = ["conflict"]
        decision["reason"] = "; ".join(reasons)
        return decision
    if target < lower_bound:
        decision["clamps"].append("used_memory")
        reasons.append("%s %s clamped up to used_memory %s x %.1f = %s" % (
            band, human(wanted), human(used_memory), USED_MEMORY_MARGIN, human(lower_bound)))
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


# --------------------------------------------------------------------------------------------
# Celery recycle (pure decision)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Redis: a minimal RESP2 client (AUTH, SELECT, INFO, CONFIG SET)
# --------------------------------------------------------------------------------------------

class RedisConnection:
    def __init__(self, host, port, password=None, username=None, db=0, timeout=2.0):
        import socket
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise RedisError("cannot connect to %s:%d: %s" % (
                host, port, exc.strerror or exc)) from None
        self._file = self._sock.makefile("rb")
        try:
            if password is not None:
                self.call("AUTH", *([username, password] if username else [password]))
            if db:
                self.call("SELECT", str(db))
        except RedisError:
            self.close()
            raise

    def close(self):
        try:
            self._file.close()
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        try:
            self._sock.sendall(b"".join(parts))
            return self._reply()
        except OSError as exc:
            raise RedisError("redis %s failed: %s" % (args[0], exc.strerror or exc)) from None

    def _reply(self):
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed by redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RedisError("redis error: %s" % rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            if len(data) != size + 2:
                raise RedisError("connection closed by redis")
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise RedisError("unexpected reply from redis: %r" % line[:40])

    def info_memory(self):
        return parse_info(self.call("INFO", "memory"))


def parse_info(text):
    """INFO output -> dict, numbers converted."""
    out = {}
    for line in (text or "").splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def redis_connect(rcfg):
    return RedisConnection(rcfg["host"], rcfg["port"], rcfg["password"], rcfg["username"],
                           rcfg["db"], rcfg["timeout"])


def redis_summary(info):
    """The INFO memory fields of the seed's /api/admin/system/memory answer, plus a few more."""
    used = info.get("used_memory")
    maxmemory = info.get("maxmemory", 0)
    return {
        "used_memory": used,
        "used_memory_human": info.get("used_memory_human"),
        "used_memory_rss": info.get("used_memory_rss"),
        "used_memory_peak": info.get("used_memory_peak"),
        "maxmemory": maxmemory,
        "maxmemory_human": info.get("maxmemory_human"),
        "used_percent": round(100.0 * used / maxmemory, 2) if maxmemory and used is not None
        else None,
        "mem_fragmentation_ratio": info.get("mem_fragmentation_ratio"),
        "maxmemory_policy": info.get("maxmemory_policy"),
    }


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------

def system_memory():
    import psutil
    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "total": vm.total, "available": vm.available, "used": vm.used, "free": vm.free,
        "percent": vm.percent,
        "swap_total": swap.total, "swap_used": swap.used, "swap_percent": swap.percent,
    }


def read_pidfile(path):
    """(pid, None) or (None, why-down)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(64).decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None, "pidfile %s missing" % path
    except OSError as exc:
        return None, "pidfile %s unreadable: %s" % (path, exc.strerror)
    if not text.isdigit() or int(text) <= 0:
        return None, "pidfile %s does not hold a PID" % path
    return int(text), None


def _process_tree(root, children_of):
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children_of.get(pid, ()))
    return sorted(pids)


def _children_map():
    """{ppid: [pid, ...]} for every process, read once per run (children(recursive=True)
    for each service would scan /proc once per service)."""
    import psutil
    children = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children.setdefault(ppid, []).append(proc.pid)
    return children


def measure_tree(pids):
    """Sum PSS/RSS/swap over pids. PSS comes from /proc/<pid>/smaps_rollup via psutil; when it
    is not readable (another user's process without CAP_SYS_PTRACE) RSS is still summed and pss
    is None, with the denied PIDs listed."""
    import psutil
    pss = rss = swap = 0
    alive, denied = [], []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            try:
                full = proc.memory_full_info()
                pss += full.pss
                rss += full.rss
                swap += full.swap
            except psutil.AccessDenied:
                rss += proc.memory_info().rss
                denied.append(pid)
            alive.append(pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            denied.append(pid)
            alive.append(pid)
    out = {"pids": alive, "pss": None if denied else pss, "rss": rss,
           "swap": None if denied else swap}
    if denied:
        out["note"] = ("PSS not readable (access denied to /proc/<pid>/smaps_rollup for PIDs %s); "
                       "pss is null, rss is reported instead (RSS overstates shared memory)"
                       % denied)
    return out


def collect_services(services):
    import psutil
    result = {}
    children = None
    for name, spec in services.items():
        pid, why = read_pidfile(spec["pidfile"])
        entry = {"pidfile": spec["pidfile"], "main_pid": pid, "up": False, "pids": [],
                 "pss": None, "rss": None, "swap": None}
        if pid is not None:
            try:
                proc = psutil.Process(pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    why = "pidfile %s: PID %d is a zombie (stale pidfile)" % (spec["pidfile"], pid)
            except psutil.NoSuchProcess:
                why = "pidfile %s: PID %d is not running (stale pidfile)" % (spec["pidfile"], pid)
            except psutil.AccessDenied:
                pass
        if why:
            entry["reason"] = why
            result[name] = entry
            continue
        if children is None:
            children = _children_map()
        entry.update(measure_tree(_process_tree(pid, children)))
        entry["up"] = bool(entry["pids"])
        if not entry["up"]:
            entry["reason"] = "PID %d exited while being measured" % pid
        result[name] = entry
    return result


def collect_self():
    entry = measure_tree([os.getpid()])
    entry.update({"main_pid": os.getpid(), "up": True})
    return entry


def self_usage():
    """CPU seconds (user + system, resource.getrusage) and peak RSS of this process so far.

    Peak RSS is VmHWM from /proc/self/status: getrusage's ru_maxrss is carried over exec from
    the parent's address space (with vfork/posix_spawn it reports the *parent's* peak, e.g. a
    50 MiB pytest), while VmHWM belongs to this program's own address space.
    """
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = None
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 4),
            "max_rss_bytes": peak if peak is not None else usage.ru_maxrss * 1024,
            "run_seconds": round(time.perf_counter() - _STARTED, 4)}


# --------------------------------------------------------------------------------------------
# Prometheus textfile
# --------------------------------------------------------------------------------------------

def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if _is_int(value):
        return str(value)
    return repr(float(value))


def render_prom(report):
    families = []

    def family(name, kind, help_text, samples):
        samples = [(labels, value) for labels, value in samples if value is not None]
        if samples:
            families.append((name, kind, help_text, samples))

    system = report["system"]
    family("stackfit_system_memory_bytes", "gauge", "System memory in bytes by kind.",
           [({"kind": kind}, system[kind]) for kind in ("total", "available", "used", "free")])
    family("stackfit_system_memory_percent", "gauge",
           "System memory in use, percent (psutil virtual_memory().percent).",
           [({}, system["percent"])])
    family("stackfit_system_swap_bytes", "gauge", "Swap in bytes by kind.",
           [({"kind": "total"}, system["swap_total"]), ({"kind": "used"}, system["swap_used"])])
    services = [(name, entry) for name, entry in sorted(report["processes"].items())]
    family("stackfit_service_up", "gauge", "1 when the service's pidfile names a live process.",
           [({"service": name}, entry["up"]) for name, entry in services])
    family("stackfit_service_pss_bytes", "gauge",
           "PSS summed over the service's process tree, bytes.",
           [({"service": name}, entry["pss"]) for name, entry in services])
    family("stackfit_service_rss_bytes", "gauge",
           "RSS summed over the service's process tree, bytes (overstates shared memory).",
           [({"service": name}, entry["rss"]) for name, entry in services])
    family("stackfit_service_processes", "gauge", "Processes in the service's tree.",
           [({"service": name}, len(entry["pids"])) for name, entry in services])
    redis = report["redis"]
    family("stackfit_redis_up", "gauge", "1 when Redis answered INFO memory.",
           [({}, "error" not in redis)])
    if "error" not in redis:
        family("stackfit_redis_used_memory_bytes", "gauge", "Redis used_memory, bytes.",
               [({}, redis["used_memory"])])
        family("stackfit_redis_maxmemory_bytes", "gauge", "Redis maxmemory, bytes (0 = no limit).",
               [({}, redis["maxmemory"])])
        family("stackfit_redis_used_memory_percent", "gauge",
               "Redis used_memory as percent of maxmemory (absent when maxmemory is 0).",
               [({}, redis["used_percent"])])
        family("stackfit_redis_fragmentation_ratio", "gauge", "Redis mem_fragmentation_ratio.",
               [({}, redis["mem_fragmentation_ratio"])])
        if redis.get("maxmemory_policy"):
            family("stackfit_redis_maxmemory_policy_info", "gauge",
                   "Redis maxmemory-policy, as a label.",
                   [({"policy": redis["maxmemory_policy"]}, 1)])
    suspects = {leak["service"] for leak in report["leaks"]}
    family("stackfit_leak_suspected", "gauge",
           "1 when the service's PSS grew monotonically over the last leak_samples runs.",
           [({"service": name}, name in suspects) for name in sorted(report["services"])])
    decision = (report.get("adaptive") or {}).get("decision")
    if decision:
        family("stackfit_adaptive_decision", "gauge",
               "The adaptive policy's last decision (1 for the action taken).",
               [({"action": action}, decision["action"] == action)
                for action in ("lower", "raise", "hold")])
        family("stackfit_adaptive_target_bytes", "gauge",
               "Redis maxmemory the adaptive decision leads to, bytes.",
               [({}, decision["target"])])
        family("stackfit_adaptive_applied", "gauge",
               "1 when this run changed Redis maxmemory.",
               [({}, report["adaptive"].get("applied", False))])
    recycle = report.get("recycle") or {}
    family("stackfit_celery_recycle_total", "counter",
           "Celery recycle commands run (kept in recycle_state.json).",
           [({}, recycle.get("count"))])
    family("stackfit_celery_recycle_last_timestamp_seconds", "gauge",
           "When the celery recycle command last ran, Unix time.",
           [({}, recycle.get("last_run"))])
    monitor = report["monitor"]
    family("stackfit_monitor_last_run_timestamp_seconds", "gauge",
           "When the monitor last ran, Unix time.", [({}, report["timestamp_seconds"])])
    family("stackfit_monitor_run_seconds", "gauge", "Wall time of the monitor's last run.",
           [({}, monitor["run_seconds"])])
    family("stackfit_monitor_cpu_seconds", "gauge", "CPU time of the monitor's last run.",
           [({}, monitor["cpu_seconds"])])
    family("stackfit_monitor_max_rss_bytes", "gauge", "Peak RSS of the monitor's last run.",
           [({}, monitor["max_rss_bytes"])])
    family("stackfit_monitor_info", "gauge", "The monitor's environment, as a label.",
           [({"environment": report["environment"]}, 1)])

    out = []
    for name, kind, help_text, samples in families:
        out.append("# HELP %s %s\n# TYPE %s %s\n" % (name, help_text, name, kind))
        for labels, value in samples:
            text = ",".join('%s="%s"' % (key, _escape(val)) for key, val in labels.items())
            out.append("%s%s %s\n" % (name, "{%s}" % text if text else "", _fmt(value)))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------

def _adaptive_step(cfg, redis_info, memory_percent, conn, now, apply):
    """Decide (and when enabled and apply, CONFIG SET). Returns the report's "adaptive" part."""
    acfg = cfg["adaptive"]
    if acfg is None:
        return {"enabled": False, "decision": None, "applied": False,
                "reason": "no adaptive section in the configuration"}
    out = {"enabled": acfg["enabled"], "applied": False}
    if conn is None or "error" in redis_info:
        out["decision"] = {"action": "hold", "band": None, "target": None,
                           "memory_percent": memory_percent,
                           "reason": "redis unreachable: %s" % redis_info.get("error")}
        log("adaptive: action=hold reason=%s" % out["decision"]["reason"])
        return out
    state_path = os.path.join(cfg["output_dir"], ADAPTIVE_STATE_NAME)
    state = read_state(state_path)
    decision = decide(memory_percent, redis_info["maxmemory"], redis_info["used_memory"],
                      state, acfg, now)
    out["decision"] = decision
    if decision["action"] != "hold" and acfg["enabled"] and apply:
        try:
            conn.call("CONFIG", "SET", "maxmemory", str(decision["target"]))
            out["applied"] = True
            out["previous_maxmemory"] = decision["current"]
            out["maxmemory"] = decision["target"]
        except RedisError as exc:
            out["error"] = "CONFIG SET maxmemory %d failed: %s" % (decision["target"], exc)
            log("adaptive: %s" % out["error"])
    elif decision["action"] != "hold" and not acfg["enabled"]:
        out["note"] = "adaptive.enabled is false: decision reported, not applied"
    log("adaptive: action=%s target=%s applied=%s reason=%s" % (
        decision["action"], decision["target"], out["applied"], decision["reason"]))
    if apply:
        write_json(state_path, next_adaptive_state(state, decision, out["applied"], now))
    return out


def _recycle_step(cfg, processes, now):
    rcfg = cfg["celery_recycle"]
    state_path = os.path.join(cfg["output_dir"], RECYCLE_STATE_NAME)
    state = read_state(state_path)
    celery = processes.get("celery") or {}
    out = {"pss_limit_bytes": rcfg["pss_limit_bytes"], "pss": celery.get("pss"),
           "ran": False, "count": state.get("count", 0), "last_run": state.get("last_run")}
    run, reason = should_recycle(celery.get("pss"), rcfg["pss_limit_bytes"], state,
                                 rcfg["cooldown_seconds"], now)
    out["reason"] = reason
    if not run:
        return out
    import subprocess
    pid = celery.get("main_pid")
    argv = [part.replace("{pid}", str(pid)) for part in rcfg["command"]]
    out["command"] = argv
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=RECYCLE_TIMEOUT, check=False)
        out["returncode"] = done.returncode
        output = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()
        if output:
            out["output"] = output[-500:]
    except subprocess.TimeoutExpired:
        out["returncode"] = None
        out["error"] = "timed out after %ds" % RECYCLE_TIMEOUT
    except OSError as exc:
        out["returncode"] = None
        out["error"] = "cannot run %s: %s" % (argv[0], exc.strerror or exc)
    out["ran"] = True
    out["count"] = out["count"] + 1 if _is_int(out["count"]) else 1
    out["last_run"] = now
    # The attempt counts for the cooldown even when the command failed: no hammering.
    write_json(state_path, {"last_run": now, "count": out["count"],
                            "last_returncode": out.get("returncode")})
    log("celery recycle: ran %s -> returncode %s (%s)" % (argv, out.get("returncode"), reason))
    return out


def run_once(cfg, memory_percent=None, now=None):
    """Collect, decide, act, write. Returns the report. Raises OutputError."""
    now = time.time() if now is None else now
    output_dir = cfg["output_dir"]
    ensure_output_dir(output_dir)

    system = system_memory()
    if memory_percent is not None:
        system["percent_measured"] = system["percent"]
        system["percent"] = memory_percent
        system["percent_override"] = True
    processes = collect_services(cfg["services"])
    processes["monitor"] = collect_self()

    conn = None
    try:
        conn = redis_connect(cfg["redis"])
        redis_info = redis_summary(conn.info_memory())
    except RedisError as exc:
        redis_info = {"error": str(exc)}
        log("redis: %s" % exc)
        if conn is not None:
            conn.close()
            conn = None

    try:
        sample = {
            "ts": round(now, 3),
            "percent": system["percent"],
            "pss": {name: processes[name]["pss"] for name in cfg["services"]},
            "pid": {name: processes[name]["main_pid"] for name in cfg["services"]},
            "redis_used": redis_info.get("used_memory"),
            "redis_max": redis_info.get("maxmemory"),
        }
        history_path = os.path.join(output_dir, HISTORY_NAME)
        append_history(history_path, sample, cfg["history"]["max_bytes"])
        samples = read_history_tail(history_path, cfg["history"]["leak_samples"])
        leaks = detect_leaks(samples, list(cfg["services"]), cfg["history"]["leak_samples"],
                             cfg["history"]["leak_min_growth_bytes"])
        for leak in leaks:
            log("leak suspected: %s" % leak["reason"])

        adaptive = _adaptive_step(cfg, redis_info, system["percent"], conn, now, apply=True)
    finally:
        if conn is not None:
            conn.close()
    recycle = _recycle_step(cfg, processes, now)

    report = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "timestamp_seconds": round(now, 3),
        "environment": cfg["environment"],
        "system": system,
        "redis": redis_info,
        "processes": processes,
        "services": sorted(cfg["services"]),
        "leaks": leaks,
        "adaptive": adaptive,
        "recycle": recycle,
        "monitor": self_usage(),
    }
    write_json(os.path.join(output_dir, REPORT_NAME), report)
    atomic_write(os.path.join(output_dir, PROM_NAME), render_prom(report).encode("utf-8"))
    return report


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def _parser():
    import argparse
    parser = argparse.ArgumentParser(prog="stackfit_monitor.py",
                                     description="stackfit memory monitor")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", default=DEFAULT_CONFIG,
                         help="JSON configuration (default %(default)s)")
        return cmd

    run = add("run", "one run: measure, write report.json, stackfit.prom, history.jsonl")
    run.add_argument("--memory-percent", type=_percent, default=None,
                     help="pretend system memory is at this percent (drills, tests)")
    loop = add("loop", "run every `interval` seconds until SIGTERM/SIGINT")
    loop.add_argument("--max-runs", type=int, default=None, help="stop after N runs")
    decide_cmd = add("decide", "print what the adaptive policy would do; changes nothing")
    decide_cmd.add_argument("--memory-percent", type=_percent, default=None,
                            help="system memory percent (default: measured now)")
    decide_cmd.add_argument("--used-memory", type=_nonneg_int, default=None,
                            help="Redis used_memory in bytes (default: read from Redis)")
    decide_cmd.add_argument("--current", type=_nonneg_int, default=None,
                            help="current Redis maxmemory in bytes (default: read from Redis)")
    add("check-config", "validate the configuration and exit")
    return parser


def _percent(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text) from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("not within 0..100: %r" % text)
    return value


def _nonneg_int(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("negative: %r" % text)
    return value


def cmd_decide(cfg, args):
    if cfg["adaptive"] is None:
        raise ConfigError("config key adaptive: missing (required by decide)")
    percent = args.memory_percent
    if percent is None:
        percent = system_memory()["percent"]
    used, current = args.used_memory, args.current
    source = "arguments"
    if used is None or current is None:
        try:
            with redis_connect(cfg["redis"]) as conn:
                info = conn.info_memory()
        except RedisError as exc:
            print(json.dumps({"error": "%s (pass --used-memory and --current)" % exc}))
            return EXIT_ERROR
        used = info.get("used_memory") if used is None else used
        current = info.get("maxmemory", 0) if current is None else current
        source = "redis"
    state = read_state(os.path.join(cfg["output_dir"], ADAPTIVE_STATE_NAME))
    decision = decide(percent, current, used, state, cfg["adaptive"], time.time())
    decision["source"] = source
    decision["enabled"] = cfg["adaptive"]["enabled"]
    print(json.dumps(decision, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_loop(cfg, args):
    import signal
    import threading
    stop = threading.Event()

    def on_signal(signum, _frame):
        log("signal %d: stopping after the current run" % signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runs = 0
    while not stop.is_set():
        try:
            run_once(cfg)
        except OutputError as exc:
            log("run failed: %s" % exc)
        runs += 1
        if args.max_runs is not None and runs >= args.max_runs:
            break
        stop.wait(cfg["interval"])
    return EXIT_OK


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.command == "check-config":
            print("config %s: ok" % args.config)
            return EXIT_OK
        if args.command == "decide":
            return cmd_decide(cfg, args)
        if args.command == "loop":
            return cmd_loop(cfg, args)
        run_once(cfg, memory_percent=args.memory_percent)
        return EXIT_OK
    except ConfigError as exc:
        log(str(exc))
        return EXIT_CONFIG
    except OutputError as exc:
        log(str(exc))
        return EXIT_OUTPUT


if __name__ == "__main__":
    sys.exit(main())
