"""The seed's memory report: the host, Redis, this service's process tree, the monitor's report."""
from __future__ import annotations

import json
import os

import psutil

from app import disk_tier, image_cache

REDIS_FIELDS = ("used_memory", "used_memory_human", "maxmemory", "maxmemory_human",
                "mem_fragmentation_ratio", "maxmemory_policy")


def system_memory():
    vm = psutil.virtual_memory()
    return {"total": vm.total, "available": vm.available, "used": vm.used, "percent": vm.percent}


def redis_memory(info):
    """The fields of INFO memory the report shows, with used_percent of maxmemory (None if 0)."""
    out = {key: info.get(key) for key in REDIS_FIELDS}
    used, limit = info.get("used_memory"), info.get("maxmemory")
    out["used_percent"] = round(100.0 * used / limit, 2) if used is not None and limit else None
    return out


def service_root(proc=None):
    """The gunicorn master if this process is one of its workers, else this process."""
    proc = proc or psutil.Process()
    try:
        parent = proc.parent()
        if parent is not None and any("gunicorn" in part for part in parent.cmdline()):
            return parent
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return proc


def process_entry(proc):
    """pid, name, rss and pss (None when /proc/<pid>/smaps_rollup cannot be read)."""
    try:
        name, rss = proc.name(), proc.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    try:
        pss = proc.memory_full_info().pss
    except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
        pss = None
    return {"pid": proc.pid, "name": name, "rss": rss, "pss": pss}


def process_tree(root=None):
    """The master and its workers (or this process and its children)."""
    root = root or service_root()
    try:
        procs = [root] + root.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        procs = [root]
    return [entry for entry in map(process_entry, procs) if entry is not None]


def monitor_report(path):
    """The JSON the memory monitor last wrote, or None if it is missing or not (yet) valid."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def python_process():
    """The seed's `python_process`: this worker's memory_info (RSS, VMS in bytes) and cpu_percent
    (since its previous call in this process; the first call says 0.0, as psutil's does)."""
    proc = psutil.Process()
    info = proc.memory_info()
    return {"pid": proc.pid, "memory_info": {"rss": info.rss, "vms": info.vms},
            "cpu_percent": proc.cpu_percent(interval=None)}


def image_caches(redis_client, quota_bytes, cold=None):
    """Per category and tier: the quota, the bytes and images held, the reads each tier answered
    (hit rates), and the bytes the URL index did not store twice."""
    categories = sorted(quota_bytes)
    with redis_client.pipeline(transaction=False) as pipe:  # one round trip
        for category in categories:
            idx, _sizes, totalkey = image_cache.bookkeeping_keys(category)
            pipe.get(totalkey)
            pipe.zcard(idx)
            pipe.get(image_cache.saved_key(category))
            pipe.hgetall(image_cache.stat_key(category))
        replies = pipe.execute()
    out = {}
    for i, category in enumerate(categories):
        used, images, saved, stats = replies[4 * i:4 * i + 4]
        reads = image_cache.reads_of(stats)
        total = sum(reads.values())
        entry = {"quota_bytes": quota_bytes[category], "bytes": int(used or 0),
                 "images": int(images), "saved_bytes": int(saved or 0), "reads": reads,
                 "hit_rate": {tier: round(reads[tier] / total, 4) if total else None
                              for tier in ("hot", "cold")}}
        tier = image_cache.cold_tier(cold, category)
        if tier:
            disk_bytes, disk_images = disk_tier.usage(tier[0], category)
            entry["disk"] = {"quota_bytes": tier[1], "bytes": disk_bytes, "images": disk_images}
        out[category] = entry
    return out


def memory_report(redis_client, monitor_path, quota_bytes=None, cold=None):
    """The seed's fields (system, redis, python_process) and stackfit's: every process of this
    service with its PSS, the image caches, and the monitor's last report (every service's PSS,
    Redis' included)."""
    return {
        "image_caches": image_caches(redis_client, quota_bytes or {}, cold),
        "system": system_memory(),
        "redis": redis_memory(redis_client.info("memory")),
        "python_process": python_process(),
        "processes": process_tree(),
        "monitor": monitor_report(monitor_path),
    }
