#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: set Redis maxmemory and maxmemory-policy safely. Thin glue over module_utils."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_redis_memory
short_description: Set maxmemory and maxmemory-policy on a running Redis, with safety checks
description:
  - Reads C(maxmemory) and C(maxmemory-policy) with CONFIG GET, compares them as numbers and names
    with the requested values and sets only what differs (CONFIG SET). Idempotent.
  - Refuses, unless O(force=true), a O(maxmemory) below the memory Redis already uses
    (C(used_memory) of INFO memory) times 1.1, because Redis would start evicting keys (or refusing
    writes under C(noeviction)) at once. O(maxmemory=0) means no limit in Redis and is always
    allowed. A request that raises the limit in force is allowed even under the floor (it cannot
    evict more than the current limit does); the module warns then.
  - Refuses, unless O(force=true), a change that lets Redis evict any key while it holds Celery
    queue keys (O(queue_patterns)), that is a change to an C(allkeys-*) policy, or setting or
    lowering O(maxmemory) under an C(allkeys-*) policy. Every database that INFO keyspace lists is
    checked, with EXISTS for plain names and a bounded SCAN MATCH for patterns.
  - With O(config_file), fails when the file's C(maxmemory) / C(maxmemory-policy) lines (the last
    line wins, C(include) lines are followed, a missing line means Redis' default C(0) /
    C(noeviction)) disagree with the requested values, since Redis would run with the file's values
    after a restart. Template the same values into the file first.
  - With O(rewrite=true), runs CONFIG REWRITE after a change (or when O(config_file) disagrees), for
    a Redis that owns its config file; O(config_file) is checked after the rewrite then.
  - When both settings change, the policy is set first, so that any eviction the new limit causes
    follows the new policy.
  - Sizes follow redis.conf's units (1k = 1000, 1kb = 1024, 1m = 1000000, 1mb = 1024*1024,
    1gb = 1024^3; kib, mib, gib are binary too), or are plain bytes.
options:
  login_host:
    description: Host Redis listens on.
    type: str
    default: 127.0.0.1
  login_port:
    description: Port Redis listens on, 1 to 65535.
    type: int
    default: 6379
  login_user:
    description: ACL user to log in as (Redis 6+). Without it the default user is used.
    type: str
  login_password:
    description: Password of O(login_user) or of the default user (C(requirepass)).
    type: str
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  ca_certs:
    description: CA certificates file to verify the server's certificate with, when O(tls=true).
      A file that is not there fails naming the option.
    type: path
  client_cert:
    description: Client certificate file for a Redis that checks clients (C(tls-auth-clients)),
      when O(tls=true).
    type: path
  client_key:
    description: The private key of O(client_cert) (needs O(client_cert)).
    type: path
  validate_certs:
    description: Verify the server's certificate and host name when O(tls=true).
    type: bool
    default: true
  maxmemory:
    description:
      - The memory limit, a size (C(100mb), C(1gb), C(512MiB)) or bytes. C(0) means no limit.
      - At most 2**63-1 bytes; Redis reports a larger value negative, or clamps it.
      - Left out, maxmemory is not managed.
    type: raw
  maxmemory_policy:
    description:
      - The eviction policy. Left out, the policy is not managed.
      - C(allkeys-*) policies may evict Celery's queues; see O(queue_patterns) and O(force).
    type: str
    choices:
      - noeviction
      - allkeys-lru
      - allkeys-lfu
      - allkeys-random
      - volatile-lru
      - volatile-lfu
      - volatile-random
      - volatile-ttl
  force:
    description: Set the values even when the memory floor, the queue check or the read-only
      replica check refuses them, or with an empty O(queue_patterns) (the module still warns).
      Does not skip the O(config_file) check.
    type: bool
    default: false
  config_file:
    description: The redis.conf the role templates; its memory lines must agree with the requested
      values. Not read when left out.
    type: path
  rewrite:
    description: Run CONFIG REWRITE after a change, for a Redis that owns its config file.
    type: bool
    default: false
  queue_patterns:
    description: Key names or SCAN MATCH patterns whose presence means Redis holds Celery queues.
      The default is the Celery broker's keys of this stack. An empty list turns the queue check
      off and is refused unless O(force=true).
    type: list
    elements: str
    default: [celery, updates, ai_generation, _kombu.binding.*, unacked*]
notes:
  - Setting maxmemory on a read-only replica (INFO replication C(role:slave), C(replica-read-only
    yes)) is refused unless O(force=true), since its data set is the master's.
  - The module needs CONFIG GET, CONFIG SET, INFO, EXISTS, SCAN and SELECT (and CONFIG REWRITE with
    O(rewrite=true)); an ACL user without them gets a clear NOPERM failure naming the command.
  - The socket timeout is 3 seconds, with no retries.
  - Redis Cluster is not supported; point the module at each node.
requirements:
  - redis (redis-py) on the host that runs the module
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Reads, compares and runs the safety checks; sets nothing and never rewrites.
  diff_mode:
    support: full
    details: Before and after of maxmemory (bytes) and maxmemory_policy.
author: stackfit developers (@stackfit)
"""

EXAMPLES = r"""
- name: Limit Redis to the planned size
  stackfit_redis_memory:
    maxmemory: "{{ stackfit_plan.redis_maxmemory }}"
    maxmemory_policy: volatile-lru
    config_file: /etc/redis/redis.conf
    login_password: "{{ vault_redis_password }}"

- name: Let Redis rewrite its own config file
  stackfit_redis_memory:
    maxmemory: 256mb
    rewrite: true

- name: Cache-only Redis with an ACL user
  stackfit_redis_memory:
    login_user: ops
    login_password: "{{ vault_redis_ops_password }}"
    maxmemory_policy: allkeys-lru
"""

RETURN = r"""
maxmemory_bytes:
  description: maxmemory after the run, in bytes (0 is no limit); the would-be value in check mode.
  returned: success
  type: int
  sample: 104857600
maxmemory_policy:
  description: maxmemory-policy after the run; the would-be value in check mode.
  returned: success
  type: str
  sample: volatile-lru
before:
  description: Both settings before the run.
  returned: success and failure after Redis was read
  type: dict
  sample: {maxmemory: 0, maxmemory_policy: noeviction}
after:
  description: Both settings after the run (read back from Redis; the would-be values in check
    mode; the unchanged live values when the run was refused).
  returned: success and failure after Redis was read
  type: dict
  sample: {maxmemory: 104857600, maxmemory_policy: volatile-lru}
used_memory:
  description: used_memory of INFO memory, in bytes, before the change.
  returned: success and failure after Redis was read
  type: int
used_memory_human:
  description: RV(used_memory) in MiB or GiB.
  returned: success and failure after Redis was read
  type: str
queue_keys_found:
  description: Celery queue keys found (at most 6, as C(key (dbN))), when the queue check ran.
  returned: when the queue check ran
  type: list
  elements: str
config_file_maxmemory_bytes:
  description: maxmemory a restart from O(config_file) gives (Redis' default 0 without a line).
  returned: when config_file is given
  type: int
config_file_policy:
  description: maxmemory-policy a restart from O(config_file) gives (C(noeviction) without a line).
  returned: when config_file is given
  type: str
rewritten:
  description: Whether CONFIG REWRITE ran (or would run, in check mode).
  returned: success
  type: bool
msg:
  description: What was (or would be) set, or why nothing was.
  returned: always
  type: str
"""

import glob
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.stackfit_redis import (
    DEFAULT_QUEUE_PATTERNS, KEYS_NAMED, POLICIES, REDIS_NAMES, RedisMemoryError, change_message,
    check_maxmemory, check_options, check_policy, check_replica, compute_change, conf_drift,
    current_settings, desired_settings, effective_conf, is_glob, needs_queue_scan,
    parse_conf_memory, redis_error_message)
from ansible.module_utils.stackfit_common import human

REDIS_IMPORT_ERROR = None
try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:
    REDIS_IMPORT_ERROR = traceback.format_exc()

ARGUMENT_SPEC = dict(
    login_host=dict(type="str", default="127.0.0.1"),
    login_port=dict(type="int", default=6379),
    login_user=dict(type="str"),
    login_password=dict(type="str", no_log=True),
    tls=dict(type="bool", default=False),
    ca_certs=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    maxmemory=dict(type="raw"),
    maxmemory_policy=dict(type="str", choices=list(POLICIES)),
    force=dict(type="bool", default=False),
    config_file=dict(type="path"),
    rewrite=dict(type="bool", default=False),
    queue_patterns=dict(type="list", elements="str", default=list(DEFAULT_QUEUE_PATTERNS)),
)
REQUIRED_ONE_OF = [("maxmemory", "maxmemory_policy")]

SOCKET_TIMEOUT = 3
SCAN_COUNT = 1000
SCAN_MAX_CALLS = 200  # per pattern and database: ~200k keys looked at, then the scan stops


class Failure(Exception):
    """Ends the run with fail_json(msg, **extra)."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def _error_kind(exc):
    if isinstance(exc, (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)):
        return "auth"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return "noperm"
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "unreachable"
    if str(exc).startswith(("NOAUTH", "WRONGPASS")):
        return "auth"
    return "other"


class Session:
    """redis-py clients per database; every call names its command for the error message."""

    def __init__(self, params):
        self.where = "%s:%d" % (params["login_host"], params["login_port"])
        self.user = params["login_user"]
        self.kwargs = dict(
            host=params["login_host"], port=params["login_port"], username=params["login_user"],
            password=params["login_password"], socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 0),
            decode_responses=True, encoding_errors="backslashreplace")
        if params["tls"]:
            self.kwargs.update(ssl=True, ssl_ca_certs=params["ca_certs"],
                               ssl_cert_reqs="required" if params["validate_certs"] else "none",
                               ssl_check_hostname=params["validate_certs"],
                               ssl_certfile=params["client_cert"], ssl_keyfile=params["client_key"])
        self._clients = {}

    def run(self, command, call, db=0):
        client = self._clients.get(db)
        if client is None:
            client = self._clients[db] = redis.Redis(db=db, **self.kwargs)
        try:
            return call(client)
        except redis.exceptions.RedisError as exc:
            raise Failure(redis_error_message(
                _error_kind(exc), self.where, str(exc) or type(exc).__name__, command, self.user,
                self.kwargs["password"] is not None)) from None

    def settings(self):
        maxmemory = self.run("CONFIG GET", lambda c: c.config_get("maxmemory"))
        policy = self.run("CONFIG GET", lambda c: c.config_get("maxmemory-policy"))
        return current_settings(maxmemory["maxmemory"], policy["maxmemory-policy"])

    def find_queue_keys(self, patterns):
        """(keys found as "key (dbN)", complete): stops after KEYS_NAMED + 1 keys or the bound."""
        keyspace = self.run("INFO keyspace", lambda c: c.info("keyspace"))
        dbs = sorted(int(name[2:]) for name in keyspace
                     if name.startswith("db") and name[2:].isdigit())
        found, complete = [], True
        for db in dbs:
            for pattern in patterns:
                if len(found) > KEYS_NAMED:
                    return found, complete
                if not is_glob(pattern):
                    if self.run("EXISTS", lambda c, k=pattern: c.exists(k), db):
                        found.append("%s (db%d)" % (pattern, db))
                    continue
                cursor, calls = 0, 0
                while True:
                    cursor, keys = self.run("SCAN", lambda c, cur=cursor, p=pattern: c.scan(
                        cur, match=p, count=SCAN_COUNT), db)
                    found.extend("%s (db%d)" % (key, db) for key in keys)
                    calls += 1
                    if cursor == 0 or len(found) > KEYS_NAMED:
                        break
                    if calls >= SCAN_MAX_CALLS:
                        complete = False
                        break
        return found, complete


def read_conf(path):
    """The memory settings of a redis.conf, following its include lines."""
    def load_include(pattern):
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(path), pattern)
        return [(name, _read_text(name)) for name in sorted(glob.glob(pattern))]

    return parse_conf_memory(_read_text(path), path, load_include)


def _read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise Failure("config_file: cannot read %s: %s" % (path, exc.strerror or exc)) from None


def conf_result(conf):
    effective = effective_conf(conf)
    return {"config_file_maxmemory_bytes": effective["maxmemory"],
            "config_file_policy": effective["maxmemory_policy"]}


def _check(module, session, result, outcome):
    error, warning = outcome
    if error:
        raise Failure("Redis at %s: %s" % (session.where, error), **result)
    if warning:
        module.warn("Redis at %s: %s" % (session.where, warning))


def run(module, session, desired, conf):
    """Read, compare, check, apply. Returns the result for exit_json or raises Failure."""
    p = module.params
    current = session.settings()
    used = int(session.run("INFO memory", lambda c: c.info("memory"))["used_memory"])
    after, changes = compute_change(current, desired)
    # "after" stays the live values until something is set (a refusal leaves Redis as it was).
    result = dict(before=current, after=dict(current), used_memory=used,
                  used_memory_human=human(used))
    if conf is not None:
        result.update(conf_result(conf))

    if "maxmemory" in changes:
        replication = session.run("INFO replication", lambda c: c.info("replication"))
        read_only = None
        if replication.get("role") == "slave":
            read_only = session.run("CONFIG GET", lambda c: c.config_get(
                "replica-read-only")).get("replica-read-only")
        _check(module, session, result, check_replica(replication, read_only, force=p["force"]))
        _check(module, session, result,
               check_maxmemory(after["maxmemory"], used, current["maxmemory"], p["force"]))
    if needs_queue_scan(current, after):
        found, complete = session.find_queue_keys(p["queue_patterns"])
        result["queue_keys_found"] = found
        if not complete:
            module.warn("the queue key scan on %s stopped after %d SCAN calls per pattern and "
                        "database; keys beyond were not looked at" % (
                            session.where, SCAN_MAX_CALLS))
        _check(module, session, result,
               check_policy(after, found, force=p["force"]))

    drift = conf_drift(conf, desired, p["config_file"]) if conf is not None else None
    if drift and not p["rewrite"]:
        raise Failure(drift, **result)
    rewrite = p["rewrite"] and bool(changes or drift)
    result["rewritten"] = rewrite
    if rewrite:
        # Before anything is set: CONFIG REWRITE needs a config file, and it must be config_file.
        own = session.run("INFO server", lambda c: c.info("server")).get("config_file") or ""
        if not own:
            raise Failure("rewrite: Redis at %s runs without a config file, CONFIG REWRITE would "
                          "fail; nothing was set" % session.where, **result)
        if p["config_file"] and os.path.realpath(own) != os.path.realpath(p["config_file"]):
            raise Failure("rewrite: Redis at %s owns %s, not config_file %s; nothing was set" % (
                session.where, own, p["config_file"]), **result)

    result["after"] = dict(after)
    if not module.check_mode:
        # Policy first: an eviction the new limit causes then follows the new policy.
        for key in ("maxmemory_policy", "maxmemory"):
            if key in changes:
                session.run("CONFIG SET", lambda c, k=key: c.config_set(REDIS_NAMES[k], after[k]))
        if rewrite:
            session.run("CONFIG REWRITE", lambda c: c.config_rewrite())
        if changes:
            after = session.settings()
            result["after"] = dict(after)
        if rewrite and conf is not None:
            conf = read_conf(p["config_file"])
            result.update(conf_result(conf))
            drift = conf_drift(conf, desired, p["config_file"])
            if drift:
                raise Failure("after CONFIG REWRITE: %s" % drift, **result)

    result.update(changed=bool(changes) or rewrite, maxmemory_bytes=after["maxmemory"],
                  maxmemory_policy=after["maxmemory_policy"])
    msg = change_message(changes, "Redis at %s" % session.where, module.check_mode)
    if rewrite:
        msg += "; %s CONFIG REWRITE" % ("would run" if module.check_mode else "ran")
    result["msg"] = msg
    if module._diff:
        result["diff"] = dict(before=result["before"], after=result["after"],
                              before_header="redis %s" % session.where,
                              after_header="redis %s" % session.where)
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF,
                           supports_check_mode=True)
    if REDIS_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("redis"), exception=REDIS_IMPORT_ERROR)
    p = module.params
    try:
        for warning in check_options(p):
            module.warn(warning)
        desired = desired_settings(p["maxmemory"], p["maxmemory_policy"])
        conf = read_conf(p["config_file"]) if p["config_file"] else None
        result = run(module, Session(p), desired, conf)
    except RedisMemoryError as exc:
        module.fail_json(msg="stackfit_redis_memory: %s" % exc)
    except Failure as exc:
        module.fail_json(msg="stackfit_redis_memory: %s" % exc.msg, **exc.extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
