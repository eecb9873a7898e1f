"""molecule/resources/build-image.sh on its first build and on later ones, with fake podman,
debootstrap, chroot, mount and umount on PATH (the real build takes minutes and root; CI builds the
real image from an empty storage on every run: molecule/resources/fresh.sh).

The first build used to end the script with exit 1 and no message right after the import: the
prune step's `grep -v` found no older image, exited 1, and pipefail + errexit stopped the script.
"""
from __future__ import annotations

import os
import stat
import subprocess
import textwrap

import pytest

from conftest import ROOT

SCRIPT = ROOT / "molecule" / "resources" / "build-image.sh"
REPO = "localhost/stackfit-test-image"

FAKE_PODMAN = r"""#!/bin/bash
# A fake podman: images live as lines in $FAKE_STATE/images; every call is logged.
echo "podman $*" >> "$FAKE_STATE/calls"
touch "$FAKE_STATE/images"
case "$1 $2" in
  "image exists") grep -qxF "$3" "$FAKE_STATE/images" ;;
  "image inspect") echo 222000000 ;;
  "images "*)  # --filter reference=NAME --format ...: NAME's tags only
    ref="$(printf '%s\n' "$@" | sed -n 's/^reference=//p')"
    grep -F "${ref:+$ref:}" "$FAKE_STATE/images" || true ;;
  "import "*)
    cat > /dev/null
    echo "${@: -1}" >> "$FAKE_STATE/images"; echo sha256:0000 ;;
  "tag "*) grep -qxF "$3" "$FAKE_STATE/images" || echo "$3" >> "$FAKE_STATE/images" ;;
  "rmi "*) grep -vxF "$2" "$FAKE_STATE/images" > "$FAKE_STATE/images.new" || true
           mv "$FAKE_STATE/images.new" "$FAKE_STATE/images" ;;
  *) echo "fake podman: unexpected: $*" >&2; exit 125 ;;
esac
"""

FAKE_DEBOOTSTRAP = r"""#!/bin/bash
# A fake debootstrap: the directories build-image.sh writes into, and an executable dpkg.
target="${@: -2:1}"
mkdir -p "$target"/usr/bin "$target"/etc/apt/sources.list.d "$target"/etc/apt/apt.conf.d \
  "$target"/etc/dpkg/dpkg.cfg.d "$target"/etc/systemd/system "$target"/usr/share/doc/x \
  "$target"/usr/share/man "$target"/usr/share/info "$target"/usr/share/locale \
  "$target"/usr/local/share/ca-certificates "$target"/var/lib/dbus "$target"/var/cache/apt \
  "$target"/var/log "$target"/tmp "$target"/var/tmp "$target"/proc
printf '#!/bin/sh\n' > "$target/usr/bin/dpkg"; chmod 755 "$target/usr/bin/dpkg"
echo copyright > "$target/usr/share/doc/x/copyright"
"""


def _fake(bin_dir, name, text):
    path = bin_dir / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fakes(tmp_path):
    bin_dir = tmp_path / "bin"
    state = tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    _fake(bin_dir, "podman", FAKE_PODMAN)
    _fake(bin_dir, "debootstrap", FAKE_DEBOOTSTRAP)
    for name in ("chroot", "mount", "umount"):
        _fake(bin_dir, name, "#!/bin/sh\nexit 0\n")
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "apt.conf.d").mkdir()
    (apt / "sources.list.d" / "debian.sources").write_text(textwrap.dedent("""\
        Types: deb
        URIs: http://mirror.test.invalid/debian
        Suites: bookworm bookworm-updates
        Components: main
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
        """))
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), FAKE_STATE=str(state),
               STACKFIT_IMAGE_REPO=REPO, STACKFIT_APT_ETC=str(apt))
    env.pop("STACKFIT_DEBIAN_MIRROR", None)
    return env, state, apt


def build(env, **extra):
    return subprocess.run(["bash", str(SCRIPT)], env=dict(env, **extra), capture_output=True,
                          text=True, timeout=120)


def images(state):
    return (state / "images").read_text().split()


def test_first_build_on_an_empty_storage_succeeds(fakes):
    env, state, _ = fakes
    out = build(env)
    assert out.returncode == 0, out.stderr
    image = out.stdout.strip().splitlines()[-1]
    assert image.startswith(REPO + ":") and image != REPO + ":latest"
    assert sorted(images(state)) == sorted([image, REPO + ":latest"])
    assert "mirror: http://mirror.test.invalid/debian" in out.stderr
    assert "built %s" % image in out.stderr
    assert "podman rmi" not in (state / "calls").read_text()  # nothing older to remove


def test_second_run_builds_nothing(fakes):
    env, state, _ = fakes
    first = build(env)
    assert first.returncode == 0, first.stderr
    calls_before = (state / "calls").read_text().count("podman import")
    second = build(env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == first.stdout.strip().splitlines()[-1]
    assert "nothing to build" in second.stderr
    assert (state / "calls").read_text().count("podman import") == calls_before


def test_a_new_build_removes_older_images_only(fakes):
    env, state, _ = fakes
    (state / "images").write_text("%s:0123456789ab\n%s:latest\nlocalhost/other:1\n" % (REPO, REPO))
    out = build(env, FORCE="1")
    assert out.returncode == 0, out.stderr
    image = out.stdout.strip().splitlines()[-1]
    assert "removed %s:0123456789ab" % REPO in out.stderr
    assert sorted(images(state)) == sorted([image, REPO + ":latest", "localhost/other:1"])


def test_no_mirror_configured_is_a_clear_error(fakes):
    env, state, apt = fakes
    (apt / "sources.list.d" / "debian.sources").unlink()
    out = build(env)
    assert out.returncode == 1
    assert "no Debian mirror" in out.stderr and "STACKFIT_DEBIAN_MIRROR" in out.stderr
    assert not (state / "calls").exists()  # nothing built, nothing imported


def test_the_mirror_can_be_given(fakes):
    env, _, apt = fakes
    (apt / "sources.list.d" / "debian.sources").unlink()
    out = build(env, STACKFIT_DEBIAN_MIRROR="http://other.test.invalid/debian")
    assert out.returncode == 0, out.stderr
    assert "mirror: http://other.test.invalid/debian" in out.stderr
