"""stackfit_files: a role's directories, files and links in one call, on a real filesystem."""
from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_main

from stackfit_files import converge, probe

ME = str(os.getuid())


def items(root, content="a=1\n", mode="0640"):
    return [
        {"path": str(root / "etc"), "state": "directory", "owner": ME, "mode": "0750"},
        {"path": str(root / "etc" / "app.conf"), "content": content, "owner": ME, "group": str(os.getgid()),
         "mode": mode},
        {"path": str(root / "etc" / "current.conf"), "state": "link", "src": "app.conf"},
    ]


def snapshot(root):
    """{relative path: (kind, mode, content or target, inode)} of everything under root."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                body = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    body = handle.read()
            else:
                body = None
            out[os.path.relpath(path, root)] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                                body, info.st_ino)
    return out


def test_first_run_makes_everything_and_the_second_changes_nothing(tmp_path):
    changed, diff = converge(items(tmp_path), check_mode=False, want_diff=True)
    assert changed == [str(tmp_path / "etc"), str(tmp_path / "etc" / "app.conf"),
                       str(tmp_path / "etc" / "current.conf")]
    assert (tmp_path / "etc" / "app.conf").read_text() == "a=1\n"
    assert stat.S_IMODE(os.stat(tmp_path / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(tmp_path / "etc" / "app.conf").st_mode) == 0o640
    assert os.readlink(tmp_path / "etc" / "current.conf") == "app.conf"
    assert "a=1" in diff[1]["after"] and diff[1]["before_header"] == str(tmp_path / "etc" / "app.conf")
    before = snapshot(tmp_path)
    assert converge(items(tmp_path), check_mode=False, want_diff=True) == ([], [])
    assert snapshot(tmp_path) == before


def test_check_mode_tells_what_would_change_and_writes_nothing(tmp_path):
    converge(items(tmp_path), False, False)
    before = snapshot(tmp_path)
    changed, diff = converge(items(tmp_path, content="a=2\n", mode="0600"), check_mode=True, want_diff=True)
    assert changed == [str(tmp_path / "etc" / "app.conf")]
    assert diff[0]["before"] == "mode: 0640\na=1\n" and diff[0]["after"] == "mode: 0600\na=2\n"
    assert snapshot(tmp_path) == before


def test_a_new_content_is_a_new_inode_and_a_mode_change_rewrites_nothing(tmp_path):
    converge(items(tmp_path), False, False)
    conf = tmp_path / "etc" / "app.conf"
    inode = os.stat(conf).st_ino
    assert converge(items(tmp_path, mode="0600"), False, False)[0] == [str(conf)]
    assert os.stat(conf).st_ino == inode and stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    converge(items(tmp_path, content="b=2\n", mode="0600"), False, False)
    assert os.stat(conf).st_ino != inode and conf.read_text() == "b=2\n"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    assert [name for name in os.listdir(tmp_path / "etc") if name.startswith(".")] == []


def test_a_failed_validate_writes_neither_that_file_nor_those_after_it(tmp_path):
    converge(items(tmp_path), False, False)
    before = snapshot(tmp_path)
    wanted = items(tmp_path, "bad\n") + [{"path": str(tmp_path / "later"), "content": "x\n"}]
    wanted[0]["mode"] = "0700"
    wanted[1]["validate"] = "grep -q '=' %s"
    with pytest.raises(ValueError, match=r"app.conf failed its validate \(grep -q '=' %s, exit 1\)"):
        converge(wanted, False, False)
    assert stat.S_IMODE(os.stat(tmp_path / "etc").st_mode) == 0o700  # the item before it
    del before["etc"]
    assert {key: value for key, value in snapshot(tmp_path).items() if key != "etc"} == before
    wanted[1]["content"] = "good=1\n"
    assert converge(wanted, False, False)[0] == [str(tmp_path / "etc" / "app.conf"), str(tmp_path / "later")]


def test_a_validate_sees_the_items_written_before_it(tmp_path):
    wanted = [{"path": str(tmp_path / "start.sh"), "content": "#!/bin/sh\n", "mode": "0755"},
              {"path": str(tmp_path / "app.service"), "content": "ExecStart=%s\n" % (tmp_path / "start.sh"),
               "validate": "test -x \"$(sed -n 's/^ExecStart=//p' %s)\""}]
    assert len(converge(wanted, False, False)[0]) == 2


def test_validate_sees_the_new_content(tmp_path):
    log = tmp_path / "seen"
    wanted = [{"path": str(tmp_path / "unit"), "content": "x=1\n", "validate": "cp %%s %s" % log}]
    converge(wanted, False, False)
    assert log.read_text() == "x=1\n" and (tmp_path / "unit").read_text() == "x=1\n"


def test_absent_removes_a_file_a_link_and_a_tree(tmp_path):
    converge(items(tmp_path), False, False)
    (tmp_path / "old" / "pkg").mkdir(parents=True)
    (tmp_path / "old" / "pkg" / "x.py").write_text("")
    gone = [{"path": str(tmp_path / name), "state": "absent"}
            for name in ("old", "etc/current.conf", "etc/app.conf", "never")]
    assert converge(gone, False, False)[0] == [item["path"] for item in gone[:3]]
    assert os.listdir(tmp_path / "etc") == [] and not (tmp_path / "old").exists()


def test_a_link_replaces_a_file_and_follows_a_new_target(tmp_path):
    (tmp_path / "start_production.sh").write_text("old copy\n")
    link = [{"path": str(tmp_path / "start_production.sh"), "state": "link", "src": "start.sh"}]
    assert converge(link, False, False)[0] == [link[0]["path"]]
    assert os.readlink(link[0]["path"]) == "start.sh"
    link[0]["src"] = "start2.sh"
    converge(link, False, False)
    assert os.readlink(link[0]["path"]) == "start2.sh"


@pytest.mark.parametrize("change, message", [
    ({"path": "etc/app.conf"}, r"files\[1\]\.path: 'etc/app.conf' is not an absolute"),
    ({"path": "/x/../etc"}, r"files\[1\]\.path: '/x/\.\./etc' is not an absolute, normalised"),
    ({"state": "fifo"}, r"files\[1\]\.state: 'fifo' is not one of file, directory, link, absent"),
    ({"content": None}, r"files\[1\]\.content: a file \(state file\) needs content"),
    ({"state": "directory"}, r"files\[1\]\.content: .*is directory"),
    ({"src": "x"}, r"files\[1\]\.src: a link \(state link\) needs src, and only a link"),
    ({"mode": 420}, r"files\[1\]\.mode: 420 is not an octal mode written as a string"),
    ({"mode": "0844"}, r"files\[1\]\.mode: '0844' is not an octal mode"),
    ({"validate": "true"}, r"files\[1\]\.validate: 'true' must be a command with %s"),
    ({"owner": "no-such-user-here"}, r"files\[1\]\.owner: 'no-such-user-here' does not exist on this host"),
    ({"group": "no-such-group-here"}, r"files\[1\]\.group: 'no-such-group-here' does not exist on this host"),
])
def test_bad_input_names_the_option_and_value_and_changes_nothing(tmp_path, change, message):
    converge(items(tmp_path), False, False)
    before = snapshot(tmp_path)
    wanted = items(tmp_path, content="changed\n")
    wanted[1].update(change)
    with pytest.raises(ValueError, match=message):
        converge(wanted, False, False)
    assert snapshot(tmp_path) == before


def test_a_path_twice_and_a_directory_in_a_files_place_are_refused(tmp_path):
    twice = items(tmp_path) + [items(tmp_path)[1]]
    with pytest.raises(ValueError, match=r"files\[3\]\.path: '.*app.conf' is listed twice"):
        converge(twice, False, False)
    (tmp_path / "etc" / "app.conf").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"app.conf is a directory, not a file: remove it first"):
        converge(items(tmp_path), False, False)
    assert os.listdir(tmp_path / "etc") == ["app.conf"]


def test_main_reports_changed_paths_and_fails_naming_the_value(tmp_path, capsys):
    args = {"files": items(tmp_path), "_ansible_diff": True}
    code, result = run_main("stackfit_files", args, capsys)
    assert code == 0 and result["changed"] is True and len(result["changed_paths"]) == 3
    assert len(result["diff"]) == 3
    code, result = run_main("stackfit_files", args, capsys)
    assert code == 0 and result == {"changed": False, "changed_paths": [], "probed": {},
                                    "invocation": result["invocation"]}
    bad = {"files": [{"path": str(tmp_path / "x"), "content": "", "colour": "red"}]}
    code, result = run_main("stackfit_files", bad, capsys)
    assert code == 1 and "colour" in result["msg"] and not (tmp_path / "x").exists()


def test_probe_tells_what_is_at_each_path(tmp_path, capsys):
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    os.symlink("releases/r1", tmp_path / "app")
    (tmp_path / "marker").write_text("")
    paths = [str(tmp_path / name) for name in ("app", "releases/r1", "marker", "releases/r2")]
    assert probe(paths) == {
        paths[0]: {"kind": "link", "target": "releases/r1", "resolved": str(tmp_path / "releases" / "r1")},
        paths[1]: {"kind": "directory", "target": None, "resolved": paths[1]},
        paths[2]: {"kind": "file", "target": None, "resolved": paths[2]},
        paths[3]: None}
    code, result = run_main("stackfit_files", {"files": [{"path": str(tmp_path / "releases" / "r2"),
                                                          "state": "directory"}], "probe": paths}, capsys)
    assert code == 0 and result["changed_paths"] == [paths[3]] and result["probed"][paths[3]]["kind"] == "directory"


NAMES = st.sampled_from(["a", "b", "c"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(NAMES, st.sampled_from(["file", "link", "absent"]), st.text(max_size=20),
                          st.sampled_from(["0600", "0644", "0755"])), max_size=6))
def test_any_second_run_changes_nothing(tmp_path_factory, specs):
    root = tmp_path_factory.mktemp("any")
    wanted, seen = [], set()
    for name, state, body, mode in specs:
        if name in seen:
            continue
        seen.add(name)
        item = {"path": str(root / name), "state": state}
        if state == "file":
            item.update(content=body, mode=mode)
        elif state == "link":
            item["src"] = "target-" + name
        wanted.append(item)
    converge(wanted, False, False)
    assert converge(wanted, False, False) == ([], [])
    assert converge(wanted, True, True) == ([], [])


def test_a_file_without_mode_that_replaces_a_link_gets_0644_not_the_links_mode(tmp_path):
    os.symlink("elsewhere", tmp_path / "conf")
    converge([{"path": str(tmp_path / "conf"), "content": "x\n"}], False, False)
    assert stat.S_IMODE(os.lstat(tmp_path / "conf").st_mode) == 0o644
