#!/usr/bin/env bash
# Runs `molecule test` for a scenario with stackfit's podman settings and times each action.
#
#   molecule/resources/run-scenario.sh [scenario] [extra molecule test args...]
#     scenario   default: default
#     e.g.       run-scenario.sh default --destroy=never     (keep the instance to debug it:
#                                                             molecule login -s default)
#
# The scenario's test_sequence runs (default: dependency destroy syntax create prepare converge
# idempotence check verify destroy). The check action (converge --check --diff after converge)
# must report changed=0 on every host: Molecule does not assert it, phase_times.py does.
# Needs molecule/resources/setup.sh to have run (MOLECULE_VENV: default <repo>/.venv-molecule).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${MOLECULE_VENV:-$repo/.venv-molecule}"
scenario="${1:-default}"
shift || true

if [[ ! -x "$venv/bin/molecule" ]]; then
  echo "run-scenario.sh: no Molecule in $venv: run molecule/resources/setup.sh first" >&2
  exit 1
fi
export PATH="$venv/bin:$PATH"
# podman's settings: stackfit's own, unless fresh.sh (make test) exported its throwaway copy.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
export PY_COLORS="${PY_COLORS:-0}"
export PYTHONUNBUFFERED=1
cd "$repo"

set +e
molecule test -s "$scenario" "$@" 2>&1 | "$venv/bin/python" -u "$here/phase_times.py"
status=("${PIPESTATUS[@]}")
set -e
if ((status[0] != 0)); then
  echo "scenario $scenario: FAILED (molecule exit ${status[0]})"
  exit "${status[0]}"
fi
if ((status[1] != 0)); then
  echo "scenario $scenario: FAILED (check step reported changes)"
  molecule destroy -s "$scenario" > /dev/null 2>&1 || true
  exit 1
fi
echo "scenario $scenario: passed"
