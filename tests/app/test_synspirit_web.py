"""The Flask routes through the test client, against a real redis-server."""
import json
import logging

import pytest

from synspirit_support import ADMIN_TOKEN, QUOTA, app_config, client  # noqa: F401 (fixtures)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_up_then_down(client, redis_server):
    assert client.get("/readyz").status_code == 200
    redis_server.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    # healthz makes no Redis call: still fine
    assert client.get("/healthz").status_code == 200


def test_work_counts_hits_with_a_ttl(client, redis_server):
    first = client.get("/api/work").get_json()
    second = client.get("/api/work").get_json()
    assert second["hits"] == first["hits"] + 1
    assert len(first["digest"]) == 16
    assert redis_server.client().ttl("work:hits") > 0


def test_memory_report_requires_the_token(client, caplog, tmp_path, app_config):
    caplog.set_level(logging.DEBUG)
    with open(app_config["monitor_report"], "w", encoding="utf-8") as handle:
        json.dump({"checked_at": 1, "status": "ok"}, handle)

    missing = client.get("/api/admin/system/memory")
    wrong = client.get("/api/admin/system/memory", headers={"Authorization": "Bearer " + ADMIN_TOKEN[:-1] + "x"})
    basic = client.get("/api/admin/system/memory", headers={"Authorization": "Basic " + ADMIN_TOKEN})
    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    ok = client.get("/api/admin/system/memory", headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert ok.status_code == 200
    report = ok.get_json()
    assert set(report) == {"system", "redis", "python_process", "processes", "image_caches", "monitor"}
    # The seed's fields, beside stackfit's per-process PSS.
    assert set(report["python_process"]) == {"pid", "memory_info", "cpu_percent"}
    assert report["python_process"]["memory_info"]["rss"] > 0
    assert set(report["system"]) == {"total", "available", "used", "percent"}
    assert set(report["redis"]) == {"used_memory", "used_memory_human", "maxmemory", "maxmemory_human",
                                    "used_percent", "mem_fragmentation_ratio", "maxmemory_policy"}
    assert report["redis"]["used_memory"] > 0
    assert report["processes"] and {"pid", "name", "rss", "pss"} <= set(report["processes"][0])
    assert report["monitor"] == {"checked_at": 1, "status": "ok"}

    for response in (missing, wrong, basic, ok):
        assert ADMIN_TOKEN not in response.get_data(as_text=True)
        assert ADMIN_TOKEN[:-1] not in response.get_data(as_text=True)
    assert "unauthorized" in caplog.text  # the refusals were logged...
    assert ADMIN_TOKEN[:-1] not in caplog.text  # ...without the token or the near-miss

    # A token in the query string is refused outright, even the right one, and never echoed.
    for key in ("token", "access_token", "admin_token"):
        queried = client.get("/api/admin/system/memory?%s=%s" % (key, ADMIN_TOKEN),
                             headers={"Authorization": "Bearer " + ADMIN_TOKEN})
        assert queried.status_code == 400 and ADMIN_TOKEN not in queried.get_data(as_text=True)
    assert ADMIN_TOKEN not in caplog.text


def test_memory_report_without_monitor_file_and_empty_token(redis_server, app_config):
    from app import create_app

    app_config["monitor_report"] = "/nonexistent/monitor.json"
    web = create_app(app_config).test_client()
    report = web.get("/api/admin/system/memory",
                     headers={"Authorization": "Bearer " + ADMIN_TOKEN}).get_json()
    assert report["monitor"] is None

    # An empty configured token admits no one, not even an empty bearer.
    app_config["admin_token"] = ""
    web = create_app(app_config).test_client()
    assert web.get("/api/admin/system/memory", headers={"Authorization": "Bearer "}).status_code == 401


def test_image_routes(client, redis_server):
    assert client.get("/api/images/article/a").status_code == 404
    assert client.put("/api/images/article/a", data=b"x" * 100).status_code == 201
    response = client.get("/api/images/article/a")
    assert response.status_code == 200 and response.data == b"x" * 100
    # unknown category: 404 on both verbs, nothing written
    assert client.put("/api/images/nope/a", data=b"x").status_code == 404
    assert client.get("/api/images/nope/a").status_code == 404
    assert client.put("/api/images/article/empty", data=b"").status_code == 400


def test_image_over_quota_is_413(client, redis_server):
    # over the category's quota but under the largest one: refused by the cache
    assert client.put("/api/images/article/big", data=b"x" * (QUOTA + 1)).status_code == 413
    # over every quota: refused by Flask before it is read
    assert client.put("/api/images/post/huge", data=b"x" * (2 * QUOTA + 1)).status_code == 413
    assert redis_server.client().keys("img:*") == []


def test_image_quota_evicts_oldest_first_over_http(client, redis_server):
    for i in range(10):
        assert client.put("/api/images/article/n%d" % i, data=bytes([i]) * 300).status_code == 201
    # 1000 bytes hold three 300-byte images: the newest three
    assert [client.get("/api/images/article/n%d" % i).status_code for i in range(10)] == [404] * 7 + [200] * 3
    r = redis_server.client()
    assert sum(len(r.get(k)) for k in r.keys("img:article:*")) <= QUOTA
    for key in r.keys("img*"):
        assert r.ttl(key) > 0, key


def test_every_error_answers_json_as_the_seed_does(client):
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and missing.is_json and "error" in missing.get_json()
    wrong_method = client.post("/healthz")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"]


def test_an_internal_error_of_the_memory_report_is_json_too(client, monkeypatch):
    import app.web as web

    def broken(*_):
        raise RuntimeError("psutil could not read /proc/meminfo")
    monkeypatch.setattr(web, "memory_report", broken)
    response = client.get("/api/admin/system/memory", headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert response.status_code == 500 and response.get_json() == {"error": "internal error: RuntimeError"}


def test_the_redis_pool_never_opens_more_than_its_connections(app_config, redis_server):
    """20 threads against a pool of 3: Redis sees at most 3 of the app's connections, and every
    request is answered (waiting for a free connection, not refused)."""
    import threading
    from app import create_app
    app = create_app(dict(app_config, redis_max_connections=3))
    watcher = redis_server.client()
    seen, statuses, lock = [0], [], threading.Lock()

    def app_clients():
        return sum(1 for c in watcher.client_list() if c.get("name") == "synspirit-web")

    def hammer():
        client = app.test_client()
        for _ in range(30):
            status = client.get("/api/work").status_code
            with lock:
                statuses.append(status)
                seen[0] = max(seen[0], app_clients())

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 600
    assert 1 <= seen[0] <= 3, seen[0]


def test_a_bad_pool_size_is_refused_naming_the_key(app_config):
    from app import create_app
    with pytest.raises(ValueError, match="redis_max_connections: 0 must be at least 1"):
        create_app(dict(app_config, redis_max_connections=0))
