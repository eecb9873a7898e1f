# -*- coding: utf-8 -*-
"""A bounded HTTP load on a host's own Gunicorn (127.0.0.1), sampling memory while it runs.

Standard library only (threads and http.client): what playbooks/measure.yml's stackfit_measure
module runs on each host. Bounded in time and in requests; traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import http.client
import threading
import time

RECONNECT_EVERY = 20


def load(host, port, paths, concurrency, seconds, max_requests=100000, host_header=None,
         every=0.5, sample=None, reconnect_every=RECONNECT_EVERY):
    """GET ``paths`` in turn from ``concurrency`` threads for ``seconds`` (at most ``max_requests``
    in all), calling ``sample()`` every ``every`` seconds meanwhile. Returns counts and req/s.

    Each thread opens a new connection after ``reconnect_every`` requests on one: a kept-alive
    connection stays with the Gunicorn worker that accepted it, so connections that never close
    keep the one split between workers drawn at the start (an async worker may hold most of them,
    or none) and a sample sees only that split. Reconnecting redraws it many times a run."""
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"ok": 0, "failed": 0, "statuses": {}}
    headers = {"Host": host_header} if host_header else {}

    def worker(offset):
        conn = None
        number = offset
        while not stop.is_set():
            with lock:
                if counts["ok"] + counts["failed"] >= max_requests:
                    return
            path = paths[number % len(paths)]
            number += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if (response.getheader("Connection", "").lower() == "close"
                        or (number - offset) % reconnect_every == 0):
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = "error"
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                ok = isinstance(status, int) and status < 400
                counts["ok" if ok else "failed"] += 1
                key = str(status)
                counts["statuses"][key] = counts["statuses"].get(key, 0) + 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    samples = 0
    while time.monotonic() - began < seconds and any(t.is_alive() for t in threads):
        if sample is not None:
            sample()
            samples += 1
        time.sleep(every)
    stop.set()
    for thread in threads:
        thread.join(35)
    elapsed = time.monotonic() - began
    counts.update(seconds=round(elapsed, 1), samples=samples,
                  requests_per_second=round((counts["ok"] + counts["failed"]) / elapsed, 1))
    return counts
