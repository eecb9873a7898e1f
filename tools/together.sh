#!/usr/bin/env bash
# Run named commands at the same time, each output line prefixed with its name; print each one's
# time and status at the end; fail when any failed. `make test` runs pytest (this machine) beside
# the Molecule scenarios (their own containers, storage and networks) with it.
#
#   tools/together.sh NAME 'COMMAND' [NAME 'COMMAND'...]
set -uo pipefail
export PYTHONUNBUFFERED=1  # a pipe would hold Python's output back until the end
(($# >= 2 && $# % 2 == 0)) || { echo "usage: $0 NAME COMMAND [NAME COMMAND...]" >&2; exit 2; }

dir="$(mktemp -d)"
trap 'kill 0 2> /dev/null; rm -rf "$dir"' INT TERM
names=() pids=()
while (($#)); do
  name=$1 command=$2
  shift 2
  names+=("$name")
  (
    s=$SECONDS
    bash -o pipefail -c "$command" 2>&1 | tee "$dir/$name.log" | sed -u "s/^/[$name] /"
    status=${PIPESTATUS[0]}
    echo "$name: exit $status after $((SECONDS - s)) s" > "$dir/$name"
    exit "$status"
  ) &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
printf '\n== phases run together\n'
for name in "${names[@]}"; do cat "$dir/$name" 2> /dev/null || echo "$name: no status"; done
# What failed, again at the end (a CI log may keep only its tail): pytest's FAILED/ERROR lines,
# the scenarios' times and failed tasks (not an until loop's "FAILED - RETRYING"), each phase's
# last 40 such lines.
for name in "${names[@]}"; do
  summary=$(grep -E '^(\[m[0-9]\] )?(FAILED|ERROR|fatal:|scenario |setup |every scenario|CRITICAL)' \
    "$dir/$name.log" 2> /dev/null | grep -v 'FAILED - RETRYING' | cut -c 1-300 | tail -n 40)
  [[ -z $summary ]] || printf '\n== %s: what it reported\n%s\n' "$name" "$summary"
done
rm -rf "$dir"
exit "$failed"
