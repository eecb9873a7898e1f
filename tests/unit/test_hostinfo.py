"""stackfit_hostinfo against fake /proc and cgroup trees (v1, v2, hybrid) and this real host."""
from __future__ import annotations

import os

import pytest

import stackfit_hostinfo as hi

GIB = 1024 ** 3
MEMINFO = ("MemTotal:       16384000 kB\nMemFree:         1000000 kB\n"
           "MemAvailable:   12000000 kB\nSwapTotal:       2048000 kB\n")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_proc(tmp_path, cgroup_text, pid1="systemd"):
    proc = tmp_path / "proc"
    write(proc / "meminfo", MEMINFO)
    write(proc / "self" / "cgroup", cgroup_text)
    write(proc / "1" / "comm", pid1 + "\n")
    return proc


def test_v2_quota_and_memory_limit(tmp_path):
    proc = fake_proc(tmp_path, "0::/system.slice/app.service\n")
    cg = tmp_path / "cg"
    write(cg / "cgroup.controllers", "cpuset cpu io memory pids\n")
    write(cg / "system.slice" / "app.service" / "cpu.max", "150000 100000\n")
    write(cg / "system.slice" / "app.service" / "memory.max", str(512 * 1024 * 1024) + "\n")
    write(cg / "system.slice" / "app.service" / "memory.current", str(100 * 1024 * 1024) + "\n")
    facts = hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert facts["cgroup_version"] == 2
    assert facts["cpus"] == 1.5
    assert facts["cpu_quota"] == 1.5
    assert facts["cpu_count"] == 2
    assert facts["memory_limit_bytes"] == 512 * 1024 * 1024
    assert facts["memory_bytes"] == 512 * 1024 * 1024
    assert facts["memory_total_bytes"] == 16384000 * 1024
    # available inside the cgroup: limit - usage, not the host's MemAvailable
    assert facts["memory_available_bytes"] == 412 * 1024 * 1024
    assert facts["swap_total_bytes"] == 2048000 * 1024
    assert facts["service_manager"] == "systemd"


def test_v2_no_limits_and_ancestor_limit_wins(tmp_path):
    proc = fake_proc(tmp_path, "0::/a/b\n", pid1="bash")
    cg = tmp_path / "cg"
    write(cg / "cgroup.controllers", "cpu memory\n")
    write(cg / "a" / "cpu.max", "max 100000\n")
    write(cg / "a" / "memory.max", str(GIB) + "\n")
    write(cg / "a" / "b" / "cpu.max", "max 100000\n")
    write(cg / "a" / "b" / "memory.max", "max\n")
    facts = hi.host_facts(str(proc), str(cg), affinity=4, cpu_count=8)
    assert facts["cpus"] == 4.0 and facts["cpu_quota"] is None
    assert facts["memory_limit_bytes"] == GIB
    assert facts["service_manager"] == "none"


def test_v1_cpu_cpuacct_and_memory(tmp_path):
    proc = fake_proc(tmp_path, "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n")
    cg = tmp_path / "cg"
    write(cg / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")  # a mount's root has the files too
    write(cg / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    write(cg / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "50000\n")
    write(cg / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    write(cg / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(cg / "memory" / "docker" / "abc" / "memory.limit_in_bytes", str(256 * 1024 * 1024))
    write(cg / "memory" / "docker" / "abc" / "memory.usage_in_bytes", str(56 * 1024 * 1024))
    facts = hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert facts["cgroup_version"] == 1
    assert facts["cpus"] == 0.5
    assert facts["memory_bytes"] == 256 * 1024 * 1024
    assert facts["memory_available_bytes"] == 200 * 1024 * 1024


def test_v1_no_quota_and_near_2_63_is_no_limit(tmp_path):
    proc = fake_proc(tmp_path, "4:memory:/x\n1:cpu:/\n2:cpuacct:/\n")
    cg = tmp_path / "cg"
    write(cg / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(cg / "cpu" / "cpu.cfs_period_us", "100000\n")
    write(cg / "memory" / "x" / "memory.limit_in_bytes", "9223372036854771712\n")
    facts = hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert facts["cpu_quota"] is None and facts["cpus"] == 2.0
    assert facts["memory_limit_bytes"] is None
    assert facts["memory_bytes"] == 16384000 * 1024


def test_hybrid_host_reads_v1_not_the_empty_v2_tree(tmp_path):
    """Like these CI machines: v1 controllers, plus a v2 tree under unified/ with no cpu/memory."""
    proc = fake_proc(tmp_path, "9:name=systemd:/\n4:memory:/job/42\n2:cpuacct:/\n1:cpu:/\n0::/\n")
    cg = tmp_path / "cg"
    write(cg / "unified" / "cgroup.controllers", "hugetlb\n")
    write(cg / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(cg / "cpu" / "cpu.cfs_period_us", "100000\n")
    write(cg / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(cg / "memory" / "job" / "42" / "memory.limit_in_bytes", str(2 * GIB))
    facts = hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert facts["cgroup_version"] == 1
    assert facts["memory_bytes"] == 2 * GIB
    assert facts["cpus"] == 2.0


def test_systemd_container_on_a_hybrid_host_skips_the_empty_cpu_cpuacct_dir(tmp_path):
    """Seen in podman --systemd=always --cpus=1 on these machines: an empty cpu,cpuacct beside
    the real cpu mount, and a cgroup path that does not exist under the mounts."""
    proc = fake_proc(tmp_path, "4:memory:/libpod_parent/libpod-1\n2:cpuacct:/libpod_parent/libpod-1\n"
                               "1:cpu:/libpod_parent/libpod-1\n0::/libpod_parent/libpod-1\n")
    cg = tmp_path / "cg"
    (cg / "cpu,cpuacct").mkdir(parents=True)
    write(cg / "cpu" / "cpu.cfs_quota_us", "100000\n")
    write(cg / "cpu" / "cpu.cfs_period_us", "100000\n")
    write(cg / "memory" / "memory.limit_in_bytes", str(GIB))
    write(cg / "unified" / "cgroup.controllers", "")
    facts = hi.host_facts(str(proc), str(cg), affinity=2, cpu_count=2)
    assert facts["cgroup_version"] == 1
    assert facts["cpu_quota"] == 1.0 and facts["cpus"] == 1.0
    assert facts["memory_bytes"] == GIB


def test_container_path_missing_falls_back_to_mount_root(tmp_path):
    """Without a cgroup namespace the path in /proc/self/cgroup is not under the mount: use the root."""
    proc = fake_proc(tmp_path, "0::/machine.slice/libpod-123.scope\n")
    cg = tmp_path / "cg"
    write(cg / "cgroup.controllers", "cpu memory\n")
    write(cg / "cpu.max", "200000 100000\n")
    write(cg / "memory.max", str(GIB))
    facts = hi.host_facts(str(proc), str(cg), affinity=4, cpu_count=4)
    assert facts["cpus"] == 2.0 and facts["memory_bytes"] == GIB


def test_no_cgroups_at_all(tmp_path):
    proc = fake_proc(tmp_path, "")
    facts = hi.host_facts(str(proc), str(tmp_path / "nothing"), affinity=3, cpu_count=3)
    assert facts["cgroup_version"] is None
    assert facts["cpus"] == 3.0 and facts["memory_bytes"] == 16384000 * 1024


def test_missing_meminfo_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="meminfo"):
        hi.host_facts(str(tmp_path), str(tmp_path))


@pytest.mark.parametrize("text,expected", [("max 100000", None), ("150000 100000", 1.5),
                                           (None, None), ("50000 100000", 0.5)])
def test_parse_cpu_max(text, expected):
    assert hi.parse_cpu_max(text) == expected


def test_this_host():
    facts = hi.host_facts()
    assert facts["cpus"] <= len(os.sched_getaffinity(0))
    assert 0 < facts["memory_bytes"] <= facts["memory_total_bytes"]
    assert facts["service_manager"] in ("systemd", "none")


def test_accounts_reports_what_exists_and_none_for_what_does_not():
    users, groups = hi.accounts(["root", "no-such-user-here"], ["root", "no-such-group-here"])
    assert users["root"]["uid"] == 0 and users["root"]["gid"] == 0 and users["root"]["home"]
    assert users["no-such-user-here"] is None
    assert groups == {"root": 0, "no-such-group-here": None}
