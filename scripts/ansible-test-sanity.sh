#!/usr/bin/env bash
# `ansible-test sanity` on the collection, without reaching for hosts this
# network cannot reach. ansible-test bootstraps pip in its own virtualenvs with
# a get-pip script downloaded from its CI file host, cached in
# ~/.ansible/test/cache (a path it hard-codes). We put a stand-in there that
# bootstraps pip with the standard library's ensurepip and upgrades it from the
# package index, trusting the system CA bundle. Newer pip then uses the system
# trust store for the sanity tests' own requirements.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
at_dir="$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"

# The pip versions this ansible-test bootstraps (its default_packages).
versions="$(grep -oE "pip='[0-9.]+'" "$at_dir/_internal/python_requirements.py" | grep -oE '[0-9.]+' | sort -u)"
[ -n "$versions" ] || { echo "ansible-test-sanity: cannot find the pip version ansible-test wants" >&2; exit 1; }

for version in $versions; do
  stub="$cache/get_pip_${version//./_}.py"
  cat >"$stub.new" <<'PY'
"""Stand-in for ansible-test's get-pip script: ensurepip, then pip from the index."""
import os
import subprocess
import sys

CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
cert = next((path for path in CA_BUNDLES if os.path.exists(path)), None)
# ensurepip always brings pip alone: the no-setuptools/no-wheel flags do not apply.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call(
    [sys.executable, "-m", "pip", "install", "--upgrade"] + (["--cert", cert] if cert else []) + args
)
PY
  if cmp -s "$stub.new" "$stub"; then rm "$stub.new"; else mv "$stub.new" "$stub"; fi
done

cd "$root/ansible_collections/runlocalai/mlops"
exec ansible-test sanity --local --python 3.11 --color no "$@"
