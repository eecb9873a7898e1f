# -*- coding: utf-8 -*-
"""Detect the CPU and memory a process can really use: affinity, cgroup v1/v2 limits, meminfo.

Pure functions over a ``proc_root`` and a ``cgroup_root`` so tests can point them at a fake tree.
No Ansible imports: plain pytest tests this file.
"""
from __future__ import annotations

import os
import re

# cgroup v1 reports "no limit" as a page-aligned value near 2**63; anything this large is no limit.
V1_UNLIMITED_THRESHOLD = 2 ** 62
V1_CPU_DIRS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")
V1_MEMORY_DIRS = ("memory",)
# The /proc/meminfo fields host_facts uses: each must be "<digits> kB" when present.
MEMINFO_FIELDS = ("MemTotal", "MemAvailable", "MemFree", "SwapTotal")
# A MemTotal over this (2**50 kB = 1 EiB) is no real machine: a corrupt or fake file.
MEMTOTAL_MAX_KB = 2 ** 50


class HostInfoError(ValueError):
    """A host file that is unreadable or malformed: the message names the file and its content."""


def _bad(path, text, expected):
    return HostInfoError("%s: %r is not %s" % (path, text, expected))


def _read(path):
    """The file's stripped text; None when it does not exist (a cgroup without that control).
    Any other failure to read it is a HostInfoError naming the file."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise HostInfoError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise HostInfoError("%s: not ASCII text" % path) from None


def _read_lenient(path):
    """Like _read, but None on any failure: for files whose absence only changes a label."""
    try:
        return _read(path)
    except HostInfoError:
        return None


def _int_of(path, text, expected="an integer"):
    if text is None or not re.fullmatch(r"-?[0-9]+", text):
        raise _bad(path, text, expected)
    return int(text)


def parse_meminfo(text, source="/proc/meminfo"):
    """Return {field: bytes} from /proc/meminfo text (values are in kB).

    The fields host_facts uses (MEMINFO_FIELDS) must read "<digits> kB": anything else fails naming
    ``source`` and the line. Other lines that do not parse are skipped, as before."""
    result = {}
    for line in text.splitlines():
        name, _colon, rest = line.partition(":")
        name = name.strip()
        parts = rest.split()
        if name in MEMINFO_FIELDS and (len(parts) != 2 or not parts[0].isdigit()
                                       or parts[1] != "kB"):
            raise _bad(source, line, "'%s: <digits> kB'" % name)
        if not parts or not parts[0].isdigit():
            continue
        value = int(parts[0])
        if len(parts) > 1 and parts[1].lower() == "kb":
            value *= 1024
        result[name] = value
    return result


def parse_proc_cgroup(text):
    """Return (v1 {controller: path}, v2 path or None) from /proc/<pid>/cgroup text."""
    v1 = {}
    v2 = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hier_id, controllers, path = parts
        if hier_id == "0" and controllers == "":
            v2 = path or "/"
            continue
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path or "/"
    return v1, v2


def parse_cpu_max(text, path="cpu.max"):
    """cgroup v2 cpu.max: "max 100000" -> None, "150000 100000" -> 1.5; None (no file) -> None.

    Anything else (empty, one field, a quota or period <= 0, not integers) is a HostInfoError
    naming ``path`` and the text."""
    if text is None:
        return None
    expected = "'max <period>' or '<quota> <period>' with positive integers"
    parts = text.split()
    if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) <= 0:
        raise _bad(path, text, expected)
    if parts[0] == "max":
        return None
    if not parts[0].isdigit() or int(parts[0]) <= 0:
        raise _bad(path, text, expected)
    return int(parts[0]) / int(parts[1])


def parse_cfs(quota_text, period_text, directory=""):
    """cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us; -1 means no quota, and so does a missing
    quota file. Anything else but positive integers is a HostInfoError naming the file (in
    ``directory``) and the text."""
    quota_path = os.path.join(directory, "cpu.cfs_quota_us")
    period_path = os.path.join(directory, "cpu.cfs_period_us")
    if quota_text is None:
        return None
    quota = _int_of(quota_path, quota_text, "-1 or a positive integer")
    if quota == 0 or quota < -1:
        raise _bad(quota_path, quota_text, "-1 or a positive integer")
    if period_text is None and quota == -1:
        return None
    period = _int_of(period_path, period_text, "a positive integer")
    if period <= 0:
        raise _bad(period_path, period_text, "a positive integer")
    return None if quota == -1 else quota / period


def parse_memory_limit(text, path="memory.max"):
    """cgroup memory limit (v2 memory.max or v1 memory.limit_in_bytes) -> bytes, None = no limit.

    No limit is the literal "max", a v1 value near 2**63, or no file at all; an empty file, a
    negative number or a non-integer is a HostInfoError naming ``path`` and the text."""
    if text is None or text == "max":
        return None
    value = _int_of(path, text, "'max' or a byte count")
    if value < 0:
        raise _bad(path, text, "'max' or a byte count")
    if value >= V1_UNLIMITED_THRESHOLD:
        return None
    return value


def _ancestors(base, path):
    """Directories from the cgroup's own path up to the mount root, that exist, deepest first."""
    parts = [p for p in path.split("/") if p]
    dirs = []
    for depth in range(len(parts), -1, -1):
        candidate = os.path.join(base, *parts[:depth]) if depth else base
        if os.path.isdir(candidate):
            dirs.append(candidate)
    return dirs


def _binding(dirs, limit_name, usage_name):
    """(limit, working set) of the cgroup whose memory limit binds: the smallest along the path,
    and the usage of that same cgroup (a service's own cgroup under systemd holds only the service; the
    limit that binds it is the container's or the machine's). Without a limit: (None, the own
    cgroup's usage)."""
    limits = [(parse_memory_limit(_read(os.path.join(d, limit_name)), os.path.join(d, limit_name)),
               d) for d in dirs]
    limits = [(limit, d) for limit, d in limits if limit is not None]
    where = min(limits)[1] if limits else (dirs[0] if dirs else None)
    usage_path = os.path.join(where, usage_name) if where else None
    usage = _read(usage_path) if where else None
    if usage is not None:
        usage = _int_of(usage_path, usage, "a byte count")
        if usage < 0:
            raise _bad(usage_path, str(usage), "a byte count")
        # The working set, as the kubelet counts it: usage less the inactive page cache, which the
        # kernel reclaims before it OOM-kills anything.
        stat_path = os.path.join(where, "memory.stat")
        stat = dict(line.split()[:2] for line in (_read(stat_path) or "")
                    .splitlines() if len(line.split()) >= 2)
        key = "total_inactive_file" if "total_inactive_file" in stat else "inactive_file"
        if key in stat and not stat[key].isdigit():
            raise _bad(stat_path, "%s %s" % (key, stat[key]), "'%s <byte count>'" % key)
        usage = max(0, usage - int(stat.get(key, "0")))
    return (min(limits)[0] if limits else None), usage


def _min_limit(values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _v2_root(cgroup_root):
    """A cgroup v2 tree that has controllers enabled: the root itself (pure v2) or unified/ (hybrid)."""
    for base in (cgroup_root, os.path.join(cgroup_root, "unified")):
        controllers = _read(os.path.join(base, "cgroup.controllers"))
        if controllers is not None:
            return base, set(controllers.split())
    return None, set()


def _v1_dir(cgroup_root, names, probe):
    """The mounted v1 hierarchy among ``names`` that has ``probe`` at its root. Checking the file,
    not the directory: a systemd container on a hybrid host shows an empty ``cpu,cpuacct`` beside
    the real ``cpu`` mount."""
    for name in names:
        candidate = os.path.join(cgroup_root, name)
        if os.path.isfile(os.path.join(candidate, probe)):
            return candidate
    return None


def read_cgroup_limits(proc_root="/proc", cgroup_root="/sys/fs/cgroup"):
    """Return {"cgroup_version", "cpu_quota", "memory_limit_bytes", "memory_usage_bytes"}.

    The cgroup comes from <proc_root>/self/cgroup. A limit set on an ancestor cgroup applies too, so
    the smallest limit along the path wins. v1 controllers take precedence over a v2 tree that has no
    cpu/memory controller (a hybrid host), which is what these machines are.
    """
    text = _read(os.path.join(proc_root, "self", "cgroup")) or ""
    v1_paths, v2_path = parse_proc_cgroup(text)
    result = {"cgroup_version": None, "cpu_quota": None,
              "memory_limit_bytes": None, "memory_usage_bytes": None}

    v1_cpu = _v1_dir(cgroup_root, V1_CPU_DIRS, "cpu.cfs_quota_us")
    v1_mem = _v1_dir(cgroup_root, V1_MEMORY_DIRS, "memory.limit_in_bytes")
    v2_base, v2_controllers = _v2_root(cgroup_root)
    use_v1 = bool(("cpu" in v1_paths or "memory" in v1_paths) and (v1_cpu or v1_mem))
    use_v2 = v2_path is not None and v2_base is not None and (
        not use_v1 or {"cpu", "memory"} & v2_controllers)

    if use_v1:
        result["cgroup_version"] = 1
        if v1_cpu and "cpu" in v1_paths:
            quotas = [parse_cfs(_read(os.path.join(d, "cpu.cfs_quota_us")),
                                _read(os.path.join(d, "cpu.cfs_period_us")), d)
                      for d in _ancestors(v1_cpu, v1_paths["cpu"])]
            result["cpu_quota"] = _min_limit(quotas)
        if v1_mem and "memory" in v1_paths:
            result["memory_limit_bytes"], result["memory_usage_bytes"] = _binding(
                _ancestors(v1_mem, v1_paths["memory"]), "memory.limit_in_bytes", "memory.usage_in_bytes")
    elif use_v2:
        result["cgroup_version"] = 2
        dirs = _ancestors(v2_base, v2_path)
        result["cpu_quota"] = _min_limit(parse_cpu_max(_read(os.path.join(d, "cpu.max")),
                                                       os.path.join(d, "cpu.max")) for d in dirs)
        result["memory_limit_bytes"], result["memory_usage_bytes"] = _binding(
            dirs, "memory.max", "memory.current")
    return result


def affinity_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def online_cpus():
    try:
        import psutil  # optional: psutil knows more platforms than os.cpu_count
        return psutil.cpu_count(logical=True) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def missing_packages(names, dpkg_query="dpkg-query"):
    """The Debian packages of ``names`` that are not installed (all of them without dpkg)."""
    names = list(names)
    if not names:
        return []
    import subprocess
    try:
        out = subprocess.run([dpkg_query, "-W", "-f=${Package} ${db:Status-Abbrev}\n", *names],
                             capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return names
    installed = {line.split()[0].split(":")[0] for line in out.stdout.splitlines()
                 if len(line.split()) > 1 and line.split()[1].startswith("ii")}
    return [name for name in names if name not in installed]


def accounts(users, groups):
    """({user: {uid, gid, home, shell} or None}, {group: gid or None}) as this host has them, so
    that roles skip the user and group modules when the accounts already are as they want."""
    import grp
    import pwd
    found_users, found_groups = {}, {}
    for name in users:
        try:
            entry = pwd.getpwnam(name)
            found_users[name] = {"uid": entry.pw_uid, "gid": entry.pw_gid, "home": entry.pw_dir,
                                 "shell": entry.pw_shell}
        except KeyError:
            found_users[name] = None
    for name in groups:
        try:
            found_groups[name] = grp.getgrnam(name).gr_gid
        except KeyError:
            found_groups[name] = None
    return found_users, found_groups


def service_manager(proc_root="/proc"):
    return "systemd" if _read_lenient(os.path.join(proc_root, "1", "comm")) == "systemd" else "none"


def read_nr_open(proc_root="/proc"):
    """The kernel's nr_open (the most open files a process may be allowed), or None when the file
    is not there (not Linux's /proc); unreadable or malformed content fails naming the file."""
    path = os.path.join(proc_root, "sys", "fs", "nr_open")
    text = _read(path)
    if text is None:
        return None
    value = _int_of(path, text, "a whole number of files")
    if value <= 0:
        raise _bad(path, text, "a number of files above 0")
    return value


def host_facts(proc_root="/proc", cgroup_root="/sys/fs/cgroup", affinity=None, cpu_count=None):
    """Everything stackfit_host reports. ``affinity``/``cpu_count`` default to this process's."""
    meminfo_path = os.path.join(proc_root, "meminfo")
    meminfo_text = _read(meminfo_path)
    if meminfo_text is None:
        raise HostInfoError("cannot read %s: it does not exist" % meminfo_path)
    meminfo = parse_meminfo(meminfo_text, meminfo_path)
    if "MemTotal" not in meminfo:
        raise HostInfoError("no MemTotal in %s (content starts %r)" % (
            meminfo_path, meminfo_text[:80]))
    if not 0 < meminfo["MemTotal"] <= MEMTOTAL_MAX_KB * 1024:
        raise _bad(meminfo_path, "MemTotal: %d kB" % (meminfo["MemTotal"] // 1024),
                   "a MemTotal between 1 kB and 2**50 kB")
    cg = read_cgroup_limits(proc_root, cgroup_root)
    affinity = affinity_cpus() if affinity is None else affinity
    cpu_count = online_cpus() if cpu_count is None else cpu_count

    cpus = float(affinity)
    if cg["cpu_quota"] is not None:
        cpus = min(cpus, cg["cpu_quota"])
    cpus = round(cpus, 3)

    total = meminfo["MemTotal"]
    memory = total if cg["memory_limit_bytes"] is None else min(total, cg["memory_limit_bytes"])
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    if cg["memory_limit_bytes"] is not None and cg["memory_usage_bytes"] is not None:
        available = min(available, max(0, cg["memory_limit_bytes"] - cg["memory_usage_bytes"]))
    return {
        "cpus": cpus,
        "cpu_count": int(cpu_count),
        "memory_bytes": int(memory),
        "memory_total_bytes": int(total),
        "memory_available_bytes": int(min(available, memory)),
        "swap_total_bytes": int(meminfo.get("SwapTotal", 0)),
        "cgroup_version": cg["cgroup_version"],
        "cpu_quota": cg["cpu_quota"],
        "memory_limit_bytes": cg["memory_limit_bytes"],
        "service_manager": service_manager(proc_root),
        "nr_open": read_nr_open(proc_root),
    }
