"""The sample tasks, one per queue. time.sleep is gevent-friendly: the gevent pool patches it."""
from __future__ import annotations

import time

import redis

from app.celery_utils import celery

UPDATE_TTL = 3600
_clients = {}


def redis_client(url):
    """One client per URL per process (the connection pool is shared by the worker's greenlets)."""
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return _clients[url]


@celery.task(name="app.tasks.add")
def add(x, y):
    return x + y


@celery.task(name="app.tasks.touch_update")
def touch_update(key):
    """Record an update time under update:<key>, with a TTL like every non-queue key."""
    now = time.time()
    redis_client(celery.conf.broker_url).set("update:%s" % key, now, ex=UPDATE_TTL)
    return now


@celery.task(name="app.tasks.generate")
def generate(prompt, seconds=0.2):
    """Stand-in for a slow AI call: sleeps (cooperatively under gevent), then answers."""
    time.sleep(min(float(seconds), 10.0))
    return "generated: %s" % prompt
