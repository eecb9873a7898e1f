#!/usr/bin/env bash
# Builds stackfit's local systemd base image for Molecule (no registry is reachable here):
# debootstrap bookworm minbase + systemd from the mirror the host's apt uses, the host's extra CA
# certificates, the host's apt/pip network settings, then `podman import`.
#
#   bash molecule/resources/build-image.sh     # as root; prints the image name on its last line
#
# The tag is a hash of the build inputs (this script, the package list, the mirror, the CA
# certificates, the apt/pip settings): when an image with that tag exists, nothing is built.
# The image is also tagged :latest, which molecule.yml uses by default.
# Environment: FORCE=1 rebuilds; STACKFIT_IMAGE_REPO overrides the image name;
# STACKFIT_DEBIAN_MIRROR overrides the mirror read from apt's sources (no mirror: an error).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
repo_name="${STACKFIT_IMAGE_REPO:-localhost/stackfit-debian12-systemd}"
suite=bookworm
# The host's apt configuration (its mirror, proxies); STACKFIT_APT_ETC points elsewhere (tests).
apt_etc="${STACKFIT_APT_ETC:-/etc/apt}"

# Generic on purpose: roles install what they need with apt inside the container.
PACKAGES=(
  systemd systemd-sysv dbus
  python3 python3-venv python3-apt
  sudo iproute2 procps ca-certificates
)

log() { printf 'build-image: %s\n' "$*" >&2; }

# --- inputs ---------------------------------------------------------------------------------
inputs="$(mktemp -d)"
root=""
cleanup() {
  rm -rf "$inputs"
  if [[ -n "$root" && -d "$root" ]]; then
    umount -R "$root/proc" 2>/dev/null || true
    rm -rf "$root"
  fi
}
trap cleanup EXIT

# The host's Debian mirror: the first URI serving the suite in sources.list(.d), one-line or deb822.
host_mirror() {
  local f
  for f in "$apt_etc"/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri && ok && deb) { print uri; done=1; exit } uri=""; ok=0; deb=0; next }
      /^URIs:/   { uri=$2 }
      /^Types:/  { for (i=2;i<=NF;i++) if ($i=="deb") deb=1 }
      /^Suites:/ { for (i=2;i<=NF;i++) if ($i==suite) ok=1 }
      /^Enabled:[[:space:]]*no/ { deb=0 }
      END { if (!done && uri && ok && deb) print uri }' "$f"
  done
  { cat "$apt_etc"/sources.list "$apt_etc"/sources.list.d/*.list 2>/dev/null || true; } |
    awk -v suite="$suite" '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1)==suite) print $i; break } }'
}
mirror="${STACKFIT_DEBIAN_MIRROR:-$(host_mirror | head -n1 || true)}"
if [[ -z "$mirror" ]]; then
  log "no Debian mirror for $suite in $apt_etc/sources.list or $apt_etc/sources.list.d/ (deb822 or"
  log "one-line): configure apt on this machine, or set STACKFIT_DEBIAN_MIRROR=<the mirror's URL>"
  exit 1
fi
log "mirror: $mirror"

# The host's Debian sources (deb822 or one-line) for the image: only files about Debian itself.
mkdir -p "$inputs/sources.list.d" "$inputs/apt.conf.d" "$inputs/ca"
for f in "$apt_etc"/sources.list.d/*.sources "$apt_etc"/sources.list.d/*.list; do
  if [[ -f "$f" ]] && grep -q 'debian-archive-keyring\|/debian\b\|/debian-security\b\|/debian/\? ' "$f"; then
    cp "$f" "$inputs/sources.list.d/"
  fi
done
if [[ -f "$apt_etc"/sources.list ]] && grep -q '^deb ' "$apt_etc"/sources.list; then
  grep '^deb ' "$apt_etc"/sources.list | grep -v 'deb-src' > "$inputs/sources.list.d/host.list" || true
fi

# The host's apt network settings (proxies, snapshot date checks): files that set Acquire::.
for f in "$apt_etc"/apt.conf "$apt_etc"/apt.conf.d/*; do
  if [[ -f "$f" ]] && grep -q '^[[:space:]]*Acquire' "$f"; then
    cp "$f" "$inputs/apt.conf.d/$(basename "$f")"
  fi
done
proxy_http="${http_proxy:-${HTTP_PROXY:-}}"
proxy_https="${https_proxy:-${HTTPS_PROXY:-}}"
{
  [[ -n "$proxy_http" ]] && echo "Acquire::http::Proxy \"$proxy_http\";"
  [[ -n "$proxy_https" ]] && echo "Acquire::https::Proxy \"$proxy_https\";"
  true
} > "$inputs/apt.conf.d/90stackfit-proxy"
[[ -s "$inputs/apt.conf.d/90stackfit-proxy" ]] || rm "$inputs/apt.conf.d/90stackfit-proxy"

# The host's extra CA certificates (outbound HTTPS is intercepted: pip fails without them).
if [[ -d /usr/local/share/ca-certificates ]]; then
  cp -r /usr/local/share/ca-certificates/. "$inputs/ca/"
fi

# pip inside the container reaches PyPI as the host's pip does: the host's pip settings that
# make sense there (network indexes, proxy, trusted hosts), never local paths such as file://
# indexes or find-links directories, which do not exist in the container.
host_pip_config() {
  local py
  for py in python3 /usr/bin/python3; do
    "$py" -m pip config list 2>/dev/null && return
  done
  true
}
{
  echo "# From the host's pip configuration by stackfit's build-image.sh"
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  host_pip_config | python3 -c '
import os, shlex, sys
keep = {"index-url", "extra-index-url", "proxy", "trusted-host", "timeout", "default-timeout", "retries"}
vals = {}
for line in sys.stdin:
    key, _, value = line.strip().partition("=")
    name = key.split(".", 1)[-1]
    if name in keep:
        vals[name] = shlex.split(value)[0] if value else ""
for env, name in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
                  ("PIP_PROXY", "proxy"), ("PIP_TRUSTED_HOST", "trusted-host")):
    if os.environ.get(env):
        vals[name] = os.environ[env]
proxy = os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY")
if proxy and "proxy" not in vals:
    vals["proxy"] = proxy
for name in sorted(vals):
    value = vals[name]
    if name in ("index-url", "extra-index-url"):
        value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
    if value:
        print(f"{name} = {value}")
'
} > "$inputs/pip.conf"

# --- tag: hash of the inputs ----------------------------------------------------------------
tag="$(
  {
    cat "${BASH_SOURCE[0]}"
    echo "$suite $mirror ${PACKAGES[*]}"
    (cd "$inputs" && find . -type f | LC_ALL=C sort | xargs -r sha256sum)
  } | sha256sum | cut -c1-12
)"
image="$repo_name:$tag"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$image"; then
  log "$image exists: nothing to build"
  podman tag "$image" "$repo_name:latest"
  echo "$image"
  exit 0
fi

# --- build ----------------------------------------------------------------------------------
start=$SECONDS
root="$(mktemp -d /var/tmp/stackfit-rootfs.XXXXXX)"
[[ -n "$root" && -d "$root" ]] || exit 1
chmod 755 "$root"
log "debootstrap $suite into $root"
include="$(IFS=,; echo "${PACKAGES[*]}")"
debootstrap --variant=minbase --include="$include" \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$suite" "$root" "$mirror" > "$inputs/debootstrap.log" 2>&1 || {
  tail -n 40 "$inputs/debootstrap.log" >&2
  exit 1
}

# apt: the host's Debian sources (with updates and security) and network settings.
if compgen -G "$inputs/sources.list.d/*" > /dev/null; then
  : > "$root/etc/apt/sources.list"
  cp "$inputs"/sources.list.d/* "$root/etc/apt/sources.list.d/"
fi
cp "$inputs"/apt.conf.d/* "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
# Smaller image, and no documentation for packages that roles install later.
cat > "$root/etc/apt/apt.conf.d/90stackfit-image" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF

# CA certificates and pip.
cp -r "$inputs/ca/." "$root/usr/local/share/ca-certificates/"
install -m 0644 "$inputs/pip.conf" "$root/etc/pip.conf"

# No documentation, manual pages or translations, now and for the packages roles install later
# (as Docker's official Debian images do); copyright files stay. Every path below is inside
# "$root", checked to be our debootstrap directory first.
[[ "$root" == /var/tmp/stackfit-rootfs.* && -x "$root/usr/bin/dpkg" ]] || {
  log "refusing to prune '$root': not a stackfit rootfs"
  exit 1
}
cat > "$root/etc/dpkg/dpkg.cfg.d/90stackfit-nodoc" <<'DPKG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
DPKG
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
for d in "$root/usr/share/man" "$root/usr/share/info"; do
  [[ -d "$d" ]] && find "$d" -mindepth 1 -delete
done
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

mount -t proc proc "$root/proc"
# Fresh package lists (the image's sources now include updates and security), their updates,
# then the CA bundle with the host's certificates.
if ! chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get -y -qq dist-upgrade && apt-get clean && update-ca-certificates' \
    > "$inputs/chroot.log" 2>&1; then
  umount "$root/proc"
  tail -n 40 "$inputs/chroot.log" >&2
  exit 1
fi
umount "$root/proc"

# systemd in a container: units that cannot work there are masked, so the system reaches
# "running" instead of "degraded".
for unit in e2scrub_reap.service getty@.service console-getty.service getty.target \
            systemd-firstboot.service systemd-udevd.service systemd-modules-load.service \
            sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
            dev-hugepages.mount sys-fs-fuse-connections.mount systemd-remount-fs.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Each container gets its own machine id at boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/* "$root"/var/tmp/*

log "podman import $image"
tar --numeric-owner --xattrs --acls -C "$root" -c . |
  podman import \
    --change 'CMD ["/sbin/init"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change 'ENV container=podman' \
    --message "stackfit: debootstrap $suite minbase + systemd from $mirror" \
    - "$image" > /dev/null
podman tag "$image" "$repo_name:latest"
# Older builds of this image go (each is ~210 MB); one still used by a container stays. On a first
# build there are none: the list is empty, which is not an error (no grep whose "no match" exit
# status would end the script under pipefail).
old_images="$(podman images --filter "reference=$repo_name" --format '{{.Repository}}:{{.Tag}}')"
while read -r old; do
  [[ -z "$old" || "$old" == "$image" || "$old" == "$repo_name:latest" ]] && continue
  if podman rmi "$old" > /dev/null 2>&1; then log "removed $old"; fi
done <<< "$old_images"
log "built $image in $((SECONDS - start))s ($(podman image inspect "$image" --format '{{.Size}}') bytes)"
echo "$image"
