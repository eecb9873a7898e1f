#!/usr/bin/env bash
# One-time (idempotent) setup for stackfit's Molecule scenarios on a Debian 12 machine without
# Docker and without a container registry: Debian's podman with runc, Molecule in its own venv,
# and a local systemd base image built with debootstrap.
#
#   bash molecule/resources/setup.sh          # as root; safe to run again (each step is skipped
#                                             # when already done)
# Environment:
#   MOLECULE_VENV   where Molecule's venv goes (default: <repo>/.venv-molecule)
#   PYTHON          the Python that creates it (default: python3.11, found outside pyenv shims
#                   when possible)
#   SKIP_IMAGE=1    do not build the base image
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${MOLECULE_VENV:-$repo/.venv-molecule}"
# podman's settings: stackfit's own, unless fresh.sh (make test) exported its throwaway copy.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

# PyPI's `ansible` package is the only reachable source of the containers.podman collection
# (Galaxy is unreachable). Only that collection is extracted from the wheel; version and hash
# are pinned. ansible 12.x goes with ansible-core 2.19.x.
ANSIBLE_BUNDLE="ansible==12.3.0"
ANSIBLE_BUNDLE_SHA256="cd156f82fa87f7a899212b0efa9f7ca3a24d609212de9f78428a572eb01e5414"
PODMAN_COLLECTION_VERSION="1.18.0"

APT_PACKAGES=(
  podman runc conmon golang-github-containers-common
  netavark aardvark-dns iptables
  uidmap slirp4netns fuse-overlayfs
  debootstrap debian-archive-keyring ca-certificates
)

step() { printf '\n== %s\n' "$*"; }
t0=$SECONDS
timed() { # name command...: runs it and prints its duration
  local name=$1 s=$SECONDS; shift
  "$@"
  printf 'setup: %-18s %4ds\n' "$name" $((SECONDS - s)) | tee -a "$timings"
}
timings="$(mktemp)"
trap 'rm -f "$timings"' EXIT

if [[ $EUID -ne 0 ]]; then
  echo "setup.sh: run as root (installs Debian packages, builds an image with debootstrap)" >&2
  exit 1
fi

install_packages() {
  step "Debian packages: ${APT_PACKAGES[*]}"
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "all installed"
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No recommends: podman's would pull buildah, dbus-user-session and friends, unused here.
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

find_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  # pyenv shims may point at inactive versions: resolve the real interpreter.
  local p pyenv_py=""
  if command -v pyenv > /dev/null; then pyenv_py="$(pyenv which python3.11 2>/dev/null || true)"; fi
  for p in "$pyenv_py" /usr/local/bin/python3.11 /usr/bin/python3.11 "$(command -v python3.11 || true)"; do
    if [[ -n "$p" && -x "$p" ]] && "$p" -c 'import sys, venv; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
      echo "$p"; return
    fi
  done
  echo "setup.sh: no working python3.11 found (set PYTHON=...)" >&2
  return 1
}

make_venv() {
  step "Molecule venv: $venv"
  local stamp="$venv/.stackfit-requirements.sha256"
  local want
  want="$(cat "$here/requirements.txt" <(echo "$ANSIBLE_BUNDLE $ANSIBLE_BUNDLE_SHA256") | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/molecule" ]]; then
    echo "up to date"
    return
  fi
  local py
  py="$(find_python)"
  [[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
  # Keep the venv out of git without touching the repo's .gitignore.
  echo '*' > "$venv/.gitignore"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

  # containers.podman from the pinned `ansible` wheel, into the venv's site-packages, where
  # ansible-core finds collections on sys.path (COLLECTIONS_SCAN_SYS_PATH).
  local tmp site
  tmp="$(mktemp -d)"
  printf '%s --hash=sha256:%s\n' "$ANSIBLE_BUNDLE" "$ANSIBLE_BUNDLE_SHA256" > "$tmp/req.txt"
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --require-hashes \
    -r "$tmp/req.txt" -d "$tmp"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -rf "$site/ansible_collections/containers/podman"
  "$venv/bin/python" - "$tmp"/ansible-*.whl "$site" "$PODMAN_COLLECTION_VERSION" <<'PY'
import json, sys, zipfile
wheel, site, version = sys.argv[1:]
prefix = "ansible_collections/containers/podman/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix)]
    z.extractall(site, names)
    got = json.loads(z.read(prefix + "MANIFEST.json"))["collection_info"]["version"]
if got != version:
    sys.exit(f"containers.podman {got} in the wheel, expected {version}")
print(f"containers.podman {got}: {len(names)} files")
PY
  rm -rf "$tmp"
  echo "$want" > "$stamp"
}

check_podman() {
  step "podman (CONTAINERS_CONF=$CONTAINERS_CONF)"
  podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.EventLogger}} cgroups {{.Host.CgroupsVersion}} {{.Store.GraphDriverName}}'
  # A default network left on disk by someone else must not be podman's stock 10.88.0.0/16.
  local subnets
  subnets="$(podman network inspect podman --format '{{range .Subnets}}{{.Subnet}} {{end}}')"
  echo "default network subnets: $subnets"
  case "$subnets" in
    198.18.*|198.19.*) ;;
    *) echo "setup.sh: podman's default network is not inside 198.18.0.0/15: $subnets" >&2
       echo "  (a /etc/containers/networks/podman.json left on this machine?)" >&2
       exit 1 ;;
  esac
}

timed packages install_packages
timed venv make_venv
timed podman-check check_podman
if [[ "${SKIP_IMAGE:-0}" != 1 ]]; then
  step "base image"
  timed image bash "$here/build-image.sh"
fi
echo
cat "$timings"
printf 'setup: %-18s %4ds\n' total $((SECONDS - t0))
