# -*- coding: utf-8 -*-
"""stackfit's Redis memory rules: what to set, what to refuse, and what redis.conf says.

Pure functions, no Ansible and no redis-py imports: plain pytest tests this file. The module
``library/stackfit_redis_memory.py`` does the talking to Redis and calls these. Bad input raises
RedisMemoryError naming the option and the value.
"""
from __future__ import annotations

import os
import shlex

try:  # inside Ansible (AnsiballZ) and in tests through ansible.module_utils
    from .stackfit_common import USED_MEMORY_MARGIN, human, min_maxmemory
    from .stackfit_sizing import SizingError, parse_size
except ImportError:  # plain import with module_utils/ on sys.path
    from stackfit_common import USED_MEMORY_MARGIN, human, min_maxmemory  # type: ignore[no-redef]
    from stackfit_sizing import SizingError, parse_size  # type: ignore[no-redef]

POLICIES = (
    "noeviction",
    "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
)
# The keys a Celery broker keeps in Redis: the default queue, the app's queues, kombu's bindings
# and the unacked (visibility) structures. Evicting any of them loses tasks.
DEFAULT_QUEUE_PATTERNS = ("celery", "updates", "ai_generation", "_kombu.binding.*", "unacked*")
# Redis' own defaults, used when redis.conf has no line for a setting.
REDIS_DEFAULTS = {"maxmemory": 0, "maxmemory_policy": "noeviction"}
# Names as Redis spells them (CONFIG GET / SET, redis.conf).
REDIS_NAMES = {"maxmemory": "maxmemory", "maxmemory_policy": "maxmemory-policy"}
# How many found queue keys a refusal message names.
KEYS_NAMED = 5
MAX_INCLUDE_DEPTH = 10
# The largest maxmemory Redis keeps as it is: over 2**63-1 INFO reports it negative, and over
# 2**64-1 CONFIG SET silently clamps it to 2**64-1.
MAXMEMORY_MAX = 2 ** 63 - 1
# The TLS files the module reads, by option.
TLS_FILE_OPTIONS = ("ca_certs", "client_cert", "client_key")


class RedisMemoryError(ValueError):
    """Bad input or a bad redis.conf: the message names the option (or file) and the value."""


def describe_bytes(nbytes):
    """``104857600 bytes (100.0 MiB)``; 0 is ``0 (no limit)`` for maxmemory."""
    return "%d bytes (%s)" % (nbytes, human(nbytes))


def describe_maxmemory(nbytes):
    return "0 (no limit)" if nbytes == 0 else describe_bytes(nbytes)


def parse_maxmemory(value, option="maxmemory"):
    """Bytes from a size in redis.conf units ("100mb" = 100 * 1024^2, "100m" = 10^8) or bytes."""
    try:
        nbytes = parse_size(value, option)
    except SizingError as exc:
        raise RedisMemoryError(str(exc)) from None
    if nbytes > MAXMEMORY_MAX:
        raise RedisMemoryError("%s: %r is %d bytes, over the largest maxmemory Redis keeps, "
                               "2**63-1 = %d bytes (beyond it Redis reports it negative or "
                               "clamps it)" % (option, value, nbytes, MAXMEMORY_MAX))
    return nbytes


def parse_policy(value, option="maxmemory_policy"):
    policy = str(value).strip().lower()
    if policy not in POLICIES:
        raise RedisMemoryError("%s: %r is not a Redis eviction policy (one of: %s)" % (
            option, value, ", ".join(POLICIES)))
    return policy


def desired_settings(maxmemory=None, maxmemory_policy=None):
    """The settings asked for, normalised: {"maxmemory": bytes, "maxmemory_policy": str}.

    A setting left out (None) is not managed and does not appear.
    """
    desired = {}
    if maxmemory is not None:
        desired["maxmemory"] = parse_maxmemory(maxmemory)
    if maxmemory_policy is not None:
        desired["maxmemory_policy"] = parse_policy(maxmemory_policy)
    if not desired:
        raise RedisMemoryError("one of maxmemory or maxmemory_policy is required")
    return desired


def current_settings(config_maxmemory, config_policy):
    """CONFIG GET answers (bytes or str) as {"maxmemory": int, "maxmemory_policy": str}."""
    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    return {"maxmemory": int(text(config_maxmemory).strip()),
            "maxmemory_policy": text(config_policy).strip().lower()}


def check_options(params):
    """Warnings for the module's options; RedisMemoryError naming the option and the value for
    one that is out of range, a TLS file that is not there, or an empty queue check without
    force. ``params`` is the module's params (keys it lacks count as not given)."""
    warnings = []
    port = params.get("login_port")
    if port is not None and not 1 <= port <= 65535:
        raise RedisMemoryError("login_port: %r is not a TCP port (1..65535)" % port)
    for option in TLS_FILE_OPTIONS:
        path = params.get(option)
        if path is None:
            continue
        if not os.path.isfile(path):
            raise RedisMemoryError("%s: %s %s" % (option, path, "is not a file" if os.path.exists(
                path) else "does not exist"))
        if not os.access(path, os.R_OK):
            raise RedisMemoryError("%s: %s is not readable" % (option, path))
        if not params.get("tls"):
            warnings.append("%s: %s is ignored without tls: true" % (option, path))
    if params.get("client_key") and not params.get("client_cert"):
        raise RedisMemoryError("client_key: %s is given without client_cert" % params["client_key"])
    patterns = params.get("queue_patterns")
    if patterns is not None:
        empty = [pattern for pattern in patterns if not str(pattern).strip()]
        if empty:
            raise RedisMemoryError("queue_patterns: %r holds an empty pattern" % (patterns,))
        if not patterns and not params.get("force"):
            raise RedisMemoryError(
                "queue_patterns: [] turns off the check that refuses an allkeys-* policy while "
                "Redis holds Celery queue keys (default: %s); set force: true to run without it"
                % ", ".join(DEFAULT_QUEUE_PATTERNS))
        if not patterns:
            warnings.append("queue_patterns: [] with force: true: Celery queue keys are not "
                            "looked for")
    return warnings


def check_replica(replication, read_only, where="it", force=False):
    """(error, warning) for setting maxmemory on a Redis whose INFO replication is
    ``replication`` (a dict) and whose replica-read-only is ``read_only`` ("yes"/"no"/None).

    A read-only replica holds its master's data set: its keys come and go with the master's, and a
    limit under that set makes it evict (by default it ignores maxmemory altogether,
    replica-ignore-maxmemory). Set the master's, or force."""
    if replication.get("role") != "slave" or str(read_only).lower() != "yes":
        return None, None
    master = "%s:%s" % (replication.get("master_host", "?"), replication.get("master_port", "?"))
    problem = ("%s is a read-only replica of %s (role:slave, replica-read-only yes): its data "
               "set is the master's, so set maxmemory on the master" % (where, master))
    if force:
        return None, "%s; set anyway (force: true)" % problem
    return "%s, or set force: true" % problem, None


# --- redis.conf ----------------------------------------------------------------------------------

def _split_conf_line(line):
    """Split one redis.conf line the way Redis does (quotes allowed); [] for blanks and comments."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return []
    try:
        return shlex.split(stripped, comments=False, posix=True)
    except ValueError:
        return stripped.split()


def parse_conf_memory(text, source="redis.conf", load_include=None, _depth=0):
    """The maxmemory settings a redis.conf text gives, the last line winning as in Redis.

    Returns {"maxmemory": bytes or None, "maxmemory_policy": str or None, "lines": {name: "file:n"}}
    where None means the file (with its includes) has no line for the setting. ``load_include``
    (path -> list of (source, text)) follows ``include`` lines in place; without it includes are
    listed in "includes" and not read.
    """
    result = {"maxmemory": None, "maxmemory_policy": None, "lines": {}, "includes": []}
    for number, line in enumerate(text.splitlines(), 1):
        words = _split_conf_line(line)
        if not words:
            continue
        name = words[0].lower()
        where = "%s:%d" % (source, number)
        if name == "include" and len(words) == 2:
            result["includes"].append(words[1])
            if load_include is None:
                continue
            if _depth >= MAX_INCLUDE_DEPTH:
                raise RedisMemoryError("%s: includes nest deeper than %d" % (
                    where, MAX_INCLUDE_DEPTH))
            for inc_source, inc_text in load_include(words[1]):
                sub = parse_conf_memory(inc_text, inc_source, load_include, _depth + 1)
                for key in REDIS_NAMES:
                    if sub[key] is not None:
                        result[key] = sub[key]
                        result["lines"][key] = sub["lines"][key]
                result["includes"].extend(sub["includes"])
            continue
        if name not in ("maxmemory", "maxmemory-policy"):
            continue
        if len(words) != 2:
            raise RedisMemoryError("%s: %r needs exactly one value" % (where, line.strip()))
        if name == "maxmemory":
            try:
                result["maxmemory"] = parse_maxmemory(words[1], "maxmemory")
            except RedisMemoryError as exc:
                raise RedisMemoryError("%s: %s" % (where, exc)) from None
            result["lines"]["maxmemory"] = where
        else:
            result["maxmemory_policy"] = parse_policy(words[1], "%s: maxmemory-policy" % where)
            result["lines"]["maxmemory_policy"] = where
    return result


def effective_conf(conf):
    """What a Redis restarted from this file runs with: the file's values, else Redis' defaults."""
    return {key: conf[key] if conf.get(key) is not None else REDIS_DEFAULTS[key]
            for key in REDIS_NAMES}


def conf_drift(conf, desired, path):
    """A message when the file and the requested live values would disagree after a restart."""
    effective = effective_conf(conf)
    differences = []
    for key in REDIS_NAMES:
        if key not in desired or effective[key] == desired[key]:
            continue
        where = conf["lines"].get(key)
        in_file = ("%s (line %s)" % (_value_text(key, effective[key]), where) if where else
                   "%s (no %s line: Redis' default)" % (_value_text(key, effective[key]),
                                                        REDIS_NAMES[key]))
        differences.append("%s: file %s, requested %s" % (
            REDIS_NAMES[key], in_file, _value_text(key, desired[key])))
    if not differences:
        return None
    return ("config file %s disagrees with the requested live values (%s): after a restart Redis "
            "would run with the file's values. Template the same values into %s first (or use "
            "rewrite: true when Redis owns its config file)" % (
                path, "; ".join(differences), path))


def _value_text(key, value):
    return describe_maxmemory(value) if key == "maxmemory" else value


# --- safety checks -------------------------------------------------------------------------------

def check_maxmemory(requested, used_memory, current=0, force=False):
    """(error, warning) for setting maxmemory to ``requested``; each a message or None.

    Below used_memory x USED_MEMORY_MARGIN (stackfit_common.min_maxmemory) is an error, a warning
    with ``force``. 0 is "no limit" and always allowed. A request that raises the limit in force
    only warns even under the floor: it cannot evict more than the current limit does, and
    refusing it would block relief under pressure.
    """
    floor = min_maxmemory(used_memory)
    if requested == 0 or requested >= floor:
        return None, None
    problem = "maxmemory %s is below used_memory %s x %s = %s" % (
        describe_bytes(requested), describe_bytes(used_memory), float(USED_MEMORY_MARGIN),
        describe_bytes(floor))
    if current and requested >= current:
        return None, "%s; allowed since it raises the limit in force, %s" % (
            problem, describe_bytes(current))
    if force:
        return None, "%s; set anyway (force: true): Redis may evict keys now" % problem
    return ("%s: Redis would start evicting keys (or refusing writes under noeviction) at once. "
            "Ask for at least %s, or set force: true" % (problem, describe_bytes(floor))), None


def is_allkeys(policy):
    return str(policy).startswith("allkeys-")


def needs_queue_scan(current, after):
    """True when the change lets Redis evict any key (queues included) where it could not before.

    That is: the policy becomes allkeys-*, or under an allkeys-* policy a limit is set or lowered.
    """
    if not is_allkeys(after["maxmemory_policy"]):
        return False
    if after["maxmemory_policy"] != current["maxmemory_policy"]:
        return True
    old, new = current["maxmemory"], after["maxmemory"]
    return new != 0 and (old == 0 or new < old)


def check_policy(after, found_keys, where="Redis", force=False):
    """(error, warning) when the settings ``after`` let Redis evict the Celery queue keys found."""
    if not is_allkeys(after["maxmemory_policy"]) or not found_keys:
        return None, None
    named = ", ".join(found_keys[:KEYS_NAMED])
    more = " and more" if len(found_keys) > KEYS_NAMED else ""
    problem = ("maxmemory-policy %s with maxmemory %s lets Redis evict any key, and %s holds "
               "Celery queue keys (%s%s)" % (
                   after["maxmemory_policy"], describe_maxmemory(after["maxmemory"]), where, named,
                   more))
    if force:
        return None, "%s; set anyway (force: true)" % problem
    return ("%s: evicting them loses tasks. Use a volatile-* policy or noeviction, give the broker "
            "its own Redis, or set force: true" % problem), None


def is_glob(pattern):
    return any(char in pattern for char in "*?[\\")


# --- the change ----------------------------------------------------------------------------------

def compute_change(current, desired):
    """(after, changes): the settings after the change and {name: (before, after)} that differ.

    Compared as numbers for maxmemory and lower-case names for the policy.
    """
    after = dict(current)
    changes = {}
    for key, value in desired.items():
        if current[key] != value:
            changes[key] = (current[key], value)
            after[key] = value
    return after, changes


def change_message(changes, where, check_mode=False):
    if not changes:
        return "%s: nothing to change" % where
    verb = "would set" if check_mode else "set"
    parts = ["%s %s -> %s" % (REDIS_NAMES[key], _value_text(key, before), _value_text(key, after))
             for key, (before, after) in sorted(changes.items())]
    return "%s: %s %s" % (where, verb, "; ".join(parts))


def redis_error_message(kind, where, detail, command=None, user=None, password_given=True):
    """The failure message for a Redis error ``kind``: unreachable, auth, noperm, other."""
    who = "user %r" % user if user else "the default user"
    detail = str(detail).strip().rstrip(".")
    if kind == "unreachable" and ("SSL" in detail or "certificate" in detail.lower()):
        return ("TLS connection to Redis at %s failed: %s. Check tls, ca_certs and "
                "validate_certs" % (where, detail))
    if kind == "unreachable":
        return ("cannot reach Redis at %s: %s. Is redis-server running and listening there "
                "(bind, port, tls)?" % (where, detail))
    if kind == "auth" and not password_given:
        return ("Redis at %s requires a login and no login_password was given (%s)" % (
            where, detail))
    if kind == "auth":
        return ("Redis at %s refused the login as %s: %s. Check login_password%s" % (
            where, who, detail, " and login_user" if user else " (and login_user for an ACL user)"))
    if kind == "noperm":
        return ("Redis at %s denied %s to %s: %s. This module needs +config|get, +config|set, "
                "+info, +exists, +scan, +select (and +config|rewrite with rewrite: true)" % (
                    where, command or "a command", who, detail))
    return "Redis at %s failed on %s: %s" % (where, command or "a command", detail)
