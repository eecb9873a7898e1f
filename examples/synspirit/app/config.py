"""The application's configuration: one JSON file rendered by the stackfit role.

The path comes from $STACKFIT_CONFIG (default /etc/stackfit/app.json). A missing file falls back to
development defaults (Redis on 127.0.0.1:6379/0) so the app also runs by hand. $REDIS_URL (the
image cache's Redis), $CELERY_BROKER_URL (Celery's broker and results, when apart from the cache's
database) and $STACKFIT_ADMIN_TOKEN override the file when set.
"""
from __future__ import annotations

import json
import os

from app.image_urls import TRACKING

DEFAULT_PATH = "/etc/stackfit/app.json"
MIB = 1024 * 1024

# The development profile's values (group_vars/development.yml): 100mb of Redis, its quotas.
DEFAULTS = {
    "environment": "development",
    "redis_url": "redis://127.0.0.1:6379/0",
    "broker_url": None,
    "redis_memory_limit": "100mb",
    "redis_maxmemory_bytes": 100 * MIB,
    "gunicorn_workers": 3,
    "celery_concurrency": 20,
    "monitor_interval": 1800,
    "image_cache_quotas": {"article": 0.20, "post": 0.15, "dynamic": 0.10,
                           "profile": 0.05, "cover": 0.05, "general": 0.05},
    "image_cache_quota_bytes": {},
    "image_cache_ttl": 86400,
    "admin_token": "",
    "monitor_report": None,
    "websockets": False,
    # Each web process's Redis pool: at most this many connections (redis-py's
    # BlockingConnectionPool default), waiting up to the timeout (seconds) for a free one.
    "redis_max_connections": 50,
    "redis_pool_timeout": 5,
    # The URL index (app.image_urls): query parameters dropped from an image's URL (a "prefix*"
    # entry drops every name it starts), and CDN host names that stand for another host.
    "image_url_drop_params": None,   # None: image_urls.TRACKING
    "image_host_aliases": {},
    # The cold tier (app.disk_tier): a directory, and each category's byte quota in it; a
    # category without a quota, or no directory, has no cold tier (an evicted image is dropped).
    "image_cache_disk_dir": None,
    "image_cache_disk_quota_bytes": {},
}

INT_KEYS = ("redis_maxmemory_bytes", "gunicorn_workers", "celery_concurrency",
            "monitor_interval", "image_cache_ttl", "redis_max_connections", "redis_pool_timeout")


def read_file(path):
    """The JSON object in `path`, or None if the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError("%s: the configuration must be a JSON object" % path)
    return data


def normalize(raw):
    """Defaults filled in, integers coerced, quota bytes derived where the file gives none."""
    config = dict(DEFAULTS)
    config.update({k: v for k, v in (raw or {}).items() if v is not None})
    for key in INT_KEYS:
        config[key] = int(config[key])
    config["websockets"] = bool(config["websockets"])
    quotas = {str(k): float(v) for k, v in (config["image_cache_quotas"] or {}).items()}
    given = {str(k): int(v) for k, v in (config["image_cache_quota_bytes"] or {}).items()}
    # The role renders both; a hand-written file may give fractions only.
    quota_bytes = {name: int(fraction * config["redis_maxmemory_bytes"])
                   for name, fraction in quotas.items()}
    quota_bytes.update(given)
    config["image_cache_quotas"] = quotas
    config["image_cache_quota_bytes"] = quota_bytes
    if config["image_cache_ttl"] <= 0:
        raise ValueError("image_cache_ttl must be above 0: every cache key needs a TTL")
    for key in ("redis_max_connections", "redis_pool_timeout"):
        if config[key] < 1:
            raise ValueError("%s: %r must be at least 1" % (key, config[key]))
    drop = config["image_url_drop_params"]
    if drop is None:
        drop = TRACKING
    if not isinstance(drop, (list, tuple)) or not all(isinstance(n, str) and n for n in drop):
        raise ValueError("image_url_drop_params: %r must be a list of parameter names" % (drop,))
    config["image_url_drop_params"] = tuple(drop)
    aliases = config["image_host_aliases"]
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in aliases.items()):
        raise ValueError("image_host_aliases: %r must map host names to host names" % (aliases,))
    config["image_host_aliases"] = {k.lower().rstrip("."): v.lower().rstrip(".")
                                    for k, v in aliases.items()}
    disk = config["image_cache_disk_quota_bytes"] or {}
    if not isinstance(disk, dict) or not all(
            k in quota_bytes and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in disk.items()):
        raise ValueError("image_cache_disk_quota_bytes: %r must map image cache categories (%s) "
                         "to bytes" % (disk, ", ".join(sorted(quota_bytes))))
    if disk and not config["image_cache_disk_dir"]:
        raise ValueError("image_cache_disk_quota_bytes: given without image_cache_disk_dir")
    config["image_cache_disk_quota_bytes"] = disk
    return config


def load_config(path=None, environ=None):
    """Read the file named by $STACKFIT_CONFIG, apply the environment overrides, normalize."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("STACKFIT_CONFIG") or DEFAULT_PATH
    raw = read_file(path) or {}
    if environ.get("REDIS_URL"):
        raw["redis_url"] = environ["REDIS_URL"]
    if environ.get("CELERY_BROKER_URL"):
        raw["broker_url"] = environ["CELERY_BROKER_URL"]
    if environ.get("STACKFIT_ADMIN_TOKEN"):
        raw["admin_token"] = environ["STACKFIT_ADMIN_TOKEN"]
    return normalize(raw)
