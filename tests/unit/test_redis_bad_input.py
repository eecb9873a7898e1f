"""Issue 15 for stackfit_redis_memory: a bad option fails naming the option and the value, before
anything is set (most before connecting); a read-only replica is refused unless force."""
from __future__ import annotations

import pytest

from ansible.module_utils.stackfit_redis import (MAXMEMORY_MAX, RedisMemoryError, check_options,
                                                 check_replica, desired_settings)
from conftest import free_port
from test_redis_memory import make_certs, run, settings, warnings  # noqa: F401  (run: a fixture)

MIB = 1024 * 1024


def no_traceback(result):
    assert result["failed"] is True, result
    assert "Traceback" not in result["msg"] and "exception" not in result, result


# (module arguments besides login_port and maxmemory, what the message must name)
BAD_OPTIONS = [
    ({"login_port": 0}, ["login_port", "0", "1..65535"]),
    ({"login_port": 65536}, ["login_port", "65536", "1..65535"]),
    ({"login_port": -1}, ["login_port", "-1", "1..65535"]),
    ({"login_port": 100000}, ["login_port", "100000"]),
    ({"maxmemory": 2 ** 63}, ["maxmemory", str(2 ** 63), str(MAXMEMORY_MAX), "2**63-1"]),
    ({"maxmemory": str(2 ** 64)}, ["maxmemory", str(2 ** 64), str(MAXMEMORY_MAX)]),
    ({"maxmemory": "8589934592gb"}, ["maxmemory", "8589934592gb", str(MAXMEMORY_MAX)]),
    ({"maxmemory": "99999999999999999999"}, ["maxmemory", "99999999999999999999"]),
    ({"tls": True, "ca_certs": "/nonexistent/ca.crt"}, ["ca_certs", "/nonexistent/ca.crt",
                                                         "does not exist"]),
    ({"tls": True, "client_cert": "/nonexistent/c.crt"}, ["client_cert", "/nonexistent/c.crt"]),
    ({"tls": True, "client_cert": "{file}", "client_key": "/nonexistent/c.key"},
     ["client_key", "/nonexistent/c.key"]),
    ({"tls": True, "ca_certs": "{tmp}"}, ["ca_certs", "{tmp}", "is not a file"]),
    ({"tls": True, "client_key": "{file}"}, ["client_key", "{file}", "without client_cert"]),
    ({"queue_patterns": []}, ["queue_patterns", "[]", "force: true"]),
    ({"queue_patterns": [""]}, ["queue_patterns", "['']", "empty pattern"]),
    ({"queue_patterns": ["celery", "  "]}, ["queue_patterns", "'  '", "empty pattern"]),
]


@pytest.mark.parametrize("args,words", BAD_OPTIONS)
def test_bad_option_fails_naming_option_and_value_before_connecting(run, tmp_path, args, words):
    (tmp_path / "some.pem").write_text("x\n")
    fill = {"{tmp}": str(tmp_path), "{file}": str(tmp_path / "some.pem")}

    def sub(value):
        for key, text in fill.items():
            value = value.replace(key, text) if isinstance(value, str) else value
        return value

    params = {"login_port": free_port(), "maxmemory": "10mb"}
    params.update({key: sub(value) for key, value in args.items()})
    result = run(params)
    no_traceback(result)
    for word in words:
        assert sub(word) in result["msg"], (word, result["msg"])
    assert "reach" not in result["msg"]  # refused before connecting: nothing was touched


def test_queue_patterns_empty_with_force_only_warns(redis_server, run):
    result = run({"login_port": redis_server.port, "maxmemory_policy": "allkeys-lru",
                  "queue_patterns": [], "force": True})
    assert result["changed"] is True
    assert any("queue_patterns: []" in w for w in warnings(result))


def test_tls_file_without_tls_warns_it_is_ignored(redis_server, run, tmp_path):
    (tmp_path / "ca.crt").write_text("x\n")
    result = run({"login_port": redis_server.port, "maxmemory": "10mb",
                  "ca_certs": str(tmp_path / "ca.crt")})
    assert result["changed"] is True
    assert any("ca_certs" in w and "ignored without tls" in w for w in warnings(result))


def test_largest_maxmemory_is_accepted():
    assert desired_settings(maxmemory=MAXMEMORY_MAX) == {"maxmemory": MAXMEMORY_MAX}
    with pytest.raises(RedisMemoryError, match="maxmemory: .*2\\*\\*63-1"):
        desired_settings(maxmemory=MAXMEMORY_MAX + 1)


def test_check_options_accepts_the_defaults():
    assert check_options({"login_port": 6379, "queue_patterns": ["celery"], "force": False}) == []


@pytest.mark.parametrize("replication,read_only,refused", [
    ({"role": "slave", "master_host": "10.0.0.1", "master_port": 6379}, "yes", True),
    ({"role": "slave", "master_host": "10.0.0.1", "master_port": 6379}, "no", False),
    ({"role": "master"}, None, False),
])
def test_check_replica(replication, read_only, refused):
    error, warning = check_replica(replication, read_only)
    assert bool(error) is refused and warning is None
    if refused:
        assert "read-only replica of 10.0.0.1:6379" in error and "force: true" in error
        assert check_replica(replication, read_only, force=True)[1]


@pytest.fixture
def replica(redis_factory):
    master = redis_factory()
    server = redis_factory(extra=["replicaof 127.0.0.1 %d" % master.port])
    return master, server


@pytest.mark.parametrize("args", [{"maxmemory": "10mb"},
                                  {"maxmemory": "20mb", "maxmemory_policy": "volatile-lru"}])
def test_maxmemory_on_a_read_only_replica_is_refused_unless_force(replica, run, args):
    master, server = replica
    result = run(dict(args, login_port=server.port))
    no_traceback(result)
    assert "read-only replica of 127.0.0.1:%d" % master.port in result["msg"]
    assert "replica-read-only yes" in result["msg"] and "force: true" in result["msg"]
    assert settings(server.client()) == (0, "noeviction")  # nothing changed
    forced = run(dict(args, login_port=server.port, force=True))
    assert forced["changed"] is True
    assert any("read-only replica" in w for w in warnings(forced))


def test_writable_replica_and_policy_only_are_not_refused(replica, run):
    _, server = replica
    assert run({"login_port": server.port, "maxmemory_policy": "volatile-lru"})["changed"] is True
    server.client().config_set("replica-read-only", "no")
    assert run({"login_port": server.port, "maxmemory": "10mb"})["changed"] is True


def test_client_certificate_logs_in_to_a_redis_that_checks_clients(redis_factory, run, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_certs(certs)
    tls_port = free_port()
    redis_factory(extra=["tls-port %d" % tls_port, "tls-cert-file %s" % (certs / "server.crt"),
                         "tls-key-file %s" % (certs / "server.key"), "tls-ca-cert-file %s" % ca,
                         "tls-auth-clients yes"])
    base = {"login_port": tls_port, "tls": True, "ca_certs": str(ca), "maxmemory": "10mb"}
    without = run(base)
    assert without["failed"] is True, without
    result = run(dict(base, client_cert=str(certs / "server.crt"),
                      client_key=str(certs / "server.key")))
    assert result["changed"] is True, result
