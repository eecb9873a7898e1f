#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: measure what the running app really uses, under load, into the host's store."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_measure
short_description: Measure the running stack's memory per process under a load test
description:
  - Loads the host's own Gunicorn (GET on O(paths) from O(concurrency) threads for O(seconds),
    127.0.0.1 only) while it samples the PSS of Gunicorn's master and of each worker, and of the
    Celery worker, every half second; with O(celery_probe), it sends that many tasks through the
    app's own Celery app and records the growth per running task.
  - The samples go into the host's measurements store (O(store)), which the memory monitor feeds
    too; stackfit_sizing plans from them (playbooks/measure.yml, then site.yml).
  - Check mode measures nothing and changes nothing.
options:
  units:
    description: The plan's service descriptions (C(stackfit_plan.units)); their pidfiles name the processes.
    type: dict
    required: true
  paths:
    description: Paths to load (the app's probe paths).
    type: list
    elements: str
    default: [/healthz]
  host_header:
    description: A Host header for apps that check it.
    type: str
  concurrency:
    description: Client threads.
    type: int
    default: 20
  seconds:
    description: How long the load runs.
    type: int
    default: 30
  store:
    description: The measurements store.
    type: path
    default: /var/lib/stackfit/monitor/measurements.json
  owner:
    description: User that owns the store (the monitor writes it too).
    type: str
    default: stackfit
  celery_probe:
    description:
      - Send C(count) tasks C(task) with C(args) through the app's Celery app (C(command) runs a
        Python with the app's virtualenv, user and environment, e.g. stackfit-daemon run ... --
        venv/bin/python) and sample Celery while they run.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
author: stackfit developers (@stackfit)
"""

EXAMPLES = r"""
- name: Measure the app under load
  stackfit_measure:
    units: "{{ stackfit_plan.units }}"
    paths: [/healthz, /api/work]
    seconds: 30
"""

RETURN = r"""
load:
  description: Requests ok and failed, req/s, seconds and samples taken.
  returned: success
  type: dict
measured:
  description: Per kind, the samples taken now (count, median and peak bytes).
  returned: success
  type: dict
"""

import json
import os
import pwd
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackfit_daemon import running_pid
from ansible.module_utils.stackfit_loadtest import load
from ansible.module_utils.stackfit_measurements import add, load as load_store, save
from ansible.module_utils.stackfit_measurements import sample_services, tree_pss

ARGUMENT_SPEC = dict(
    units=dict(type="dict", required=True),
    paths=dict(type="list", elements="str", default=["/healthz"]),
    host_header=dict(type="str"),
    concurrency=dict(type="int", default=20),
    seconds=dict(type="int", default=30),
    store=dict(type="path", default="/var/lib/stackfit/monitor/measurements.json"),
    owner=dict(type="str", default="stackfit"),
    celery_probe=dict(type="dict"),
)

PROBE = (
    "import json, sys\n"
    "from celery.app.utils import find_app\n"
    "spec = json.loads(sys.argv[1])\n"
    "app = find_app(spec['app'])\n"
    "for _ in range(int(spec['count'])):\n"
    "    app.send_task(spec['task'], args=spec.get('args', []))\n"
)


def main_pid(unit):
    """The service's main pid: its pidfile (Gunicorn's and Celery's own under systemd too)."""
    return running_pid(unit["pidfile"], unit.get("match")) if unit else None


def unreadable(pid):
    """Why /proc/PID/smaps_rollup gives no PSS."""
    path = "/proc/%d/smaps_rollup" % pid
    try:
        with open(path, "rb") as handle:
            handle.read()
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror or exc)
    return "%s: no Pss line" % path


def summary(values):
    ordered = sorted(values)
    return {"count": len(ordered), "median": ordered[len(ordered) // 2], "peak": ordered[-1]}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    for key in ("concurrency", "seconds"):
        if not 1 <= p[key] <= 3600:
            module.fail_json(msg="stackfit_measure: %s: %r must be 1 to 3600" % (key, p[key]))
    units = p["units"]
    gunicorn = units.get("gunicorn")
    pids = {name: main_pid(units.get(name)) for name in ("gunicorn", "celery")}
    missing = [name for name in ("gunicorn", "celery") if units.get(name) and not pids[name]]
    if missing:
        module.fail_json(msg="stackfit_measure: %s not running: measure the running stack "
                         "(site.yml first)" % ", ".join(missing))
    if module.check_mode:
        module.exit_json(changed=False, msg="would load and measure %s" % ", ".join(
            name for name, pid in pids.items() if pid))
    store, skipped = load_store(p["store"])
    taken = {}

    def sample():
        for kind, values in sample_services(pids, store, "measure").items():
            taken.setdefault(kind, []).extend(values)

    sample()
    if gunicorn:
        result = load(gunicorn.get("host") or "127.0.0.1", int(gunicorn["port"]), p["paths"],
                      p["concurrency"], p["seconds"], host_header=p["host_header"], sample=sample)
    else:
        result = {"ok": 0, "failed": 0, "seconds": 0}
    probe = p["celery_probe"]
    if probe and pids["celery"]:
        idle = min(tree_pss(pids["celery"]) or 0 for _try in range(3))
        sent = subprocess.run(list(probe["command"]) + ["-c", PROBE, json.dumps(probe)],
                              capture_output=True, text=True, timeout=300, check=False)
        if sent.returncode != 0:
            module.fail_json(msg="stackfit_measure: the Celery probe failed: %s" % (
                sent.stderr or sent.stdout)[-3000:])
        peak, deadline = idle, time.monotonic() + float(probe.get("seconds", 20))
        while time.monotonic() < deadline:
            peak = max(peak, tree_pss(pids["celery"]) or 0)
            time.sleep(0.25)
        growth = max(0, peak - idle) // max(1, int(probe["count"]))
        if growth:
            add(store, "celery_task", growth, "measure")
            taken["celery_task"] = [growth]
        result["celery_probe"] = {"idle": idle, "peak": peak, "tasks": int(probe["count"])}
    # A service that runs but gave no sample would leave the plan on its estimates in silence.
    for name, kind in (("gunicorn", "gunicorn_master"), ("celery", "celery_base")):
        if pids[name] and kind not in taken:
            module.fail_json(msg="stackfit_measure: no memory sample of %s (pid %d): %s; nothing "
                             "recorded (reading another user's memory maps needs root with "
                             "CAP_SYS_PTRACE)" % (name, pids[name], unreadable(pids[name])))
    try:
        entry = pwd.getpwnam(p["owner"])
        owner = (entry.pw_uid, entry.pw_gid)
    except KeyError:
        owner = None
    os.makedirs(os.path.dirname(p["store"]), exist_ok=True)
    save(p["store"], store, owner)
    module.exit_json(changed=True, load=result, skipped=skipped,
                     measured={kind: summary(values) for kind, values in taken.items()},
                     msg="measured %s" % ", ".join("%s x%d" % (k, len(v)) for k, v in taken.items()))


if __name__ == "__main__":
    main()
