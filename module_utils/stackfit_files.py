# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's files in one module call (library/stackfit_files.py): every item is compared with what
is on the host first, and only what differs is written, in order, each file atomically (a
temporary file beside it, then rename) and only once its validate command passed. One round trip instead of
a ``stat`` and a ``file`` or ``copy`` call per template."""
from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile

STATES = ("file", "directory", "link", "absent")
MODE = re.compile(r"^0?[0-7]{3}$")
# ansible-core's MAX_FILE_SIZE_FOR_DIFF: longer contents are reported by size, not line by line.
DIFF_LIMIT = 104448


def check_items(items):
    """Refuse what cannot be meant, naming the item's option and value; nothing is touched yet."""
    seen = set()
    for index, item in enumerate(items):
        path, state = item.get("path"), item.get("state") or "file"
        where = "files[%d]" % index
        if not path or not os.path.isabs(path) or os.path.normpath(path) != path:
            raise ValueError("%s.path: %r is not an absolute, normalised path" % (where, path))
        if path in seen:
            raise ValueError("%s.path: %r is listed twice" % (where, path))
        seen.add(path)
        if state not in STATES:
            raise ValueError("%s.state: %r is not one of %s" % (where, state, ", ".join(STATES)))
        if (item.get("content") is None) == (state == "file"):
            raise ValueError("%s.content: a file (state file) needs content, and only a file has it "
                             "(%s is %s)" % (where, path, state))
        if bool(item.get("src")) != (state == "link"):
            raise ValueError("%s.src: a link (state link) needs src, and only a link has it "
                             "(%s is %s)" % (where, path, state))
        mode = item.get("mode")
        if mode is not None and not (isinstance(mode, str) and MODE.match(mode)):
            raise ValueError("%s.mode: %r is not an octal mode written as a string (e.g. \"0644\")"
                             % (where, mode))
        validate = item.get("validate")
        if validate is not None and (state != "file" or "%s" not in validate):
            raise ValueError("%s.validate: %r must be a command with %%s, for a file" % (where, validate))
    return items


def lookup_id(kind, name):
    """The uid (kind "owner") or gid ("group") of a name or number, None when there is none."""
    if name is None:
        return None
    if str(name).isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def current(path):
    """What is at ``path`` now: {kind, mode, uid, gid, target}, or None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        kind = "link"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    else:
        kind = "file" if stat.S_ISREG(info.st_mode) else "other"
    return {"kind": kind, "mode": stat.S_IMODE(info.st_mode), "uid": info.st_uid,
            "gid": info.st_gid, "target": os.readlink(path) if kind == "link" else None}


def probe(paths):
    """{path: {kind, target, resolved} or None} of what is at each path now (a link's target as
    written and as resolved), for the tasks after the call to skip what is already done."""
    found = {}
    for path in paths:
        now = current(path)
        found[path] = None if now is None else {
            "kind": now["kind"], "target": now["target"], "resolved": os.path.realpath(path)}
    return found


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def differences(item, now, read=read_bytes):
    """[(what, before, after)] to make ``item`` true of a host where ``now`` (current()) is so.
    ``what`` is state, content (bytes), src, mode (int), owner or group (ids; None when the name
    does not exist yet)."""
    state, path = item.get("state") or "file", item["path"]
    if state == "absent":
        return [("state", now["kind"], "absent")] if now else []
    if now is not None and now["kind"] != state:
        if now["kind"] in ("directory", "other") or state == "directory":
            raise ValueError("files: %s is a %s, not a %s: remove it first" % (path, now["kind"], state))
    if now is None or now["kind"] != state:
        changes = [("state", now["kind"] if now else "absent", state)]
        if state == "file":
            changes.append(("content", b"", item["content"].encode("utf-8")))
        return changes
    if state == "link":
        return [("src", now["target"], item["src"])] if now["target"] != item["src"] else []
    changes = []
    if state == "file":
        have, want = read(path), item["content"].encode("utf-8")
        if have != want:
            changes.append(("content", have, want))
    if item.get("mode") is not None and int(item["mode"], 8) != now["mode"]:
        changes.append(("mode", now["mode"], int(item["mode"], 8)))
    for kind, key in (("owner", "uid"), ("group", "gid")):
        wanted = lookup_id(kind, item.get(kind))
        if item.get(kind) is not None and wanted != now[key]:
            changes.append((kind, now[key], wanted))
    return changes


def text(data):
    if len(data) > DIFF_LIMIT:
        return "(%d bytes: too long to show)\n" % len(data)
    return data.decode("utf-8", "replace")


def diff_entry(item, changes):
    """One entry of the task's diff: the content's lines, or the path's state and attributes."""
    before, after = [], []
    for what, old, new in changes:
        if what == "content":
            continue
        show = (lambda value: "%04o" % value) if what == "mode" else str
        before.append("%s: %s\n" % (what, "-" if old is None else show(old)))
        after.append("%s: %s\n" % (what, item.get(what) if what in ("owner", "group")
                                   else "-" if new is None else show(new)))
    content = [change for change in changes if change[0] == "content"]
    if content:
        before.append(text(content[0][1]))
        after.append(text(content[0][2]))
    return {"before_header": item["path"], "after_header": item["path"],
            "before": "".join(before), "after": "".join(after)}


def run_validate(command, content, path):
    """Run ``command`` with %s replaced by a temporary copy of the new content; an error with its
    output when it fails."""
    folder = tempfile.mkdtemp(prefix="stackfit-files.")
    try:
        probe = os.path.join(folder, os.path.basename(path))
        with open(probe, "wb") as handle:
            handle.write(content)
        out = subprocess.run(command.replace("%s", probe), shell=True, capture_output=True, check=False,
                             text=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if out.returncode != 0:
        raise ValueError("files: %s failed its validate (%s, exit %d): %s" % (
            path, command, out.returncode, (out.stdout + out.stderr).strip()[-2000:]))


def write_file(path, content, mode, uid, gid):
    """Replace ``path`` by ``content`` atomically: a temporary file beside it, its mode and owner
    set, then rename."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def apply(item, changes, now):
    """Make ``item`` so on this host, given its differences() and current() state."""
    path, state = item["path"], item.get("state") or "file"
    uid, gid = lookup_id("owner", item.get("owner")), lookup_id("group", item.get("group"))
    if state == "absent":
        if now["kind"] == "directory":
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return
    if state == "link":
        tmp = os.path.join(os.path.dirname(path), ".%s.stackfit-link" % os.path.basename(path))
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(item["src"], tmp)
        os.replace(tmp, path)
        return
    mode = None if item.get("mode") is None else int(item["mode"], 8)
    if state == "directory":
        if now is None:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.mkdir(path, 0o700)
        if mode is not None:
            os.chmod(path, mode)
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        return
    if {change[0] for change in changes} & {"state", "content"}:
        default = now["mode"] if now and now["kind"] == "file" else 0o644
        write_file(path, item["content"].encode("utf-8"), default if mode is None else mode, uid, gid)
        return
    if mode is not None:
        os.chmod(path, mode)
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def converge(items, check_mode, want_diff):
    """Every item compared first (and its owner and group looked up), then what differs written in
    order, a file with a validate command only once it passed. The validate runs just before its
    write, as a template task's would: a unit file's check needs the start script listed before it
    on the host. Returns (changed paths, diff entries)."""
    check_items(items)
    plan = []
    for item in items:
        now = current(item["path"])
        changes = differences(item, now)
        if changes:
            plan.append((item, now, changes))
    if not check_mode:
        for index, item in enumerate(items):
            for kind in ("owner", "group"):
                if item.get(kind) is not None and lookup_id(kind, item[kind]) is None:
                    raise ValueError("files[%d].%s: %r does not exist on this host (%s)"
                                     % (index, kind, item[kind], item["path"]))
        for item, now, changes in plan:
            if item.get("validate") and "content" in {change[0] for change in changes}:
                run_validate(item["validate"], item["content"].encode("utf-8"), item["path"])
            apply(item, changes, now)
    return ([step[0]["path"] for step in plan],
            [diff_entry(step[0], step[2]) for step in plan] if want_diff else [])
