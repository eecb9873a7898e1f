"""Production split over three hosts: each host's plan follows its own limits, Redis on cache1 serves
web1 and worker1 by name with a password that came from a vault-encrypted file.

The default scenario's tests (../../default/tests) run on these hosts too, each checking what its
groups run; these tests look across hosts.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import testinfra
import yaml

import stackfit_testlib as lib

WEB, WORKER, CACHE = "stackfit-prod-web1", "stackfit-prod-worker1", "stackfit-prod-cache1"
# What molecule.yml gives podman run: (CPUs, memory bytes); None = the machine's.
LIMITS = {WEB: (1.0, 1 << 30), WORKER: (2.0, 1500 << 20), CACHE: (None, 2 << 30)}  # podman: m = MiB


def _host(name):
    return testinfra.get_host(f"podman://{name}")


@pytest.fixture(scope="module")
def hosts():
    return {name: _host(name) for name in LIMITS}


@pytest.fixture(scope="module")
def apps(hosts):
    """app.json of the hosts that run the app (web1, worker1): the cache host has none."""
    return {name: lib.app_json(h) for name, h in hosts.items() if lib.app_json(h) is not None}


def _podman_limits(name):
    out = subprocess.run(["podman", "inspect", name, "--format",
                          "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}"],
                         capture_output=True, text=True, check=True, env=os.environ)
    nano, memory = (int(v) for v in out.stdout.split())
    return (nano / 1e9 if nano else None), (memory or None)


@pytest.mark.parametrize("name", list(LIMITS))
def test_each_host_plans_for_its_own_limits(hosts, apps, name):
    """podman's limits are what the container sees, and app.json holds the plan for them."""
    cpus, memory = LIMITS[name]
    got_cpus, got_memory = _podman_limits(name)
    assert got_cpus == cpus and got_memory == memory
    resources = lib.container_resources(hosts[name])
    if cpus is not None:
        assert resources["cpus"] == cpus
    assert resources["memory_limit"] == memory
    assert resources["memory_bytes"] == memory  # the limit, not the machine's memory
    plan = lib.host_plan(hosts[name])
    assert (plan["cpus"], plan["memory_bytes"]) == (resources["cpus"], resources["memory_bytes"])
    assert plan["services"] == [s for s in ("web", "worker", "cache") if s in lib.inventory_groups(hosts[name])] + ["monitor"]
    assert plan["environment"] == "production"
    if name == CACHE:  # the app only where it runs
        assert name not in apps
        return
    app = apps[name]
    assert app["environment"] == "production"
    for key in ("gunicorn_workers", "celery_concurrency", "redis_maxmemory_bytes", "monitor_interval"):
        assert app[key] == plan[key], (key, plan["explain"])


def test_web1_workers_are_the_cpu_rule_capped_by_its_memory(hosts, apps):
    """web1: min(per-CPU factor x CPUs + 1, memory cap) from its own limits (production profile)."""
    cpus, memory = LIMITS[WEB]
    plan = lib.host_plan(hosts[WEB])
    assert "gunicorn_workers = %d: auto" % plan["gunicorn_workers"] in " ".join(plan["explain"])
    budget = int(0.75 * memory)  # the production profile's 75 %
    assert plan["budget_bytes"] == budget
    est = lib.stackfit_sizing.PRELOAD_ESTIMATES
    master, worker = (lib.stackfit_sizing.parse_size(est[k]) for k in ("gunicorn_master", "gunicorn_worker"))
    monitor = lib.stackfit_sizing.parse_size(lib.stackfit_sizing.DEFAULT_ESTIMATES["monitor"])
    cap = (budget - master - monitor) // worker
    base = int(plan["gunicorn_workers_per_cpu"] * cpus + 1)
    assert plan["gunicorn_workers"] == max(1, min(base, cap))
    assert apps[WEB]["gunicorn_workers"] == plan["gunicorn_workers"]
    master_pid = int(hosts[WEB].check_output("systemctl show -p MainPID --value stackfit-gunicorn"))
    assert len(lib.process_children(hosts[WEB], master_pid)) == plan["gunicorn_workers"]


def _password(app):
    return unquote(urlsplit(app["redis_url"]).password or "")


def test_web_and_worker_use_cache1_by_name_with_the_password(hosts, apps):
    cache_password = lib.redis_password(hosts[CACHE])
    assert cache_password and len(cache_password) >= 16
    for name in (WEB, WORKER):
        url = urlsplit(apps[name]["redis_url"])
        assert (url.hostname, url.port) == (CACHE, 6379)
        assert _password(apps[name]) == cache_password
    assert len({apps[n]["admin_token"] for n in (WEB, WORKER)}) == 1


@pytest.mark.parametrize("name", [WEB, WORKER])
def test_redis_on_cache1_answers_with_the_password(hosts, name):
    code = ("import json, redis; url = json.load(open('/etc/stackfit/app.json'))['redis_url'];"
            " print(redis.Redis.from_url(url).ping())")
    out = lib.app_python(hosts[name], code, timeout=30)
    assert out.rc == 0, out.stderr[-1000:]
    assert out.stdout.strip() == "True"


def test_redis_on_cache1_refuses_clients_without_the_password(hosts):
    # A raw RESP PING from web1 to cache1 (web1 has no redis-cli: it is not a cache host).
    code = ("import socket; s = socket.create_connection((%r, 6379), timeout=5);"
            " s.sendall(b'PING\\r\\n'); print(s.recv(200).decode().strip())" % CACHE)
    out = hosts[WEB].run("python3 -c %s", code)
    assert out.rc == 0, out.stderr
    assert out.stdout.startswith("-NOAUTH"), out.stdout
    # and cache1's own redis-cli, without the password
    local = hosts[CACHE].run("redis-cli --no-auth-warning -h 127.0.0.1 PING")
    assert "NOAUTH" in local.stdout + local.stderr


def test_celery_round_trip_from_web1_through_cache1_to_worker1(hosts):
    code = ("from app.tasks import add; r = add.delay(2, 3);"
            " print(r.id, r.get(timeout=30))")
    out = lib.app_python(hosts[WEB], code)
    assert out.rc == 0, out.stderr[-2000:]
    task_id, result = out.stdout.split()[-2:]
    assert result == "5"
    # worker1's Celery ran it (web1 runs no Celery at all).
    assert hosts[WEB].run("systemctl cat stackfit-celery.service").rc != 0
    journal = hosts[WORKER].check_output("journalctl -u stackfit-celery --no-pager -o cat")
    assert task_id in journal


def test_web1_serves_the_network_on_its_bind(hosts):
    """gunicorn_bind 0.0.0.0:5001 in production: worker1 reaches web1's /healthz by name."""
    status, body = lib.http_get(hosts[WORKER], "/healthz", address=WEB)
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_the_secrets_came_from_a_vault_encrypted_file(hosts, apps):
    eph = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    vault = (eph / "vault.yml").read_text()
    assert vault.startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert lib.redis_password(hosts[CACHE]) not in vault
    assert apps[WEB]["admin_token"] not in vault
    # decrypted with the scenario's vault password, it holds exactly what the hosts use
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "view",
                          str(eph / "vault.yml")], capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0, out.stderr
    secrets = yaml.safe_load(out.stdout)
    assert secrets["vault_stackfit_redis_password"] == lib.redis_password(hosts[CACHE])
    assert secrets["vault_stackfit_admin_token"] == apps[WEB]["admin_token"]


@pytest.mark.parametrize("name", list(LIMITS))
def test_the_venv_came_from_the_controllers_wheelhouse(hosts, name):
    host = hosts[name]
    if name == CACHE:  # no app, no virtualenv, no wheelhouse
        assert not host.file("/opt/stackfit/wheelhouse").exists
        return
    houses = host.check_output("ls /opt/stackfit/wheelhouse").split()
    assert len(houses) == 1
    wheels = host.check_output("ls /opt/stackfit/wheelhouse/%s", houses[0]).split()
    assert wheels and all(w.endswith(".whl") for w in wheels)

    def norm(name):  # PEP 503
        return re.sub(r"[-_.]+", "-", name).lower()

    have = {norm(w.split("-")[0]) for w in wheels}
    frozen = host.check_output("/opt/stackfit/current/venv/bin/python -m pip list --format=freeze")
    installed = {norm(line.split("==")[0]) for line in frozen.splitlines() if "==" in line}
    missing = installed - have - {"pip", "setuptools", "wheel"}
    assert not missing, f"installed without a wheel from the wheelhouse: {sorted(missing)}"
