"""The output directory's files: names, atomic writes, state files."""
import json
import os

from .errors import OutputError, log

REPORT_NAME = "report.json"
PROM_NAME = "stackfit.prom"
HISTORY_NAME = "history.jsonl"
ADAPTIVE_STATE_NAME = "adaptive_state.json"
RECYCLE_STATE_NAME = "recycle_state.json"


def atomic_write(path, data, mode=0o644):
    """Write bytes to path atomically: a temp file in the same directory, fsync, os.replace.

    The temp name starts with a dot and ends with .tmp, so node_exporter's textfile collector
    (which reads *.prom) never sees a half-written file.
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.%d.tmp" % (name, os.getpid()))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def write_json(path, obj):
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def read_state(path):
    """A JSON state file as a dict; {} when missing or unreadable (logged)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log("ignoring unreadable state file %s: %s" % (path, exc))
        return {}
    return data if isinstance(data, dict) else {}


def ensure_output_dir(path):
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot create output_dir %s: %s" % (path, exc.strerror)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError("output_dir %s is not writable" % path)
