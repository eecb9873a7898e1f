"""The monitor's configuration (monitor.json): validation with defaults filled in.

Every bad value fails naming the key and the value (a password is never shown); unknown keys are
rejected so that a typo does not silently fall back to a default. The defaults here are for a
hand-written configuration: the role renders every policy number from the plan
(stackfit_plan.monitor, module_utils/stackfit_sizing.py monitor_policy()).
"""
import json
import math
import os

from .errors import ConfigError, is_int as _is_int, is_number as _is_number
from .stackfit_common import (ADAPTIVE_COOLDOWN_MAX, ADAPTIVE_HIGH_PERCENT,
                              ADAPTIVE_HYSTERESIS_PERCENT, ADAPTIVE_LOW_PERCENT,
                              ADAPTIVE_WARN_PERCENT, HISTORY_MAX_BYTES, LEAK_MIN_GROWTH_BYTES,
                              LEAK_SAMPLES, MONITOR_INTERVAL_MAX)

DEFAULT_CONFIG = "/etc/stackfit/monitor.json"
# The plan refuses a monitor_interval under MONITOR_INTERVAL_MIN; the monitor itself accepts 1 s
# and up, for drills and tests of `loop`.
INTERVAL_MIN = 1

_SECRET_KEYS = {"redis.password"}
# The largest size in bytes a key takes (Redis' maxmemory and every size here fit in 63 bits).
SIZE_MAX = 2 ** 63 - 1


def _show(key, value):
    if key in _SECRET_KEYS and value is not None:
        return "<hidden>"
    return json.dumps(value)


def _fail(key, value, expected):
    raise ConfigError("config key %s: %s is not %s" % (key, _show(key, value), expected))


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
    if not _is_number(value) or not math.isfinite(value):
        _fail(full, value, "a finite number")
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
           "adaptive", "celery_recycle", "manager", "supervisor_state"}
    unknown = _unknown(raw, top)
    if unknown:
        _fail(unknown[0], raw[unknown[0]], "a known key (allowed: %s)" % ", ".join(sorted(top)))
    cfg = {}
    cfg["environment"] = _str("", raw, "environment", "development")
    cfg["manager"] = _str("", raw, "manager", "script")
    if cfg["manager"] not in ("script", "systemd"):
        _fail("manager", cfg["manager"], "script or systemd")
    cfg["supervisor_state"] = _str("", raw, "supervisor_state", None, nullable=True)
    output_dir = _str("", raw, "output_dir", required=True)
    if not os.path.isabs(output_dir):
        _fail("output_dir", output_dir, "an absolute path")
    cfg["output_dir"] = output_dir
    cfg["interval"] = _num("", raw, "interval", 1800, minimum=INTERVAL_MIN,
                           maximum=MONITOR_INTERVAL_MAX)

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
        extra = _unknown(spec, {"pidfile", "match", "memory_high", "unit", "log"})
        if extra:
            _fail("%s.%s" % (key, extra[0]), spec[extra[0]],
                  "a known key (allowed: pidfile, match, memory_high, unit, log)")
        pidfile = _str(key, spec, "pidfile", required=True)
        if not os.path.isabs(pidfile):
            _fail(key + ".pidfile", pidfile, "an absolute path")
        cfg["services"][name] = {"pidfile": pidfile, "match": _str(key, spec, "match", None, nullable=True),
                                 "memory_high": _int(key, spec, "memory_high", None, minimum=1,
                                                     maximum=SIZE_MAX, nullable=True),
                                 "unit": _str(key, spec, "unit", None, nullable=True),
                                 "log": _str(key, spec, "log", None, nullable=True)}

    history = _section(raw, "history", {"max_bytes", "leak_samples", "leak_min_growth_bytes"})
    cfg["history"] = {
        "max_bytes": _int("history", history, "max_bytes", HISTORY_MAX_BYTES, minimum=4096,
                          maximum=SIZE_MAX),
        "leak_samples": _int("history", history, "leak_samples", LEAK_SAMPLES, minimum=2),
        "leak_min_growth_bytes": _int("history", history, "leak_min_growth_bytes",
                                      LEAK_MIN_GROWTH_BYTES, minimum=0, maximum=SIZE_MAX),
    }

    cfg["adaptive"] = None
    if "adaptive" in raw:
        cfg["adaptive"] = _validate_adaptive(raw)

    recycle = _section(raw, "celery_recycle", {"pss_limit_bytes", "command", "cooldown_seconds"})
    limit = _int("celery_recycle", recycle, "pss_limit_bytes", None, minimum=1, maximum=SIZE_MAX,
                 nullable=True)
    command = recycle.get("command")
    if command is not None:
        if (not isinstance(command, list) or not command
                or not all(isinstance(part, str) and part for part in command)):
            _fail("celery_recycle.command", command, "a non-empty list of non-empty strings")
    if limit is not None and command is None:
        raise ConfigError("config key celery_recycle.command: missing (required when "
                          "celery_recycle.pss_limit_bytes is set)")
    default_cooldown = (cfg["adaptive"]["cooldown_seconds"] if cfg["adaptive"]
                        else ADAPTIVE_COOLDOWN_MAX)
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
        out[key] = _int("adaptive", data, key, minimum=1, maximum=SIZE_MAX, required=True)
    if out["middle_bytes"] < out["floor_bytes"]:
        _fail("adaptive.middle_bytes", out["middle_bytes"],
              ">= adaptive.floor_bytes (%d)" % out["floor_bytes"])
    if out["ceiling_bytes"] < out["middle_bytes"]:
        _fail("adaptive.ceiling_bytes", out["ceiling_bytes"],
              ">= adaptive.middle_bytes (%d)" % out["middle_bytes"])
    out["low_percent"] = _num("adaptive", data, "low_percent", ADAPTIVE_LOW_PERCENT, minimum=0,
                              exclusive_min=True)
    out["warn_percent"] = _num("adaptive", data, "warn_percent", ADAPTIVE_WARN_PERCENT,
                               maximum=100)
    out["high_percent"] = _num("adaptive", data, "high_percent", ADAPTIVE_HIGH_PERCENT,
                               maximum=100)
    if not out["low_percent"] < out["warn_percent"]:
        _fail("adaptive.warn_percent", out["warn_percent"],
              "> adaptive.low_percent (%s)" % out["low_percent"])
    if not out["warn_percent"] < out["high_percent"]:
        _fail("adaptive.high_percent", out["high_percent"],
              "> adaptive.warn_percent (%s)" % out["warn_percent"])
    gap = min(out["warn_percent"] - out["low_percent"], out["high_percent"] - out["warn_percent"])
    hysteresis = _num("adaptive", data, "hysteresis_percent", ADAPTIVE_HYSTERESIS_PERCENT,
                      minimum=0, exclusive_min=True)
    if hysteresis >= gap:
        _fail("adaptive.hysteresis_percent", hysteresis,
              "smaller than the narrowest gap between thresholds (%s)" % gap)
    out["hysteresis_percent"] = hysteresis
    out["cooldown_seconds"] = _num("adaptive", data, "cooldown_seconds", ADAPTIVE_COOLDOWN_MAX,
                                   minimum=0)
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
