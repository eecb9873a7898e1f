"""The Celery app: `celery -A app.celery_utils.celery worker` from examples/synspirit.

Broker and result backend are config's broker_url ($CELERY_BROKER_URL), else its redis_url.
Queue keys have no TTL, so under the stack's `maxmemory-policy volatile-lru` Redis never evicts
them; task results expire (result_expires), so their keys carry a TTL and may be evicted.
"""
from __future__ import annotations

from celery import Celery

from app.config import load_config

QUEUES = ("celery", "updates", "ai_generation")

TASK_ROUTES = {
    "app.tasks.add": {"queue": "celery"},
    "app.tasks.touch_update": {"queue": "updates"},
    "app.tasks.generate": {"queue": "ai_generation"},
}


def celery_settings(config):
    """Celery's settings for a normalized configuration dict."""
    return {
        "broker_url": config.get("broker_url") or config["redis_url"],
        "result_backend": config.get("broker_url") or config["redis_url"],
        "task_default_queue": "celery",
        "task_routes": TASK_ROUTES,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 3600,
        "task_time_limit": 300,
        "task_soft_time_limit": 270,
        # One task at a time per slot, acknowledged after it ran: a killed worker loses nothing.
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        # An unacknowledged task is redelivered after this: keep it above task_time_limit.
        "broker_transport_options": {"visibility_timeout": 3600},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def make_celery(config):
    app = Celery("synspirit", include=["app.tasks"])
    app.conf.update(celery_settings(config))
    app.conf.stackfit = config
    return app


celery = make_celery(load_config())
