"""roles/celery/templates/stackfit-celery.j2 (stackfit-celery): Celery's command line without the amqp shell's imports.

The worker it starts is exercised for real in test_synspirit_stack.py (tasks round-trip through it);
here: that it skips prompt_toolkit (the point of it), that plain celery does load it (so the point
still holds for the pinned celery), and that it is Celery's own command line."""
from __future__ import annotations

import json
import subprocess
import sys

from synspirit_support import APP_DIR, CELERY_LAUNCHER

# Import what `celery ... worker` imports, either through the launcher's preamble or plainly,
# and report which of the amqp shell's dependencies got loaded.
PROBE = """
import json, runpy, sys
if sys.argv[1] == "launcher":
    runpy.run_path(sys.argv[2], run_name="stackfit_celery")  # the preamble, not main()
import celery.bin.celery, celery.bin.worker, celery.apps.worker, celery.concurrency.gevent
print(json.dumps({"prompt_toolkit": "prompt_toolkit" in sys.modules,
                  "wcwidth": "wcwidth" in sys.modules,
                  "commands": sorted(celery.bin.celery.celery.commands)}))
"""


def probe(mode):
    done = subprocess.run([sys.executable, "-c", PROBE, mode, str(CELERY_LAUNCHER)],
                          capture_output=True, text=True, timeout=60, cwd=APP_DIR)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_launcher_keeps_the_amqp_shell_out_and_every_command_in():
    plain, launched = probe("plain"), probe("launcher")
    assert plain["prompt_toolkit"] and plain["wcwidth"]  # what the launcher exists to avoid
    assert not launched["prompt_toolkit"] and not launched["wcwidth"]
    assert launched["commands"] == plain["commands"] and "worker" in launched["commands"]


def test_the_launcher_is_celerys_command_line():
    done = subprocess.run([sys.executable, str(CELERY_LAUNCHER), "--version"],
                          capture_output=True, text=True, timeout=60, cwd=APP_DIR)
    import celery
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(celery.__version__)
    bad = subprocess.run([sys.executable, str(CELERY_LAUNCHER), "no-such-command"],
                         capture_output=True, text=True, timeout=60, cwd=APP_DIR)
    assert bad.returncode == 2 and "no-such-command" in bad.stderr
