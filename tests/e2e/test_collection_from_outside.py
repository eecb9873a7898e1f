"""stackfit as a user of the collection gets it: built from this tree, installed with ansible-galaxy
into an empty collections path, and used from a project of the user's own outside this checkout
(its own ansible.cfg and inventory; no library, module_utils or roles_path into the checkout).
After a purge through `stackfit.stackfit.stop`, the whole dev stack comes up through
`stackfit.stackfit.site`, answers as with `make dev`, and a second run changes nothing; README's
playbook for Redis and the monitor alone runs as written; a task calls
`stackfit.stackfit.stackfit_sizing` by its FQCN; a host in no profile group is refused. Needs root
(it provisions this machine) and no systemd as PID 1."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import psutil
import pytest
import redis

from conftest import ROOT
from test_dev_stack import OVERRIDES, get, recap

BIN = os.path.dirname(sys.executable)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")

ANSIBLE_CFG = """[defaults]
collections_path = {collections}
inventory = hosts.yml
vars_plugins_enabled = host_group_vars,stackfit.stackfit.profiles
interpreter_python = /usr/bin/python3
retry_files_enabled = False
"""
INVENTORY = """all:
  children:
    {profile}:
      hosts:
        localhost:
          ansible_connection: local
    web: {{hosts: {{localhost: }}}}
    worker: {{hosts: {{localhost: }}}}
    cache: {{hosts: {{localhost: }}}}
"""
SITE = "- ansible.builtin.import_playbook: stackfit.stackfit.site\n"
PLAN_ONLY = """- name: Plan a hypothetical host with the collection's module
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan
      stackfit.stackfit.stackfit_sizing:
        cpus: 4
        memory_bytes: 8589934592
        services: [web, worker, cache, monitor]
        environment: production
    - name: Write the plan where the test reads it
      ansible.builtin.copy:
        content: "{{ stackfit_plan | to_json }}"
        dest: "{{ plan_file }}"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The user's project: the collection installed into an empty path beside it."""
    base = tmp_path_factory.mktemp("user")
    build = subprocess.run([sys.executable, "-m", "tools.collection.build", str(base / "dist")], cwd=ROOT,
                           capture_output=True, text=True, check=True, timeout=300)
    tarball = build.stdout.strip().splitlines()[-1]
    collections = base / "collections"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", str(collections), tarball],
                   cwd=base, env=environment(base), capture_output=True, text=True, check=True, timeout=300)
    assert (collections / "ansible_collections" / "stackfit" / "stackfit" / "plugins" / "modules").is_dir()
    work = base / "project"
    work.mkdir()
    (work / "ansible.cfg").write_text(ANSIBLE_CFG.format(collections=collections))
    (work / "hosts.yml").write_text(INVENTORY.format(profile="development"))
    (work / "site.yml").write_text(SITE)
    (work / "plan_only.yml").write_text(PLAN_ONLY)
    readme = (ROOT / "README.md").read_text()
    (work / "redis_and_monitor.yml").write_text(
        re.search(r"```yaml\n# redis_and_monitor.yml\n(.*?)```", readme, re.S).group(1))
    (work / "cache_only.yml").write_text(INVENTORY.format(profile="development").split("    web:")[0]
                                         + "    cache: {hosts: {localhost: }}\n")
    yield work
    run(work, "stackfit.stackfit.stop")


def environment(work):
    """This process's environment without the checkout's Ansible settings or the seed's overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k not in OVERRIDES}
    env.update(ANSIBLE_CONFIG=str(work / "ansible.cfg"), ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + env["PATH"])
    return env


def same_pid_namespace(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid) == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def run(work, *args, timeout=1500):
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), *args], cwd=work, env=environment(work),
                          capture_output=True, text=True, timeout=timeout)


def test_the_module_is_called_by_its_fqcn_from_a_project_of_ones_own(project, tmp_path):
    out = run(project, "plan_only.yml", "-e", "plan_file=%s" % (tmp_path / "plan.json"))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    plan = json.loads((tmp_path / "plan.json").read_text())
    # auto on 4 CPUs: gevent workers are async, 1 per CPU + 1; the explain line says so.
    assert plan["gunicorn_workers"] == 5, plan["explain"]
    assert any(line.startswith("gunicorn_workers = 5: auto") for line in plan["explain"]), plan["explain"]


def test_the_dev_stack_comes_up_through_the_collections_site_playbook_and_a_rerun_changes_nothing(project):
    purge = run(project, "stackfit.stackfit.stop", "-e", "stackfit_purge=true")
    assert purge.returncode == 0, purge.stdout[-4000:] + purge.stderr[-2000:]
    assert not os.path.exists("/opt/stackfit/current")
    first = run(project, "site.yml")
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert recap(first.stdout)["failed"] == 0
    # The roles ran from the installed collection (Ansible names them by FQCN), not from this tree.
    assert "TASK [stackfit.stackfit.redis : " in first.stdout and "TASK [redis : " not in first.stdout
    status, body = get("/healthz")
    assert status == 200, body
    plan = json.loads(open("/etc/stackfit/plan.json", encoding="utf-8").read())
    # The development profile reached the user's inventory through the vars plugin: 3 workers, -c 20.
    assert (plan["gunicorn_workers"], plan["celery_concurrency"]) == (3, 20), plan["explain"]
    second = run(project, "site.yml")
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-6000:]


def test_readmes_playbook_runs_redis_and_the_monitor_alone(project):
    out = run(project, "redis_and_monitor.yml", "-i", "cache_only.yml")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    plan = json.loads(open("/etc/stackfit/plan.json", encoding="utf-8").read())
    assert plan["services"] == ["cache", "monitor"], plan["services"]
    assert redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5).ping()
    # Gunicorn and Celery, no longer in the host's plan, were stopped (this host's: not the
    # processes of Molecule's containers, which make test runs beside, in pid namespaces of their own).
    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if same_pid_namespace(p.pid)
                and re.search(r"/opt/stackfit/\S*/(gunicorn|stackfit-celery)\b", " ".join(p.info["cmdline"] or []))]
    again = run(project, "redis_and_monitor.yml", "-i", "cache_only.yml")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-6000:]


def test_a_host_in_no_profile_group_is_refused(project, tmp_path):
    (tmp_path / "ansible.cfg").write_text((project / "ansible.cfg").read_text())
    (tmp_path / "hosts.yml").write_text(INVENTORY.format(profile="staging"))
    out = run(tmp_path, str(project / "site.yml"), "--check")
    assert out.returncode != 0
    assert "must be in exactly one profile group, development or production" in out.stdout, out.stdout[-3000:]
