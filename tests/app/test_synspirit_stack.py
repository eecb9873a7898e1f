"""A real gunicorn (gevent workers) and a real celery worker (gevent pool) against a real Redis."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from synspirit_support import ADMIN_TOKEN, APP_DIR, CELERY_LAUNCHER

STARTUP_TIMEOUT = 30


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url, token=None, timeout=5):
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def stop(proc, timeout=15):
    """TERM the process by its PID, wait, KILL as a fallback; then any child it left behind."""
    if proc is None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    gone, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        os.kill(child.pid, signal.SIGKILL)


REDIS_PASSWORD = "redis-pw-5d2e8b-never-printed"


# The production profile's gunicorn: --preload, with gevent's monkey-patch at the top of the config
# file so the master imports the app already patched (docs/benchmarks.md: (b) 112.6 vs (c) 62.4 MiB).
PRELOAD_CONF = "from gevent import monkey\nmonkey.patch_all()\npreload_app = True\n"


@pytest.fixture(params=["plain", "preload"])
def stack(request, redis_factory, tmp_path):
    """gunicorn and celery as the role runs them, against a password-protected Redis."""
    redis_server = redis_factory(password=REDIS_PASSWORD)
    url = "redis://:%s@127.0.0.1:%d/0" % (REDIS_PASSWORD, redis_server.port)
    monitor = tmp_path / "monitor.json"
    monitor.write_text(json.dumps({"status": "ok", "interval": 60}))
    config = tmp_path / "app.json"
    config.write_text(json.dumps({
        "environment": "production", "redis_url": url,
        "redis_memory_limit": "100mb", "redis_maxmemory_bytes": 100 * 1024 * 1024,
        "gunicorn_workers": 2, "celery_concurrency": 5, "monitor_interval": 60,
        "image_cache_quotas": {"article": 0.01}, "image_cache_quota_bytes": {"article": 1048576},
        "admin_token": ADMIN_TOKEN, "monitor_report": str(monitor), "image_cache_ttl": 600}))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "STACKFIT_ADMIN_TOKEN")}
    env["STACKFIT_CONFIG"] = str(config)
    port = free_port()
    web_log = tmp_path / "gunicorn.log"
    worker_log = tmp_path / "celery.log"
    web = worker = None
    web_conf = []
    if request.param == "preload":
        (tmp_path / "gunicorn.conf.py").write_text(PRELOAD_CONF)
        web_conf = ["--config", str(tmp_path / "gunicorn.conf.py")]
    try:
        with open(web_log, "wb") as out:
            web = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", *web_conf,
                 "--worker-class", "gevent", "--workers", "2",
                 "--bind", "127.0.0.1:%d" % port, "--no-control-socket",
                 "--access-logfile", "-", "--error-logfile", "-", "run:app"],
                cwd=APP_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
        with open(worker_log, "wb") as out:
            worker = subprocess.Popen(
                # through the launcher the celery role installs (stackfit-celery), as deployed
                [sys.executable, str(CELERY_LAUNCHER), "-A", "app.celery_utils.celery", "worker",
                 "--pool=gevent", "-c", "5", "-O", "fair", "--prefetch-multiplier=1",
                 "-Q", "celery,updates,ai_generation", "--loglevel=INFO",
                 "--hostname", "synspirit-test-%d@localhost" % port],
                cwd=APP_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
        yield {"base": "http://127.0.0.1:%d" % port, "web": web, "worker": worker,
               "web_log": web_log, "worker_log": worker_log, "env": env,
               "redis": redis_server.client()}
    finally:
        stop(worker)
        stop(web)


# The producer side runs in its own process, configured the way the app is ($STACKFIT_CONFIG):
# a fresh Celery app each time, no broker connection cached across tests.
CLIENT_SCRIPT = """
import json
from app.tasks import add, generate, touch_update
added = add.delay(2, 3)
out = {"add": added.get(timeout=20), "add_id": added.id,
       "generate": generate.delay("a cat").get(timeout=20),
       "touch": touch_update.delay("feed").get(timeout=20)}
print(json.dumps(out))
"""


def run_client(stack):
    done = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT], cwd=APP_DIR, env=stack["env"],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr + stack["worker_log"].read_text()
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gunicorn_and_celery_serve_the_app(stack):
    base = stack["base"]

    def healthy():
        assert stack["web"].poll() is None, stack["web_log"].read_text()
        try:
            return http_get(base + "/healthz", timeout=1) == (200, b'{"status":"ok"}\n')
        except OSError:
            return False

    wait_for(healthy, STARTUP_TIMEOUT, "gunicorn /healthz")
    # A worker may answer before its sibling has booted (the preloaded master forks one by one).
    master = psutil.Process(stack["web"].pid)
    wait_for(lambda: len(master.children()) == 2, STARTUP_TIMEOUT, "two gunicorn workers")
    assert http_get(base + "/readyz")[0] == 200
    assert http_get(base + "/api/work")[0] == 200

    assert http_get(base + "/api/admin/system/memory")[0] == 401
    assert http_get(base + "/api/admin/system/memory", token="wrong-" + ADMIN_TOKEN)[0] == 401
    status, body = http_get(base + "/api/admin/system/memory", token=ADMIN_TOKEN)
    assert status == 200
    report = json.loads(body)
    pids = {p["pid"] for p in report["processes"]}
    assert stack["web"].pid in pids and len(pids) == 3  # the master and its two workers
    assert all(p["pss"] and p["pss"] > 0 for p in report["processes"])
    assert report["monitor"] == {"status": "ok", "interval": 60}
    assert ADMIN_TOKEN not in body.decode()

    out = run_client(stack)
    assert out["add"] == 5
    assert out["generate"] == "generated: a cat"
    assert out["touch"] > 0 and stack["redis"].ttl("update:feed") > 0
    # task results expire (result_expires): their keys carry a TTL, evictable under volatile-lru
    assert 0 < stack["redis"].ttl("celery-task-meta-" + out["add_id"]) <= 3600

    # Neither the admin token nor the Redis password reached either service's log.
    time.sleep(0.5)
    for log in (stack["web_log"], stack["worker_log"]):
        text = log.read_text()
        assert ADMIN_TOKEN not in text and REDIS_PASSWORD not in text, log


def test_tasks_route_to_their_queues():
    from app.celery_utils import QUEUES, celery
    router = celery.amqp.router
    routed = {name: router.route({}, name)["queue"].name
              for name in ("app.tasks.add", "app.tasks.touch_update", "app.tasks.generate")}
    assert routed == {"app.tasks.add": "celery", "app.tasks.touch_update": "updates",
                      "app.tasks.generate": "ai_generation"}
    assert set(routed.values()) == set(QUEUES)
    assert celery.conf.task_acks_late and celery.conf.worker_prefetch_multiplier == 1
    assert celery.conf.task_soft_time_limit < celery.conf.task_time_limit
    assert celery.conf.broker_transport_options["visibility_timeout"] > celery.conf.task_time_limit
