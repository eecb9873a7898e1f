"""app.config: the one JSON file, its defaults and the environment overrides."""
import json

import pytest

import synspirit_support  # noqa: F401 (puts examples/synspirit on sys.path)
from app.config import DEFAULTS, load_config, normalize


def test_missing_file_gives_development_defaults(tmp_path):
    config = load_config(environ={"STACKFIT_CONFIG": str(tmp_path / "absent.json")})
    assert config["environment"] == "development"
    assert config["redis_url"] == "redis://127.0.0.1:6379/0"
    assert config["websockets"] is False
    assert config["image_cache_ttl"] == 86400
    # quota bytes derived from the fractions when the file gives none
    assert config["image_cache_quota_bytes"]["article"] == int(0.20 * DEFAULTS["redis_maxmemory_bytes"])


def test_file_then_environment_overrides(tmp_path):
    path = tmp_path / "app.json"
    path.write_text(json.dumps({
        "environment": "production", "redis_url": "redis://:pw@127.0.0.1:6390/0",
        "gunicorn_workers": "3", "image_cache_quotas": {"article": 0.5},
        "image_cache_quota_bytes": {"article": 1234}, "admin_token": "from-file",
        "websockets": True}))
    config = load_config(environ={"STACKFIT_CONFIG": str(path)})
    assert config["environment"] == "production"
    assert config["gunicorn_workers"] == 3
    assert config["image_cache_quota_bytes"] == {"article": 1234}
    assert config["admin_token"] == "from-file"
    assert config["websockets"] is True

    config = load_config(environ={"STACKFIT_CONFIG": str(path), "REDIS_URL": "redis://127.0.0.1:1/2",
                                  "STACKFIT_ADMIN_TOKEN": "from-env"})
    assert config["redis_url"] == "redis://127.0.0.1:1/2"
    assert config["admin_token"] == "from-env"


def test_rejects_a_cache_without_ttl():
    with pytest.raises(ValueError, match="TTL"):
        normalize({"image_cache_ttl": 0})


def test_rejects_a_non_object(tmp_path):
    path = tmp_path / "app.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_config(environ={"STACKFIT_CONFIG": str(path)})
