#!/usr/bin/env bash
# The collection as users install it, checked outside this checkout with a
# configuration of our own (only the installed copy is visible, ansible-core
# alone, no sys.path scan):
#   - the tarball alone does not install: galaxy.yml declares its dependencies
#     (ansible-galaxy names the first missing one);
#   - with them (scripts/install-collection.sh) it installs, with LICENSE;
#   - every role's documentation renders from the installed copy, and every
#     lifecycle playbook it ships parses as runlocalai.mlops.NAME.
# The molecule scenarios then converge lab hosts from such an installed copy.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
printf '[defaults]\n' >ansible.cfg
export ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false

# 1. Without its dependencies the install must fail, naming one of them.
ansible-galaxy collection build "$root/ansible_collections/runlocalai/mlops" --output-path "$tmp/dist" >/dev/null
tarball="$(ls "$tmp"/dist/runlocalai-mlops-*.tar.gz)"
if out="$(ANSIBLE_COLLECTIONS_PATH="$tmp/bare" ansible-galaxy collection install "$tarball" -p "$tmp/bare" --offline 2>&1)"; then
  echo "collection-install: the tarball installed without its dependencies: galaxy.yml declares none?" >&2
  exit 1
fi
grep -Eq "ansible\.posix|community\.postgresql" <<<"$out" ||
  { echo "collection-install: unexpected failure without dependencies:" >&2; echo "$out" >&2; exit 1; }

# 2. With them.
"$root/scripts/install-collection.sh" "$tmp/collections"
export ANSIBLE_COLLECTIONS_PATH="$tmp/collections"
installed="$tmp/collections/ansible_collections/runlocalai/mlops"
test -f "$installed/LICENSE"
listed="$(ansible-galaxy collection list runlocalai.mlops)"
grep -q "$tmp/collections" <<<"$listed"

# 3. Roles documented, playbooks shipped and parsed, from the installed copy.
for role in "$installed"/roles/*/; do
  role="$(basename "$role")"
  documented="$(ansible-doc -t role "runlocalai.mlops.$role")"
  grep -q "ENTRY POINT" <<<"$documented" || { echo "collection-install: no documentation for role $role" >&2; exit 1; }
done
count=0
for pb in "$installed"/playbooks/*.yml; do
  ansible-playbook -i localhost, --syntax-check "runlocalai.mlops.$(basename "$pb" .yml)" >/dev/null
  count=$((count + 1))
done
[ "$count" -ge 8 ] || { echo "collection-install: $count playbooks shipped, expected the 8 lifecycle playbooks" >&2; exit 1; }
echo "collection-install: $(basename "$tarball") refuses to install without its dependencies, installs with them;" \
  "$(find "$installed/roles" -mindepth 1 -maxdepth 1 | wc -l) roles documented, $count playbooks parse from $tmp/collections"
