"""The image cache's two tiers (seed 6.1) against a real redis-server and a real directory: what
Redis evicts for room is demoted to disk, a disk hit promotes it back, each tier keeps its quota,
and the report counts the reads each tier answered."""
import os

import pytest

import synspirit_support  # noqa: F401 (puts examples/synspirit on sys.path)
from app import disk_tier, image_cache
from app.config import normalize
from app.memory import image_caches
from synspirit_support import ADMIN_TOKEN, QUOTA, app_config  # noqa: F401 (fixtures)

QUOTAS = {"article": 1000, "post": 500}
TTL = 600


@pytest.fixture
def cold(tmp_path):
    return {"root": str(tmp_path / "cold"), "quota_bytes": {"article": 800}}


def hot_names(r, category):
    return image_cache.usage(r, category)[1]


def test_evicted_images_are_demoted_and_a_cold_hit_promotes(redis_server, cold):
    r = redis_server.client()
    for i in range(6):   # 300 bytes each: Redis holds 3, the three oldest go to disk
        image_cache.put_tiered(r, QUOTAS, TTL, "article", "n%d" % i, bytes([65 + i]) * 300, cold)
    assert hot_names(r, "article") == ["n3", "n4", "n5"]
    # disk quota 800: of the demoted n0, n1, n2, the two newest fit
    assert disk_tier.usage(cold["root"], "article") == (600, 2)
    assert image_cache.get_tiered(r, QUOTAS, TTL, "article", "n0", cold) is None
    # n1 from disk: promoted (n3 demoted for room), and no longer on disk
    assert image_cache.get_tiered(r, QUOTAS, TTL, "article", "n1", cold) == b"B" * 300
    assert hot_names(r, "article") == ["n4", "n5", "n1"]
    assert disk_tier.take(cold["root"], "article", "n1") is None
    assert image_cache.get_tiered(r, QUOTAS, TTL, "article", "n3", cold) == b"D" * 300
    assert image_cache.get_tiered(r, QUOTAS, TTL, "article", "n5", cold) == b"F" * 300
    assert image_cache.reads(r, "article") == {"hot": 1, "cold": 2, "miss": 1}
    total, images = disk_tier.usage(cold["root"], "article")
    assert total <= 800 and images == 2
    assert image_cache.usage(r, "article")[0] <= QUOTAS["article"]


def test_a_category_without_a_disk_quota_drops_what_redis_evicts(redis_server, cold):
    r = redis_server.client()
    for i in range(3):
        image_cache.put_tiered(r, QUOTAS, TTL, "post", "p%d" % i, b"p" * 300, cold)
    assert hot_names(r, "post") == ["p2"]
    assert not os.path.exists(os.path.join(cold["root"], "post"))
    assert image_cache.get_tiered(r, QUOTAS, TTL, "post", "p0", cold) is None


def test_the_disk_tier_keeps_its_quota_oldest_demoted_first(tmp_path):
    root = str(tmp_path)
    for name in ("a", "b", "c"):
        assert disk_tier.put(root, 700, "article", name, name.encode() * 300) == (name == "c")
    assert disk_tier.usage(root, "article") == (600, 2)       # a went first
    assert disk_tier.take(root, "article", "a") is None
    assert disk_tier.put(root, 700, "article", "huge", b"h" * 701) == -1
    assert disk_tier.usage(root, "article") == (600, 2)
    names = os.listdir(os.path.join(root, "article"))
    assert all(len(name) == 64 for name in names)              # hashes, never the names
    assert disk_tier.put(root, 700, "article", "../../etc/x", b"x") == 0
    assert sorted(os.listdir(root)) == ["article"]
    assert len(os.listdir(os.path.join(root, "article"))) == 3
    assert disk_tier.take(root, "article", "../../etc/x") == b"x"


def test_the_report_shows_both_tiers(redis_server, cold):
    r = redis_server.client()
    for i in range(4):
        image_cache.put_tiered(r, QUOTAS, TTL, "article", "n%d" % i, b"z" * 300, cold)
    image_cache.get_tiered(r, QUOTAS, TTL, "article", "n0", cold)    # cold hit
    image_cache.get_tiered(r, QUOTAS, TTL, "article", "n3", cold)    # hot hit
    report = image_caches(r, QUOTAS, cold)
    assert report["article"]["reads"] == {"hot": 1, "cold": 1, "miss": 0}
    assert report["article"]["hit_rate"] == {"hot": 0.5, "cold": 0.5}
    assert report["article"]["disk"] == {"quota_bytes": 800, "bytes": 300, "images": 1}
    assert "disk" not in report["post"]


def test_the_app_serves_a_demoted_image(app_config, tmp_path):  # noqa: F811
    from app import create_app
    config = dict(app_config, image_cache_disk_dir=str(tmp_path / "cold"),
                  image_cache_disk_quota_bytes={"article": 5 * QUOTA})
    client = create_app(config).test_client()
    for i in range(5):
        assert client.put("/api/images/article/i%d" % i, data=b"%d" % i * 400).status_code == 201
    got = client.get("/api/images/article/i0")
    assert got.status_code == 200 and got.data == b"0" * 400
    report = client.get("/api/admin/system/memory",
                        headers={"Authorization": "Bearer " + ADMIN_TOKEN}).get_json()
    article = report["image_caches"]["article"]
    assert article["reads"]["cold"] == 1 and article["disk"]["images"] >= 1


def test_the_cold_tier_settings_are_checked_naming_the_key():
    with pytest.raises(ValueError, match="image_cache_disk_quota_bytes: given without"):
        normalize({"image_cache_disk_quota_bytes": {"article": 10}})
    with pytest.raises(ValueError, match=r"image_cache_disk_quota_bytes: \{'nope': 10\}"):
        normalize({"image_cache_disk_dir": "/tmp/x", "image_cache_disk_quota_bytes": {"nope": 10}})
    with pytest.raises(ValueError, match="image_cache_disk_quota_bytes"):
        normalize({"image_cache_disk_dir": "/tmp/x",
                   "image_cache_disk_quota_bytes": {"article": -1}})
