#!/usr/bin/env python3
"""A bounded load generator for the rollout scenario, run INSIDE the front host (python3 stdlib).

    loadgen.py URL OUT.json [--threads 4] [--max-seconds 600] [--max-requests 200000]
               [--stop-file PATH] [--pause 0.05]

Each thread sends GET URL in a loop, until the stop file appears, the time is up or the request
budget is spent. OUT.json is rewritten every second and at the end: sent, ok, failed, the kinds of
failures (HTTP status or exception name) and "done": true once every thread has stopped.
"""
import argparse
import json
import os
import threading
import time
import urllib.error
import urllib.request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--max-requests", type=int, default=200000)
    parser.add_argument("--stop-file", default="/tmp/loadgen.stop")
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()

    lock = threading.Lock()
    counts = {"sent": 0, "ok": 0, "failed": 0, "errors": {}, "done": False,
              "started": time.time(), "stopped": None, "pid": os.getpid()}
    deadline = time.monotonic() + args.max_seconds

    def write():
        with lock:
            data = json.dumps(counts, sort_keys=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(data)
        os.replace(tmp, args.out)

    def running():
        with lock:
            budget = counts["sent"] < args.max_requests
        return budget and time.monotonic() < deadline and not os.path.exists(args.stop_file)

    def worker():
        while running():
            kind = None
            try:
                with urllib.request.urlopen(args.url, timeout=args.timeout) as resp:
                    resp.read()
                    if resp.status != 200:
                        kind = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                kind = f"HTTP {exc.code}"
            except Exception as exc:  # every other failure counts, by its kind
                kind = type(exc).__name__
            with lock:
                counts["sent"] += 1
                if kind is None:
                    counts["ok"] += 1
                else:
                    counts["failed"] += 1
                    counts["errors"][kind] = counts["errors"].get(kind, 0) + 1
            if args.pause:
                time.sleep(args.pause)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        write()
        time.sleep(1)
    with lock:
        counts["done"] = True
        counts["stopped"] = time.time()
        counts["stopped_by"] = ("stop file" if os.path.exists(args.stop_file) else
                                "max requests" if counts["sent"] >= args.max_requests else "max seconds")
    write()


if __name__ == "__main__":
    main()
