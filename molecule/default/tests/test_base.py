"""The base of every stackfit instance: a booted systemd and the Python Ansible runs with."""

import pytest

# Units allowed to fail in a container (none today). Anything else failing fails the test.
ALLOWED_FAILED_UNITS: set[str] = set()


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running --wait").stdout.strip()
    if state == "degraded":
        listing = host.check_output("systemctl list-units --failed --plain --no-legend --no-pager")
        failed = {line.split()[0] for line in listing.replace("●", "").splitlines() if line.strip()}
        assert failed <= ALLOWED_FAILED_UNITS, f"failed units: {sorted(failed)}"
    else:
        assert state == "running"


def test_pid1_is_systemd(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


@pytest.mark.parametrize("path", ["/usr/bin/python3"])
def test_python3_exists(host, path):
    python = host.file(path)
    assert python.exists
    assert host.run(f"{path} -c 'import apt, venv'").rc == 0
