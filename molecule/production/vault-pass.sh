#!/bin/sh
# ANSIBLE_VAULT_PASSWORD_FILE of the production scenario: prints its vault password, generated
# at random on first use in Molecule's ephemeral directory (pruned by `molecule destroy`).
set -eu
dir="${MOLECULE_EPHEMERAL_DIRECTORY:?run through molecule}"
pass="$dir/vault-pass"
if [ ! -s "$pass" ]; then
  umask 077
  mkdir -p "$dir"
  tmp="$(mktemp "$dir/.vault-pass.XXXXXX")"
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$tmp"
  # No clobbering: a concurrent first use keeps the password written first.
  ln "$tmp" "$pass" 2>/dev/null || true
  rm -f "$tmp"
fi
cat "$pass"
