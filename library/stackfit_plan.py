#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the action stackfit_plan (roles/stackfit/action_plugins/stackfit_plan.py): it
runs on the controller, in Ansible's own process; this file only documents it."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_plan
short_description: Plan one host, or every host of a play in one step, on the controller
description:
  - Reads each host's variables (C(stackfit_*), its profile group, C(stackfit_host) from
    C(stackfit_host_facts) or the hypothetical host given by C(stackfit_assume_cpus) and
    C(stackfit_assume_memory)), refuses an unknown variable, checks the values against the options
    of C(stackfit_sizing) and computes the plan C(stackfit_sizing) computes, in Ansible's own
    process; no module is sent anywhere and no host is contacted.
  - Without O(hosts) it plans the host running the task and sets C(ansible_facts.stackfit_plan)
    (and C(stackfit_host) for a hypothetical host). With O(hosts) (a C(run_once) task) it plans
    every host named and returns their plans in C(plans), one step for the play instead of one
    module call per host.
  - A host that cannot be planned fails the task with a message naming the host, the option and
    the value; with O(hosts), every such host is named.
options:
  hosts:
    description: The hosts to plan (normally C(ansible_play_hosts) in a C(run_once) task).
    type: list
    elements: str
  show:
    description: Return each plan's text in C(msg) (the value, the rule that gave it, every cap).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
author: stackfit developers (@stackfit)
"""

EXAMPLES = r"""
- name: Compute the plan of this host
  stackfit_plan:

- name: Plan every host of the play and print the plans
  stackfit_plan:
    hosts: "{{ ansible_play_hosts }}"
    show: true
  run_once: true
"""

RETURN = r"""
plans:
  description: With O(hosts), each host's plan (what C(stackfit_sizing) returns as stackfit_plan).
  returned: with O(hosts), unless O(show) is true (the text only, then)
  type: dict
errors:
  description: The hosts that cannot be planned, each with its error.
  returned: failure
  type: dict
msg:
  description: The plans' text (a list with O(hosts)), or the error.
  returned: when O(show) is true, or on failure
  type: raw
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    hosts=dict(type="list", elements="str"),
    show=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="stackfit_plan is an action: it runs on the controller, not as a module on a host")


if __name__ == "__main__":
    main()
