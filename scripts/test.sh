#!/usr/bin/env bash
# The test runner behind `make test` and its subsets. Runs every step of the
# chosen group even when one fails, prints one line per step with its wall
# time, and ends with a pytest-style summary line; exits non-zero on any failure.
#
# usage: scripts/test.sh all|lint|sanity|build|unit|molecule
#   SCENARIOS="runtime ..."  molecule scenarios to run (default: all under molecule/)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
collection="$root/ansible_collections/runlocalai/mlops"
out="$root/.cache/test-output"
mkdir -p "$out"

passed=0
failed=0
results=()

step() { # step NAME COMMAND...
  local name="$1" start rc
  shift
  echo "=== $name: $*"
  start=$(date +%s)
  "$@"
  rc=$?
  local secs=$(($(date +%s) - start))
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    results+=("PASSED  $name (${secs}s)")
  else
    failed=$((failed + 1))
    results+=("FAILED  $name (${secs}s, exit $rc)")
  fi
}

lint() {
  step yamllint yamllint --strict .
  step ansible-lint ansible-lint --offline --profile production
}

sanity() {
  step ansible-test-sanity scripts/ansible-test-sanity.sh
}

build() {
  step collection-build-install scripts/test-collection-install.sh
}

unit() {
  # pytest exits 5 when it collects nothing: that is a failure here too.
  step pytest-unit pytest -q -p no:cacheprovider \
    "$collection/tests/unit" tests
}

molecule_all() {
  local scenarios="${SCENARIOS:-}"
  if [ -z "$scenarios" ]; then
    scenarios="$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)"
  fi
  for s in $scenarios; do
    step "molecule-$s" molecule test -s "$s"
  done
}

case "${1:-all}" in
  all) lint; sanity; build; unit; molecule_all ;;
  lint) lint ;;
  sanity) sanity ;;
  build) build ;;
  unit) unit ;;
  molecule) molecule_all ;;
  *) echo "usage: $0 all|lint|sanity|build|unit|molecule" >&2; exit 2 ;;
esac

echo
echo "=== results"
printf '%s\n' "${results[@]}"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
