"""Real apps nobody here wrote, installed from the package index and deployed on this machine (no
systemd) by site.yml with variables only: ihatemoney (Flask + SQLite, no Celery) and Apache
Superset (Flask + SQLite + Celery + Redis). Their pages answer, they write to the data dir, a
pre-start migration runs, Superset's task runs on stackfit's Celery, and a broken release is
refused with the app's own error while the old one keeps serving. Needs root and the package
index (the recipes: what each app needed is in the variables below)."""
from __future__ import annotations

import http.client
import json
import os
import secrets
import sqlite3
import subprocess
import time

import pytest
import yaml

from conftest import measured
from test_dev_stack import RUN, pid, playbook, recap, run_playbook, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")

DATA = "/var/lib/stackfit/data"

IHATEMONEY = {
    "app_package": ["ihatemoney==7.2.1"],
    "app_wsgi": "ihatemoney.wsgi:application",
    "app_celery": "",
    "app_files": {"ihatemoney.cfg": "\n".join([
        'SQLALCHEMY_DATABASE_URI = "sqlite:///{{ stackfit_data_dir }}/ihatemoney.sqlite"',
        'SECRET_KEY = "{{ ihatemoney_secret }}"',
        "SESSION_COOKIE_SECURE = False",
        "ACTIVATE_DEMO_PROJECT = True",
        "ALLOW_PUBLIC_PROJECT_CREATION = True",
        'RATELIMIT_STORAGE_URI = "{{ app_redis_url }}"', ""])},
    "app_env": {"IHATEMONEY_SETTINGS_FILE_PATH": "{{ app_files_dir }}/ihatemoney.cfg"},
    # Its create_app() migrates in every worker; once before the first start avoids their race.
    "app_pre_start": ["ihatemoney db upgrade -d \"$(python -c 'import ihatemoney, os; "
                      "print(os.path.dirname(ihatemoney.__file__))')/migrations\""],
    "app_probe_paths": ["/healthcheck", "/"],
}

SUPERSET_CONFIG = """
import os
DATA = os.environ["STACKFIT_DATA_DIR"]
SQLALCHEMY_DATABASE_URI = "sqlite:///%s/superset.db?check_same_thread=false" % DATA
UPLOAD_FOLDER = DATA + "/uploads/"


class CeleryConfig:
    broker_url = os.environ["CELERY_BROKER_URL"]
    result_backend = os.environ["CELERY_BROKER_URL"]
    imports = ("superset.sql_lab", "superset.tasks.scheduler", "superset.tasks.thumbnails",
               "superset.tasks.cache")
    worker_prefetch_multiplier = 1
    task_acks_late = False


CELERY_CONFIG = CeleryConfig
CACHE_CONFIG = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": os.environ["REDIS_URL"],
                "CACHE_DEFAULT_TIMEOUT": 300, "CACHE_KEY_PREFIX": "superset_"}
DATA_CACHE_CONFIG = dict(CACHE_CONFIG, CACHE_KEY_PREFIX="superset_data_")
RATELIMIT_STORAGE_URI = os.environ["REDIS_URL"]
"""

SUPERSET = {
    "app_package": ["apache-superset==6.1.0"],
    # The app's own pins lose to newer releases of its dependencies: Flask-Caching 2.5 breaks every
    # page, kombu 5.7 needs redis-py 6.1 (superset pins < 6), rich and cachetools are undeclared.
    "app_requirements_extra": ["flask-caching==2.4.1", "celery[redis]==5.6.3", "kombu==5.6.2",
                               "rich", "cachetools"],
    "app_wsgi": "superset.app:create_app()",
    "app_celery": "superset.tasks.celery_app:app",
    "app_files": {"superset_config.py": SUPERSET_CONFIG},
    "app_env": {"SUPERSET_CONFIG_PATH": "{{ app_files_dir }}/superset_config.py",
                "SUPERSET_SECRET_KEY": "{{ superset_secret }}",
                "SUPERSET_HOME": "{{ stackfit_data_dir }}"},
    "app_pre_start": [
        "superset db upgrade",
        "superset fab create-admin --username admin --firstname Ad --lastname Min "
        "--email admin@example.org --password \"$SUPERSET_SECRET_KEY\"",
        "superset init"],
    "app_probe_paths": ["/health", "/login/"],
}


# The apps' secrets, made once for this test run (a second deploy must find nothing to change).
SECRETS = {"ihatemoney_secret": secrets.token_hex(16), "superset_secret": secrets.token_hex(24)}


def deploy(tmp_path, name, app, check=True, **extra):
    values = dict(app, **SECRETS, **extra)
    path = tmp_path / ("%s.yml" % name)
    path.write_text(yaml.safe_dump(values))
    if not check:
        return run_playbook("site.yml", "-e", "@%s" % path, timeout=1800)
    return playbook("site.yml", "-e", "@%s" % path, timeout=1800)


def get(path, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", 5001, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def plan():
    with open("/etc/stackfit/plan.json", encoding="utf-8") as handle:
        return json.load(handle)


def pss_by_service():
    """MiB of PSS per running service of the plan (its pidfile's process tree), after a request."""
    import psutil
    found = {}
    for name, unit in plan()["units"].items():
        if name in ("monitor", "supervisor"):
            continue
        try:
            with open(unit["pidfile"], encoding="ascii") as handle:
                root = psutil.Process(int(handle.read()))
            found[name] = sum(p.memory_full_info().pss for p in [root] + root.children(recursive=True))
        except (OSError, ValueError, psutil.Error):
            continue
    return ", ".join("%s %.0f MiB" % (name, value / 2**20) for name, value in sorted(found.items()))


@pytest.fixture(scope="module", autouse=True)
def from_nothing_and_back():
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")
    yield
    playbook("playbooks/stop.yml", "-e", "stackfit_purge=true")


def test_ihatemoney_from_the_package_index_without_celery(tmp_path):
    started = time.monotonic()
    out = deploy(tmp_path, "ihatemoney", IHATEMONEY)
    measured("ihatemoney first run: %.0f s" % (time.monotonic() - started))
    assert recap(out)["failed"] == 0
    # Services follow the app: no Celery app, so no worker planned, started or watched.
    assert "worker" not in plan()["services"] and "celery" not in plan()["units"]
    assert any("worker: not planned: the app has no Celery app" in line for line in plan()["explain"])
    assert not os.path.exists(os.path.join(RUN, "celery.pid"))
    assert get("/healthcheck")[0] == 200
    # The pre-start migration ran, as the app's user, into the data dir.
    database = os.path.join(DATA, "ihatemoney.sqlite")
    assert os.stat(database).st_uid == os.stat(DATA).st_uid != 0
    with sqlite3.connect(database) as conn:
        assert conn.execute("select count(*) from alembic_version").fetchone()[0] == 1
    status, body = get("/api/projects", "POST", "name=stackfit&id=stackfit&password=s3cret-pw&"
                       "contact_email=ops@example.org",
                       {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 201, body
    with sqlite3.connect(database) as conn:
        assert conn.execute("select count(*) from project where id = 'stackfit'").fetchone()[0] == 1
    # The app's file and environment: root:stackfit 0640, never world-readable.
    for path in ("/etc/stackfit/app.env", "/etc/stackfit/app/ihatemoney.cfg"):
        info = os.stat(path)
        assert info.st_uid == 0 and info.st_mode & 0o777 == 0o640, path
    assert "IHATEMONEY_SETTINGS_FILE_PATH=" in open("/etc/stackfit/app.env", encoding="utf-8").read()
    measured("ihatemoney PSS after its first requests (%d Gunicorn workers): %s"
             % (plan()["gunicorn_workers"], pss_by_service()))
    # The second run changes nothing.
    assert recap(deploy(tmp_path, "ihatemoney", IHATEMONEY))["changed"] == 0


def test_a_broken_release_is_refused_with_its_own_error_and_the_old_one_serves(tmp_path):
    serving = os.path.realpath("/opt/stackfit/current")
    master = pid("gunicorn")
    started = time.monotonic()
    out = deploy(tmp_path, "broken", dict(IHATEMONEY, app_wsgi="ihatemoney.wsgi:no_such_app"),
                 check=False)
    assert out.returncode != 0
    assert "no_such_app" in out.stdout and "Traceback" in out.stdout  # the app's own error
    measured("broken release refused after %.0f s" % (time.monotonic() - started))
    assert os.path.realpath("/opt/stackfit/current") == serving
    assert pid("gunicorn") == master and get("/healthcheck")[0] == 200


def test_a_worker_class_the_apps_virtualenv_cannot_import_is_refused_and_the_old_release_serves(tmp_path):
    serving = os.path.realpath("/opt/stackfit/current")
    master = pid("gunicorn")
    config = open("/etc/stackfit/gunicorn.conf.py", encoding="utf-8").read()
    # A real class an operator might name: uvicorn's, which ihatemoney's virtualenv does not hold.
    out = deploy(tmp_path, "uvicorn", IHATEMONEY, check=False,
                 stackfit_gunicorn_worker_class="uvicorn.workers.UvicornWorker")
    assert out.returncode != 0
    assert ("stackfit_gunicorn_worker_class=uvicorn.workers.UvicornWorker: not importable in the "
            "app's virtualenv") in out.stdout, out.stdout[-3000:]
    assert "Traceback" not in out.stdout
    assert os.path.realpath("/opt/stackfit/current") == serving
    assert open("/etc/stackfit/gunicorn.conf.py", encoding="utf-8").read() == config
    assert pid("gunicorn") == master and get("/healthcheck")[0] == 200


def test_superset_with_celery_and_redis(tmp_path):
    started = time.monotonic()
    out = deploy(tmp_path, "superset", SUPERSET)
    measured("superset first run: %.0f s" % (time.monotonic() - started))
    assert recap(out)["failed"] == 0
    assert {"web", "worker", "cache"} <= set(plan()["services"])
    # The previous app's release is no longer served; its virtualenv stays for a switch back.
    assert get("/health")[0] == 200 and get("/login/")[0] == 200
    assert os.path.exists(os.path.join(DATA, "superset.db"))
    # A task sent through the app's own Celery app runs on stackfit's worker.
    release = os.path.realpath("/opt/stackfit/current")
    log = "/var/log/stackfit/celery.log"
    before = os.path.getsize(log)
    sent = subprocess.run(
        ["/opt/stackfit/bin/stackfit-daemon", "run", "probe", "--user", "stackfit", "--cwd", release,
         "--env-file", "/etc/stackfit/app.env", "--",
         release + "/venv/bin/celery", "--app=superset.tasks.celery_app:app", "call", "prune_logs",
         "--kwargs", json.dumps({"retention_period_days": 30, "max_rows_per_run": 100})],
        capture_output=True, text=True, timeout=180)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    task_id = sent.stdout.strip().splitlines()[-1]

    def done():
        with open(log, encoding="utf-8", errors="replace") as handle:
            handle.seek(before)
            return any(task_id in line and "succeeded" in line for line in handle)
    assert wait_for(done, 120), task_id
    measured("superset PSS after a task and its first requests (%d Gunicorn workers, Celery -c %d): %s"
             % (plan()["gunicorn_workers"], plan()["celery_concurrency"], pss_by_service()))
