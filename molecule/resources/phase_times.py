"""Filter for `molecule test` output: passes it through, times each action, checks the check step.

    molecule test -s default 2>&1 | python phase_times.py

Prints a table of the actions' durations at the end (from Molecule's "[scenario > action] Executing"
lines to the next action or the end). Exits 1 when the check action's play recap shows changes:
converge --check --diff after converge must report changed=0 (Molecule does not assert it).
"""

import re
import sys
import time

ACTION = re.compile(r"\[(?P<scenario>[\w.-]+) > (?P<action>[\w-]+)\] Executing")
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)")


def main() -> int:
    start = time.monotonic()
    rows: list[list] = []  # [scenario, action, started, ended]
    check_changes: list[str] = []
    check_recaps = 0
    for line in sys.stdin:
        sys.stdout.write(line)
        sys.stdout.flush()
        now = time.monotonic()
        match = ACTION.search(line)
        if match:
            if rows and rows[-1][3] is None:
                rows[-1][3] = now
            rows.append([match["scenario"], match["action"], now, None])
            continue
        recap = RECAP.match(line)
        if recap and rows and rows[-1][1] == "check" and rows[-1][3] is None:
            check_recaps += 1
            if int(recap["changed"]):
                check_changes.append(line.strip())
    end = time.monotonic()
    if rows and rows[-1][3] is None:
        rows[-1][3] = end

    print("\n== phase times")
    for scenario, action, began, ended in rows:
        print(f"{scenario:<12} {action:<12} {ended - began:6.1f}s")
    print(f"{'':<12} {'total':<12} {end - start:6.1f}s")
    if any(action == "check" for _, action, _, _ in rows):
        if check_changes:
            print("check: converge --check --diff reported changes:", *check_changes, sep="\n  ")
            return 1
        if not check_recaps:
            print("check: no play recap seen")
            return 1
        print("check: changed=0 on every host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
