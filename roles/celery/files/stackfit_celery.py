"""Celery's command line, without the `celery amqp` shell's dependencies.

    <venv>/bin/python stackfit-celery -A app.celery_utils.celery worker ...   # == celery -A ... worker ...

`celery.bin.celery` imports every subcommand, and `celery amqp` imports click_repl, which loads
prompt_toolkit and wcwidth (about 170 modules). A worker never uses them; measured on Debian 12
with celery 5.7 they cost each worker process 6.4 MiB (46.7 -> 40.1 MiB PSS idle). This launcher
registers an empty click_repl, then hands over to Celery's own entry point with the same arguments
(so `maybe_patch_concurrency` still patches gevent first). The only thing lost is `celery amqp repl`;
use the real `celery` program for that.
"""
import sys
import types

if "click_repl" not in sys.modules:
    _stub = types.ModuleType("click_repl")
    _stub.register_repl = lambda group, name="repl": None
    sys.modules["click_repl"] = _stub

from celery.__main__ import main  # noqa: E402 - after the stub, as the point of this file

if __name__ == "__main__":
    main()
