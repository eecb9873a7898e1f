"""ihatemoney, a published app nobody here wrote, deployed under systemd with variables only: it
answers, writes to the data dir after its pre-start migration, runs from its own virtualenv with
its own environment file, and no Celery worker exists for an app without Celery."""

import json

import stackfit_testlib as lib

DATA = "/var/lib/stackfit/data"


def test_the_plan_follows_the_app(host):
    plan = lib.host_plan(host)
    assert plan["manager"] == "systemd"
    assert "worker" not in plan["services"] and "celery" not in plan["units"]
    assert any("worker: not planned: the app has no Celery app" in line for line in plan["explain"])
    assert not host.file("/etc/systemd/system/stackfit-celery.service").exists
    monitor = json.loads(host.file("/etc/stackfit/monitor.json").content_string)
    assert "celery" not in monitor["services"]


def test_gunicorn_serves_the_app_under_systemd(host):
    assert host.run("systemctl is-active stackfit-gunicorn.service").stdout.strip() == "active"
    status, body = lib.http_get(host, "/healthcheck")
    assert status == 200 and body.strip() == "OK"
    assert lib.http_get(host, "/")[0] == 200


def test_the_pre_start_migration_ran_into_the_data_dir(host):
    db = host.file(DATA + "/ihatemoney.sqlite")
    assert db.exists and db.user == "stackfit"
    out = host.run("python3 -c %s", "import sqlite3; print(sqlite3.connect('%s/ihatemoney.sqlite')"
                   ".execute('select count(*) from alembic_version').fetchone()[0])" % DATA)
    assert out.stdout.strip() == "1", out.stderr
    release = host.check_output("readlink -f /opt/stackfit/current")
    assert host.file(release + "/.stackfit-pre-start").exists


def test_the_app_writes_through_its_api(host):
    code = ("import urllib.request, urllib.parse\n"
            "data = urllib.parse.urlencode({'name': 'molecule', 'id': 'molecule', "
            "'password': 'molecule-pw', 'contact_email': 'ops@example.org'}).encode()\n"
            "try:\n"
            "    r = urllib.request.urlopen('http://127.0.0.1:5001/api/projects', data, timeout=30)\n"
            "    print(r.status)\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code, e.read()[:200])\n")
    out = host.run("python3 -c %s", code)
    # 201 the first time; 400 ("project already exists") when verify runs again on the instance.
    assert out.stdout.split()[0] in ("201", "400"), out.stdout + out.stderr


def test_the_app_runs_from_its_own_virtualenv_with_its_environment(host):
    pid = host.check_output("systemctl show -p MainPID --value stackfit-gunicorn.service")
    exe = host.file("/proc/%s/cmdline" % pid).content.split(b"\0")[0].decode()
    assert exe.startswith("/opt/stackfit/venvs/"), exe  # the release's own virtualenv
    # The process's own user reads its environment (root in the container lacks ptrace on it).
    environ = host.check_output(
        "runuser -u stackfit -- sh -c %s", "tr '\\0' '\\n' < /proc/%s/environ" % pid).splitlines()
    assert "IHATEMONEY_SETTINGS_FILE_PATH=/etc/stackfit/app/ihatemoney.cfg" in environ
    assert "STACKFIT_DATA_DIR=/var/lib/stackfit/data" in environ
    for path in ("/etc/stackfit/app.env", "/etc/stackfit/app/ihatemoney.cfg"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "stackfit", 0o640), path
    # stackfit's runtime came with the app; the monitor runs apart from it, on the system's Python.
    freeze = host.file(exe.rsplit("/bin/", 1)[0] + "/stackfit-freeze.txt").content_string
    assert "gunicorn==" in freeze and "ihatemoney==7.2.1" in freeze
    assert host.file("/opt/stackfit/bin/stackfit-monitor").content_string.startswith("#!/usr/bin/python3")
