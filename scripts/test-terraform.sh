#!/usr/bin/env bash
# Terraform checks, in order (no arguments, any cwd; run scripts/setup-terraform.sh first):
#   1. terraform fmt -check over terraform/ (.tf and .tftest.hcl files)
#   2. checkov over terraform/ from its own virtualenv: zero failed checks
#      (skips are justified in a #checkov:skip comment at the resource)
#   3. for every module and environment: terraform init -backend=false with the
#      AWS provider from the filesystem mirror (-plugin-dir, no registry),
#      terraform validate, terraform test (tests/*.tftest.hcl: plans with a
#      mocked AWS provider; the examples/ are planned there too). This runs in a
#      copy of terraform/ in a temporary directory, so no .terraform/ or
#      .terraform.lock.hcl lands in the checkout.
#   4. pytest tests/terraform: python-hcl2 structural tests, the README tables
#      against the code, the ansible_inventory module applied for real
# Terraform and the provider are pinned in scripts/terraform.env.
# Every step runs even when an earlier one fails; exits non-zero on any failure.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/terraform.env
. scripts/terraform.env
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
checkov="$root/.cache/checkov-venv/bin/checkov"
pytest="$root/.venv/bin/pytest"

if [ "$("$TERRAFORM" version 2>/dev/null | head -n1)" != "Terraform v$TERRAFORM_VERSION" ] ||
  [ ! -d "$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws/$AWS_PROVIDER_VERSION" ]; then
  echo "test-terraform: Terraform $TERRAFORM_VERSION ($TERRAFORM) or the AWS provider $AWS_PROVIDER_VERSION ($TF_PLUGIN_DIR) is missing: run scripts/setup-terraform.sh, it says what to install" >&2
  exit 1
fi
for tool in "$checkov" "$pytest"; do
  if [ ! -x "$tool" ]; then
    echo "test-terraform: $tool is missing: run scripts/setup-terraform.sh" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
summary=()
started=$SECONDS
result() { # result NAME ok|FAILED DETAIL: a line for the summary, with the step's seconds
  summary+=("$(printf '%-36s %-6s %4ss  %s' "$1" "$2" "$((SECONDS - started))" "$3")")
  started=$SECONDS
  [ "$2" = ok ] || failed=1
}

echo "--- terraform fmt -check -recursive terraform/ ($("$TERRAFORM" version | head -n1))"
if "$TERRAFORM" fmt -check -recursive -diff -no-color terraform/; then
  result "fmt" ok ""
else
  echo "fmt: the files above need 'terraform fmt'"
  result "fmt" FAILED ""
fi

echo "--- checkov -d terraform/"
# --skip-download: no Prisma Cloud mappings (unreachable; local checks only).
# No PYTHONPATH or user site: another `hcl2` package (python-hcl2) must not shadow checkov's.
env -u PYTHONPATH PYTHONNOUSERSITE=1 "$checkov" --directory terraform --framework terraform --quiet --compact \
  --skip-download --skip-path '\.terraform/' 2>&1 | tee "$work/checkov.log"
rc=${PIPESTATUS[0]}
counts="$(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$work/checkov.log" | head -n1)"
if [ "$rc" = 0 ]; then result "checkov" ok "$counts"; else result "checkov" FAILED "${counts:-exit $rc}"; fi

# --- init, validate, test in a copy of terraform/ --------------------------------
tar -C "$root" --exclude=.terraform --exclude=.terraform.lock.hcl -cf - terraform | tar -C "$work" -xf -

for dir in terraform/modules/*/ terraform/environments/*/; do
  dir="${dir%/}"
  [ -d "$dir" ] || continue # an empty glob
  echo "--- $dir: terraform init, validate, test"
  cd "$work/$dir"
  # init's output only when it fails (it lists the provider it installed).
  if ! "$TERRAFORM" init -backend=false -plugin-dir="$TF_PLUGIN_DIR" -input=false -no-color >"$work/init.log" 2>&1; then
    cat "$work/init.log"
    result "$dir" FAILED "init"
  elif ! "$TERRAFORM" validate -no-color; then
    result "$dir" FAILED "validate"
  else
    "$TERRAFORM" test -no-color 2>&1 | tee "$work/test.log"
    rc=${PIPESTATUS[0]}
    counts="$(grep -Eo '[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?' "$work/test.log" | tail -n1)"
    if [ "$rc" = 0 ] && [ -n "$counts" ]; then
      result "$dir" ok "valid; terraform test: $counts"
    else
      result "$dir" FAILED "valid; terraform test: ${counts:-exit $rc}"
    fi
  fi
  cd "$root"
done

echo "--- pytest tests/terraform"
"$pytest" -q -p no:cacheprovider tests/terraform 2>&1 | tee "$work/pytest.log"
rc=${PIPESTATUS[0]}
counts="$(tail -n1 "$work/pytest.log" | sed 's/^=* *//; s/ *=*$//')"
if [ "$rc" = 0 ]; then result "pytest tests/terraform" ok "$counts"; else result "pytest tests/terraform" FAILED "$counts"; fi

echo "--- summary"
printf '%s\n' "${summary[@]}"
echo "total ${SECONDS}s"
exit "$failed"
