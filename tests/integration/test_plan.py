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


def fleet(tmp_path, host_vars=""):
    """Three hypothetical production web hosts; host_vars goes under b.example."""
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    production:\n      hosts:\n        a.example:\n        b.example:%s\n"
        "        c.example:\n    web:\n      hosts:\n        a.example:\n        b.example:\n        c.example:\n"
        % (("\n          " + host_vars) if host_vars else ""))
    (tmp_path / "group_vars").symlink_to(ROOT / "group_vars")
    return str(tmp_path / "hosts.yml")


def test_the_fleet_is_planned_in_one_step_each_host_with_its_own_variables(tmp_path):
    out = playbook("playbooks/plan.yml", "-i", fleet(tmp_path, "stackfit_gunicorn_workers: 4"),
                   "-e", "stackfit_assume_cpus=8", "-e", "stackfit_assume_memory=16gb")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("TASK [stackfit : Plan every host of the play]") == 1
    assert re.findall(r"^ok: \[(\S+)\]", out.stdout.split("Plan every host of the play", 1)[1], re.M) == ["a.example"]
    assert [value(out.stdout, h, "gunicorn_workers") for h in ("a.example", "b.example", "c.example")] == ["9", "4", "9"]


def test_a_bad_value_on_one_host_of_the_fleet_names_that_host(tmp_path):
    out = playbook("playbooks/plan.yml", "-i", fleet(tmp_path, "stackfit_gunicorn_workers: many"),
                   "-e", "stackfit_assume_cpus=8", "-e", "stackfit_assume_memory=16gb")
    assert out.returncode != 0
    text = " ".join(out.stdout.split())
    assert "1 of 3 hosts cannot be planned: b.example: stackfit_sizing: gunicorn_workers" in text
    assert "many" in text and "stackfit_gunicorn_workers" in text


def plans_of(output):
    """Each host's plan text, by host."""
    found = re.findall(r"^\s+(\S+\.example) \((.*?)(?=^\s+\S+\.example \(|^PLAY RECAP)", output, re.M | re.S)
    return {host: re.sub(r" - \|-$", "", " ".join(text.split())) for host, text in found}  # YAML's list marks


def test_the_fleet_planned_as_three_slices_is_the_fleet_planned_at_once(tmp_path):
    """Job slicing (AWX, Automation Controller) runs a playbook on each slice of the hosts, as
    --limit does: each slice's one planning step must plan its hosts as the whole run does."""
    inventory = fleet(tmp_path, "stackfit_gunicorn_workers: 4")
    assume = ("-e", "stackfit_assume_cpus=8", "-e", "stackfit_assume_memory=16gb")
    whole = playbook("playbooks/plan.yml", "-i", inventory, *assume)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    sliced = {}
    for limit in ("a.example", "b.example", "c.example"):
        out = playbook("playbooks/plan.yml", "-i", inventory, "--limit", limit, *assume)
        assert out.returncode == 0, out.stdout + out.stderr
        assert list(plans_of(out.stdout)) == [limit]
        sliced.update(plans_of(out.stdout))
    assert sorted(plans_of(whole.stdout)) == ["a.example", "b.example", "c.example"]
    assert sliced == plans_of(whole.stdout)
