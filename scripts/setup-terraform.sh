#!/usr/bin/env bash
# What scripts/test-terraform.sh needs (called by scripts/setup.sh after .venv
# exists; no arguments, any cwd):
#   1. Terraform and the AWS provider, pinned in scripts/terraform.env: Terraform
#      1.11.4 at /usr/local/bin/terraform and the provider hashicorp/aws 5.100.0
#      in the filesystem mirror /opt/tf-plugins. Neither can be downloaded on the
#      project's machines, so they are checked, not installed: when one is
#      missing this script says which and how to install it, and fails.
#   2. checkov in a virtualenv of its own, .cache/checkov-venv: checkov pins its
#      own HCL parser (bc-python-hcl2), which installs the same `hcl2` package as
#      python-hcl2 in .venv, and pins boto3 and packaging too.
# Prints one line per action or problem and nothing when everything is in place;
# exits non-zero after step 2 when step 1 found something missing.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/terraform.env
. scripts/terraform.env
CHECKOV_REQUIREMENT="checkov==3.3.30"

say() { echo "setup-terraform: $*"; }
export CHECKPOINT_DISABLE=1 # no update check against HashiCorp's servers

if [ ! -x .venv/bin/pip ]; then
  say ".venv is missing: run scripts/setup.sh first" >&2
  exit 1
fi

quiet() { # quiet LOGFILE COMMAND...: run, show the log only on failure
  local log="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
}

# --- 1. Terraform and the AWS provider (checked) -----------------------------------
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
esac
platform="linux_$arch"
provider_dir="$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws/$AWS_PROVIDER_VERSION/$platform"
provider_bin="$provider_dir/terraform-provider-aws_v${AWS_PROVIDER_VERSION}_x5"
missing=0

tf_version="$("$TERRAFORM" version 2>/dev/null | head -n1 || true)"
if [ "$tf_version" != "Terraform v$TERRAFORM_VERSION" ]; then
  if [ -x "$TERRAFORM" ]; then
    say "$TERRAFORM is ${tf_version:-not a working Terraform}, the tests need Terraform $TERRAFORM_VERSION" >&2
  else
    say "Terraform $TERRAFORM_VERSION is missing: there is no $TERRAFORM" >&2
  fi
  say "  install it: unzip terraform_${TERRAFORM_VERSION}_${platform}.zip from https://releases.hashicorp.com/terraform/$TERRAFORM_VERSION/ (check it against terraform_${TERRAFORM_VERSION}_SHA256SUMS) into $(dirname "$TERRAFORM")" >&2
  missing=1
fi

if [ ! -x "$provider_bin" ]; then
  say "the AWS provider $AWS_PROVIDER_VERSION is missing from the filesystem mirror $TF_PLUGIN_DIR: there is no $provider_bin" >&2
  say "  install it: unzip terraform-provider-aws_${AWS_PROVIDER_VERSION}_${platform}.zip from https://releases.hashicorp.com/terraform-provider-aws/$AWS_PROVIDER_VERSION/ (check it against terraform-provider-aws_${AWS_PROVIDER_VERSION}_SHA256SUMS) into $provider_dir/" >&2
  missing=1
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

if [ "$missing" != 0 ]; then
  say "scripts/test-terraform.sh cannot run without the above (pins: scripts/terraform.env)" >&2
  exit 1
fi
