#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Background services without a service manager: pidfiles, launching, signals, readiness.

stackfit's one pidfile implementation. Used three ways, always this file:
- by the ``stackfit_service`` module (Ansible ships it as module_utils);
- on hosts without systemd as ``/opt/stackfit/bin/stackfit-daemon``, the program that the start
  scripts and stop.sh call (``stackfit-daemon launch|stop|status ...``);
- by the memory monitor, which reads the same pidfiles.

A pid in a pidfile is trusted only while it is still the service: a live process (not a zombie)
that started no later than the pidfile was written (a pid reused by a later process started
after it) and, when a pattern is given, whose command line contains it.

Standard library only; no Ansible imports.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import signal
import socket
import stat
import subprocess
import sys
import time

# A process may start a moment after its pidfile's mtime (the launcher writes the pid it forked).
START_SLACK_SECONDS = 2.0
# A launched service must stay up this long to count as started (then readiness checks follow).
LAUNCH_CHECK_SECONDS = 1.0
# A worker process counts as booted once it has lived this long (see children_ready).
CHILD_SETTLE_SECONDS = 1.0
TAIL_LINES = 30


def _say(text, stream=None):  # the command line's output (the program on hosts; no module calls it)
    (stream or sys.stdout).write(text + "\n")


def read_pid(pidfile):
    """The pid in ``pidfile`` (its first number), or None when missing or holding no number."""
    try:
        with open(pidfile, encoding="ascii", errors="replace") as handle:
            text = handle.read(64).split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() and int(text[0]) > 0 else None


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def _boot_time():
    with open("/proc/stat", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise OSError("no btime in /proc/stat")


def start_time(pid):
    """When ``pid`` started (seconds since the epoch), or None when it does not exist."""
    try:
        ticks = int(_stat_fields(pid)[19])
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid):
    """The command line of ``pid`` as one string ('' when unreadable)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def is_alive(pid):
    """True when ``pid`` is a live process (a zombie is not alive)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def trusted_pid(pidfile, match=None):
    """(pid, None) when the pidfile names its live service, else (None, why)."""
    pid = read_pid(pidfile)
    if pid is None:
        return None, ("pidfile %s missing" % pidfile if not os.path.exists(pidfile)
                      else "pidfile %s holds no pid" % pidfile)
    if not is_alive(pid):
        return None, "pidfile %s: pid %d is not running (stale pidfile)" % (pidfile, pid)
    try:
        written = os.stat(pidfile).st_mtime
    except OSError:
        return None, "pidfile %s vanished" % pidfile
    started = start_time(pid)
    if started is not None and started > written + START_SLACK_SECONDS:
        return None, ("pidfile %s: pid %d started after the pidfile was written: another process "
                      "reused the pid (stale pidfile)" % (pidfile, pid))
    if match and match not in cmdline(pid):
        return None, ("pidfile %s: pid %d is not %s (%r): another process reused the pid (stale "
                      "pidfile)" % (pidfile, pid, match, cmdline(pid)[:120]))
    return pid, None


def running_pid(pidfile, match=None):
    return trusted_pid(pidfile, match)[0]


def remove_stale(pidfile, match=None):
    """Remove ``pidfile`` when it names no live service; True when it did."""
    pid, _why = trusted_pid(pidfile, match)
    if pid is None and os.path.lexists(pidfile):
        try:
            os.unlink(pidfile)
            return True
        except OSError:
            return False
    return False


def signal_number(name):
    text = str(name).upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(signal, text))
    except AttributeError:
        raise ValueError("unknown signal %r" % text) from None


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


def _log_lines(path, since=0):
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(since, size - 64 * 1024))
            return handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def tail(path, lines=TAIL_LINES, since=0):
    """The last ``lines`` lines of ``path`` (from byte offset ``since``), '' when unreadable."""
    return "\n".join(_log_lines(path, since)[-lines:])


def first_error(lines):
    """The first traceback in ``lines`` up to its exception line (the cause, when a service's last
    lines only say that it gave up: Gunicorn's "Worker failed to boot")."""
    for start, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            for end in range(start + 1, len(lines)):
                if lines[end] and not lines[end][0].isspace() and "Traceback" not in lines[end]:
                    return lines[start:end + 1]
            return lines[start:]
    return []


def log_sizes(paths):
    sizes = {}
    for path in paths:
        try:
            sizes[path] = os.path.getsize(path)
        except OSError:
            sizes[path] = 0
    return sizes


def output_of(paths, since=None, lines=TAIL_LINES):
    """The last lines of each log that has any (since the offsets ``since``), labelled."""
    parts = []
    for path in paths:
        text = _log_lines(path, (since or {}).get(path, 0))
        last = text[-lines:]
        cause = first_error(text)
        if cause and cause[-1] not in last:
            parts.append("--- first error in %s:\n%s" % (path, "\n".join(cause[-lines:])))
        if "".join(last).strip():
            parts.append("--- last lines of %s:\n%s" % (path, "\n".join(last)))
    return "\n".join(parts)


def open_log(path):
    """Open a log for appending without following a symlink (the log directory belongs to the
    service's user; root must not be led to append to another file), and only a regular file."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return os.fdopen(fd, "ab")


def _write_pidfile(pidfile, pid):
    tmp = "%s.%d.tmp" % (pidfile, os.getpid())
    # O_EXCL | O_NOFOLLOW: the run directory may belong to the service's user; never follow a
    # link planted there. The rename then replaces the pidfile itself, never a link's target.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("%d\n" % pid)
    os.replace(tmp, pidfile)


def as_user(user):
    """A preexec function that drops to ``user`` in the child (None when not root or no user)."""
    if not user or os.geteuid() != 0:
        return None
    import pwd
    entry = pwd.getpwnam(user)

    def preexec():
        os.setgid(entry.pw_gid)
        os.initgroups(user, entry.pw_gid)
        os.setuid(entry.pw_uid)
    return preexec


@contextlib.contextmanager
def locked(pidfile):
    """One start or stop of a service at a time, whoever asks (a start script, stop.sh, the
    supervisor, the stackfit_service module): an exclusive flock on ``<pidfile>.lock``, opened
    without following a link (the run directory may be the service user's)."""
    directory = os.path.dirname(pidfile) or "."
    if not os.path.isdir(directory):
        yield
        return
    fd = os.open(pidfile + ".lock", os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def launch(name, pidfile, log, argv, user=None, cwd=None, env=None, match=None,
           check_seconds=LAUNCH_CHECK_SECONDS):
    with locked(pidfile):
        return _launch(name, pidfile, log, argv, user, cwd, env, match, check_seconds)


def _launch(name, pidfile, log, argv, user, cwd, env, match, check_seconds):
    """Start ``argv`` detached (own session, stdin closed, output appended to ``log``), as
    ``user`` when given, and write its pid. A no-op when the pidfile names a live service.

    Returns (pid, started): started is False when it already ran. Raises RuntimeError, with the
    last lines of the log, when it exits within ``check_seconds``; the pidfile is removed then.
    """
    pid = running_pid(pidfile, match)
    if pid:
        return pid, False
    remove_stale(pidfile, match)
    since = log_sizes([log])
    preexec = as_user(user)
    owner = None
    if user and os.geteuid() == 0:
        import pwd
        entry = pwd.getpwnam(user)
        owner = (entry.pw_uid, entry.pw_gid)
    run_dir = os.path.dirname(pidfile)
    if not os.path.isdir(run_dir):  # /run is a tmpfs: gone after a reboot
        os.makedirs(run_dir, 0o755)
        if owner:
            os.chown(run_dir, *owner)
    with open_log(log) as out:
        if owner:  # its log is the service's own (the monitor reads it); by fd, never by path
            os.fchown(out.fileno(), *owner)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, env=env, start_new_session=True, preexec_fn=preexec,
                                close_fds=True)
    _write_pidfile(pidfile, proc.pid)
    deadline = time.monotonic() + check_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        try:
            os.unlink(pidfile)
        except OSError:
            pass
        raise RuntimeError("%s exited at once with status %s\n%s" % (
            name, proc.returncode, output_of([log], since)))
    return proc.pid, True


def stop(pidfile, sig=signal.SIGTERM, timeout=60, match=None):
    """Send ``sig`` to the service, wait up to ``timeout`` s, then SIGKILL; remove the pidfile.

    Returns the pid it stopped, or None when it was not running (a stale pidfile is removed).
    """
    with locked(pidfile):
        return _stop(pidfile, sig, timeout, match)


def _stop(pidfile, sig, timeout, match):
    pid = running_pid(pidfile, match)
    if not pid:
        remove_stale(pidfile, match)
        return None
    os.kill(pid, sig)
    if not wait_until(lambda: not is_alive(pid), timeout):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(pid), 10)
    try:
        if read_pid(pidfile) == pid:
            os.unlink(pidfile)
    except OSError:
        pass
    return pid


def children(pid):
    """The pids whose parent is ``pid`` (live ones: zombies are not counted)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = _stat_fields(int(name))
            except (OSError, IndexError):
                continue
            if fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                found.append(int(name))
    return found


def children_ready(pid, count, settle=CHILD_SETTLE_SECONDS):
    """True once ``pid`` has ``count`` children that all lived ``settle`` seconds (Gunicorn's
    workers: a worker whose app fails to import exits at once, and the master with it)."""
    if not count:
        return True
    kids = children(pid)
    if len(kids) < count:
        return False
    now = time.time()
    return all((start_time(kid) or now) <= now - settle for kid in kids)


def wait_ready(pidfile, timeout, host=None, port=None, match=None, logs=(), since=None, workers=0):
    """Wait until the service accepts connections on ``port`` (or only lives, without a port) and
    has ``workers`` child processes that stay up.

    Raises RuntimeError once the service is gone (a daemon gets 5 s to write its pidfile, no
    waiting out the timeout), or at the timeout, with the last lines of its logs; a dead
    service's pidfile is removed.
    """
    now = time.monotonic()
    deadline, pidfile_grace = now + timeout, now + min(timeout, 5)
    while True:
        pid, why = trusted_pid(pidfile, match)
        if pid is None and time.monotonic() < pidfile_grace:
            time.sleep(0.1)  # a daemon that writes its own pidfile (Redis) may not have yet
            continue
        if pid is None:
            remove_stale(pidfile, match)
            raise RuntimeError("it is not running: %s\n%s" % (why, output_of(logs, since)))
        if (port is None or port_open(host or "127.0.0.1", port)) and children_ready(pid, workers):
            return pid
        if time.monotonic() >= deadline:
            raise RuntimeError("pid %d runs, but %s:%s does not accept connections or its %d workers "
                               "did not boot after %ss\n%s" % (
                                   pid, host or "127.0.0.1", port, workers, timeout,
                                   output_of(logs, since)))
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# stackfit-daemon: the command the start scripts and stop.sh run on hosts without systemd.
# --------------------------------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(prog="stackfit-daemon", description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    launch_p = sub.add_parser("launch", usage="stackfit-daemon launch NAME PIDFILE LOG [options] -- COMMAND...",
                              help="start COMMAND in the background unless it runs")
    run_p = sub.add_parser("run", usage="stackfit-daemon run NAME [options] -- COMMAND...",
                           help="run COMMAND in the foreground as the service would (its user, "
                           "directory and environment); exit with its status")
    stop_p = sub.add_parser("stop", help="stop the service: SIGNAL, then KILL after TIMEOUT s")
    status_p = sub.add_parser("status", help="exit 0 when the service runs")
    for sub_p in (launch_p, run_p, stop_p, status_p):
        sub_p.add_argument("name")
    for sub_p in (launch_p, stop_p, status_p):
        sub_p.add_argument("pidfile")
        sub_p.add_argument("--match", help="a string the service's command line contains")
    launch_p.add_argument("log")
    for sub_p in (launch_p, run_p):
        sub_p.add_argument("--user")
        sub_p.add_argument("--cwd")
        sub_p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
        sub_p.add_argument("--env-file", help="NAME=VALUE lines (systemd EnvironmentFile syntax)")
    stop_p.add_argument("--signal", default="TERM")
    stop_p.add_argument("--timeout", type=float, default=60)
    return parser


def read_env_file(path):
    """NAME=VALUE lines of a systemd EnvironmentFile (comments, blank lines, optional quotes)."""
    env = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip().replace("_", "a").isalnum():
                raise ValueError("%s line %d: not NAME=VALUE" % (path, number))
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
                if line.partition("=")[2].strip()[0] == '"':
                    value = value.replace('\\"', '"').replace("\\\\", "\\")
            env[key.strip()] = value
    return env


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if "--" in argv:  # everything after -- is the service's command line, untouched
        command = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    args = _parser().parse_args(argv)
    if args.command == "status":
        pid, why = trusted_pid(args.pidfile, args.match)
        _say("%s runs (pid %d)" % (args.name, pid) if pid else "%s is not running: %s" % (args.name, why))
        return 0 if pid else 3
    if args.command == "stop":
        try:
            pid = stop(args.pidfile, signal_number(args.signal), args.timeout, args.match)
        except (OSError, ValueError) as exc:
            _say("%s: cannot stop: %s" % (args.name, exc), sys.stderr)
            return 1
        _say("%s stopped (pid %d)" % (args.name, pid) if pid else "%s is not running" % args.name)
        return 0
    if not command:
        _say("stackfit-daemon %s: no command after --" % args.command, sys.stderr)
        return 2
    env = dict(os.environ)
    try:
        if args.env_file:
            env.update(read_env_file(args.env_file))
    except (OSError, ValueError) as exc:
        _say("%s: --env-file: %s" % (args.name, exc), sys.stderr)
        return 2
    for item in args.env:
        key, _equals, value = item.partition("=")
        env[key] = value
    if args.command == "run":
        try:
            return subprocess.run(command, cwd=args.cwd, env=env, preexec_fn=as_user(args.user),
                                  stdin=subprocess.DEVNULL, check=False).returncode
        except (OSError, KeyError) as exc:
            _say("%s: %s" % (args.name, exc), sys.stderr)
            return 127
    try:
        pid, started = launch(args.name, args.pidfile, args.log, command, user=args.user,
                              cwd=args.cwd, env=env, match=args.match)
    except (OSError, RuntimeError, KeyError) as exc:
        _say("%s: %s" % (args.name, exc), sys.stderr)
        return 1
    _say("%s %s (pid %d)" % (args.name, "started" if started else "already runs", pid))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
