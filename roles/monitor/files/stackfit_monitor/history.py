"""history.jsonl (one JSON line per run, size-capped) and the leak watch over it."""
import json
import os

from .errors import OutputError, is_int as _is_int, is_number as _is_number
from .files import atomic_write
from .stackfit_common import human

# When history.jsonl grows past max_bytes it is rewritten down to this share of max_bytes, so
# the rewrite happens once every few hundred runs rather than on every run once the cap is hit.
HISTORY_TRIM_RATIO = 0.75


def cap_lines(lines, max_bytes):
    """Keep the newest lines (bytes, each ending in a newline) whose total size <= max_bytes.

    Returns the kept lines in their original order; the oldest are dropped first.
    """
    kept = []
    total = 0
    for line in reversed(lines):
        if total + len(line) > max_bytes:
            break
        kept.append(line)
        total += len(line)
    kept.reverse()
    return kept


def append_history(path, sample, max_bytes):
    """Append one JSON line; when the file exceeds max_bytes, rewrite it atomically keeping the
    newest lines that fit in HISTORY_TRIM_RATIO x max_bytes. Returns True when it was trimmed."""
    line = (json.dumps(sample, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a previous run died mid-line: start on a fresh line
            os.write(fd, line)
            size += len(line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError("cannot append to %s: %s" % (path, exc.strerror)) from None
    if size <= max_bytes:
        return False
    with open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    lines = [item for item in lines if item.strip()]
    atomic_write(path, b"".join(cap_lines(lines, int(max_bytes * HISTORY_TRIM_RATIO))))
    return True


def valid_sample(sample):
    """True for a history sample this monitor can use: an object whose "pss" and "pid" are objects
    (or null) of integers (or nulls), and whose other figures are numbers (or null)."""
    if not isinstance(sample, dict):
        return False
    for key in ("pss", "pid"):
        value = sample.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
                item is None or _is_int(item) for item in value.values()):
            return False
    return all(sample.get(key) is None or _is_number(sample[key])
               for key in ("ts", "percent", "redis_used", "redis_max"))


def read_history_tail(path, count):
    """The last `count` usable samples of a JSON-lines file, oldest first."""
    return read_history(path, count)[0]


def read_history(path, count):
    """(the last `count` usable samples of a JSON-lines file, oldest first; how many lines among
    those read were skipped: not JSON, not an object, or a figure of the wrong type).

    Reads only the file's tail (growing the chunk until enough lines are in it)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return [], 0
    with handle:
        end = handle.seek(0, os.SEEK_END)
        chunk = 8192
        while True:
            start = max(0, end - chunk)
            handle.seek(start)
            data = handle.read(end - start)
            lines = data.split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first piece may be a partial line
            lines = [item for item in lines if item.strip()]
            if len(lines) > count or start == 0:
                break
            chunk *= 4
    samples, skipped = [], 0
    for item in lines[-count * 2:]:
        try:
            sample = json.loads(item)
        except ValueError:  # bad JSON, or bytes that are not UTF-8
            sample = None
        if valid_sample(sample):
            samples.append(sample)
        else:
            skipped += 1
    return samples[-count:], skipped


def detect_leaks(samples, services, leak_samples, min_growth_bytes):
    """Services whose PSS grew monotonically over the last `leak_samples` samples.

    A service is suspected when, over its last `leak_samples` samples, every PSS is >= the one
    before (no drop at all) and the total growth is >= min_growth_bytes. A sample without a PSS
    for the service (down, unreadable) or with another main PID (a restart) breaks the run, so
    fewer than `leak_samples` comparable samples never raise a suspicion.
    """
    window = samples[-leak_samples:]
    suspects = []
    if len(window) < leak_samples:
        return suspects
    for service in services:
        series = []
        pids = set()
        for sample in window:
            value = (sample.get("pss") or {}).get(service)
            if not _is_int(value):
                break
            series.append(value)
            pids.add((sample.get("pid") or {}).get(service))
        if len(series) < leak_samples or len(pids) > 1:
            continue
        if all(later >= earlier for earlier, later in zip(series, series[1:])):
            growth = series[-1] - series[0]
            if growth >= min_growth_bytes:
                suspects.append({
                    "service": service,
                    "samples": leak_samples,
                    "first_pss": series[0],
                    "last_pss": series[-1],
                    "growth_bytes": growth,
                    "since": window[0].get("ts"),
                    "reason": "PSS of %s grew monotonically over the last %d samples by %s "
                              "(>= %s)" % (service, leak_samples, human(growth),
                                           human(min_growth_bytes)),
                })
    return suspects
