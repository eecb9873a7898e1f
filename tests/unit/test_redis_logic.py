"""Pure logic of module_utils/stackfit_redis.py: no Redis, no Ansible."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible.module_utils.stackfit_redis import (
    DEFAULT_QUEUE_PATTERNS, POLICIES, RedisMemoryError, change_message, check_maxmemory,
    check_policy, compute_change, conf_drift, current_settings, desired_settings, effective_conf,
    is_glob, needs_queue_scan, parse_conf_memory, redis_error_message)
from ansible.module_utils.stackfit_common import min_maxmemory
from ansible.module_utils.stackfit_sizing import format_size

MIB = 1024 * 1024


# --- sizes and options ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("100mb", 100 * MIB), ("1gb", 1024 ** 3), ("512MiB", 512 * MIB), ("100m", 100 * 10 ** 6),
    ("1k", 1000), ("1kb", 1024), (4096, 4096), ("4096", 4096), ("0", 0), (0, 0), ("1.5gb", 3 * 1024 ** 3 // 2),
])
def test_desired_maxmemory_follows_redis_units(value, expected):
    assert desired_settings(maxmemory=value) == {"maxmemory": expected}


@pytest.mark.parametrize("value", ["-1", "100 zb", "lots", True, -5])
def test_desired_maxmemory_rejects_non_sizes(value):
    with pytest.raises(RedisMemoryError, match="maxmemory"):
        desired_settings(maxmemory=value)


def test_desired_policy_is_normalised_and_checked():
    assert desired_settings(maxmemory_policy="Volatile-LRU") == {"maxmemory_policy": "volatile-lru"}
    with pytest.raises(RedisMemoryError, match="not a Redis eviction policy"):
        desired_settings(maxmemory_policy="lru")


def test_desired_needs_one_setting():
    with pytest.raises(RedisMemoryError, match="one of maxmemory or maxmemory_policy"):
        desired_settings()


def test_policies_are_the_eight_of_redis():
    assert len(POLICIES) == 8 and len(set(POLICIES)) == 8


def test_current_settings_from_config_get_answers():
    assert current_settings(b"104857600", b"volatile-lru") == {
        "maxmemory": 104857600, "maxmemory_policy": "volatile-lru"}
    assert current_settings("0", "noeviction") == {"maxmemory": 0, "maxmemory_policy": "noeviction"}


# --- redis.conf ----------------------------------------------------------------------------------

def test_parse_conf_last_line_wins_and_units_are_parsed():
    text = """
# maxmemory 1gb  (a comment)
maxmemory 100mb
MAXMEMORY-POLICY allkeys-lru
maxmemory "200mb"
   maxmemory-policy Volatile-LFU
"""
    conf = parse_conf_memory(text, "/etc/redis/redis.conf")
    assert conf["maxmemory"] == 200 * MIB
    assert conf["maxmemory_policy"] == "volatile-lfu"
    assert conf["lines"] == {"maxmemory": "/etc/redis/redis.conf:5",
                             "maxmemory_policy": "/etc/redis/redis.conf:6"}


def test_parse_conf_without_memory_lines_gives_redis_defaults():
    conf = parse_conf_memory("port 6379\nbind 127.0.0.1\n")
    assert conf["maxmemory"] is None and conf["maxmemory_policy"] is None
    assert effective_conf(conf) == {"maxmemory": 0, "maxmemory_policy": "noeviction"}


def test_parse_conf_follows_includes_in_place():
    files = {"/a.conf": "maxmemory 50mb\n", "/b.conf": "maxmemory 70mb\nmaxmemory-policy volatile-ttl\n"}

    def load(pattern):
        return [(pattern, files[pattern])]

    conf = parse_conf_memory("include /a.conf\nmaxmemory 60mb\ninclude /b.conf\n", "main", load)
    assert conf["maxmemory"] == 70 * MIB
    assert conf["lines"]["maxmemory"] == "/b.conf:1"
    conf = parse_conf_memory("include /b.conf\nmaxmemory 60mb\n", "main", load)
    assert conf["maxmemory"] == 60 * MIB and conf["maxmemory_policy"] == "volatile-ttl"


def test_parse_conf_lists_includes_when_not_followed():
    conf = parse_conf_memory("include /etc/redis/extra.conf\n")
    assert conf["includes"] == ["/etc/redis/extra.conf"]


def test_parse_conf_include_loop_is_bounded():
    with pytest.raises(RedisMemoryError, match="nest deeper"):
        parse_conf_memory("include /self.conf\n", "/self.conf",
                          lambda p: [(p, "include /self.conf\n")])


@pytest.mark.parametrize("text, match", [
    ("maxmemory lots\n", r"redis.conf:1: maxmemory"),
    ("maxmemory 1 2\n", "exactly one value"),
    ("maxmemory-policy lru\n", "not a Redis eviction policy"),
])
def test_parse_conf_bad_lines_name_file_and_line(text, match):
    with pytest.raises(RedisMemoryError, match=match):
        parse_conf_memory(text, "redis.conf")


@given(st.integers(min_value=0, max_value=2 ** 50))
def test_parse_conf_reads_what_format_size_writes(nbytes):
    assert parse_conf_memory("maxmemory %s\n" % format_size(nbytes))["maxmemory"] == nbytes


def test_conf_drift_names_file_values_and_request():
    conf = parse_conf_memory("maxmemory 100mb\n", "/etc/redis/redis.conf")
    msg = conf_drift(conf, {"maxmemory": 200 * MIB}, "/etc/redis/redis.conf")
    assert "/etc/redis/redis.conf" in msg and "restart" in msg
    assert str(100 * MIB) in msg and str(200 * MIB) in msg
    assert conf_drift(conf, {"maxmemory": 100 * MIB}, "/etc/redis/redis.conf") is None


def test_conf_drift_only_checks_requested_settings_and_uses_defaults():
    conf = parse_conf_memory("maxmemory 100mb\n", "f")
    assert conf_drift(conf, {"maxmemory": 100 * MIB}, "f") is None      # policy not requested
    msg = conf_drift(conf, {"maxmemory_policy": "volatile-lru"}, "f")
    assert "noeviction" in msg and "default" in msg
    assert conf_drift(parse_conf_memory(""), {"maxmemory": 0}, "f") is None


# --- the memory floor ----------------------------------------------------------------------------

def test_check_maxmemory_refuses_below_floor_with_numbers():
    used = 25 * MIB
    error, warning = check_maxmemory(10 * MIB, used)
    assert warning is None
    for number in (10 * MIB, used, min_maxmemory(used)):
        assert str(number) in error
    assert "10.0 MiB" in error and "25.0 MiB" in error and "27.5 MiB" in error
    assert "force" in error


def test_check_maxmemory_force_turns_refusal_into_warning():
    error, warning = check_maxmemory(10 * MIB, 25 * MIB, force=True)
    assert error is None and "force" in warning


def test_check_maxmemory_zero_is_no_limit():
    assert check_maxmemory(0, 10 ** 12) == (None, None)


def test_check_maxmemory_raise_under_floor_only_warns():
    error, warning = check_maxmemory(30 * MIB, 40 * MIB, current=20 * MIB)
    assert error is None and "raises the limit" in warning
    error, _ = check_maxmemory(15 * MIB, 40 * MIB, current=20 * MIB)
    assert error


@given(requested=st.integers(0, 2 ** 40), used=st.integers(0, 2 ** 40),
       current=st.integers(0, 2 ** 40), force=st.booleans())
def test_check_maxmemory_rule(requested, used, current, force):
    error, warning = check_maxmemory(requested, used, current, force)
    squeezes = requested != 0 and requested * 10 < used * 11 and (current == 0 or requested < current)
    assert bool(error) == (squeezes and not force)
    assert not (error and warning)
    if requested == 0 or requested >= math.ceil(used * 11 / 10):
        assert (error, warning) == (None, None)


# --- the queue check -----------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, expected", [
    (("volatile-lru", 0), ("allkeys-lru", 0), True),
    (("allkeys-lru", 0), ("allkeys-lfu", 0), True),
    (("allkeys-lru", 0), ("allkeys-lru", 100), True),         # a limit under an allkeys policy
    (("allkeys-lru", 200), ("allkeys-lru", 100), True),       # lowered
    (("allkeys-lru", 100), ("allkeys-lru", 200), False),      # raised
    (("allkeys-lru", 100), ("allkeys-lru", 0), False),        # limit removed
    (("noeviction", 0), ("volatile-lru", 100), False),
    (("allkeys-lru", 100), ("noeviction", 100), False),
])
def test_needs_queue_scan(before, after, expected):
    def settings(pair):
        return {"maxmemory_policy": pair[0], "maxmemory": pair[1]}
    assert needs_queue_scan(settings(before), settings(after)) is expected


def test_check_policy_names_a_few_keys():
    after = {"maxmemory_policy": "allkeys-lru", "maxmemory": 100 * MIB}
    keys = ["celery (db0)"] + ["unacked%d (db0)" % i for i in range(10)]
    error, warning = check_policy(after, keys, "Redis at 127.0.0.1:6379")
    assert warning is None
    assert "celery (db0)" in error and "unacked3 (db0)" in error and "unacked9" not in error
    assert "and more" in error and "127.0.0.1:6379" in error and "force" in error
    error, warning = check_policy(after, keys, force=True)
    assert error is None and "celery (db0)" in warning


def test_check_policy_allows_without_keys_or_with_volatile():
    assert check_policy({"maxmemory_policy": "allkeys-lru", "maxmemory": 1}, []) == (None, None)
    assert check_policy({"maxmemory_policy": "volatile-lru", "maxmemory": 1},
                        ["celery (db0)"]) == (None, None)


def test_default_queue_patterns():
    assert [p for p in DEFAULT_QUEUE_PATTERNS if is_glob(p)] == ["_kombu.binding.*", "unacked*"]


# --- the change ----------------------------------------------------------------------------------

def test_compute_change_compares_numbers_and_only_requested():
    current = {"maxmemory": 100 * MIB, "maxmemory_policy": "noeviction"}
    after, changes = compute_change(current, {"maxmemory": desired_settings("100mb")["maxmemory"]})
    assert changes == {} and after == current
    after, changes = compute_change(current, {"maxmemory_policy": "volatile-lru"})
    assert changes == {"maxmemory_policy": ("noeviction", "volatile-lru")}
    assert after == {"maxmemory": 100 * MIB, "maxmemory_policy": "volatile-lru"}
    assert current["maxmemory_policy"] == "noeviction"


@given(st.integers(0, 2 ** 40), st.sampled_from(POLICIES), st.integers(0, 2 ** 40),
       st.sampled_from(POLICIES))
def test_compute_change_is_idempotent(mem, policy, want_mem, want_policy):
    desired = {"maxmemory": want_mem, "maxmemory_policy": want_policy}
    after, changes = compute_change({"maxmemory": mem, "maxmemory_policy": policy}, desired)
    assert after == desired
    assert bool(changes) == ((mem, policy) != (want_mem, want_policy))
    assert compute_change(after, desired) == (after, {})


def test_change_message():
    changes = {"maxmemory": (0, 100 * MIB), "maxmemory_policy": ("noeviction", "volatile-lru")}
    msg = change_message(changes, "Redis at h:1", check_mode=True)
    assert msg.startswith("Redis at h:1: would set maxmemory 0 (no limit) -> 104857600 bytes")
    assert "maxmemory-policy noeviction -> volatile-lru" in msg
    assert change_message({}, "Redis at h:1") == "Redis at h:1: nothing to change"


@pytest.mark.parametrize("kind, words", [
    ("unreachable", ["cannot reach", "h:1"]),
    ("auth", ["refused the login", "h:1", "login_password"]),
    ("noperm", ["denied CONFIG GET", "user 'ops'", "+config|get"]),
    ("other", ["failed on CONFIG GET"]),
])
def test_redis_error_message(kind, words):
    assert ".." not in redis_error_message(kind, "h:1", "detail.", "CONFIG GET", "ops")
    msg = redis_error_message(kind, "h:1", "detail", "CONFIG GET", "ops")
    for word in words:
        assert word in msg


def test_redis_error_message_special_cases():
    assert "no login_password was given" in redis_error_message(
        "auth", "h:1", "NOAUTH", password_given=False)
    assert "TLS connection to Redis at h:1" in redis_error_message(
        "unreachable", "h:1", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
