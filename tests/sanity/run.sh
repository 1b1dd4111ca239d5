#!/usr/bin/env bash
# ansible-test sanity without Docker or the internet.
# - ansible-test needs the collection under .../ansible_collections/<ns>/<name>/: copy the tracked
#   (and untracked, not ignored) files there.
# - The tests run from .venv-sanity, which holds ansible-core and the exact tool versions
#   ansible-test pins for each test (its own requirement files), so --local needs no downloads.
# - The tests that still build a virtual environment (import, ansible-doc) bootstrap pip with
#   get_pip.py in place of the script ansible-test would download.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv-sanity"
reqs="$root/.venv/lib/python3.11/site-packages/ansible_test/_data/requirements"
core=$(grep -i '^ansible-core==' "$root/requirements.txt")
stamp="$venv/.stamp-$(cat "$root/requirements.txt" "$0" | sha1sum | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  rm -rf "$venv" && python3 -m venv "$venv"
  args=()
  for t in pylint pep8 validate-modules yamllint ansible-doc runtime-metadata changelog; do args+=(-r "$reqs/sanity.$t.txt"); done
  "$venv/bin/pip" install -q --disable-pip-version-check "$core" "${args[@]}"
  touch "$stamp"
fi
pip_version=$("$venv/bin/python" -c 'import re, ansible_test._internal.python_requirements as p, inspect; print(re.search(r"pip=.(\d+\.\d+)", inspect.getsource(p)).group(1))')
mkdir -p ~/.ansible/test/cache
cp "$root/tests/sanity/get_pip.py" ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"

# A private copy per run: two runs at once must not delete each other's tree.
mkdir -p "$root/build"
work=$(mktemp -d "$root/build/sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/netdoctor/calico"
mkdir -p "$dest"
(cd "$root" && git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$dest/")
cd "$dest"
git init -q . && git add -A >/dev/null
# pslint is for PowerShell, which this collection has none of.
"$venv/bin/ansible-test" sanity --local --python 3.11 --color no --skip-test pslint "$@"
