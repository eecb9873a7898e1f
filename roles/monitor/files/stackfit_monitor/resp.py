"""Redis: a minimal RESP2 client (AUTH, SELECT, INFO, CONFIG SET) over a plain socket.

Why not redis-py (it is in the venv already)?

Measured in one sitting with prometheus_client's writer (metrics.py's docstring has the table):
redis-py instead of this client took a run from 0.05 s CPU and 15.1 MiB peak RSS to 0.15 s and
32.4 MiB.

Decision: keep this client. redis-py triples a run's CPU (0.15 s: the whole 150 ms target) and
doubles its peak (32 MiB: over the plan's 30 MiB monitor estimate; importing it loads 237
modules) for four commands; what it adds (pools, retries, RESP3, cluster) a client that sends
four commands once a run does not use.
"""
import math

from .errors import MalformedReplyError, RedisError, is_int


class RedisConnection:
    def __init__(self, host, port, password=None, username=None, db=0, timeout=2.0):
        import socket
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise RedisError("cannot connect to %s:%d: %s" % (
                host, port, exc.strerror or exc)) from None
        self._file = self._sock.makefile("rb")
        try:
            if password is not None:
                self.call("AUTH", *([username, password] if username else [password]))
            if db:
                self.call("SELECT", str(db))
        except RedisError:
            self.close()
            raise

    def close(self):
        try:
            self._file.close()
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        try:
            self._sock.sendall(b"".join(parts))
            return self._reply()
        except OSError as exc:
            raise RedisError("redis %s failed: %s" % (args[0], exc.strerror or exc)) from None

    def _reply(self):
        try:
            return self._parse_reply()
        except ValueError:  # a length or an integer that is not one
            raise MalformedReplyError("malformed reply from redis (not RESP2)") from None

    def _parse_reply(self):
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed by redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RedisError("redis error: %s" % rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            if len(data) != size + 2:
                raise RedisError("connection closed by redis")
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._parse_reply() for _item in range(size)]
        raise MalformedReplyError("unexpected reply from redis: %r" % line[:40])

    def info_memory(self):
        return parse_info(self.call("INFO", "memory"))


def parse_info(text):
    """INFO output -> dict, numbers converted; a reply that is not text is a MalformedReplyError."""
    if text is not None and not isinstance(text, str):
        raise MalformedReplyError("malformed INFO reply: %r is not text" % (text,))
    out = {}
    for line in (text or "").splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def redis_connect(rcfg):
    return RedisConnection(rcfg["host"], rcfg["port"], rcfg["password"], rcfg["username"],
                           rcfg["db"], rcfg["timeout"])


def redis_summary(info):
    """The INFO memory fields of the seed's /api/admin/system/memory answer, plus a few more.

    used_memory and maxmemory must be byte counts, else the reply is a MalformedReplyError; another
    figure that is not a number is reported null and named in "malformed"."""
    if not isinstance(info, dict):
        raise MalformedReplyError("malformed INFO memory reply: %r" % (info,))
    used = info.get("used_memory")
    maxmemory = info.get("maxmemory", 0)
    for key, value in (("used_memory", used), ("maxmemory", maxmemory)):
        if not is_int(value) or value < 0:
            raise MalformedReplyError("malformed INFO memory reply: %s=%r is not a byte count" % (
                key, value))
    malformed = []
    for key in ("used_memory_rss", "used_memory_peak", "mem_fragmentation_ratio"):
        value = info.get(key)
        if value is not None and (not isinstance(value, (int, float)) or not 0 <= value < math.inf):
            malformed.append("%s=%r" % (key, value))
            info = dict(info, **{key: None})
    out = {
        "used_memory": used,
        "used_memory_human": info.get("used_memory_human"),
        "used_memory_rss": info.get("used_memory_rss"),
        "used_memory_peak": info.get("used_memory_peak"),
        "maxmemory": maxmemory,
        "maxmemory_human": info.get("maxmemory_human"),
        "used_percent": round(100.0 * used / maxmemory, 2) if maxmemory and used is not None
        else None,
        "mem_fragmentation_ratio": info.get("mem_fragmentation_ratio"),
        "maxmemory_policy": info.get("maxmemory_policy"),
    }
    if malformed:
        out["malformed"] = malformed
    return out
