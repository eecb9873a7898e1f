#!/usr/bin/env bash
# The Molecule scenarios from nothing (what `make test` runs): podman gets a throwaway storage of
# its own in a new temporary directory (graphroot, runroot, its tmp dir and its network
# definitions), so the base image is built in this run and no image, container, layer or network
# that an earlier run left is used. The directory is removed afterwards, pass or fail.
#
#   molecule/resources/fresh.sh default production scripts rollout
#
# Each scenario runs through run-scenario.sh (its actions timed); the phases' times are printed at
# the end. STACKFIT_MOLECULE_JOBS (default 2) scenarios run at a time, each stream taking the
# scenarios in turn (1st, 3rd ... and 2nd, 4th ...), its lines prefixed [m1], [m2]: a scenario
# mostly waits on its containers (one `podman exec` per task), and each has its own containers and
# network. `make molecule` runs the same scenarios against podman's usual storage instead, where
# the base image is kept between runs (faster while developing).
# Environment: STACKFIT_FRESH_DIR   parent of the temporary directory (default /var/tmp)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
(($# > 0)) || { echo "usage: $0 SCENARIO..." >&2; exit 2; }
if [[ $EUID -ne 0 ]]; then
  echo "fresh.sh: run as root (podman's storage, debootstrap)" >&2
  exit 1
fi

unmount_below() { # dir: whatever is still mounted below it (a run killed halfway), deepest first
  findmnt -rn -o TARGET | awk -v root="$1/" 'index($0, root) == 1' | sort -r |
    while read -r target; do umount -l "$target" 2> /dev/null || true; done
}

# What a run killed before its cleanup could run (a CI stopped at its time limit) left behind: its
# storage, mounts, and its networks' bridges, which keep their subnets (podman then refuses a
# network on them: "subnet ... is already used on the host"). Such a directory's run is gone.
for old in "${STACKFIT_FRESH_DIR:-/var/tmp}"/stackfit-podman.*; do
  [[ -d $old ]] || continue
  pid=$(cat "$old/pid" 2> /dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2> /dev/null; then continue; fi
  echo "fresh: removing what a killed run left in $old"
  for bridge in $(sed -n 's/.*"network_interface": *"\([^"]*\)".*/\1/p' "$old"/networks/*.json 2> /dev/null); do
    ip link delete "$bridge" 2> /dev/null || true
  done
  unmount_below "$old"
  rm -rf "$old"
done

root="$(mktemp -d "${STACKFIT_FRESH_DIR:-/var/tmp}/stackfit-podman.XXXXXX")"
echo $$ > "$root/pid"
cleanup() {
  local status=$?
  podman rm --all --force --time 0 > /dev/null 2>&1 || true
  podman rmi --all --force > /dev/null 2>&1 || true
  unmount_below "$root"
  rm -rf "$root"
  echo "fresh: removed the throwaway podman storage $root"
  exit "$status"
}
trap cleanup EXIT

# podman's own settings (runc, cgroupfs, ulimits, networks inside 198.18.0.0/15) plus the throwaway
# paths: its tmp dir (libpod's state) and where network definitions are kept.
awk -v root="$root" '
  { print }
  /^\[engine\]/  { print "tmp_dir = \"" root "/tmp\"" }
  /^\[network\]/ { print "network_config_dir = \"" root "/networks\"" }
' "$here/containers.conf" > "$root/containers.conf"
grep -q '^tmp_dir = ' "$root/containers.conf" && grep -q '^network_config_dir = ' "$root/containers.conf" || {
  echo "fresh.sh: $here/containers.conf needs [engine] and [network] sections" >&2
  exit 1
}
cat > "$root/storage.conf" <<EOF
# stackfit's throwaway podman storage (molecule/resources/fresh.sh); removed after the run.
[storage]
driver = "overlay"
graphroot = "$root/storage"
runroot = "$root/run"
EOF
mkdir -p "$root/storage" "$root/run" "$root/tmp" "$root/networks"
export CONTAINERS_CONF="$root/containers.conf"
export CONTAINERS_STORAGE_CONF="$root/storage.conf"
echo "fresh: throwaway podman storage in $root (images: $(podman images -q | wc -l))"

times="$root/times"
s=$SECONDS
bash "$here/setup.sh"
echo "setup (image built in this run): $((SECONDS - s)) s" > "$times"

stream() { # scenario...: one after the other; fails when one failed
  local scenario s status=0
  for scenario in "$@"; do
    s=$SECONDS
    if "$here/run-scenario.sh" "$scenario"; then
      echo "scenario $scenario: $((SECONDS - s)) s" >> "$times"
    else
      echo "scenario $scenario: FAILED after $((SECONDS - s)) s" >> "$times"
      status=1
    fi
  done
  return "$status"
}

jobs=${STACKFIT_MOLECULE_JOBS:-2}
[[ $jobs =~ ^[1-9]$ ]] || { echo "fresh.sh: STACKFIT_MOLECULE_JOBS=$jobs: give 1 to 9" >&2; exit 2; }
scenarios=("$@")
pids=()
s=$SECONDS
for ((j = 0; j < jobs && j < ${#scenarios[@]}; j++)); do
  mine=()
  for ((i = j; i < ${#scenarios[@]}; i += jobs)); do mine+=("${scenarios[i]}"); done
  (set -o pipefail; stream "${mine[@]}" 2>&1 | sed -u "s/^/[m$((j + 1))] /") &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "every scenario, $jobs at a time: $((SECONDS - s)) s" >> "$times"
printf '\n== molecule phase times\n'
cat "$times"
exit "$status"
