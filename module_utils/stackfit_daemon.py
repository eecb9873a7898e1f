# -*- coding: utf-8 -*-
"""Background services without a service manager: a pidfile, a start script, signals.

Used where PID 1 is not systemd (containers, laptops, CI machines). No Ansible imports.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time


def read_pid(pidfile):
    """The pid in ``pidfile``, or None when the file is missing or holds no number."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_alive(pid):
    """True when ``pid`` is a live process (a zombie is not alive)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return True
        return False
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def running_pid(pidfile):
    pid = read_pid(pidfile)
    return pid if is_alive(pid) else None


def signal_number(name):
    name = str(name).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal, name))
    except AttributeError:
        raise ValueError("unknown signal %r" % name) from None


def wait_until(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start(argv, pidfile, timeout, wait_port=None, wait_host="127.0.0.1", env=None):
    """Run the start script (which backgrounds the service and writes the pidfile); wait for it."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                         stdin=subprocess.DEVNULL, check=False)
    if out.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), out.returncode,
                                                 (out.stderr or out.stdout).strip()[-2000:]))
    if not wait_until(lambda: running_pid(pidfile), timeout):
        raise RuntimeError("%s ran, but no live process in %s after %ss" % (argv[0], pidfile, timeout))
    if wait_port and not wait_until(lambda: port_open(wait_host, wait_port), timeout):
        raise RuntimeError("%s started (pid %s) but %s:%s does not accept connections after %ss" % (
            argv[0], running_pid(pidfile), wait_host, wait_port, timeout))
    return running_pid(pidfile)


def stop(pidfile, sig, timeout):
    """Send ``sig`` to the pidfile's process, wait up to ``timeout``, then SIGKILL. True if it ran."""
    pid = running_pid(pidfile)
    if not pid:
        return False
    os.kill(pid, sig)
    if not wait_until(lambda: not is_alive(pid), timeout):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(pid), 10)
    try:
        if read_pid(pidfile) == pid:
            os.unlink(pidfile)
    except OSError:
        pass
    return True
