#!/usr/bin/env bash
# The collection checked with the ecosystem's own tools, the way Galaxy, docs.ansible.com,
# ansible-builder and ansible-test see it (make ecosystem, part of make test).
#   build      ansible-galaxy collection build -> build/ecosystem/netdoctor-calico-<version>.tar.gz;
#              fails when the tarball holds anything but what a user of the collection needs
#   importer   galaxy-importer on the tarball, run locally (no containers, no ansible-test, ansible-lint
#              offline; tests/ecosystem/galaxy-importer.cfg): any ERROR fails
#   docs       antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs on the checkout
#   ee         ansible-builder introspect over the tarball installed into build/ecosystem/collections
#              must list pyroute2, jmespath and meta/ee-bindep.txt's packages; ansible-builder create
#              with the installed ee/execution-environment.yml (the image definition) must succeed
#   deps       galaxy.yml's dependencies and ee/requirements.yml agree; requirements.txt's pins lie in
#              meta/ee-requirements.txt's ranges
#   changelog  antsibull-changelog lint (fragments), lint-changelog-yaml, CHANGELOG.rst up to date
#   units      ansible-test units --local on a copy of the checkout in an ansible_collections tree,
#              with .venv (pytest, pytest-xdist): no download
# Usage: tests/ecosystem/run.sh [STEP...]   (default: every step, in this order). Each step prints
# its time. The tools' virtual environments (.venv-importer, .venv-docs) are rebuilt only when their
# pinned requirements (tests/ecosystem/requirements-*.txt) change.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/ecosystem"
out="$root/build/ecosystem"
# The tools must see the collection as a user does, not through the repository's ansible.cfg (which
# Ansible also reads from the working directory: the steps run in build/ecosystem).
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
export PATH="$root/.venv/bin:$PATH"

py="$root/.venv/bin/python"
version=$("$py" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$root/galaxy.yml")
tarball="$out/netdoctor-calico-$version.tar.gz"

# venv NAME REQUIREMENTS: a virtual environment with exactly those pins, rebuilt when they change.
venv() {
  local dir="$root/$1" reqs="$here/$2"
  local stamp
  stamp="$dir/.stamp-$(sha1sum < "$reqs" | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    rm -rf "$dir" && python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    touch "$stamp"
  fi
}

step_build() {
  mkdir -p "$out"
  rm -f "$tarball"
  ansible-galaxy collection build --force --output-path "$out" "$root" > /dev/null
  # Top-level entries a user of the collection needs; anything else is a development file that
  # galaxy.yml's build_ignore must keep out.
  local unexpected
  unexpected=$(tar -tzf "$tarball" | cut -d/ -f1 | sort -u |
    grep -vxE 'MANIFEST\.json|FILES\.json|README\.md|LICENSE|CHANGELOG\.rst|changelogs|docs|ee|meta|playbooks|plugins|roles' || true)
  if [ -n "$unexpected" ]; then
    echo "the tarball ships files that are not for users (add them to galaxy.yml's build_ignore): ${unexpected//$'\n'/ }" >&2
    return 1
  fi
  echo "built $tarball ($(tar -tzf "$tarball" | grep -vc '/$') files)"
}

step_importer() {
  [ -e "$tarball" ] || step_build
  venv .venv-importer requirements-importer.txt
  local work log
  work=$(mktemp -d "$out/importer.XXXXXX")
  log="$out/galaxy-importer.log"
  # galaxy-importer finds ansible-doc and ansible-lint on PATH: the ones of its own venv.
  (cd "$work" && cp "$tarball" . &&
   PATH="$root/.venv-importer/bin:$PATH" GALAXY_IMPORTER_CONFIG="$here/galaxy-importer.cfg" \
     "$root/.venv-importer/bin/python" -m galaxy_importer.main "$(basename "$tarball")") > "$log" 2>&1 || {
    cat "$log"; rm -rf "$work"; echo "galaxy-importer failed" >&2; return 1; }
  rm -rf "$work"
  grep -v '^Loading ' "$log" | sed 's/^/  /'
  if grep -q '^ERROR' "$log" || ! grep -q '^Importer processing completed successfully' "$log"; then
    echo "galaxy-importer reported errors ($log)" >&2
    return 1
  fi
}

step_docs() {
  venv .venv-docs requirements-docs.txt
  # ansible-doc must also find the collections this one depends on (make install puts them in .collections).
  PATH="$root/.venv-docs/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$root/.collections" \
    antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs "$root"
  echo "antsibull-docs lint-collection-docs: clean"
}

step_ee() {
  [ -e "$tarball" ] || step_build
  venv .venv-importer requirements-importer.txt
  local coll="$out/collections" deps
  rm -rf "$coll"
  # --no-deps: the EE dependencies under test are this collection's own.
  ANSIBLE_COLLECTIONS_PATH="$coll" ansible-galaxy collection install --no-deps --force -p "$coll" "$tarball" > /dev/null
  deps=$("$root/.venv-importer/bin/ansible-builder" introspect "$coll")
  printf '  %s\n' "${deps//$'\n'/$'\n'  }"
  "$root/.venv-importer/bin/python" - "$deps" "$root/meta/ee-bindep.txt" <<'EOF'
import sys
import yaml

deps = yaml.safe_load(sys.argv[1].split("---", 1)[1])
mine = lambda key: [line.split("#")[0].strip() for line in deps.get(key) or [] if "netdoctor.calico" in line]
python = {entry.split(">")[0].split("<")[0].split("=")[0].strip().lower() for entry in mine("python")}
system = set(mine("system"))
bindep = {line.split("#")[0].strip() for line in open(sys.argv[2], encoding="utf-8")} - {""}
missing = ({"pyroute2", "jmespath"} - python) | (bindep - system)
if missing:
    sys.exit(f"ansible-builder introspect does not list {sorted(missing)} for netdoctor.calico")
EOF
  local ctx="$out/ee-context"
  rm -rf "$ctx"
  "$root/.venv-importer/bin/ansible-builder" create --context "$ctx" \
    -f "$coll/ansible_collections/netdoctor/calico/ee/execution-environment.yml" > /dev/null
  echo "ansible-builder: introspect lists the collection's packages; create builds the context of ee/execution-environment.yml"
}

step_deps() {
  "$py" - "$root" <<'EOF'
import re
import sys

import yaml

root = sys.argv[1]
problems = []
galaxy = yaml.safe_load(open(f"{root}/galaxy.yml", encoding="utf-8"))["dependencies"]
image = {c["name"]: c["version"] for c in yaml.safe_load(open(f"{root}/ee/requirements.yml", encoding="utf-8"))["collections"]}
if galaxy != image:
    problems.append(f"galaxy.yml dependencies {galaxy} != ee/requirements.yml {image}")
pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", open(f"{root}/requirements.txt", encoding="utf-8").read(), re.M))
pins = {name.lower(): version for name, version in pins.items()}
version = lambda text: tuple(int(part) for part in text.split("."))
for line in open(f"{root}/meta/ee-requirements.txt", encoding="utf-8"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", line).groups()
    pin = pins.get(name.lower())
    if pin is None:
        problems.append(f"{name} (meta/ee-requirements.txt) is not pinned in requirements.txt")
        continue
    for op, bound in re.findall(r"(>=|<=|==|<|>)\s*([0-9.]+)", spec):
        ok = {">=": version(pin) >= version(bound), "<=": version(pin) <= version(bound), "==": version(pin) == version(bound),
              "<": version(pin) < version(bound), ">": version(pin) > version(bound)}[op]
        if not ok:
            problems.append(f"requirements.txt pins {name}=={pin}, outside meta/ee-requirements.txt's {spec}")
if problems:
    sys.exit("\n".join(problems))
print("dependency ranges agree: galaxy.yml = ee/requirements.yml; requirements.txt within meta/ee-requirements.txt")
EOF
}

step_changelog() {
  (cd "$root" &&
   antsibull-changelog lint &&
   antsibull-changelog lint-changelog-yaml --strict changelogs/changelog.yaml &&
   antsibull-changelog generate --output "$out/CHANGELOG.rst" --output-format rst)
  if ! cmp -s "$out/CHANGELOG.rst" "$root/CHANGELOG.rst"; then
    diff -u "$root/CHANGELOG.rst" "$out/CHANGELOG.rst" >&2 || true
    echo "CHANGELOG.rst is not what changelogs/changelog.yaml gives: run antsibull-changelog generate" >&2
    return 1
  fi
  echo "changelog: fragments and changelog.yaml lint clean; CHANGELOG.rst up to date"
}

step_units() {
  # ansible-test needs the collection under .../ansible_collections/<ns>/<name>/: a private copy of
  # the tracked (and untracked, not ignored) files, as tests/sanity/run.sh makes for sanity.
  local work dest
  work=$(mktemp -d "$out/units.XXXXXX")
  dest="$work/ansible_collections/netdoctor/calico"
  mkdir -p "$dest"
  (cd "$root" && git ls-files -co --exclude-standard -z |
     rsync -a --from0 --ignore-missing-args --files-from=- ./ "$dest/")
  (cd "$dest" && git init -q . && git add -A > /dev/null &&
   ansible-test units --local --python 3.11 --color no) || { rm -rf "$work"; return 1; }
  rm -rf "$work"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(build importer docs ee deps changelog units)
mkdir -p "$out"
cd "$out"
failed=()
for s in "${steps[@]}"; do
  declare -F "step_$s" > /dev/null || { echo "unknown step: $s" >&2; exit 2; }
  echo "== $s"
  start=$SECONDS
  # Each step in a subshell with errexit in force (bash ignores it in a function called as an if condition).
  set +e
  (set -e; "step_$s")
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    echo "== $s: ok ($((SECONDS - start)) s)"
  else
    echo "== $s: FAILED ($((SECONDS - start)) s)"
    failed+=("$s")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "ecosystem checks failed: ${failed[*]}" >&2
  exit 1
fi
