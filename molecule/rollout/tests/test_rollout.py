"""The rollout scenario: site.yml's fleet behind nginx, then two rollouts under load.

The tests run in file order and build on each other (converged fleet, a good release, a broken
one). The load generator (../files/loadgen.py) runs inside front1, against its nginx, for the
whole of each rollout; playbooks/rollout.yml runs against this scenario's inventory.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

REPO = Path(__file__).resolve().parents[3]
SCENARIO = Path(__file__).resolve().parents[1]
INVENTORY = os.environ.get("STACKFIT_RO_INVENTORY", "")
ANSIBLE_CFG = os.environ.get("STACKFIT_RO_ANSIBLE_CFG", "")
PREFIX = "stackfit-ro-"
FRONT, WEB1, WEB2, WORKER, CACHE = (PREFIX + n for n in ("front1", "web1", "web2", "worker1", "cache1"))
# The hosts that run the app (a cache host has no release: the app only where it runs).
APP_HOSTS = (WEB1, WEB2, WORKER)
LOAD_OUT = "/tmp/stackfit-loadgen.json"
LOAD_STOP = "/tmp/stackfit-loadgen.stop"
RELEASES = "/opt/stackfit/releases"
STATE = {}


def host(name):
    return testinfra.get_host("podman://" + name)


def podman(*args, check=True):
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def current(name):
    return host(name).check_output("readlink /opt/stackfit/current")


def upstream():
    return host(FRONT).check_output("cat /etc/nginx/conf.d/stackfit.conf")


def http(name, url):
    """Status code of a GET from inside the container (python3 stdlib: no curl in the image)."""
    cmd = (
        "python3 -c 'import sys, urllib.request, urllib.error\n"
        "try:\n print(urllib.request.urlopen(sys.argv[1], timeout=10).status)\n"
        "except urllib.error.HTTPError as e:\n print(e.code)' " + url
    )
    return int(host(name).check_output(cmd))


def http_body(name, url):
    cmd = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' " + url
    return host(name).check_output(cmd)


def gunicorn_pid(name):
    return host(name).check_output("systemctl show -P MainPID stackfit-gunicorn")


class Load:
    """The load generator inside front1: started detached, stopped by a stop file, read back."""

    def __init__(self, tag):
        self.tag = tag

    def __enter__(self):
        podman("cp", str(SCENARIO / "files" / "loadgen.py"), f"{FRONT}:/usr/local/bin/stackfit-loadgen")
        podman("exec", FRONT, "rm", "-f", LOAD_OUT, LOAD_STOP)
        podman("exec", "-d", FRONT, "python3", "/usr/local/bin/stackfit-loadgen", "http://127.0.0.1/api/work",
               LOAD_OUT, "--threads", "4", "--max-seconds", "2400", "--max-requests", "400000",
               "--stop-file", LOAD_STOP, "--pause", "0.05")
        for _ in range(50):
            time.sleep(0.2)
            counts = self.read()
            if counts and counts["sent"] > 0:
                break
        else:
            pytest.fail("the load generator did not start sending requests")
        return self

    def read(self):
        out = podman("exec", FRONT, "cat", LOAD_OUT, check=False)
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout else None

    def stop(self):
        podman("exec", FRONT, "touch", LOAD_STOP)
        for _ in range(100):
            counts = self.read()
            if counts and counts["done"]:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the load generator did not stop")
        seconds = counts["stopped"] - counts["started"]
        assert counts["stopped_by"] == "stop file", f"the load stopped early ({counts['stopped_by']}): raise its bounds"
        print(f"\nLOAD {self.tag}: sent={counts['sent']} ok={counts['ok']} failed={counts['failed']} "
              f"errors={counts['errors']} over {seconds:.1f} s")
        STATE[f"load_{self.tag}"] = counts
        return counts

    def __exit__(self, *exc):
        podman("exec", FRONT, "touch", LOAD_STOP, check=False)


def rollout(source, tag):
    """ansible-playbook playbooks/rollout.yml -e app_source=SOURCE; its rc and output (also kept)."""
    assert INVENTORY, "STACKFIT_RO_INVENTORY is not set: run through molecule (verify.yml)"
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    if ANSIBLE_CFG and os.path.exists(ANSIBLE_CFG):
        env["ANSIBLE_CONFIG"] = ANSIBLE_CFG
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", INVENTORY, "-v",
           str(REPO / "playbooks" / "rollout.yml"), "-e", f"app_source={source}"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    log = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / f"rollout-{tag}.log"
    log.write_text(proc.stdout + proc.stderr)
    print(f"\nROLLOUT {tag}: rc={proc.returncode} in {elapsed:.1f} s (log: {log})")
    print("\n".join(proc.stdout.splitlines()[-12:]))
    # ansible-core 2.19 prints failures ([ERROR], fatal results) on stderr.
    return proc.returncode, proc.stdout + proc.stderr


def task_results(output, task):
    """Hosts and their status ('ok', 'changed', 'failed', 'skipping', ...) for every run of a task."""
    results = []
    for section in re.split(r"\n(?=TASK \[)", output):
        if section.startswith(f"TASK [{task}]"):
            results += re.findall(r"^(ok|changed|failed|fatal|skipping): \[([^\]]+)\]", section, re.M)
    return results


def app_copy(tmp_path_factory, tag, run_py_head="", run_py_tail=""):
    """A copy of the sample app with a change: a VERSION file, and extra code in run.py."""
    dest = tmp_path_factory.mktemp(tag) / "synspirit"
    shutil.copytree(REPO / "examples" / "synspirit", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "VERSION").write_text(tag + "\n")
    run_py = dest / "run.py"
    run_py.write_text(run_py_head + run_py.read_text() + run_py_tail)
    return dest


def test_converged_fleet():
    conf = upstream()
    for web in (WEB1, WEB2):
        assert re.search(rf"server {web}:5001 max_fails=0;", conf), conf
    assert " down;" not in conf
    assert host(FRONT).service("nginx").is_running
    assert http(FRONT, "http://127.0.0.1/api/work") == 200
    for web in (WEB1, WEB2):
        assert host(web).service("stackfit-gunicorn").is_running
        assert http(web, "http://127.0.0.1:5001/healthz") == 200
    assert host(WORKER).service("stackfit-celery").is_running
    assert host(CACHE).service("redis-server").is_running
    # The front host runs nginx only: no app, no Gunicorn.
    assert not host(FRONT).file("/opt/stackfit").exists
    for name in APP_HOSTS:
        link = host(name).file("/opt/stackfit/current")
        assert link.is_symlink and link.linked_to.startswith(RELEASES + "/")
        # Installed from the controller's wheelhouse (app_wheelhouse in group_vars/production.yml).
        wheels = host(name).check_output("ls /opt/stackfit/wheelhouse/*/ | grep -c '\\.whl$' || true")
        assert int(wheels) > 5, f"{name}: {wheels} wheels in /opt/stackfit/wheelhouse"
    assert list((REPO / "build").glob("wheelhouse-*/*.whl")), "no wheelhouse on the controller"


def test_rollout_of_a_new_release_drops_no_request(tmp_path_factory):
    source = app_copy(tmp_path_factory, "rollout-1",
                      run_py_tail='\n\n@app.get("/version")\ndef version():\n    return "rollout-1"\n')
    before = {name: current(name) for name in APP_HOSTS}
    celery_pid = host(WORKER).check_output("systemctl show -P MainPID stackfit-celery")
    # Old releases to prune on worker1 (older than any real one): the last 5 are kept.
    host(WORKER).check_output(
        f"for i in 1 2 3 4 5; do mkdir -p {RELEASES}/old$i && touch -d '2020-01-0'$i {RELEASES}/old$i; done")

    with Load("rollout-1") as load:
        rc, out = rollout(source, "rollout-1")
        time.sleep(1)
        counts = load.stop()

    assert rc == 0, out[-3000:]
    assert counts["sent"] > 100
    assert counts["failed"] == 0, counts

    # Every host runs the new release. A release is its archive and its virtualenv's requirements:
    # the web hosts share one, the worker (Celery's runtime, not Gunicorn's) has its own.
    after = {name: current(name) for name in APP_HOSTS}
    assert after[WEB1] == after[WEB2], after
    new = after[WEB1]
    for name in APP_HOSTS:
        assert after[name] != before[name], f"{name} still on {before[name]}"
        assert host(name).file(after[name] + "/VERSION").content_string.strip() == "rollout-1"
    STATE["release1"] = new
    # Gunicorn restarted onto the new code (a HUP would keep the preloaded release), behind nginx too.
    for web in (WEB1, WEB2):
        assert http_body(web, "http://127.0.0.1:5001/version").strip() == "rollout-1"
    assert http_body(FRONT, "http://127.0.0.1/version").strip() == "rollout-1"
    # Celery warm-restarted onto it.
    assert host(WORKER).check_output("systemctl show -P MainPID stackfit-celery") != celery_pid
    # Order: cache hosts, then workers, then web hosts one batch at a time.
    plays = re.findall(r"^PLAY \[(.+?)\]", out, re.M)
    order = [p for p in plays if p.startswith("Roll out to the")]
    assert [p.split()[4] for p in order] == ["cache", "worker", "web", "web"], plays
    # The health gate passed on both web hosts; each was out of nginx's upstream while it changed.
    gate = task_results(out, "Count Gunicorn's workers")
    assert sorted(h for s, h in gate if s == "ok") == [WEB1, WEB2], gate
    assert " down;" not in upstream()
    # The wheelhouse: pip installed with --no-index from the host's copy.
    pip = re.findall(r"--no-index[\s'\",-]+--find-links[\s'\",-]+/opt/stackfit/wheelhouse/wheelhouse-", out)
    assert len(pip) >= len(APP_HOSTS), "no pip install --no-index --find-links <wheelhouse> in the rollout's output"
    for name in APP_HOSTS:
        assert host(name).file("/opt/stackfit/wheelhouse").is_directory
    # Releases: each its own directory; worker1 keeps the last 5 (old1 and old2 went).
    releases = host(WORKER).check_output(f"ls -1 {RELEASES} | grep -v '\\.tar\\.gz$'").split()
    # the converged release and the new one are the newest, then old5, old4, old3 (by mtime)
    assert sorted(releases) == sorted([after[WORKER].rsplit("/", 1)[1], before[WORKER].rsplit("/", 1)[1],
                                       "old3", "old4", "old5"]), releases


def test_broken_release_stops_at_the_first_web_host(tmp_path_factory):
    release1 = STATE.get("release1")
    if not release1:
        pytest.skip("the first rollout did not finish")
    source = app_copy(tmp_path_factory, "rollout-broken",
                      run_py_head='raise RuntimeError("a deliberately broken release")\n')
    web2_pid = gunicorn_pid(WEB2)
    web2_mtime = host(WEB2).check_output("stat -c %Y /opt/stackfit/current")

    with Load("rollout-broken") as load:
        rc, out = rollout(source, "rollout-broken")
        time.sleep(1)
        counts = load.stop()

    assert rc != 0, out[-3000:]
    assert counts["sent"] > 100
    assert counts["failed"] == 0, counts
    assert "failed its rollout and was restored" in out
    # web1 (the first batch) failed, was restored and is back in nginx's upstream.
    assert current(WEB1) == release1
    assert http(WEB1, "http://127.0.0.1:5001/healthz") == 200
    assert http_body(WEB1, "http://127.0.0.1:5001/version").strip() == "rollout-1"
    assert " down;" not in upstream()
    assert re.search(rf"server {WEB1}:5001 max_fails=0;", upstream())
    # web2 was never touched: same release, same Gunicorn, serving.
    assert task_results(out, "Read the release that serves now") == [("ok", WEB1)]
    assert current(WEB2) == release1
    assert host(WEB2).check_output("stat -c %Y /opt/stackfit/current") == web2_mtime
    assert gunicorn_pid(WEB2) == web2_pid
    assert http(WEB2, "http://127.0.0.1:5001/healthz") == 200
    # The front keeps serving; Celery runs (the worker took the release: app.celery_utils imports).
    assert http(FRONT, "http://127.0.0.1/api/work") == 200
    assert host(WORKER).service("stackfit-celery").is_running
