"""stackfit_loadtest.load against a real keep-alive HTTP server on 127.0.0.1."""
from __future__ import annotations

import http.server
import threading

import stackfit_loadtest as lt


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections alive unless the client closes them
    connections = set()
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802 (http.server's name)
        with self.lock:
            self.connections.add(self.client_address)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_each_thread_reconnects_after_reconnect_every_requests():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = lt.load("127.0.0.1", server.server_address[1], ["/a", "/b"], 2, 30,
                         max_requests=200, every=0.05, reconnect_every=10)
    finally:
        server.shutdown()
        server.server_close()
    done = result["ok"] + result["failed"]
    assert result["failed"] == 0 and 200 <= done <= 201, result
    # A new connection (a new client port) every 10 requests of each thread: the split between a
    # server's workers is drawn again and again, not once at the start.
    assert len(Handler.connections) >= done // 10, (len(Handler.connections), done)
