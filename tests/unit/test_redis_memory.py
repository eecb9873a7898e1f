"""library/stackfit_redis_memory.py against real redis-servers: main() in-process and `ansible`."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import time

import pytest

from ansible.module_utils.stackfit_common import min_maxmemory
from ansible.module_utils.testing import patch_module_args
from conftest import ROOT, free_port

MIB = 1024 * 1024
VENV_BIN = ROOT / ".venv" / "bin"

_spec = importlib.util.spec_from_file_location("stackfit_redis_memory",
                                               ROOT / "library" / "stackfit_redis_memory.py")
module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(module)


@pytest.fixture
def run(capsys):
    """run(args, check=False, diff=False) -> the module's result dict (failed: True on fail_json)."""
    def call(args, check=False, diff=False):
        args = dict(args)
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        capsys.readouterr()
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)
    return call


def warnings(result):
    """Warning texts; ansible-core 2.19 returns them as WarningSummary objects."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def settings(client):
    return (int(client.config_get("maxmemory")["maxmemory"]),
            client.config_get("maxmemory-policy")["maxmemory-policy"])


def fill(client, count=20000, size=1024):
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set("img:%d" % i, b"x" * size)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return client.dbsize()


def ansible(args, check=False, diff=False):
    """Run the module for real through `ansible localhost`; returns (rc, result dict)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.environ.get("TMPDIR", "/tmp"))
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % (VENV_BIN / "python"),
           "-m", "stackfit_redis_memory", "-a", json.dumps(args)]
    cmd += ["--check"] if check else []
    cmd += ["--diff"] if diff else []
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert "=> " in out, (out, proc.stderr)
    body = out[out.index("=> ") + 3:]
    result, _ = json.JSONDecoder().raw_decode(body.lstrip())
    return proc.returncode, result, out


# --- the memory floor ----------------------------------------------------------------------------

def test_maxmemory_below_used_is_refused_and_nothing_moves(redis_server, run):
    client = redis_server.client()
    keys = fill(client)
    assert keys == 20000
    before = settings(client)
    result = run({"login_port": redis_server.port, "maxmemory": "10mb"})
    assert result["failed"] is True
    used = result["used_memory"]
    assert used > 20000 * 1024
    msg = result["msg"]
    assert "Redis at 127.0.0.1:%d" % redis_server.port in msg
    for number in (10 * MIB, used, min_maxmemory(used)):
        assert str(number) in msg, msg
    assert "10.0 MiB" in msg and "MiB" in msg.split("used_memory")[1] and "force" in msg
    assert client.dbsize() == keys
    assert settings(client) == before
    assert result["after"] == result["before"] == {"maxmemory": before[0],
                                                   "maxmemory_policy": before[1]}


def test_maxmemory_below_used_with_force_is_set(redis_server, run):
    client = redis_server.client()
    fill(client, count=5000)
    result = run({"login_port": redis_server.port, "maxmemory": "2mb", "force": True,
                  "maxmemory_policy": "allkeys-lru"})
    assert result["changed"] is True and "failed" not in result
    assert result["maxmemory_bytes"] == 2 * MIB
    assert settings(client) == (2 * MIB, "allkeys-lru")
    assert any("force" in w for w in warnings(result)), result


def test_fitting_value_changes_once(redis_server, run):
    client = redis_server.client()
    fill(client, count=2000)
    args = {"login_port": redis_server.port, "maxmemory": "100mb", "maxmemory_policy": "volatile-lru"}
    first = run(args)
    assert first["changed"] is True
    assert first["before"] == {"maxmemory": 0, "maxmemory_policy": "noeviction"}
    assert first["after"] == {"maxmemory": 100 * MIB, "maxmemory_policy": "volatile-lru"}
    assert first["maxmemory_bytes"] == 100 * MIB and first["maxmemory_policy"] == "volatile-lru"
    assert first["used_memory"] > 0
    assert settings(client) == (100 * MIB, "volatile-lru")
    second = run(dict(args, maxmemory=str(100 * MIB)))          # same value, other spelling
    assert second["changed"] is False
    assert "nothing to change" in second["msg"]


def test_maxmemory_zero_is_no_limit(redis_server, run):
    client = redis_server.client()
    client.config_set("maxmemory", 50 * MIB)
    result = run({"login_port": redis_server.port, "maxmemory": 0})
    assert result["changed"] is True and result["maxmemory_bytes"] == 0
    assert "no limit" in result["msg"]


def test_raise_under_floor_is_allowed_with_warning(redis_server, run):
    client = redis_server.client()
    fill(client, count=5000)
    client.config_set("maxmemory", 1 * MIB)      # a limit far below what Redis holds
    used = int(client.info("memory")["used_memory"])
    target = (used + 1024 * 100) if used * 1.1 > used + 1024 * 100 else used
    result = run({"login_port": redis_server.port, "maxmemory": target})
    assert result["changed"] is True
    assert any("raises the limit" in w for w in warnings(result))


def test_check_mode_reports_and_sets_nothing(redis_server, run):
    client = redis_server.client()
    before = settings(client)
    result = run({"login_port": redis_server.port, "maxmemory": "64mb",
                  "maxmemory_policy": "volatile-ttl"}, check=True)
    assert result["changed"] is True
    assert result["maxmemory_bytes"] == 64 * MIB and "would set" in result["msg"]
    assert settings(client) == before


def test_check_mode_still_refuses_below_floor(redis_server, run):
    client = redis_server.client()
    fill(client, count=5000)
    result = run({"login_port": redis_server.port, "maxmemory": "1mb"}, check=True)
    assert result["failed"] is True and "force" in result["msg"]


def test_diff_has_before_and_after(redis_server, run):
    result = run({"login_port": redis_server.port, "maxmemory": "32mb",
                  "maxmemory_policy": "allkeys-lfu"}, diff=True)
    assert result["diff"]["before"] == {"maxmemory": 0, "maxmemory_policy": "noeviction"}
    assert result["diff"]["after"] == {"maxmemory": 32 * MIB, "maxmemory_policy": "allkeys-lfu"}
    result = run({"login_port": redis_server.port, "maxmemory": "1gb"})
    assert "diff" not in result


# --- the queue check -----------------------------------------------------------------------------

def test_allkeys_refused_when_celery_queue_exists(redis_server, run):
    client = redis_server.client()
    client.config_set("maxmemory-policy", "volatile-lru")
    client.lpush("celery", "task-1")
    fill(client, count=100)
    result = run({"login_port": redis_server.port, "maxmemory_policy": "allkeys-lru"})
    assert result["failed"] is True
    assert "celery (db0)" in result["msg"] and "allkeys-lru" in result["msg"]
    assert result["queue_keys_found"] == ["celery (db0)"]
    assert settings(client)[1] == "volatile-lru"
    forced = run({"login_port": redis_server.port, "maxmemory_policy": "allkeys-lru", "force": True})
    assert forced["changed"] is True and settings(client)[1] == "allkeys-lru"
    assert any("celery (db0)" in w for w in warnings(forced))


def test_allkeys_allowed_without_queue_keys(redis_server, run):
    client = redis_server.client()
    client.config_set("maxmemory-policy", "volatile-lru")
    fill(client, count=100)
    result = run({"login_port": redis_server.port, "maxmemory_policy": "allkeys-lru"})
    assert result["changed"] is True and result["queue_keys_found"] == []
    assert settings(client)[1] == "allkeys-lru"


def test_queue_keys_found_by_pattern_in_any_db(redis_server, run):
    other_db = redis_server.client(db=3)
    other_db.sadd("_kombu.binding.updates", "x")
    for i in range(3000):                        # make SCAN walk more than one page
        other_db.set("filler:%d" % i, "v")
    result = run({"login_port": redis_server.port, "maxmemory_policy": "allkeys-random"})
    assert result["failed"] is True
    assert "_kombu.binding.updates (db3)" in result["msg"]


def test_limit_under_existing_allkeys_policy_is_checked(redis_server, run):
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.zadd("unacked_index", {"t": 1})
    result = run({"login_port": redis_server.port, "maxmemory": "500mb"})
    assert result["failed"] is True and "unacked_index (db0)" in result["msg"]
    result = run({"login_port": redis_server.port, "maxmemory": "500mb",
                  "queue_patterns": ["celery"]})
    assert result["changed"] is True


# --- errors --------------------------------------------------------------------------------------

def test_wrong_password_is_a_clear_error(redis_factory, run):
    server = redis_factory(password="s3cret")
    result = run({"login_port": server.port, "login_password": "wrong", "maxmemory": "10mb"})
    assert result["failed"] is True
    assert "refused the login" in result["msg"] and "127.0.0.1:%d" % server.port in result["msg"]
    assert "wrong" not in result["msg"].replace("WRONGPASS", "")
    missing = run({"login_port": server.port, "maxmemory": "10mb"})
    assert missing["failed"] is True and "no login_password was given" in missing["msg"]
    ok = run({"login_port": server.port, "login_password": "s3cret", "maxmemory": "10mb"})
    assert ok["changed"] is True


def test_unreachable_port_is_a_clear_error(run):
    port = free_port()
    started = time.monotonic()
    result = run({"login_port": port, "maxmemory": "10mb"})
    assert result["failed"] is True
    assert "cannot reach Redis at 127.0.0.1:%d" % port in result["msg"]
    assert time.monotonic() - started < 10


def test_silent_server_times_out(run):
    with socket.socket() as listener:            # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        result = run({"login_port": port, "maxmemory": "10mb"})
        elapsed = time.monotonic() - started
    assert result["failed"] is True
    assert "cannot reach Redis at 127.0.0.1:%d" % port in result["msg"]
    assert "imeout" in result["msg"] or "timed out" in result["msg"]
    assert elapsed < 10


def test_acl_user_without_config_gets_noperm(redis_factory, run):
    server = redis_factory(extra=["user limited on >pw ~* +@all -config"])
    result = run({"login_port": server.port, "login_user": "limited", "login_password": "pw",
                  "maxmemory": "10mb"})
    assert result["failed"] is True
    assert "denied CONFIG GET" in result["msg"] and "user 'limited'" in result["msg"]
    assert "127.0.0.1:%d" % server.port in result["msg"]


def test_bad_size_fails_before_connecting(run):
    result = run({"login_port": free_port(), "maxmemory": "lots"})
    assert result["failed"] is True and "maxmemory" in result["msg"] and "reach" not in result["msg"]


def test_required_one_of(run):
    result = run({"login_port": free_port()})
    assert result["failed"] is True and "maxmemory" in result["msg"]


# --- config file ---------------------------------------------------------------------------------

def test_config_file_drift_fails_naming_the_file(redis_server, run, tmp_path):
    conf = tmp_path / "templated.conf"
    conf.write_text("maxmemory 100mb\nmaxmemory-policy volatile-lru\n")
    client = redis_server.client()
    before = settings(client)
    result = run({"login_port": redis_server.port, "maxmemory": "200mb", "config_file": str(conf)})
    assert result["failed"] is True
    assert str(conf) in result["msg"] and "restart" in result["msg"]
    assert result["config_file_maxmemory_bytes"] == 100 * MIB
    assert settings(client) == before


def test_config_file_matching_is_ok(redis_server, run, tmp_path):
    conf = tmp_path / "templated.conf"
    conf.write_text("maxmemory 1gb\nmaxmemory 200mb\nmaxmemory-policy volatile-lru\n")
    result = run({"login_port": redis_server.port, "maxmemory": "200mb",
                  "maxmemory_policy": "volatile-lru", "config_file": str(conf)})
    assert result["changed"] is True
    assert result["config_file_maxmemory_bytes"] == 200 * MIB
    assert result["config_file_policy"] == "volatile-lru"


def test_missing_config_file_is_a_clear_error(redis_server, run, tmp_path):
    result = run({"login_port": redis_server.port, "maxmemory": "200mb",
                  "config_file": str(tmp_path / "nope.conf")})
    assert result["failed"] is True and "nope.conf" in result["msg"]


def test_rewrite_writes_the_new_value_to_redis_own_file(redis_server, run):
    conf = redis_server.conf
    assert "maxmemory" not in conf.read_text()
    result = run({"login_port": redis_server.port, "maxmemory": "64mb",
                  "maxmemory_policy": "volatile-lfu", "rewrite": True, "config_file": str(conf)})
    assert result["changed"] is True and result["rewritten"] is True
    text = conf.read_text()
    assert "maxmemory 64mb" in text and "maxmemory-policy volatile-lfu" in text
    assert result["config_file_maxmemory_bytes"] == 64 * MIB
    again = run({"login_port": redis_server.port, "maxmemory": "64mb", "rewrite": True,
                 "config_file": str(conf)})
    assert again["changed"] is False and again["rewritten"] is False


def test_rewrite_refuses_a_config_file_redis_does_not_own(redis_server, run, tmp_path):
    other = tmp_path / "other.conf"
    other.write_text("maxmemory 1mb\n")
    before = settings(redis_server.client())
    result = run({"login_port": redis_server.port, "maxmemory": "64mb", "rewrite": True,
                  "config_file": str(other)})
    assert result["failed"] is True and "nothing was set" in result["msg"]
    assert settings(redis_server.client()) == before


# --- through ansible, for real -------------------------------------------------------------------

def test_ansible_check_mode_then_normal_then_idempotent(redis_server):
    client = redis_server.client()
    args = {"login_port": redis_server.port, "maxmemory": "128mb", "maxmemory_policy": "volatile-lru"}
    rc, result, out = ansible(args, check=True, diff=True)
    assert rc == 0 and result["changed"] is True, out
    assert "+    maxmemory: 134217728" in out or "134217728" in out
    assert settings(client) == (0, "noeviction")
    rc, result, out = ansible(args)
    assert rc == 0 and result["changed"] is True, out
    assert settings(client) == (128 * MIB, "volatile-lru")
    rc, result, out = ansible(args)
    assert rc == 0 and result["changed"] is False, out


def test_ansible_refusal_and_password_not_logged(redis_factory):
    server = redis_factory(password="hunter2-secret")
    client = server.client()
    fill(client, count=5000)
    rc, result, out = ansible({"login_port": server.port, "login_password": "hunter2-secret",
                               "maxmemory": "1mb"})
    assert rc != 0 and "FAILED" in out, out
    assert "below used_memory" in result["msg"]
    # The module's result never carries the password (no_log). ansible-core 2.19's own "Origin:
    # <adhoc ...>" error header echoes ad-hoc task args, so only the result part is checked here.
    assert "hunter2-secret" not in out[out.index("=> "):]
    assert "hunter2-secret" not in json.dumps(result)
    assert int(client.config_get("maxmemory")["maxmemory"]) == 0


# --- TLS -----------------------------------------------------------------------------------------

def make_certs(directory):
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt")
    return directory / "ca.crt"


@pytest.fixture
def tls_server(redis_factory, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_certs(certs)
    tls_port = free_port()
    server = redis_factory(extra=["tls-port %d" % tls_port, "tls-cert-file %s" % (certs / "server.crt"),
                                  "tls-key-file %s" % (certs / "server.key"),
                                  "tls-ca-cert-file %s" % ca, "tls-auth-clients no"])
    return server, tls_port, ca


def test_tls_with_ca_certs(tls_server, run):
    server, tls_port, ca = tls_server
    result = run({"login_port": tls_port, "tls": True, "ca_certs": str(ca), "maxmemory": "10mb"})
    assert result["changed"] is True, result
    assert settings(server.client()) == (10 * MIB, "noeviction")


def test_tls_unknown_ca_is_a_clear_error_unless_not_validated(tls_server, run):
    _, tls_port, _ = tls_server
    result = run({"login_port": tls_port, "tls": True, "maxmemory": "10mb"})
    assert result["failed"] is True
    assert "127.0.0.1:%d" % tls_port in result["msg"] and "certificate" in result["msg"].lower()
    assert "TLS connection" in result["msg"] and "ca_certs" in result["msg"]
    result = run({"login_port": tls_port, "tls": True, "validate_certs": False, "maxmemory": "10mb"})
    assert result["changed"] is True, result


def test_queue_scan_is_bounded_and_says_so(redis_server, run, monkeypatch):
    monkeypatch.setattr(module, "SCAN_COUNT", 10)
    monkeypatch.setattr(module, "SCAN_MAX_CALLS", 2)
    fill(redis_server.client(), count=3000, size=8)
    result = run({"login_port": redis_server.port, "maxmemory_policy": "allkeys-lru",
                  "queue_patterns": ["unacked*"]})
    assert result["changed"] is True
    assert any("stopped after 2 SCAN calls" in w for w in warnings(result))
