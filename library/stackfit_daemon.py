#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: keep a pidfile-managed service started, stopped, restarted or reloaded."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_daemon
short_description: Manage a background service by its start script and pidfile (hosts without systemd)
description:
  - Where PID 1 is not systemd, stackfit runs each service from a start script that backgrounds it
    and writes a pidfile. This module starts it when it is not running, stops it with a signal and
    a timeout, restarts it, or reloads it with a signal.
  - C(started) and C(stopped) change nothing when the service is already so (idempotent). Check
    mode reports what would change and does nothing.
options:
  name:
    description: Service name, for messages.
    type: str
    required: true
  pidfile:
    description: The pidfile the start script writes.
    type: path
    required: true
  start:
    description: The start script and its arguments; it must return once the service runs in the background.
    type: list
    elements: str
  state:
    description: C(reloaded) sends O(reload_signal) to a running service and starts a stopped one.
    type: str
    choices: [started, stopped, restarted, reloaded]
    default: started
  stop_signal:
    description: Signal for a graceful stop (TERM is Celery's warm shutdown, Gunicorn's graceful stop).
    type: str
    default: TERM
  reload_signal:
    description: Signal for a reload (HUP makes Gunicorn re-read its config and replace its workers).
    type: str
    default: HUP
  timeout:
    description: Seconds to wait for a start, or for a stop before SIGKILL.
    type: int
    default: 60
  wait_port:
    description: After a start, wait until this TCP port accepts connections.
    type: int
  wait_host:
    description: Host of O(wait_port).
    type: str
    default: 127.0.0.1
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - O(start) is required unless O(state=stopped).
author: stackfit
"""

EXAMPLES = r"""
- name: Keep Gunicorn running
  stackfit_daemon:
    name: gunicorn
    pidfile: /run/stackfit/gunicorn.pid
    start: [/opt/stackfit/bin/start.sh]
    wait_port: 5001
"""

RETURN = r"""
pid:
  description: The service's pid afterwards (null when stopped).
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackfit_daemon import running_pid, signal_number, start, stop

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    pidfile=dict(type="path", required=True),
    start=dict(type="list", elements="str"),
    state=dict(type="str", choices=["started", "stopped", "restarted", "reloaded"], default="started"),
    stop_signal=dict(type="str", default="TERM"),
    reload_signal=dict(type="str", default="HUP"),
    timeout=dict(type="int", default=60),
    wait_port=dict(type="int"),
    wait_host=dict(type="str", default="127.0.0.1"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "started", ["start"]),
                                        ("state", "restarted", ["start"]),
                                        ("state", "reloaded", ["start"])])
    p = module.params
    try:
        stop_sig = signal_number(p["stop_signal"])
        reload_sig = signal_number(p["reload_signal"])
    except ValueError as exc:
        module.fail_json(msg="stackfit_daemon %s: stop_signal/reload_signal: %s" % (p["name"], exc))
    pid = running_pid(p["pidfile"])
    state = p["state"]
    if state == "started" and pid or state == "stopped" and not pid:
        module.exit_json(changed=False, pid=pid, msg="%s is already %s" % (p["name"], state))
    if module.check_mode:
        module.exit_json(changed=True, pid=pid, msg="%s would be %s" % (p["name"], state))

    def do_start():
        return start(p["start"], p["pidfile"], p["timeout"], p["wait_port"], p["wait_host"])

    try:
        if state == "stopped":
            stop(p["pidfile"], stop_sig, p["timeout"])
            new_pid = None
        elif state == "reloaded" and pid:
            os.kill(pid, reload_sig)
            new_pid = pid
        else:
            if state == "restarted" and pid:
                stop(p["pidfile"], stop_sig, p["timeout"])
            new_pid = do_start()
    except (OSError, RuntimeError, ValueError) as exc:
        module.fail_json(msg="stackfit_daemon %s (%s): %s" % (p["name"], state, exc))
    module.exit_json(changed=True, pid=new_pid, msg="%s %s" % (p["name"], state))


if __name__ == "__main__":
    main()
