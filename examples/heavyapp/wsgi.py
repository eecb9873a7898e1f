"""A test app whose workers are much heavier than the sample's: each worker process holds 40 MiB
of its own (filled on its first request, so --preload cannot share it), like an app that loads a
model or a large cache per process."""
import os

from flask import Flask

BALLAST_MIB = int(os.environ.get("HEAVY_BALLAST_MIB", "40"))
app = Flask(__name__)
_ballast = {}


def ballast():
    pid = os.getpid()
    if pid not in _ballast:
        data = bytearray(BALLAST_MIB * 1024 * 1024)
        data[::4096] = b"\x01" * (len(data) // 4096)  # every page written: resident, private
        _ballast[pid] = data
    return _ballast[pid]


@app.route("/")
def index():
    return {"pid": os.getpid(), "ballast_mib": len(ballast()) // (1024 * 1024)}


@app.route("/healthz")
def healthz():
    ballast()
    return {"status": "ok"}
