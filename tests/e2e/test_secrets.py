"""Secrets never reach output, --diff, logs or world-readable files (issue 15): the dev stack on
this machine with a Redis password and an admin token full of awkward characters (spaces, quotes,
'/', '#', '%', a backslash; a newline in the password), then a full `--check --diff -vvv` run.
The secrets, and their URL-encoded forms, must appear nowhere in its output, in no log, and only in
files that are not world-readable; the stack works with them (the memory report answers the token,
Redis the password). Needs root (CI runs as root) and no systemd as PID 1."""
from __future__ import annotations

import json
import os
import urllib.parse

import pytest
import redis

from conftest import measured
from test_dev_stack import BIN, OVERRIDES, get, playbook, recap  # noqa: F401  (BIN: the venv)

PASSWORD = "p a\"s's/w#o%r\\d\nsecond-line-7Qz"
TOKEN = "T0k e\"n'/#%\\-admin-secret-8Hq-xyzw"
SEARCHED = ("/etc/stackfit", "/etc/redis", "/opt/stackfit", "/var/lib/stackfit", "/var/log/stackfit",
            "/var/log/redis", "/run/stackfit", "/run/redis", "/run/stackfit-supervisor",
            "/var/log/stackfit-supervisor.log")
LOGS = ("/var/log/stackfit", "/var/log/redis", "/var/log/stackfit-supervisor.log",
        "/var/lib/stackfit/monitor")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")


def forms(secret):
    """The secret as written, and as it would appear URL-encoded or JSON-escaped."""
    found = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             json.dumps(secret)[1:-1]}
    # A fragment long enough to be the secret, not a word: the part after the newline too.
    found.update(part for part in secret.splitlines() if len(part) >= 12)
    return {form.encode() for form in found}


SECRETS = forms(PASSWORD) | forms(TOKEN)


def files_under(paths):
    for top in paths:
        if os.path.isfile(top):
            yield top
        for root, _dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(root, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    yield path


def holds_secret(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024 * 1024)
    except OSError:
        return False
    return any(secret in data for secret in SECRETS)


def world_readable(path):
    """The file, or a directory on the way to it, lets anyone read it."""
    if not os.stat(path).st_mode & 0o004:
        return False
    parent = os.path.dirname(path)
    while parent and parent != "/":
        if not os.stat(parent).st_mode & 0o001:
            return False
        parent = os.path.dirname(parent)
    return True


@pytest.fixture(scope="module")
def secrets_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secrets") / "secrets.json"
    path.write_text(json.dumps({"stackfit_redis_password": PASSWORD, "app_admin_token": TOKEN}))
    path.chmod(0o600)
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    playbook("site.yml", "-e", "@%s" % path)
    yield path
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    playbook("site.yml")


def test_the_stack_works_with_the_awkward_secrets(secrets_file):
    assert get("/api/admin/system/memory", {"Authorization": "Bearer " + TOKEN})[0] == 200
    assert get("/api/admin/system/memory", {"Authorization": "Bearer wrong-" + TOKEN})[0] in (401, 403)
    client = redis.Redis(host="127.0.0.1", port=6379, password=PASSWORD, socket_timeout=5)
    assert client.ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=6379, password="wrong", socket_timeout=5).ping()


def test_check_diff_vvv_prints_no_secret(secrets_file):
    out = playbook("site.yml", "--check", "--diff", "-vvv", "-e", "@%s" % secrets_file, timeout=1800)
    assert recap(out)["changed"] == 0
    text = out.encode()
    hits = [secret for secret in SECRETS if secret in text]
    measured("secrets: --check --diff -vvv printed %d lines, %d secret hits" % (out.count("\n"), len(hits)))
    assert not hits


def test_no_log_holds_a_secret(secrets_file):
    logs = list(files_under(LOGS))
    assert logs  # the services have written their logs
    hits = [path for path in logs if holds_secret(path)]
    measured("secrets: %d log files searched, %d with a secret" % (len(logs), len(hits)))
    assert not hits


def test_the_files_that_hold_a_secret_are_not_world_readable(secrets_file):
    holding = [path for path in files_under(SEARCHED) if holds_secret(path)]
    assert holding  # app.json, redis.conf ... do hold them: the search reads the right places
    readable = [path for path in holding if world_readable(path)]
    measured("secrets: held by %d files (%s), %d world-readable"
             % (len(holding), ", ".join(sorted(holding)), len(readable)))
    assert not readable
