"""The image URL index (seed 6.3): URLs reduced to one canonical form, one cached copy per image
whatever URL it came by, and the bytes that saved; against a real redis-server and the app."""
import pytest
from hypothesis import given, settings, strategies as st

import synspirit_support  # noqa: F401 (puts examples/synspirit on sys.path)
from app import image_cache
from app.config import normalize
from app.image_urls import canonical, content_name
from synspirit_support import ADMIN_TOKEN, app_config, client  # noqa: F401 (fixtures)

QUOTAS = {"article": 1000, "post": 500}
TTL = 600
ALIASES = {"cdn1.example.com": "example.com", "img.example-cdn.net": "example.com"}


@pytest.mark.parametrize("url, expected", [
    ("HTTP://Example.COM:80/a/./b/../cat%7e.png?b=2&a=1&utm_source=news#top",
     "http://example.com/a/cat~.png?a=1&b=2"),
    ("https://example.com:443", "https://example.com/"),
    ("https://example.com:8443/x.png?", "https://example.com:8443/x.png"),
    ("https://EXAMPLE.com./x%2fy.png?w=10&fbclid=abc&gclid=1",
     "https://example.com/x%2Fy.png?w=10"),
    ("https://user:secret@example.com/x.png", "https://example.com/x.png"),
    ("https://cdn1.example.com/x.png", "https://example.com/x.png"),
    ("https://bücher.de/ä b.png", "https://xn--bcher-kva.de/%C3%A4%20b.png"),
    ("http://[::1]:80/x.png", "http://[::1]/x.png"),
    ("http://example.com/../../x.png?a=&a=2", "http://example.com/x.png?a=&a=2"),
])
def test_canonical_examples(url, expected):
    assert canonical(url, aliases=ALIASES) == expected


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/x.png", "only http and https"),
    ("http:///x.png", "has no host"),
    ("http://example.com:port/x.png", "'http://example.com:port/x.png'"),
    ("file:///etc/passwd", "only http and https"),
    (b"http://example.com/", "is not a string"),
])
def test_bad_urls_are_refused_naming_the_url(url, words):
    with pytest.raises(ValueError, match="image url") as caught:
        canonical(url)
    assert words in str(caught.value)


NAMES = st.text("abcdefgh_", min_size=1, max_size=6)
URLS = st.builds(
    lambda scheme, host, port, path, query, fragment: "%s://%s%s/%s%s%s" % (
        scheme, host, port, path, "?" + "&".join("%s=%s" % kv for kv in query) if query else "",
        "#" + fragment if fragment else ""),
    st.sampled_from(["http", "HTTPS", "Http"]),
    st.sampled_from(["example.com", "EXAMPLE.COM", "cdn1.example.com", "a.b.example.org"]),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.text("abc/.%~-_XYZ20", max_size=20),
    st.lists(st.tuples(NAMES | st.sampled_from(["utm_source", "utm_x", "fbclid"]),
                       st.text("xyz01", max_size=3)), max_size=5),
    st.text("ab", max_size=3))


@settings(max_examples=300, deadline=None)
@given(URLS)
def test_canonical_is_idempotent(url):
    once = canonical(url, aliases=ALIASES)
    assert canonical(once, aliases=ALIASES) == once
    assert "#" not in once and "utm_" not in once and "fbclid" not in once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, st.text("xyz01", max_size=3)), min_size=1, max_size=6),
       st.randoms())
def test_the_order_of_query_parameters_does_not_matter(query, rnd):
    shuffled = list(query)
    rnd.shuffle(shuffled)
    url = "https://example.com/i.png?" + "&".join("%s=%s" % kv for kv in query)
    other = "https://example.com/i.png?" + "&".join("%s=%s" % kv for kv in shuffled)
    assert canonical(url) == canonical(other)


def test_two_urls_of_the_same_image_make_one_entry_and_the_saving_shows(redis_server):
    r = redis_server.client()
    image = b"\x89PNG" + b"x" * 296
    first = canonical("https://example.com/cat.png?utm_source=a", aliases=ALIASES)
    second = canonical("https://cdn1.example.com/media/../cat.png", aliases=ALIASES)
    third = canonical("https://example.com/copies/cat-2.png", aliases=ALIASES)   # same bytes
    assert first == second != third
    name, evicted, new = image_cache.put_url(r, QUOTAS, TTL, "article", first, image)
    assert (name, evicted, new) == (content_name(image), 0, True)
    assert image_cache.put_url(r, QUOTAS, TTL, "article", second, image) == (name, 0, False)
    assert image_cache.put_url(r, QUOTAS, TTL, "article", third, image) == (name, 0, False)
    assert image_cache.usage(r, "article") == (300, [name])        # one copy
    assert image_cache.saved(r, "article") == 600                  # two copies not stored
    for url in (first, third):
        assert image_cache.get_url(r, QUOTAS, TTL, "article", url) == image
    # Other bytes at a known URL: the URL now points to them; the first image stays for the other.
    other = b"y" * 200
    assert image_cache.put_url(r, QUOTAS, TTL, "article", third, other)[2] is True
    assert image_cache.get_url(r, QUOTAS, TTL, "article", third) == other
    assert image_cache.get_url(r, QUOTAS, TTL, "article", first) == image
    for key in r.keys("img*"):
        assert r.ttl(key) > 0, key   # every cache key has a TTL (volatile-lru may evict it)


def test_an_evicted_image_is_a_miss_by_every_url(redis_server):
    r = redis_server.client()
    url = canonical("https://example.com/big.png")
    image_cache.put_url(r, QUOTAS, TTL, "post", url, b"a" * 400)
    following = canonical("https://example.com/next.png")
    image_cache.put_url(r, QUOTAS, TTL, "post", following, b"b" * 400)
    assert image_cache.get_url(r, QUOTAS, TTL, "post", url) is None      # evicted within the quota
    with pytest.raises(image_cache.OverQuota):
        image_cache.put_url(r, QUOTAS, TTL, "post", url, b"c" * 501)
    with pytest.raises(image_cache.UnknownCategory):
        image_cache.get_url(r, QUOTAS, TTL, "nope", url)


def test_the_app_caches_by_url_and_reports_the_saving(client):  # noqa: F811
    image = b"\xff\xd8" + b"j" * 98
    put = client.put("/api/images/article?url=https%3A%2F%2FExample.com%2Fa.jpg%3Futm_medium%3Dx",
                     data=image)
    assert put.status_code == 201 and put.get_json()["url"] == "https://example.com/a.jpg"
    again = client.put("/api/images/article?url=https://example.com:443/a.jpg", data=image)
    assert again.status_code == 200 and again.get_json()["new"] is False
    got = client.get("/api/images/article?url=https://EXAMPLE.com/a.jpg?utm_campaign=y")
    assert got.status_code == 200 and got.data == image
    assert client.get("/api/images/article?url=https://example.com/b.jpg").status_code == 404
    bad = client.put("/api/images/article?url=ftp://example.com/a.jpg", data=image)
    assert bad.status_code == 400 and "ftp://example.com/a.jpg" in bad.get_json()["error"]
    assert client.put("/api/images/article", data=image).status_code == 400
    unknown = client.put("/api/images/nope?url=https://example.com/a.jpg", data=image)
    assert unknown.status_code == 404
    report = client.get("/api/admin/system/memory",
                        headers={"Authorization": "Bearer " + ADMIN_TOKEN}).get_json()
    assert report["image_caches"]["article"] == {
        "quota_bytes": 1000, "bytes": 100, "images": 1, "saved_bytes": 100,
        "reads": {"hot": 1, "cold": 0, "miss": 1}, "hit_rate": {"hot": 0.5, "cold": 0.0}}


def test_the_index_settings_are_checked_naming_the_key():
    with pytest.raises(ValueError, match="image_url_drop_params: 'utm_source'"):
        normalize({"image_url_drop_params": "utm_source"})
    with pytest.raises(ValueError, match="image_host_aliases"):
        normalize({"image_host_aliases": {"cdn.example.com": 3}})
    config = normalize({"image_host_aliases": {"CDN.Example.com.": "example.com"}})
    assert config["image_host_aliases"] == {"cdn.example.com": "example.com"}
    assert "utm_*" in config["image_url_drop_params"]
