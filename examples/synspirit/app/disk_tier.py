"""The image cache's cold tier: files on disk, each category within its own byte quota (the seed's
future work 6.1: hot data in memory, cold data on disk).

An image the hot tier (Redis, app.image_cache) evicts to make room is demoted here instead of
dropped; a hit here promotes the image back to Redis and removes the file (an image lives in one
tier at a time). Within a category the files demoted longest ago go first (each file's mtime is
its demotion, strictly after every file already there, so coarse clocks never tie). Layout:
``<root>/<category>/<sha256 of the name>`` (names are never used as paths: no traversal, no
length limits), written to a temporary file and renamed, so a reader never sees
half an image. Several workers may share the directory: a file another one removed meanwhile is
a miss, never an error.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time


def _path(root, category, name):
    return os.path.join(root, category, hashlib.sha256(name.encode("utf-8")).hexdigest())


def _files(directory):
    """[(mtime_ns, size, path)] of the category's images, oldest first."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name.startswith("."):
            continue  # a temporary file being written
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        out.append((stat.st_mtime_ns, stat.st_size, entry.path))
    out.sort()
    return out


def usage(root, category):
    """(bytes, images) the category holds on disk."""
    files = _files(os.path.join(root, category))
    return sum(size for _mtime, size, _path_ in files), len(files)


def put(root, quota, category, name, data):
    """Keep ``data`` as category/name, evicting the category's least recently used files until it
    fits; returns the number evicted. An image over the quota alone is not kept (returns -1)."""
    if len(data) > quota:
        return -1
    directory = os.path.join(root, category)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    target = _path(root, category, name)
    files = [f for f in _files(directory) if f[2] != target]
    total = sum(size for _mtime, size, _p in files)
    evicted = 0
    for _mtime, size, path in files:
        if total + len(data) <= quota:
            break
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        total -= size
        evicted += 1
    stamp = max([time.time_ns()] + [mtime + 1 for mtime, _size, _p in files])
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.utime(tmp, ns=(stamp, stamp))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return evicted


def take(root, category, name):
    """The image's bytes, removed from disk (it is being promoted), or None."""
    path = _path(root, category, name)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        os.unlink(path)
    except FileNotFoundError:
        return None
    return data
