"""Provisioning this machine for the harness: ansible-playbook runs on the dev inventory (the
environment's overrides removed, a bounded wait while another run is going), a configuration's
stop.yml + site.yml, and the provisioning times (site.yml first run and re-runs, plan.yml for N
hypothetical hosts)."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from .common import ANSIBLE_PLAYBOOK, APP_JSON, OVERRIDES, ROOT, log
from .measure import recap, wait_ready


def others_running():
    """Other ansible-playbook runs on the dev inventory (e.g. the e2e tests) that would collide."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["pid"] == me or not any("ansible-playbook" in c for c in cmd[:3]):
            continue
        # Only runs on this machine's dev inventory (the default one) collide; molecule's do not.
        inventory = None
        for i, arg in enumerate(cmd):
            if arg in ("-i", "--inventory", "--inventory-file") and i + 1 < len(cmd):
                inventory = cmd[i + 1]
            elif arg.startswith("--inventory="):
                inventory = arg.split("=", 1)[1]
        if inventory is not None and "inventories/dev" not in inventory:
            continue
        try:
            if me in [p.pid for p in proc.parents()]:
                continue
        except psutil.Error:
            continue
        found.append(proc.info["pid"])
    return found


def wait_quiet(limit=900):
    """Wait (bounded) until no other ansible-playbook runs, so two provisionings do not collide."""
    deadline = time.monotonic() + limit
    warned = False
    while others_running() and time.monotonic() < deadline:
        if not warned:
            log("another ansible-playbook runs (pids %s): waiting" % others_running())
            warned = True
        time.sleep(3)


def playbook(path, inventory="inventories/dev", extra=None, args=(), timeout=1800, retries=2,
             quiet_wait=True):
    """Run a playbook; return (wall seconds, stdout). Retries after a collision."""
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    cmd = [ANSIBLE_PLAYBOOK, str(path), "-i", str(inventory), *args]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    for attempt in range(retries + 1):
        if quiet_wait:
            wait_quiet()
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - start
        if out.returncode == 0:
            return wall, out.stdout
        log("%s failed (attempt %d): %s" % (path, attempt + 1, out.stdout[-1500:] + out.stderr[-800:]))
        time.sleep(5)
    raise RuntimeError("%s failed %d times" % (path, retries + 1))


def provision(extra, fresh=True):
    """stop.yml then site.yml with `extra`: each configuration starts from its start scripts."""
    if fresh:
        playbook("playbooks/stop.yml")
    wall, out = playbook("site.yml", extra=extra or None)
    with open(APP_JSON, encoding="utf-8") as handle:
        app = json.load(handle)
    wait_ready(int(app["gunicorn_workers"]))
    return app, wall


def plan_inventory(directory, count):
    names = ["host%03d.bench.invalid" % i for i in range(1, count + 1)]
    hosts = "".join("        %s:\n" % n for n in names)
    lines = ["---", "all:", "  children:", "    production:", "      hosts:", hosts.rstrip("\n")]
    for group in ("web", "worker", "cache"):
        lines += ["    %s:" % group, "      hosts:", hosts.rstrip("\n")]
    path = Path(directory) / ("plan-%d" % count)
    path.mkdir()
    (path / "hosts.yml").write_text("\n".join(lines) + "\n")
    (path / "group_vars").symlink_to(ROOT / "group_vars")
    return path


def measure_provisioning(opts):
    """site.yml first run and no-change re-runs, a one-task playbook, plan.yml for N hosts.
    Ends with the dev stack provisioned (site.yml without extra vars)."""
    result = {}
    reps = 1 if opts.smoke else 3
    with tempfile.TemporaryDirectory(prefix="stackfit-bench-") as tmp:
        one = Path(tmp) / "one-task.yml"
        one.write_text("---\n- name: One task\n  hosts: all\n  gather_facts: false\n  tasks:\n"
                       "    - name: Say hello\n      ansible.builtin.debug:\n        msg: hello\n")
        purge = not opts.smoke
        if purge:
            try:
                playbook("playbooks/stop.yml", extra={"stackfit_purge": True}, retries=0)
            except RuntimeError as exc:
                # e.g. userdel refusing while a process of the stack's user still runs
                log("purge failed (%s): first run after a plain stop instead" % exc)
                result["purge_error"] = str(exc)
                purge = False
        playbook("playbooks/stop.yml")
        wall, out = playbook("site.yml")
        result["first"] = {"wall": wall, "changed": recap(out).get("changed"), "purged": purge}
        with open(APP_JSON, encoding="utf-8") as handle:
            wait_ready(int(json.load(handle)["gunicorn_workers"]))
        reruns = [playbook("site.yml") for _ in range(reps)]
        result["rerun"] = {"wall": statistics.median(w for w, _ in reruns),
                           "changed": max(recap(o).get("changed", -1) for _, o in reruns)}
        result["one_task"] = {"wall": statistics.median(playbook(one)[0] for _ in range(reps))}
        result["plan"] = {}
        for count in opts.plan_hosts:
            # plan.yml and the one-task playbook over the same inventory, one after the other.
            inv = plan_inventory(tmp, count)
            walls, ones = [], []
            for _ in range(1 if count >= 100 or opts.smoke else reps):
                wall, out = playbook("playbooks/plan.yml", inventory=inv, quiet_wait=False,
                                     extra={"stackfit_assume_cpus": 8, "stackfit_assume_memory": "16gb"})
                planned = len(re.findall(r"^\s*host\d+\.bench\.invalid \(production, assumed host\)", out, re.M))
                if planned != count:
                    raise RuntimeError("plan.yml printed %d plans for %d hosts" % (planned, count))
                walls.append(wall)
                ones.append(playbook(one, inventory=inv, quiet_wait=False)[0])
            result["plan"][count] = {"wall": statistics.median(walls), "one_task": statistics.median(ones)}
    return result
