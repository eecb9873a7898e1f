#!/usr/bin/env bash
# The ecosystem's checks on the built collection (make collection-test): build the tarball, install
# it into an empty collections path, run `ansible-test sanity` there (each test in a virtualenv of
# its own, its requirements from the machine's configured package index) and render every module
# with `ansible-doc`. Everything lives in a temporary directory, ansible-test's ~/.ansible included,
# so a run never leans on what an earlier one left behind; outside this checkout, because inside a
# git work tree ansible-test tests only the files git tracks (build/ is ignored: no targets).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${VENV:-$root/.venv}/bin
out=$(mktemp -d "${TMPDIR:-/tmp}/stackfit-sanity.XXXXXX")
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/collections" "$out/home" "$out/wheels"

tarball=$("$bin/python" -m tools.collection.build "$root/build")
ANSIBLE_COLLECTIONS_PATH=$out/collections "$bin/ansible-galaxy" collection install -p "$out/collections" \
  "$tarball" > /dev/null
collection=$out/collections/ansible_collections/stackfit/stackfit

# ansible-test puts pip into its virtualenvs with a get-pip script from its own download host; give
# it one that installs the same pip from a wheel fetched through this machine's pip configuration.
pip_version=$("$bin/python" -c 'import re, ansible_test._internal.python_requirements as r, inspect
print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r.get_venv_packages)).group(1))')
"$bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$out/wheels" "pip==$pip_version" 2> /dev/null
wheel=$(ls "$out"/wheels/pip-"$pip_version"-*.whl)
mkdir -p "$out/home/.ansible/test/cache"
sed "s|@WHEEL@|$wheel|" "$root/tools/collection/get_pip.py" > "$out/home/.ansible/test/cache/get_pip_${pip_version//./_}.py"

# pslint needs PowerShell, which no file here is.
skip=(--skip-test pslint)
command -v shellcheck > /dev/null || { echo "shellcheck is not installed: make deps installs it" >&2; exit 1; }
cd "$collection"
echo "ansible-test sanity on $(basename "$tarball")"
HOME=$out/home LC_ALL=C.UTF-8 "$bin/ansible-test" sanity --venv --python 3.11 "${skip[@]}" --color no

for path in plugins/modules/*.py; do
  module=$(basename "$path" .py)
  ANSIBLE_COLLECTIONS_PATH=$out/collections "$bin/ansible-doc" "stackfit.stackfit.$module" > "$out/$module.txt"
  echo "ansible-doc stackfit.stackfit.$module: $(wc -l < "$out/$module.txt") lines"
done
ANSIBLE_COLLECTIONS_PATH=$out/collections "$bin/ansible-doc" -t vars stackfit.stackfit.profiles > "$out/profiles.txt"
echo "ansible-doc -t vars stackfit.stackfit.profiles: $(wc -l < "$out/profiles.txt") lines"
