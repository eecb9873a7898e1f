"""roles/gunicorn/templates/gunicorn.conf.py.j2: every combination of --preload and recycling cover
renders to Python that compiles, and a preloaded worker's worker_exit leaves only the way Gunicorn
would have (exit status 0 after a served worker's SystemExit 0; any other exit, such as a boot
error's status 3 that stops the arbiter, is left to Gunicorn), with the app's atexit functions
run."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jinja2
import pytest

from conftest import ROOT

TEMPLATE = ROOT / "roles" / "gunicorn" / "templates" / "gunicorn.conf.py.j2"


def render(preload, cover):
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["comment"] = lambda text: "#\n# " + text + "\n#"
    env.filters["to_json"] = json.dumps
    plan = {"gunicorn_preload": preload, "gunicorn_recycle_cover": cover,
            "gunicorn_workers": 1 if cover else 3,
            "gunicorn_worker_class": "gevent", "gunicorn_worker_connections": 1000,
            "gunicorn_max_requests": 2000, "gunicorn_max_requests_jitter": 200}
    unit = {"bind": "127.0.0.1:5001", "logs": {"access": "/tmp/a.log", "error": "/tmp/e.log"},
            "pidfile": "/run/stackfit/gunicorn.pid",
            "control_socket": "/run/stackfit/gunicorn.ctl"}
    return env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        stackfit_plan=plan, app_wsgi="run:app", stackfit_app_dir="/opt/stackfit/current",
        __gunicorn_unit=unit, gunicorn_timeout=30, stackfit_environment="development",
        stackfit_gunicorn_graceful_timeout=30, app_post_fork="", ansible_managed="Ansible managed")


@pytest.mark.parametrize("preload", [True, False])
@pytest.mark.parametrize("cover", [True, False])
def test_every_combination_compiles(preload, cover):
    text = render(preload, cover)
    compile(text, "gunicorn.conf.py", "exec")
    assert ("def worker_exit(" in text) is preload
    assert ("def post_request(" in text) is cover


def exit_through_worker_exit(booted, code):
    """A child runs the rendered config (without gevent's patching) and ends as Gunicorn's
    spawn_worker does: sys.exit(code), with worker_exit called in its finally clause."""
    config = render(True, False)
    config = config.replace("from gevent import monkey", "").replace("monkey.patch_all()", "")
    child = textwrap.dedent("""
        import atexit, sys
        namespace = {}
        exec(compile(sys.argv[1], "gunicorn.conf.py", "exec"), namespace)
        atexit.register(lambda: print("the app's atexit ran", flush=True))

        class Worker:
            booted = %r

        try:
            sys.exit(%d)
        finally:
            namespace["worker_exit"](None, Worker())
            print("Gunicorn's exit", flush=True)
        """ % (booted, code))
    return subprocess.run([sys.executable, "-c", child, config], capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_served_worker_leaves_at_once_with_status_0_after_the_apps_atexit():
    out = exit_through_worker_exit(True, 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "the app's atexit ran\n"   # worker_exit never returned to Gunicorn


@pytest.mark.parametrize("booted, code", [(True, -1), (False, 3), (False, 0)])
def test_any_other_exit_is_left_to_gunicorn(booted, code):
    out = exit_through_worker_exit(booted, code)
    assert out.returncode == code % 256, out.stderr
    assert out.stdout == "Gunicorn's exit\nthe app's atexit ran\n"
