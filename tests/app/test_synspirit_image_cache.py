"""app.image_cache directly against a real redis-server: quotas, eviction order, TTLs."""
import pytest

import synspirit_support  # noqa: F401 (puts examples/synspirit on sys.path)
from app import image_cache

QUOTAS = {"article": 1000, "post": 500}
TTL = 600


def put(r, category, name, size, fill=b"x"):
    return image_cache.put(r, QUOTAS, TTL, category, name, fill * size)


def stored_bytes(r, category):
    return sum(len(r.get(k)) for k in r.keys("img:%s:*" % category))


def assert_every_cache_key_has_a_ttl(r):
    keys = r.keys("img*")
    assert keys
    for key in keys:
        assert r.ttl(key) > 0, key


def test_fill_past_quota_keeps_within_it_oldest_first(redis_server):
    r = redis_server.client()
    sizes = [150, 400, 250, 300, 100, 350, 200, 450, 120, 330]
    for i, size in enumerate(sizes):
        put(r, "article", "n%d" % i, size)
        total, names = image_cache.usage(r, "article")
        assert total == stored_bytes(r, "article") <= QUOTAS["article"]
        # what is left is always a run of the newest names, in insertion order
        assert names == ["n%d" % j for j in range(i - len(names) + 1, i + 1)]
    # the newest images whose sizes fit: 330 + 120 + 450 = 900; adding 200 would be 1100
    assert image_cache.usage(r, "article") == (900, ["n7", "n8", "n9"])
    assert image_cache.get(r, QUOTAS, "article", "n6") is None
    assert image_cache.get(r, QUOTAS, "article", "n9") == b"x" * 330
    assert_every_cache_key_has_a_ttl(r)


def test_categories_are_independent(redis_server):
    r = redis_server.client()
    put(r, "article", "a", 900)
    for i in range(5):
        put(r, "post", "p%d" % i, 200)
    assert image_cache.usage(r, "article") == (900, ["a"])
    assert image_cache.usage(r, "post") == (400, ["p3", "p4"])


def test_replacing_a_name_counts_it_once_and_makes_it_newest(redis_server):
    r = redis_server.client()
    put(r, "article", "a", 400)
    put(r, "article", "b", 400)
    put(r, "article", "a", 500, fill=b"y")
    assert image_cache.usage(r, "article") == (900, ["b", "a"])
    assert put(r, "article", "c", 100) == 0
    assert put(r, "article", "d", 100) == 1  # b, the oldest, goes
    assert image_cache.usage(r, "article") == (700, ["a", "c", "d"])


def test_oversize_is_refused_and_nothing_is_evicted(redis_server):
    r = redis_server.client()
    put(r, "post", "keep", 300)
    with pytest.raises(image_cache.OverQuota):
        put(r, "post", "huge", 501)
    assert image_cache.usage(r, "post") == (300, ["keep"])
    # exactly the quota fits (after evicting the rest)
    assert put(r, "post", "full", 500) == 1
    assert image_cache.usage(r, "post") == (500, ["full"])


def test_unknown_category(redis_server):
    r = redis_server.client()
    with pytest.raises(image_cache.UnknownCategory):
        put(r, "nope", "a", 1)
    with pytest.raises(image_cache.UnknownCategory):
        image_cache.get(r, QUOTAS, "nope", "a")


def test_accounting_heals_after_redis_drops_keys(redis_server):
    r = redis_server.client()
    for name in "abc":
        put(r, "article", name, 300)
    # Redis expired the oldest image and evicted the total behind the cache's back
    r.delete("img:article:a", "imgbytes:article")
    assert put(r, "article", "d", 300) == 0  # "a" was dropped from the index, nothing evicted
    assert image_cache.usage(r, "article") == (900, ["b", "c", "d"])
    assert stored_bytes(r, "article") == 900
    assert_every_cache_key_has_a_ttl(r)


def test_volatile_lru_evicts_cache_keys_never_the_queue(redis_factory):
    """Why every cache key has a TTL: under the stack's policy Redis evicts only those."""
    server = redis_factory(extra=["maxmemory 3mb", "maxmemory-policy volatile-lru"])
    r = server.client()
    r.rpush("celery", *[b"task-%d" % i for i in range(100)])  # a queue: no TTL
    quotas = {"article": 50 * 1024 * 1024}  # a quota far above maxmemory: Redis must evict
    for i in range(80):  # 80 x 64 KiB = 5 MiB through a 3 MiB Redis
        image_cache.put(r, quotas, TTL, "article", "n%d" % i, b"z" * 65536)
    assert r.info("stats")["evicted_keys"] > 0
    assert r.llen("celery") == 100
    assert stored_bytes(r, "article") < 3 * 1024 * 1024
    assert image_cache.get(r, quotas, "article", "n79") == b"z" * 65536
