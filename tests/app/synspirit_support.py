"""Shared by the synspirit tests: the app's directory on sys.path, constants, fixtures.

Not a conftest.py: other test modules do `from conftest import ROOT`, and a second conftest.py
(imported as the top-level module `conftest` in pytest's default import mode) would shadow
tests/conftest.py. Test modules import the fixtures they use from here.
"""
import sys
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "synspirit"
# The launcher's template is Python as it stands: its only Jinja is the shebang, a comment to python.
CELERY_LAUNCHER = Path(__file__).resolve().parents[2] / "roles" / "celery" / "templates" / "stackfit-celery.j2"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

ADMIN_TOKEN = "tok-3f9c1a7e5b-never-printed"
QUOTA = 1000  # bytes for the test category "article"


def redis_url(server):
    return "redis://127.0.0.1:%d/0" % server.port


@pytest.fixture
def app_config(redis_server, tmp_path):
    return {
        "environment": "development",
        "redis_url": redis_url(redis_server),
        "redis_memory_limit": "100mb",
        "redis_maxmemory_bytes": 100 * 1024 * 1024,
        "gunicorn_workers": 2,
        "celery_concurrency": 5,
        "monitor_interval": 60,
        "image_cache_quotas": {"article": 0.0001, "post": 0.0002},
        "image_cache_quota_bytes": {"article": QUOTA, "post": 2 * QUOTA},
        "admin_token": ADMIN_TOKEN,
        "monitor_report": str(tmp_path / "monitor.json"),
        "image_cache_ttl": 600,
    }


@pytest.fixture
def client(app_config):
    from app import create_app
    return create_app(app_config).test_client()
