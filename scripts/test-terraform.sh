#!/usr/bin/env bash
# Terraform checks, in order (no arguments, any cwd; run scripts/setup-terraform.sh first):
#   1. terraform fmt -check over terraform/ with the Terraform that set-up installs
#   2. checkov over terraform/ from its own virtualenv: zero failed checks
#      (skips are justified in a #checkov:skip comment at the resource)
#   3. pytest tests/terraform: python-hcl2 structural tests of the secure
#      defaults, and the ansible_inventory module applied for real
# Every step runs even when an earlier one fails; exits non-zero on any failure.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CHECKPOINT_DISABLE=1
tf="$root/.venv/bin/terraform"
checkov="$root/.cache/checkov-venv/bin/checkov"

for tool in "$tf" "$checkov" "$root/.venv/bin/pytest"; do
  if [ ! -x "$tool" ]; then
    echo "test-terraform: $tool is missing: run scripts/setup-terraform.sh" >&2
    exit 1
  fi
done

failed=0

echo "--- terraform fmt -check -recursive terraform/ ($("$tf" version | head -n1))"
if "$tf" fmt -check -recursive -diff terraform/; then
  echo "fmt: clean"
else
  echo "fmt: the files above need 'terraform fmt'"
  failed=1
fi

echo "--- checkov -d terraform/"
# --skip-download: no Prisma Cloud mappings (unreachable; local checks only).
# No PYTHONPATH or user site: another `hcl2` package (python-hcl2) must not shadow checkov's.
env -u PYTHONPATH PYTHONNOUSERSITE=1 "$checkov" --directory terraform --framework terraform --quiet --compact \
  --skip-download --skip-path '\.terraform/' || failed=1

echo "--- pytest tests/terraform"
"$root/.venv/bin/pytest" -q -p no:cacheprovider tests/terraform || failed=1

exit "$failed"
