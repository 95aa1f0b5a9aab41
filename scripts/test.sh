#!/usr/bin/env bash
# The test runner behind `make test` and its subsets. Runs every step of the
# chosen group even when one fails, prints one line per step with its wall
# time, and ends with a pytest-style summary line; exits non-zero on any failure.
#
# usage: scripts/test.sh all|lint|sanity|build|unit|terraform|molecule
#   SCENARIOS="runtime ..."  molecule scenarios to run (default: all under molecule/)
#   MOLECULE_JOBS=N          scenarios run at once (default 2: lab hosts are sized
#                            so that two fit a 2-core, 24 GiB machine)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
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
  record "$name" "$rc" $(($(date +%s) - start))
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
  # CHANGELOG.rst is what antsibull-changelog generates from changelog.yaml; fragments lint clean.
  step changelog scripts/test-changelog.sh
  # The docs site (tests/test_docs_site.py) and the execution environment
  # (tests/test_execution_environment.py) are pytest modules: the unit step runs them.
}

unit() {
  # pytest exits 5 when it collects nothing: that is a failure here too.
  # tests/terraform runs in the terraform step.
  # Two processes (pytest-xdist), each test file in one of them: 6 instead of 10 minutes here.
  step pytest-unit pytest -q -p no:cacheprovider -n "${PYTEST_JOBS:-2}" --dist loadfile --durations=25 --ignore=tests/terraform \
    "$collection/tests/unit" tests
}

terraform_checks() {
  step terraform scripts/test-terraform.sh
}

record() { # record NAME RC SECONDS
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
    results+=("PASSED  $1 ($3s)")
  else
    failed=$((failed + 1))
    results+=("FAILED  $1 ($3s, exit $2)")
  fi
}

# molecule_launch: the scenarios start in the background, MOLECULE_JOBS at a
# time (their own scheduler), each logging to its own file; molecule_report
# waits for them and prints each log whole, in order, then records them.
molecule_launch() {
  local scenarios="${SCENARIOS:-}" jobs="${MOLECULE_JOBS:-2}" s
  if [ -z "$scenarios" ]; then
    scenarios="$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)"
    # Longest first (measured), so the two slots finish close together.
    local ordered="" slow
    for slow in default mlflow_sqlite upgrade mlflow_postgresql runtime monitoring; do
      if grep -qx "$slow" <<<"$scenarios"; then ordered+="$slow "; fi
    done
    for s in $scenarios; do
      if [[ " $ordered " != *" $s "* ]]; then ordered+="$s "; fi
    done
    scenarios="$ordered"
  fi
  echo "$scenarios" >"$out/molecule-scenarios"
  for s in $scenarios; do rm -f "$out/molecule-$s".{rc,start,end}; done
  (
    for s in $scenarios; do
      while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
      echo "=== molecule-$s: molecule test -s $s (log: $out/molecule-$s.log)"
      date +%s >"$out/molecule-$s.start"
      (molecule test -s "$s" >"$out/molecule-$s.log" 2>&1; echo $? >"$out/molecule-$s.rc"; date +%s >"$out/molecule-$s.end") &
    done
    wait
  ) &
  molecule_scheduler=$!
}

molecule_report() {
  local s
  wait "$molecule_scheduler"
  for s in $(cat "$out/molecule-scenarios"); do
    echo "=== molecule-$s log"
    cat "$out/molecule-$s.log"
    record "molecule-$s" "$(cat "$out/molecule-$s.rc" 2>/dev/null || echo 1)" \
      $(($(cat "$out/molecule-$s.end") - $(cat "$out/molecule-$s.start")))
  done
}

case "${1:-all}" in
  # The molecule scenarios run beside the other steps: those leave a core idle
  # much of the time (one process each), the scenarios fill it.
  all) molecule_launch; lint; sanity; build; unit; terraform_checks; molecule_report ;;
  lint) lint ;;
  sanity) sanity ;;
  build) build ;;
  unit) unit ;;
  terraform) terraform_checks ;;
  molecule) molecule_launch; molecule_report ;;
  *) echo "usage: $0 all|lint|sanity|build|unit|terraform|molecule" >&2; exit 2 ;;
esac

echo
echo "=== results"
printf '%s\n' "${results[@]}"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
