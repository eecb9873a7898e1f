"""The units' systemd sandbox is in force, not only written: each running stackfit service has a
mount namespace of its own (ProtectSystem=strict, PrivateTmp, ProtectProc=invisible), where /etc
and /opt are read-only and only its ReadWritePaths are writable. The containers get CAP_SYS_ADMIN
for this (molecule.yml): without it systemd logs "Failed to set up namespace, assuming
containerized execution and ignoring" and skips the sandbox silently."""

import json

import pytest

import stackfit_testlib as lib

SERVICES = {"web": "stackfit-gunicorn.service", "worker": "stackfit-celery.service"}


def _main_pid(host, unit):
    pid = host.check_output("systemctl show -p MainPID --value %s", unit)
    assert pid and pid != "0", unit
    return pid


@pytest.fixture(scope="module")
def groups(host):
    return lib.inventory_groups(host)


def _as_service(host, command, *args):
    """A command as the service's own user: it may look into its own processes' /proc/<pid>/
    (root in the container may not: no CAP_SYS_PTRACE), and /proc/<pid>/root/ resolves paths in
    the service's mount namespace."""
    return host.run("runuser -u stackfit -- sh -c %s", command % args)


@pytest.mark.parametrize("group", list(SERVICES))
def test_the_service_runs_in_a_mount_namespace_of_its_own(host, groups, group):
    if group not in groups:
        pytest.skip("not a %s host" % group)
    pid = _main_pid(host, SERVICES[group])
    own = _as_service(host, "readlink /proc/%s/ns/mnt", pid)
    assert own.rc == 0, own.stderr
    assert own.stdout.strip() != host.check_output("readlink /proc/1/ns/mnt")
    mountinfo = _as_service(host, "cat /proc/%s/mountinfo", pid).stdout.splitlines()
    proc = [line for line in mountinfo if line.split()[4] == "/proc"]
    assert proc and "hidepid=invisible" in proc[-1], proc  # ProtectProc=invisible
    # PrivateTmp: its /tmp is not the host's.
    marker = _as_service(host, "echo sandbox > /proc/%s/root/tmp/.stackfit-sandbox", pid)
    assert marker.rc == 0, marker.stderr
    assert not host.file("/tmp/.stackfit-sandbox").exists


@pytest.mark.parametrize("group", list(SERVICES))
def test_only_the_read_write_paths_are_writable(host, groups, group):
    if group not in groups:
        pytest.skip("not a %s host" % group)
    pid = _main_pid(host, SERVICES[group])
    unit = lib.host_plan(host)["units"]["gunicorn" if group == "web" else "celery"]
    for path in ("/etc/.stackfit-sandbox", "/opt/stackfit/.stackfit-sandbox", "/usr/.stackfit-sandbox"):
        out = _as_service(host, "touch /proc/%s/root%s", pid, path)
        assert out.rc != 0 and "Read-only file system" in out.stderr, (path, out.stderr)
    for directory in unit["writable"]:
        out = _as_service(host, "touch /proc/%s/root%s/.sb && rm /proc/%s/root%s/.sb",
                          pid, directory, pid, directory)
        assert out.rc == 0, (directory, out.stderr)


def test_the_monitor_works_under_its_sandbox(host):
    """A run of the hardened oneshot unit writes its report, with the system memory it reads."""
    host.run("rm -f %s", lib.MONITOR_REPORT)
    started = host.run("systemctl start stackfit-monitor.service")
    assert started.rc == 0, started.stderr
    assert host.check_output("systemctl show -p Result --value stackfit-monitor.service") == "success"
    report = json.loads(host.file(lib.MONITOR_REPORT).content_string)
    system = report["system"]
    assert system["total"] > 0 and 0 <= system["percent"] <= 100
    limit = lib.container_resources(host)["memory_limit"]
    if limit:  # a container with a memory limit: the monitor reads the cgroup's figures
        assert system["source"].startswith("cgroup") and system["total"] == limit, system
