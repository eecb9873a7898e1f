"""The command line: run, loop, decide, check-config (exit codes in errors.py)."""
import json
import os
import time

from .config import DEFAULT_CONFIG, load_config
from .errors import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, EXIT_OUTPUT, ConfigError, OutputError, \
    RedisError, log
from .files import ADAPTIVE_STATE_NAME, read_state
from .measure import system_memory
from .policy import decide
from .resp import redis_connect
from .run import run_once


def _parser():
    import argparse
    parser = argparse.ArgumentParser(prog="stackfit-monitor",
                                     description="stackfit memory monitor")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", default=DEFAULT_CONFIG,
                         help="JSON configuration (default %(default)s)")
        return cmd

    run = add("run", "one run: measure, write report.json, stackfit.prom, history.jsonl")
    run.add_argument("--memory-percent", type=_percent, default=None,
                     help="pretend system memory is at this percent (drills, tests)")
    loop = add("loop", "run every `interval` seconds until SIGTERM/SIGINT")
    loop.add_argument("--max-runs", type=int, default=None, help="stop after N runs")
    decide_cmd = add("decide", "print what the adaptive policy would do; changes nothing")
    decide_cmd.add_argument("--memory-percent", type=_percent, default=None,
                            help="system memory percent (default: measured now)")
    decide_cmd.add_argument("--used-memory", type=_nonneg_int, default=None,
                            help="Redis used_memory in bytes (default: read from Redis)")
    decide_cmd.add_argument("--current", type=_nonneg_int, default=None,
                            help="current Redis maxmemory in bytes (default: read from Redis)")
    add("check-config", "validate the configuration and exit")
    return parser


def _percent(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text) from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("not within 0..100: %r" % text)
    return value


def _nonneg_int(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("negative: %r" % text)
    return value


def cmd_decide(cfg, args):
    if cfg["adaptive"] is None:
        raise ConfigError("config key adaptive: missing (required by decide)")
    percent = args.memory_percent
    if percent is None:
        percent = system_memory()["percent"]
    used, current = args.used_memory, args.current
    source = "arguments"
    if used is None or current is None:
        try:
            with redis_connect(cfg["redis"]) as conn:
                info = conn.info_memory()
        except RedisError as exc:
            print(json.dumps({"error": "%s (pass --used-memory and --current)" % exc}))
            return EXIT_ERROR
        used = info.get("used_memory") if used is None else used
        current = info.get("maxmemory", 0) if current is None else current
        source = "redis"
    state = read_state(os.path.join(cfg["output_dir"], ADAPTIVE_STATE_NAME))
    decision = decide(percent, current, used, state, cfg["adaptive"], time.time())
    decision["source"] = source
    decision["enabled"] = cfg["adaptive"]["enabled"]
    print(json.dumps(decision, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_loop(cfg, args):
    import signal
    import threading
    stop = threading.Event()

    def on_signal(signum, _frame):
        log("signal %d: stopping after the current run" % signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runs = 0
    while not stop.is_set():
        try:
            run_once(cfg)
        except OutputError as exc:
            log("run failed: %s" % exc)
        runs += 1
        if args.max_runs is not None and runs >= args.max_runs:
            break
        stop.wait(cfg["interval"])
    return EXIT_OK


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.command == "check-config":
            print("config %s: ok" % args.config)
            return EXIT_OK
        if args.command == "decide":
            return cmd_decide(cfg, args)
        if args.command == "loop":
            return cmd_loop(cfg, args)
        run_once(cfg, memory_percent=args.memory_percent)
        return EXIT_OK
    except ConfigError as exc:
        log(str(exc))
        return EXIT_CONFIG
    except OutputError as exc:
        log(str(exc))
        return EXIT_OUTPUT
