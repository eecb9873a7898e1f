"""The Flask application: health checks, a benchmark route, the memory report, the image cache."""
from __future__ import annotations

import hashlib
import hmac
import logging

import redis
from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app import image_cache, image_urls
from app.config import load_config, normalize
from app.memory import memory_report

log = logging.getLogger("synspirit")

# ~1 ms of CPU on the 2-core test machines (one C call, so the timing is steady).
WORK_ITERATIONS = 4000
WORK_KEY = "work:hits"


def create_app(config=None):
    """The app for `config` (a dict of app.json's keys), or for $STACKFIT_CONFIG if None."""
    app = Flask(__name__, static_folder=None)
    configure(app, load_config() if config is None else normalize(config))

    app.add_url_rule("/healthz", view_func=healthz)
    app.add_url_rule("/readyz", view_func=readyz)
    app.add_url_rule("/api/work", view_func=work)
    app.add_url_rule("/api/admin/system/memory", view_func=admin_memory)
    app.add_url_rule("/api/images/<category>/<name>", view_func=put_image, methods=["PUT"])
    app.add_url_rule("/api/images/<category>/<name>", view_func=get_image, methods=["GET"])
    # By URL (?url=...): one copy per image, whatever URL it came by (app.image_urls).
    app.add_url_rule("/api/images/<category>", view_func=put_image_url, methods=["PUT"])
    app.add_url_rule("/api/images/<category>", view_func=get_image_url, methods=["GET"])
    app.register_error_handler(redis.RedisError, redis_down)
    # As the seed's endpoint does: every error answers JSON {"error": ...}, never an HTML page.
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, internal_error)
    return app


def configure(app, config):
    """Apply a normalized config to the app (at creation, and again in each new gunicorn worker)."""
    app.config["STACKFIT"] = config
    app.config["WEBSOCKETS"] = config["websockets"]
    quotas = config["image_cache_quota_bytes"]
    # Refuse an upload larger than the largest quota before reading it all (Flask answers 413).
    app.config["MAX_CONTENT_LENGTH"] = max(quotas.values()) if quotas else None
    # One pool per process, never more than redis_max_connections open (app.json; stackfit's
    # plan does not size it yet): a request that finds them all busy waits up to
    # redis_pool_timeout seconds for one, then answers 503. Named, so CLIENT LIST shows them.
    pool = redis.BlockingConnectionPool.from_url(
        config["redis_url"], max_connections=config["redis_max_connections"],
        timeout=config["redis_pool_timeout"], client_name="synspirit-web",
        socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
    app.extensions["redis"] = redis.Redis(connection_pool=pool)


def reconfigure(app):
    """Re-read $STACKFIT_CONFIG: gunicorn's post_fork calls it, so a HUP applies a changed app.json
    to the new workers even under --preload, where the master imported the app once."""
    configure(app, load_config())


def settings():
    return current_app.config["STACKFIT"]


def client():
    return current_app.extensions["redis"]


def cold():
    """The image cache's cold tier as image_cache takes it."""
    config = settings()
    return {"root": config["image_cache_disk_dir"],
            "quota_bytes": config["image_cache_disk_quota_bytes"]}


def error(status, message):
    response = jsonify({"error": message})
    response.status_code = status
    return response


def http_error(exc):
    return error(exc.code or 500, exc.description or exc.name)


def internal_error(exc):
    log.exception("unhandled error: %s", type(exc).__name__)
    return error(500, "internal error: %s" % type(exc).__name__)


def redis_down(exc):
    log.warning("redis unavailable: %s", type(exc).__name__)
    return error(503, "redis unavailable")


def healthz():
    return jsonify({"status": "ok"})


def readyz():
    try:
        client().ping()
    except redis.RedisError:
        return error(503, "redis unavailable")
    return jsonify({"status": "ok", "redis": "ok"})


def work():
    digest = hashlib.pbkdf2_hmac("sha256", b"synspirit", b"stackfit", WORK_ITERATIONS)
    with client().pipeline(transaction=False) as pipe:  # one round trip
        pipe.incr(WORK_KEY)
        pipe.expire(WORK_KEY, settings()["image_cache_ttl"])
        hits, _expired = pipe.execute()
    return jsonify({"digest": digest.hex()[:16], "hits": hits})


def bearer_ok(header, token):
    """True if the Authorization header carries exactly `token`; an empty token admits no one."""
    if not token or not header:
        return False
    scheme, _space, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def admin_memory():
    if any(key.lower() in ("token", "access_token", "admin_token", "auth") for key in request.args):
        # A token in a query string ends up in logs and histories: refused, never checked.
        return error(400, "send the token in the Authorization header, not in the query string")
    if not bearer_ok(request.headers.get("Authorization", ""), settings()["admin_token"]):
        # Never log or echo what was sent: it may be a near-miss of the real token.
        log.warning("refused an unauthorized request to %s from %s", request.path,
                    request.remote_addr)
        response = error(401, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="synspirit"'
        return response
    return jsonify(memory_report(client(), settings()["monitor_report"],
                                 settings()["image_cache_quota_bytes"], cold()))


def put_image(category, name):
    config = settings()
    if category not in config["image_cache_quota_bytes"]:
        return error(404, "unknown category")
    data = request.get_data(cache=False)
    if not data:
        return error(400, "empty image")
    try:
        evicted = image_cache.put_tiered(client(), config["image_cache_quota_bytes"],
                                         config["image_cache_ttl"], category, name, data, cold())
    except image_cache.OverQuota as exc:
        return error(413, str(exc))
    return jsonify({"category": category, "name": name, "bytes": len(data),
                    "evicted": evicted}), 201


def get_image(category, name):
    config = settings()
    if category not in config["image_cache_quota_bytes"]:
        return error(404, "unknown category")
    data = image_cache.get_tiered(client(), config["image_cache_quota_bytes"],
                                  config["image_cache_ttl"], category, name, cold())
    if data is None:
        return error(404, "not found")
    return Response(data, mimetype="application/octet-stream")


def image_url(category):
    """(the request's ?url= in its canonical form, None), or (None, the error response) for an
    unknown category or a missing or bad URL."""
    config = settings()
    if category not in config["image_cache_quota_bytes"]:
        return None, error(404, "unknown category")
    given = request.args.get("url", "")
    if not given:
        return None, error(400, "give the image's URL as ?url=")
    try:
        return image_urls.canonical(given, config["image_url_drop_params"],
                                    config["image_host_aliases"]), None
    except ValueError as exc:
        return None, error(400, str(exc))


def put_image_url(category):
    url, failed = image_url(category)
    if failed:
        return failed
    config = settings()
    data = request.get_data(cache=False)
    if not data:
        return error(400, "empty image")
    try:
        name, evicted, new = image_cache.put_url(client(), config["image_cache_quota_bytes"],
                                                 config["image_cache_ttl"], category, url, data,
                                                 cold())
    except image_cache.OverQuota as exc:
        return error(413, str(exc))
    return jsonify({"category": category, "url": url, "name": name, "bytes": len(data),
                    "evicted": evicted, "new": new}), 201 if new else 200


def get_image_url(category):
    url, failed = image_url(category)
    if failed:
        return failed
    config = settings()
    data = image_cache.get_url(client(), config["image_cache_quota_bytes"],
                               config["image_cache_ttl"], category, url, cold())
    if data is None:
        return error(404, "not found")
    return Response(data, mimetype="application/octet-stream")
