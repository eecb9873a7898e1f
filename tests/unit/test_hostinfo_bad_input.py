"""Issue 15 for host facts: a malformed or unreadable cgroup or meminfo file fails naming the file
and its content; never a traceback, never a silent "no limit"."""
from __future__ import annotations

import os

import pytest

import stackfit_hostinfo as hi
from conftest import run_main

MEMINFO = "MemTotal:       16384000 kB\nMemAvailable:   12000000 kB\nSwapTotal:       0 kB\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_tree(tmp_path, files, meminfo=MEMINFO):
    """A fake /proc and a pure cgroup v2 tree whose root holds ``files`` {name: text}."""
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    write(proc / "meminfo", meminfo)
    write(proc / "self" / "cgroup", "0::/\n")
    write(proc / "1" / "comm", "systemd\n")
    write(cg / "cgroup.controllers", "cpu memory\n")
    for name, text in files.items():
        write(cg / name, text)
    return proc, cg


def v1_tree(tmp_path, files):
    """A fake /proc and a cgroup v1 tree (cpu and memory mounts), ``files`` {relpath: text}."""
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    write(proc / "meminfo", MEMINFO)
    write(proc / "self" / "cgroup", "4:memory:/\n1:cpu:/\n")
    write(proc / "1" / "comm", "bash\n")
    write(cg / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(cg / "cpu" / "cpu.cfs_period_us", "100000\n")
    write(cg / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    for name, text in files.items():
        write(cg / name, text)
    return proc, cg


# (file, content, the file's name and the value the message must hold)
V2_BAD = [
    ("memory.max", "", "''"),
    ("memory.max", "unlimited", "'unlimited'"),
    ("memory.max", "-5", "'-5'"),
    ("memory.max", "1.5G", "'1.5G'"),
    ("cpu.max", "0 100000", "'0 100000'"),
    ("cpu.max", "150000 0", "'150000 0'"),
    ("cpu.max", "150000", "'150000'"),
    ("cpu.max", "max", "'max'"),
    ("cpu.max", "", "''"),
    ("cpu.max", "1.5 100000", "'1.5 100000'"),
    ("cpu.max", "150000 abc", "'150000 abc'"),
    ("cpu.max", "-1 100000", "'-1 100000'"),
    ("cpu.max", "150000 100000 7", "'150000 100000 7'"),
]
V2_BAD_WITH_LIMIT = [  # memory.current and memory.stat are read only under a limit
    ("memory.current", "", "''"),
    ("memory.current", "12k", "'12k'"),
    ("memory.current", "-1", "'-1'"),
    ("memory.stat", "anon 1\ninactive_file lots\n", "'inactive_file lots'"),
]
V1_BAD = [
    ("cpu/cpu.cfs_quota_us", "", "''"),
    ("cpu/cpu.cfs_quota_us", "0", "'0'"),
    ("cpu/cpu.cfs_quota_us", "-2", "'-2'"),
    ("cpu/cpu.cfs_quota_us", "half", "'half'"),
    ("cpu/cpu.cfs_period_us", "", "''"),
    ("cpu/cpu.cfs_period_us", "0", "'0'"),
    ("memory/memory.limit_in_bytes", "", "''"),
    ("memory/memory.limit_in_bytes", "lots", "'lots'"),
]
MEMINFO_BAD = [
    ("MemTotal:       0 kB\n", "MemTotal: 0 kB"),
    ("MemTotal: %d kB\n" % (2 ** 50 + 1), "MemTotal: %d kB" % (2 ** 50 + 1)),
    ("MemTotal:       lots kB\n", "MemTotal:       lots kB"),
    ("MemTotal:       16384000\n", "MemTotal:       16384000"),
    ("MemTotal:       16384000 MB\n", "MemTotal:       16384000 MB"),
    ("MemTotal:\n", "MemTotal:"),
    ("MemTotal:  16384000 kB\nMemAvailable:  -1 kB\n", "MemAvailable:  -1 kB"),
    ("MemTotal:  16384000 kB\nSwapTotal:  1e9 kB\n", "SwapTotal:  1e9 kB"),
    ("MemFree:  1000 kB\n", "MemTotal"),
    ("", "MemTotal"),
]


def assert_names(exc_text, path, value):
    assert str(path) in exc_text, exc_text
    assert value in exc_text, exc_text
    assert "Traceback" not in exc_text and "invalid literal" not in exc_text


def fails_naming(proc, cg, path, value):
    """host_facts on this tree raises a HostInfoError naming ``path`` and ``value``."""
    with pytest.raises(hi.HostInfoError) as exc:
        hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert_names(str(exc.value), path, value)


@pytest.mark.parametrize("name,text,value", V2_BAD)
def test_v2_malformed_file_names_the_file_and_content(tmp_path, name, text, value):
    proc, cg = v2_tree(tmp_path, {name: text + "\n"})
    fails_naming(proc, cg, cg / name, value)


@pytest.mark.parametrize("name,text,value", V2_BAD_WITH_LIMIT)
def test_v2_malformed_usage_names_the_file_and_content(tmp_path, name, text, value):
    files = {"memory.max": "1073741824\n", "memory.current": "1000\n", name: text + "\n"}
    fails_naming(*v2_tree(tmp_path, files), tmp_path / "cg" / name, value)


@pytest.mark.parametrize("name,text,value", V1_BAD)
def test_v1_malformed_file_names_the_file_and_content(tmp_path, name, text, value):
    proc, cg = v1_tree(tmp_path, {name: text + "\n"})
    fails_naming(proc, cg, cg / name, value)


@pytest.mark.parametrize("meminfo,value", MEMINFO_BAD)
def test_malformed_meminfo_names_the_file_and_line(tmp_path, meminfo, value):
    proc, cg = v2_tree(tmp_path, {}, meminfo=meminfo)
    fails_naming(proc, cg, proc / "meminfo", value)


# The kernel's nr_open bounds the units' LimitNOFILE (the plan checks it): a malformed one fails.
@pytest.mark.parametrize("text,value", [("abc", "abc"), ("0", "0"), ("-5", "-5"), ("", "''"),
                                        ("1048576 kB", "1048576 kB"), ("1e6", "1e6")])
def test_malformed_nr_open_names_the_file_and_content(tmp_path, text, value):
    proc, cg = v2_tree(tmp_path, {})
    write(proc / "sys" / "fs" / "nr_open", text + "\n")
    fails_naming(proc, cg, proc / "sys" / "fs" / "nr_open", value)


def test_nr_open_is_read_and_none_where_the_file_is_not(tmp_path):
    proc, cg = v2_tree(tmp_path, {})
    assert hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)["nr_open"] is None
    write(proc / "sys" / "fs" / "nr_open", "1048576\n")
    assert hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)["nr_open"] == 1048576


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode 000 file")
def test_unreadable_memory_max_names_the_file(tmp_path):
    proc, cg = v2_tree(tmp_path, {"memory.max": "1073741824\n"})
    os.chmod(cg / "memory.max", 0)
    with pytest.raises(hi.HostInfoError) as exc:
        hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert_names(str(exc.value), cg / "memory.max", "cannot read")


def test_a_directory_where_memory_max_belongs_names_it(tmp_path):
    """Unreadable as root too: read() of a directory fails with EISDIR."""
    proc, cg = v2_tree(tmp_path, {})
    (cg / "memory.max").mkdir()
    with pytest.raises(hi.HostInfoError) as exc:
        hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert_names(str(exc.value), cg / "memory.max", "cannot read")


def test_non_ascii_memory_max_names_the_file(tmp_path):
    proc, cg = v2_tree(tmp_path, {})
    (cg / "memory.max").write_bytes(b"\xff\xfe\n")
    with pytest.raises(hi.HostInfoError) as exc:
        hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert_names(str(exc.value), cg / "memory.max", "not ASCII")


@pytest.mark.parametrize("name,text,value", [V2_BAD[0], V2_BAD[4], V2_BAD[6]])
def test_module_fails_naming_the_file_and_content(tmp_path, capsys, name, text, value):
    proc, cg = v2_tree(tmp_path, {name: text + "\n"})
    code, result = run_main("stackfit_host_facts", {"proc_root": str(proc), "cgroup_root": str(cg)},
                            capsys)
    assert code == 1 and result["failed"] is True
    assert_names(result["msg"], cg / name, value)
    assert "exception" not in result


@pytest.mark.parametrize("files,cpus,limit", [
    ({"cpu.max": "max 100000\n", "memory.max": "max\n"}, 2.0, None),
    ({"cpu.max": "50000 100000\n", "memory.max": "0\n"}, 0.5, 0),
    ({"memory.max": "9223372036854771712\n"}, 2.0, None),
])
def test_valid_files_still_read_as_before(tmp_path, files, cpus, limit):
    proc, cg = v2_tree(tmp_path, files)
    facts = hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert facts["cpus"] == cpus and facts["memory_limit_bytes"] == limit
