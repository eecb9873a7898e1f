"""The monitor role's files as Ansible makes them, on the controller only (nothing is provisioned):
the package packed into one zip by stackfit_package as the role does (its stackfit_common.py
symlink becomes a real file; packing twice gives the same bytes),
the role's variables checked against its argument_specs, the launcher and monitor.json rendered by
Ansible from a hypothetical production fleet's plans, then the rendered launcher run on the copied
package: `check-config` accepts every host's config."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

BIN = os.path.dirname(sys.executable)
HOSTS = ("cache1.prod.example", "web1.prod.example", "worker1.prod.example")

PLAYBOOK = """
- name: Copy the monitor package as the role does
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Pack the monitor package as the role does, twice
      stackfit_package:
        src: {root}/roles/monitor/files/stackfit_monitor
        dest: {out}/pkg/stackfit_monitor.zip
      register: packed
      loop: [1, 2]
    - name: Record what the two packings reported
      ansible.builtin.copy:
        content: "{{{{ packed.results | map(attribute='changed') | list | to_json }}}}"
        dest: {out}/packed.json
        mode: "0644"

- name: Render the monitor's launcher and configuration from each host's plan
  hosts: {hosts}
  gather_facts: false
  roles:
    - role: stackfit
  tasks:
    - name: Load the monitor role's defaults and vars
      ansible.builtin.include_vars:
        file: "{root}/roles/monitor/{{{{ item }}}}/main.yml"
      loop: [defaults, vars]
    - name: Check them against the monitor role's argument_specs, as the role's start does
      ansible.builtin.validate_argument_spec:
        argument_spec: "{{{{ (lookup('ansible.builtin.file', '{root}/roles/monitor/meta/argument_specs.yml')
                             | from_yaml).argument_specs.main.options }}}}"
    - name: Render them as the role does
      ansible.builtin.template:
        src: "{root}/roles/monitor/templates/{{{{ item }}}}.j2"
        dest: "{out}/{{{{ inventory_hostname }}}}-{{{{ item }}}}"
        mode: "0755"
      loop: [stackfit-monitor, monitor.json]
      delegate_to: localhost
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("monitor-install")
    playbook = out / "render.yml"
    playbook.write_text(PLAYBOOK.format(root=ROOT, out=out, hosts=":".join(HOSTS)))
    env = {k: v for k, v in os.environ.items() if k not in (
        "REDIS_MEMORY_LIMIT", "GUNICORN_WORKERS", "CELERY_CONCURRENCY", "MEMORY_MONITOR_INTERVAL")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), str(playbook), "-i", "inventories/production",
         "-e", "stackfit_assume_cpus=8", "-e", "stackfit_assume_memory=16gb",
         "-e", "monitor_python=%s" % sys.executable, "-e", "__monitor_package=%s" % (out / "pkg" / "stackfit_monitor.zip"),
         "-e", "stackfit_state_dir=%s" % (out / "state"),
         "-e", "ansible_python_interpreter=%s" % sys.executable],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_zip_holds_the_package_with_real_files_and_packs_alike_twice(rendered):
    with zipfile.ZipFile(rendered / "pkg" / "stackfit_monitor.zip") as archive:
        names = archive.namelist()
        common = archive.read("stackfit_monitor/stackfit_common.py")
        dates = {info.date_time for info in archive.infolist()}
    expected = sorted("stackfit_monitor/" + p.name for p in
                      (ROOT / "roles" / "monitor" / "files" / "stackfit_monitor").glob("*.py"))
    assert names == expected and len(names) > 10
    assert common == (ROOT / "module_utils" / "stackfit_common.py").read_bytes()
    assert dates == {(1980, 1, 1, 0, 0, 0)}
    # the first packing wrote the zip, the second found the same bytes there
    assert json.loads((rendered / "packed.json").read_text()) == [True, False]


def test_launcher_is_the_venv_python_and_runs_the_package(rendered):
    launcher = rendered / ("%s-stackfit-monitor" % HOSTS[0])
    assert launcher.read_text().splitlines()[0] == "#!%s" % sys.executable
    cmd = [str(launcher)]
    done = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "check-config" in done.stdout and "decide" in done.stdout


@pytest.mark.parametrize("host", HOSTS)
def test_every_hosts_config_passes_check_config(rendered, host):
    launcher = rendered / ("%s-stackfit-monitor" % host)
    config = rendered / ("%s-monitor.json" % host)
    done = subprocess.run([sys.executable, str(launcher), "check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "config %s: ok" % config


def test_configs_carry_the_plans_monitor_numbers(rendered):
    cfg = {host: json.loads((rendered / ("%s-monitor.json" % host)).read_text()) for host in HOSTS}
    cache, web, worker = (cfg[host] for host in HOSTS)
    # adaptive on in production, only on the cache host
    assert cache["adaptive"]["enabled"] is True
    assert web["adaptive"]["enabled"] is False and worker["adaptive"]["enabled"] is False
    gib = 1024 ** 3
    assert (cache["adaptive"]["floor_bytes"], cache["adaptive"]["middle_bytes"],
            cache["adaptive"]["ceiling_bytes"]) == (gib // 2, gib * 3 // 4, gib)
    assert {k: cache["adaptive"][k] for k in ("high_percent", "warn_percent", "low_percent",
                                              "hysteresis_percent", "cooldown_seconds")} == {
        "high_percent": 90, "warn_percent": 80, "low_percent": 50, "hysteresis_percent": 5,
        "cooldown_seconds": 1800}  # min(600 x 3, 1800)
    assert cache["history"] == {"max_bytes": 1048576, "leak_samples": 6,
                                "leak_min_growth_bytes": 8388608}
    # the recycle limit only where a worker runs: its unit's MemoryHigh
    assert cache["celery_recycle"]["pss_limit_bytes"] is None
    assert worker["celery_recycle"]["pss_limit_bytes"] > 0
    assert worker["celery_recycle"]["cooldown_seconds"] == 1800
    assert worker["celery_recycle"]["command"][-1] == "--recycle"
