"""playbooks/plan.yml for real: this machine, a hypothetical fleet, overrides, and profiles reaching
plays inside playbooks/ (a top-level group_vars/ alone would not)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT

BIN = os.path.dirname(sys.executable)
OVERRIDES = ("REDIS_MEMORY_LIMIT", "GUNICORN_WORKERS", "CELERY_CONCURRENCY", "MEMORY_MONITOR_INTERVAL")


def playbook(*args, env=None):
    full_env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    full_env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_FORCE_COLOR="0")
    full_env.update(env or {})
    out = subprocess.run([os.path.join(BIN, "ansible-playbook"), *args], cwd=ROOT, env=full_env,
                         capture_output=True, text=True, timeout=300)
    return out


def value(output, host, key):
    block = output.split(host + " (", 1)[1]
    return re.search(r"^\s+%s\s+(\S+)" % re.escape(key), block, re.M).group(1)


def test_plan_on_this_machine_shows_development_profile():
    out = playbook("playbooks/plan.yml", "-i", "inventories/dev")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "localhost (development)" in out.stdout
    assert value(out.stdout, "localhost", "gunicorn_workers") == "3"
    assert value(out.stdout, "localhost", "celery_concurrency") == "20"
    assert value(out.stdout, "localhost", "redis_maxmemory") == "100mb"
    assert value(out.stdout, "localhost", "monitor_interval") == "1800"
    assert value(out.stdout, "localhost", "image_cache_quota.article") == "0.2"
    assert "changed=0" in out.stdout and "failed=0" in out.stdout


def test_hypothetical_fleet_plans_each_host_for_its_services():
    out = playbook("playbooks/plan.yml", "-i", "inventories/production",
                   "-e", "stackfit_assume_cpus=8", "-e", "stackfit_assume_memory=16gb")
    assert out.returncode == 0, out.stdout + out.stderr
    assert value(out.stdout, "web1.prod.example", "gunicorn_workers") == "9"  # gevent: 8 + 1
    assert value(out.stdout, "web1.prod.example", "celery_concurrency") == "-"
    assert value(out.stdout, "worker1.prod.example", "celery_concurrency") == "1000"
    assert value(out.stdout, "cache1.prod.example", "redis_maxmemory") == "1gb"
    assert value(out.stdout, "web1.prod.example", "monitor_interval") == "600"
    assert "services web, monitor" in out.stdout
    assert "services cache, monitor" in out.stdout
    assert "unreachable=0" in out.stdout


def test_environment_variables_override_the_profile_and_extra_vars_override_them():
    env = {"GUNICORN_WORKERS": "auto", "CELERY_CONCURRENCY": "7", "REDIS_MEMORY_LIMIT": "64mb",
           "MEMORY_MONITOR_INTERVAL": "120"}
    out = playbook("playbooks/plan.yml", "-i", "inventories/dev", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert value(out.stdout, "localhost", "gunicorn_workers") == "3"  # gevent: 1 x 2 CPUs + 1 here
    assert value(out.stdout, "localhost", "celery_concurrency") == "7"
    assert value(out.stdout, "localhost", "redis_maxmemory") == "64mb"
    assert value(out.stdout, "localhost", "monitor_interval") == "120"
    out = playbook("playbooks/plan.yml", "-i", "inventories/dev", "-e", "stackfit_celery_concurrency=9",
                   env=env)
    assert value(out.stdout, "localhost", "celery_concurrency") == "9"


def test_bad_override_fails_with_option_and_value_and_plans_nothing():
    out = playbook("playbooks/plan.yml", "-i", "inventories/dev", env={"GUNICORN_WORKERS": "0"})
    assert out.returncode != 0
    text = " ".join(out.stdout.split()).replace("''", "'")  # undo YAML's folding and quoting
    assert "gunicorn_workers: '0' must be 'auto' or a positive integer" in text
    assert "gunicorn_workers           " not in out.stdout


def test_hypothetical_host_needs_both_cpus_and_memory():
    out = playbook("playbooks/plan.yml", "-i", "inventories/production", "-e", "stackfit_assume_cpus=8")
    assert out.returncode != 0
    text = " ".join(out.stdout.split())  # the message is folded over lines
    assert "stackfit_assume_cpus (8) must be a number of CPUs" in text
    assert "stackfit_assume_memory () a size (16gb): give both" in text


def test_plan_shows_the_monitor_section_adaptive_only_on_production_cache_hosts():
    out = playbook("playbooks/plan.yml", "-i", "inventories/production",
                   "-e", "stackfit_assume_cpus=8", "-e", "stackfit_assume_memory=16gb")
    assert out.returncode == 0, out.stdout + out.stderr
    assert value(out.stdout, "cache1.prod.example", "monitor.adaptive") == "on"
    assert value(out.stdout, "web1.prod.example", "monitor.adaptive") == "off"
    assert value(out.stdout, "worker1.prod.example", "monitor.celery_recycle") != "-"
    assert value(out.stdout, "cache1.prod.example", "monitor.celery_recycle") == "-"
    assert "monitor.adaptive.cooldown_seconds = 1800: min(3 x monitor_interval 600s" in out.stdout
    dev = playbook("playbooks/plan.yml", "-i", "inventories/dev")
    assert value(dev.stdout, "localhost", "monitor.adaptive") == "off"
    assert "monitor.adaptive.enabled = false: monitor_adaptive is false" in dev.stdout


def test_a_monitor_interval_over_a_day_is_refused_naming_it():
    out = playbook("playbooks/plan.yml", "-i", "inventories/dev",
                   env={"MEMORY_MONITOR_INTERVAL": "90000"})
    assert out.returncode != 0
    text = " ".join(out.stdout.split())
    assert "monitor_interval: 90000 is over 86400 seconds (a day)" in text, out.stdout
