"""Collection: system memory, pidfiles, process trees and their PSS, this process's own cost."""
import os
import time

from . import STARTED as _STARTED
from .stackfit_daemon import trusted_pid
from .stackfit_hostinfo import read_cgroup_limits


def system_memory():
    """The memory that binds this stack: the machine's (/proc/meminfo through psutil) or, where a
    cgroup limit is smaller (a container, a slice), that cgroup's limit and usage (the same rules
    as stackfit_host_facts). Under a sandbox that hides /proc/meminfo (ProcSubset=pid) the cgroup
    alone answers; ``source`` says which. A malformed cgroup file is skipped (``cgroup_error``
    says which and why) and the machine's figures stand."""
    out = {"source": "system"}
    try:
        import psutil
        vm, swap = psutil.virtual_memory(), psutil.swap_memory()
        out.update(total=vm.total, available=vm.available, used=vm.used, free=vm.free,
                   percent=vm.percent, swap_total=swap.total, swap_used=swap.used,
                   swap_percent=swap.percent)
    except (OSError, RuntimeError) as exc:
        out.update(total=None, available=None, used=None, free=None, percent=None,
                   swap_total=None, swap_used=None, swap_percent=None,
                   system_error="system memory unreadable: %s" % exc)
    try:
        cgroup = read_cgroup_limits()
    except ValueError as exc:  # a malformed cgroup file (HostInfoError): the machine's figures
        cgroup = {"memory_limit_bytes": None, "memory_usage_bytes": None}
        out["cgroup_error"] = "cgroup limits skipped: %s" % exc
    limit, usage = cgroup["memory_limit_bytes"], cgroup["memory_usage_bytes"]
    if limit and usage is not None and (out["total"] is None or limit < out["total"]):
        out.update(source="cgroup v%s" % cgroup["cgroup_version"], total=limit, used=usage,
                   free=max(0, limit - usage), available=max(0, limit - usage),
                   percent=round(100.0 * usage / limit, 1))
    if out["total"] is None:
        raise OSError(out.get("system_error", "no system memory figures"))
    return out


def read_pidfile(path, match=None):
    """(pid, None) when the pidfile names its live service, else (None, why-down): the stack's one
    pidfile implementation (module_utils/stackfit_daemon.py, a symlink here), which trusts a pid
    only while it is still the service (alive, started before the pidfile was written, and its
    command line holds ``match``)."""
    try:
        return trusted_pid(path, match)
    except OSError as exc:
        return None, "pidfile %s unreadable: %s" % (path, exc.strerror)


def _process_tree(root, children_of):
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children_of.get(pid, ()))
    return sorted(pids)


def _children_map():
    """{ppid: [pid, ...]} for every process, read once per run (children(recursive=True)
    for each service would scan /proc once per service)."""
    import psutil
    children = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children.setdefault(ppid, []).append(proc.pid)
    return children


def measure_tree(pids):
    """Sum PSS/RSS/swap over pids. PSS comes from /proc/<pid>/smaps_rollup via psutil; when it
    is not readable (another user's process without CAP_SYS_PTRACE) RSS is still summed and pss
    is None, with the denied PIDs listed."""
    import psutil
    pss = rss = swap = 0
    alive, denied = [], []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            try:
                full = proc.memory_full_info()
                pss += full.pss
                rss += full.rss
                swap += full.swap
            except psutil.AccessDenied:
                rss += proc.memory_info().rss
                denied.append(pid)
            alive.append(pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            denied.append(pid)
            alive.append(pid)
    out = {"pids": alive, "pss": None if denied else pss, "rss": rss,
           "swap": None if denied else swap}
    if denied:
        out["note"] = ("PSS not readable (access denied to /proc/<pid>/smaps_rollup for PIDs %s); "
                       "pss is null, rss is reported instead (RSS overstates shared memory)"
                       % denied)
    return out


def collect_services(services):
    result = {}
    children = None
    for name, spec in services.items():
        pid, why = read_pidfile(spec["pidfile"], spec.get("match"))
        entry = {"pidfile": spec["pidfile"], "main_pid": pid, "up": False, "pids": [],
                 "pss": None, "rss": None, "swap": None}
        if why:
            entry["reason"] = why
            result[name] = entry
            continue
        if children is None:
            children = _children_map()
        entry.update(measure_tree(_process_tree(pid, children)))
        entry["up"] = bool(entry["pids"])
        if not entry["up"]:
            entry["reason"] = "PID %d exited while being measured" % pid
        result[name] = entry
    return result


def collect_self():
    entry = measure_tree([os.getpid()])
    entry.update({"main_pid": os.getpid(), "up": True})
    return entry


def self_usage():
    """CPU seconds (user + system, resource.getrusage) and peak RSS of this process so far.

    Peak RSS is VmHWM from /proc/self/status: getrusage's ru_maxrss is carried over exec from
    the parent's address space (with vfork/posix_spawn it reports the *parent's* peak, e.g. a
    50 MiB pytest), while VmHWM belongs to this program's own address space.
    """
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = None
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 4),
            "max_rss_bytes": peak if peak is not None else usage.ru_maxrss * 1024,
            "run_seconds": round(time.perf_counter() - _STARTED, 4)}
