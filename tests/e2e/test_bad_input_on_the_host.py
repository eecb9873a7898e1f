"""Bad input to site.yml on this machine's running dev stack: each one fails the run with a message
naming the variable (or environment variable) and the value, without a traceback, and the host is
left exactly as it was: every file stackfit writes (content, mode, owner), the release that serves
and each service's process."""
from __future__ import annotations

import hashlib
import os

import pytest

from test_dev_stack import RUN, get, playbook, run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisions this machine: needs root")

WRITTEN = ("/etc/stackfit", "/etc/redis", "/opt/stackfit/bin", "/opt/stackfit/monitor")


def fingerprint():
    """What a run that changed anything would have changed."""
    seen = {"current": os.path.realpath("/opt/stackfit/current")}
    for top in WRITTEN:
        for folder, _, files in os.walk(top):
            for name in sorted(files):
                path = os.path.join(folder, name)
                info = os.lstat(path)
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                seen[path] = (digest, info.st_mode, info.st_uid, info.st_gid)
    for name in sorted(os.listdir(RUN)):
        if name.endswith(".pid"):
            with open(os.path.join(RUN, name), encoding="ascii") as handle:
                number = int(handle.read())
            with open("/proc/%d/stat" % number, encoding="ascii") as handle:
                seen[name] = (number, handle.read().rsplit(")", 1)[1].split()[19])  # start time
    return seen


@pytest.fixture(scope="module")
def running():
    playbook("site.yml")  # the dev stack as site.yml without extra vars makes it
    assert get("/healthz")[0] == 200
    return fingerprint()


ROWS = [
    # (extra vars, environment, what the message must say: the option and the value given;
    # a module option is the role variable without stackfit_, and says which variable set it)
    (["stackfit_gunicorn_worker=8"], {}, ["stackfit_gunicorn_worker (did you mean stackfit_gunicorn_workers"]),
    (["stackfit_gunicorn_workers=99999999999999999999"], {},
     ["gunicorn_workers: ''99999999999999999999'' is over 512"]),
    (["stackfit_redis_memory_limit=512"], {}, ["redis_memory_limit: ''512'' is 512 bytes, under 1 MiB"]),
    (["stackfit_gunicorn_worker_class=gevnet"], {}, ["gunicorn_worker_class: ''gevnet'' is not one of"]),
    (["stackfit_gunicorn_worker_connections=1000000000"], {},
     ["gunicorn_worker_connections: 1000000000 is over 100000"]),
    (["stackfit_monitor_interval=99999999999"], {}, ["monitor_interval: 99999999999 is over 86400 seconds"]),
    (["stackfit_memory_budget=0.25"], {}, ["memory_budget: ''0.25'' is 0 bytes, under 1 MiB"]),
    (["stackfit_gunicorn_max_requests=-1"], {}, ["gunicorn_max_requests: -1 must be a whole number"]),
    (['{"stackfit_image_cache_quotas": {"article": 0.2}}'], {},
     ["image_cache_quotas: [''article''] has no quota for cover"]),
    (["stackfit_assume_cpus=abc"], {}, ["stackfit_assume_cpus (abc) must be a number"]),
    ([], {"GUNICORN_WORKERS": "abc"}, ["gunicorn_workers: ''abc'' must be", "GUNICORN_WORKERS"]),
    ([], {"REDIS_MEMORY_LIMIT": "2gbb"}, ["redis_memory_limit: ''2gbb'' has an unknown unit", "REDIS_MEMORY_LIMIT"]),
    ([], {"MEMORY_MONITOR_INTERVAL": "-5"}, ["monitor_interval: -5 is under 10 seconds", "MEMORY_MONITOR_INTERVAL"]),
]


@pytest.mark.parametrize("extra, env, named", ROWS,
                         ids=[" ".join(e) or " ".join("%s=%s" % i for i in v.items()) for e, v, _ in ROWS])
def test_bad_input_fails_naming_it_and_changes_nothing(running, extra, env, named):
    out = run_playbook("site.yml", *[a for value in extra for a in ("-e", value)], env=env, timeout=600)
    assert out.returncode != 0, out.stdout[-3000:]
    for text in named:
        assert text in out.stdout, out.stdout[-3000:]
    assert "Traceback" not in out.stdout + out.stderr, out.stdout[-3000:]
    assert fingerprint() == running
    assert get("/healthz")[0] == 200
