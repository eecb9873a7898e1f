# Copyright (c) 2018 Ansible Project; stackfit's additions 2026.
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers.podman.podman with pipelining: the module goes to the container's Python on the stdin
of one `podman exec -i`, instead of a temporary directory made, a file copied, made executable, run
and removed (four podman calls a task). The container's filesystem is mounted only when a file is
really copied (template, copy), not at every task. Everything else is the collection's plugin."""
from __future__ import annotations

DOCUMENTATION = """
    author: Tomas Tomecek (@TomasTomecek), stackfit
    name: stackfit_podman
    short_description: containers.podman.podman, with pipelining and the mount made on demand
    description:
        - The containers.podman.podman connection, with C(podman exec -i) so that pipelining works.
    options:
      remote_addr:
        description: The ID of the container you want to access.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: User which is used to execute commands inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description: Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description: Pipe the module to the container's Python instead of copying it there.
        type: boolean
        default: true
        ini:
          - section: connection
            key: pipelining
        env:
          - name: ANSIBLE_PIPELINING
        vars:
          - name: ansible_pipelining
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as Podman


class Connection(Podman):
    transport = "stackfit_podman"
    has_pipelining = True

    def _connect(self):
        # The collection mounts the container's filesystem here, on every task; see _mounted.
        ConnectionBase._connect(self)
        self._connected = True
        return self

    def _mounted(self):
        if self._mount_point is None:
            Podman._connect(self)
        return self

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        argv = ["exec"] + (["-i"] if in_data is not None else [])
        if self.user:
            argv += ["--user", self.user]
        return self._podman(argv, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)

    def put_file(self, in_path, out_path):
        self._mounted()
        return super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mounted()
        return super().fetch_file(in_path, out_path)
