#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: the CPU and memory this host really offers, cgroup limits included."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_host_facts
short_description: Detect the CPUs and memory a host really offers, cgroup limits included
description:
  - Returns C(ansible_facts.stackfit_host) with the CPUs this process can use (affinity mask and
    cgroup CPU quota), the memory it can use (MemTotal and the cgroup memory limit), and whether
    systemd is the service manager.
  - Reads cgroup v2 (C(cpu.max), C(memory.max)) and v1 (C(cpu.cfs_quota_us), C(memory.limit_in_bytes))
    along the process's cgroup path; a hybrid host (v1 controllers and an empty v2 tree) reads v1.
  - Changes nothing.
options:
  proc_root:
    description: Where procfs is mounted; tests point it at a fake tree.
    type: path
    default: /proc
  cgroup_root:
    description: Where the cgroup hierarchy is mounted; tests point it at a fake tree.
    type: path
    default: /sys/fs/cgroup
  packages:
    description: Debian packages to look for; C(packages_missing) lists those not installed, so
      roles can skip the slow apt module when there is nothing to install.
    type: list
    elements: str
    default: []
  users:
    description: Accounts to look up; C(users) returns each one's uid, gid, home and shell, or
      null when there is none (roles skip the user module when it already is as they want).
    type: list
    elements: str
    default: []
  groups:
    description: Groups to look up; C(groups) returns each one's gid, or null when there is none.
    type: list
    elements: str
    default: []
  state_files:
    description:
      - JSON files of stackfit's own state to read in the same round trip, name to path (the plan
        the host runs, its measurements store); C(state) returns each parsed, or null when it is
        missing or unreadable.
    type: dict
    default: {}
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
- name: Detect the host's real resources
  stackfit_host_facts:

- name: Show them
  ansible.builtin.debug:
    msg: "{{ stackfit_host.cpus }} CPUs, {{ stackfit_host.memory_bytes }} bytes"
"""

RETURN = r"""
ansible_facts:
  description: C(stackfit_host) with the keys below.
  returned: always
  type: dict
  contains:
    stackfit_host:
      description: cpus, cpu_count, memory_bytes, memory_total_bytes, memory_available_bytes,
        swap_total_bytes, cgroup_version, cpu_quota, memory_limit_bytes, service_manager,
        nr_open (C(/proc/sys/fs/nr_open), null where there is none), packages_missing, users and
        groups (the O(users) and O(groups) looked up), state (the O(state_files), parsed).
      type: dict
      sample:
        cpus: 1.5
        cpu_count: 2
        memory_bytes: 536870912
        memory_total_bytes: 25276063744
        memory_available_bytes: 500000000
        swap_total_bytes: 0
        cgroup_version: 2
        cpu_quota: 1.5
        memory_limit_bytes: 536870912
        service_manager: systemd
        nr_open: 1048576
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackfit_hostinfo import accounts, host_facts, missing_packages


ARGUMENT_SPEC = dict(
    proc_root=dict(type="path", default="/proc"),
    cgroup_root=dict(type="path", default="/sys/fs/cgroup"),
    packages=dict(type="list", elements="str", default=[]),
    users=dict(type="list", elements="str", default=[]),
    groups=dict(type="list", elements="str", default=[]),
    state_files=dict(type="dict", default={}),
)


def read_json(path):
    """A JSON file's content, or None when missing, unreadable or not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        facts = host_facts(module.params["proc_root"], module.params["cgroup_root"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="stackfit_host_facts: %s" % exc)
    facts["packages_missing"] = missing_packages(module.params["packages"])
    facts["users"], facts["groups"] = accounts(module.params["users"], module.params["groups"])
    facts["state"] = {name: read_json(path) for name, path in module.params["state_files"].items()}
    module.exit_json(changed=False, ansible_facts={"stackfit_host": facts})


if __name__ == "__main__":
    main()
