"""Under systemd a service killed with SIGKILL comes back on its own (issue 19): each unit's
Restart=, a start limit on each (5 starts in 60 s), the restart counted (NRestarts) and shown in
the monitor's report. Runs last in the scenario (the file sorts after test_stack): it kills.
"""

import json
import time

import pytest

import stackfit_testlib as lib

# group -> (unit, the monitor's name for it); one kill each, the Redis kill last (the others use it).
KILLED = [("web", "stackfit-gunicorn.service", "gunicorn"),
          ("worker", "stackfit-celery.service", "celery"),
          ("cache", "redis-server.service", "redis")]


@pytest.fixture(scope="module")
def groups(host):
    return lib.inventory_groups(host)


def props(host, unit, *names):
    out = host.check_output("systemctl show %s " + " ".join("-p %s" for _ in names), unit, *names)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.parametrize("group,unit,name", KILLED)
def test_a_killed_service_is_restarted_and_counted(host, groups, group, unit, name):
    if group not in groups:
        pytest.skip(f"not a {group} host")
    before = props(host, unit, "MainPID", "NRestarts", "StartLimitBurst", "StartLimitIntervalUSec")
    assert (before["StartLimitBurst"], before["StartLimitIntervalUSec"]) == ("5", "1min"), before
    assert before["MainPID"] != "0", before
    started = time.monotonic()
    assert host.run("kill -9 %s", before["MainPID"]).rc == 0
    deadline = started + 30
    now = before
    while time.monotonic() < deadline:
        now = props(host, unit, "MainPID", "NRestarts", "ActiveState")
        if now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"]):
            break
        time.sleep(0.5)
    print(f"{unit}: active again {time.monotonic() - started:.1f} s after kill -9")
    assert now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"]), now
    assert int(now["NRestarts"]) == int(before["NRestarts"]) + 1, (before, now)
    # The monitor's next run reports the count.
    assert host.run("systemctl start stackfit-monitor.service").rc == 0
    report = json.loads(host.file(lib.MONITOR_REPORT).content_string)
    entry = report["supervision"]["services"][name]
    assert report["supervision"]["manager"] == "systemd"
    assert entry["restarts"] == int(now["NRestarts"]) and entry["state"] == "active", entry
