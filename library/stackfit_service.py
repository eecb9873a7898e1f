#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one way to control a stackfit service, under systemd or from its start script."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_service
short_description: Start, stop, restart or reload a stackfit service under systemd or its start script
description:
  - Controls one service of the stack from its description in the plan (C(stackfit_plan.units.NAME))
    through its unit under systemd, elsewhere through its start script and pidfile, the way
    M(ansible.builtin.service) hands off to the host's service manager.
  - C(started) and C(restarted) return only once the service is ready (it accepts connections on
    its port, its C(workers) child processes stay up, or its log says it is ready) and fail as
    soon as it dies, with the last lines of its own output (the unit's journal, its log files). A pid is trusted only while it is still the
    service (alive, started before its pidfile was written).
  - C(started) and C(stopped) change nothing when the service already is so. Check mode reports
    what would change and does nothing.
options:
  name:
    description: The service's name, for messages (gunicorn, celery, redis, monitor, nginx).
    type: str
    required: true
  unit:
    description:
      - The service's description, normally C(stackfit_plan.units.NAME) (module_utils/stackfit_services.py).
      - Keys used here are C(unit), C(pidfile), C(start), C(stop_signal), C(stop_timeout),
        C(reload_signal), C(host), C(port), C(workers), C(logs), C(ready_log) and C(match); others
        are ignored.
    type: dict
    required: true
  state:
    description: C(reloaded) sends the reload signal to a running service (C(systemctl reload)) and
      starts a stopped one.
    type: str
    choices: [started, stopped, restarted, reloaded]
    default: started
  enabled:
    description: Under systemd, whether the unit starts at boot. Not set, left as it is.
    type: bool
  daemon_reload:
    description: Under systemd, run C(systemctl daemon-reload) first (a unit file changed).
    type: bool
    default: false
  manager:
    description: C(auto) uses systemd where PID 1 is systemd and the start script elsewhere.
    type: str
    choices: [auto, systemd, script]
    default: auto
  timeout:
    description: Seconds a start may take to become ready.
    type: int
    default: 60
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
- name: Run Gunicorn
  stackfit_service:
    name: gunicorn
    unit: "{{ stackfit_plan.units.gunicorn }}"
    enabled: true

- name: Reload Gunicorn (HUP, new workers read the new configuration)
  stackfit_service:
    name: gunicorn
    unit: "{{ stackfit_plan.units.gunicorn }}"
    state: reloaded
"""

RETURN = r"""
pid:
  description: The service's main pid afterwards (null when stopped, or for a timer).
  returned: always
  type: int
manager:
  description: C(systemd) or C(script), what controlled the service.
  returned: always
  type: str
actions:
  description: What was done (or, in check mode, would be), e.g. C([start, enable]).
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackfit_daemon import (
    children_ready, log_sizes, output_of, running_pid, signal_number, stop, wait_ready)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    unit=dict(type="dict", required=True),
    state=dict(type="str", choices=["started", "stopped", "restarted", "reloaded"], default="started"),
    enabled=dict(type="bool"),
    daemon_reload=dict(type="bool", default=False),
    manager=dict(type="str", choices=["auto", "systemd", "script"], default="auto"),
    timeout=dict(type="int", default=60),
)


def _logs(spec):
    """The service's log files: C(logs) is a mapping (out, error, access) or a list."""
    logs = spec.get("logs") or []
    return list(logs.values()) if isinstance(logs, dict) else list(logs)


def detect_manager(proc_root="/proc"):
    """systemd when PID 1 is systemd (and it booted: /run/systemd/system exists), else script."""
    try:
        with open(os.path.join(proc_root, "1", "comm"), encoding="ascii", errors="replace") as handle:
            pid1 = handle.read().strip()
    except OSError:
        pid1 = ""
    return "systemd" if pid1 == "systemd" and os.path.isdir("/run/systemd/system") else "script"


def parse_show(text):
    """`systemctl show -p A,B` output as a dict."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props


class Systemd:
    PROPS = "ActiveState,SubState,MainPID,UnitFileState,LoadState,Result,NRestarts"

    def __init__(self, module, name, unit):
        self.module, self.name, self.spec = module, name, unit
        self.unit = unit.get("unit") or name

    def run(self, *args, check=True):
        rc, out, err = self.module.run_command(["systemctl", *args])
        if check and rc != 0:
            self.fail("systemctl %s failed (%d): %s" % (" ".join(args), rc, (err or out).strip()))
        return rc, out

    def show(self):
        return parse_show(self.run("show", self.unit, "-p", self.PROPS)[1])

    def journal(self, since):
        rc, out, _err = self.module.run_command(
            ["journalctl", "-u", self.unit, "--no-pager", "-o", "cat", "-n", "30",
             "--since", "@%d" % int(since)])
        return out.strip() if rc == 0 else ""

    def output(self, since, log_offsets):
        parts = []
        journal = self.journal(since)
        if journal:
            parts.append("--- journal of %s:\n%s" % (self.unit, journal))
        logs = output_of(_logs(self.spec), log_offsets)
        if logs:
            parts.append(logs)
        return "\n".join(parts)

    def fail(self, msg):
        self.module.fail_json(msg="stackfit_service %s: %s" % (self.name, msg), manager="systemd")

    def active(self, props):
        return props.get("ActiveState") in ("active", "reloading", "activating")

    def wait_ready(self, since, log_offsets, timeout):
        deadline = time.monotonic() + timeout
        while True:
            props = self.show()
            state = props.get("ActiveState")
            if (state == "active" and self._accepts(props) and self._log_ready(since, log_offsets)
                    and children_ready(int(props.get("MainPID") or 0), int(self.spec.get("workers") or 0))):
                return props
            if state in ("failed", "inactive", "deactivating"):
                self.fail("%s is %s (%s) after its start\n%s" % (
                    self.unit, state, props.get("Result", "?"), self.output(since, log_offsets)))
            if time.monotonic() >= deadline:
                self.fail("%s did not become ready in %ss (state %s/%s)\n%s" % (
                    self.unit, timeout, state, props.get("SubState"), self.output(since, log_offsets)))
            time.sleep(0.2)

    def _accepts(self, props):
        port = self.spec.get("port")
        if not port:
            return True
        from ansible.module_utils.stackfit_daemon import port_open
        return port_open(self.spec.get("host") or "127.0.0.1", int(port))

    def _log_ready(self, since, log_offsets):
        marker = self.spec.get("ready_log")
        if not marker:
            return True
        rc, out, _err = self.module.run_command(
            ["journalctl", "-u", self.unit, "--no-pager", "-o", "cat", "--since", "@%d" % int(since)])
        if rc == 0 and marker in out:
            return True
        return any(marker in output_of([path], log_offsets, lines=200) for path in _logs(self.spec))

    def apply(self, state, enabled, daemon_reload, timeout, check_mode):
        if daemon_reload and not check_mode:
            self.run("daemon-reload")
        props = self.show()
        if props.get("LoadState") == "not-found":
            if state == "stopped":
                return False, None, []  # nothing installed, nothing runs
            self.fail("unit %s is not installed" % self.unit)
        changed = False
        actions = []
        running = self.active(props)
        if state == "started" and not running:
            actions.append("start")
        elif state == "stopped" and running:
            actions.append("stop")
        elif state == "restarted":
            actions.append("restart")
        elif state == "reloaded":
            actions.append("reload" if running else "start")
        file_state = props.get("UnitFileState", "")
        if enabled is True and file_state not in ("enabled", "static", "enabled-runtime", "generated"):
            actions.append("enable")
        elif enabled is False and file_state == "enabled":
            actions.append("disable")
        changed = bool(actions)
        if check_mode or not actions:
            return changed, int(props.get("MainPID") or 0) or None, actions
        since = time.time() - 1
        offsets = log_sizes(_logs(self.spec))
        for action in actions:
            rc, _out = self.run(action, self.unit, check=False)
            if rc != 0:
                self.fail("systemctl %s %s failed (%d)\n%s" % (action, self.unit, rc,
                                                               self.output(since, offsets)))
        if any(a in ("start", "restart") for a in actions):
            props = self.wait_ready(since, offsets, timeout)
        else:
            props = self.show()
        return changed, int(props.get("MainPID") or 0) or None, actions


class Script:
    def __init__(self, module, name, unit):
        self.module, self.name, self.spec = module, name, unit
        self.pidfile = unit.get("pidfile")
        self.match = unit.get("match")
        if not self.pidfile:
            self.fail("unit.pidfile is required without systemd")

    def fail(self, msg):
        self.module.fail_json(msg="stackfit_service %s: %s" % (self.name, msg), manager="script")

    def signal(self, key, default):
        try:
            return signal_number(self.spec.get(key) or default)
        except ValueError as exc:
            self.fail("unit.%s: %s" % (key, exc))

    def start(self, timeout):
        argv = self.spec.get("start")
        if not argv:
            self.fail("unit.start (the start script) is required to start it without systemd")
        offsets = log_sizes(_logs(self.spec))
        rc, out, err = self.module.run_command(list(argv))
        if rc != 0:
            self.fail("%s exited %d: %s\n%s" % (
                " ".join(argv), rc, (err or out).strip()[-3000:], output_of(_logs(self.spec), offsets)))
        try:
            pid = wait_ready(self.pidfile, timeout, self.spec.get("host"), self.spec.get("port"),
                             self.match, _logs(self.spec), offsets, int(self.spec.get("workers") or 0))
            marker = self.spec.get("ready_log")
            if marker:
                logs = _logs(self.spec)
                deadline = time.monotonic() + timeout
                while not any(marker in output_of([p], offsets, lines=200) for p in logs):
                    if not running_pid(self.pidfile, self.match):
                        raise RuntimeError("it exited before it was ready\n%s" % output_of(logs, offsets))
                    if time.monotonic() >= deadline:
                        raise RuntimeError("its log does not say %r after %ss\n%s" % (
                            marker, timeout, output_of(logs, offsets)))
                    time.sleep(0.2)
        except RuntimeError as exc:
            self.fail("started by %s, but %s" % (argv[0], exc))
        return pid

    def apply(self, state, timeout, check_mode):
        pid = running_pid(self.pidfile, self.match)
        stop_signal = self.signal("stop_signal", "TERM")
        stop_timeout = int(self.spec.get("stop_timeout") or 60)
        if state == "started" and pid or state == "stopped" and not pid:
            return False, pid, []
        if state == "reloaded" and pid and not self.spec.get("reload_signal"):
            state = "restarted"  # a service without a reload signal restarts to reload
        action = {"started": "start", "stopped": "stop", "restarted": "restart",
                  "reloaded": "reload" if pid else "start"}[state]
        if check_mode:
            return True, pid, [action]
        try:
            if action == "stop":
                stop(self.pidfile, stop_signal, stop_timeout, self.match)
                return True, None, [action]
            if action == "reload":
                os.kill(pid, self.signal("reload_signal", "HUP"))
                return True, pid, [action]
            if action == "restart" and pid:
                stop(self.pidfile, stop_signal, stop_timeout, self.match)
        except OSError as exc:
            self.fail("%s: %s" % (action, exc))
        return True, self.start(timeout), [action]


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    manager = detect_manager() if p["manager"] == "auto" else p["manager"]
    if manager == "systemd":
        controller = Systemd(module, p["name"], p["unit"])
        changed, pid, actions = controller.apply(p["state"], p["enabled"], p["daemon_reload"],
                                                 p["timeout"], module.check_mode)
    else:
        controller = Script(module, p["name"], p["unit"])
        changed, pid, actions = controller.apply(p["state"], p["timeout"], module.check_mode)
    verb = "would " if module.check_mode and actions else ""
    module.exit_json(changed=changed, pid=pid, manager=manager, actions=actions,
                     msg="%s: %s" % (p["name"], (verb + ", ".join(actions)) if actions else "already " + p["state"]))


if __name__ == "__main__":
    main()
