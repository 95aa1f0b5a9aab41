#!/usr/bin/env bash
# Install runlocalai.mlops into an empty collections path as a user installs it
# from Galaxy, without Galaxy:
#   1. build the tarball from this checkout (ansible-galaxy collection build);
#   2. put the dependencies galaxy.yml declares (and the extra collections named
#      on the command line) into the path, copied from the collections the
#      `ansible` package bundles, laid out as ansible-galaxy installs them
#      (ansible_collections/NAMESPACE/NAME with their MANIFEST.json);
#   3. ansible-galaxy collection install --offline the tarball there: it checks
#      every declared dependency and its version range against what is there.
# Nothing from sys.path is used (ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false): the
# result works with ansible-core alone.
#
# usage: scripts/install-collection.sh [--from COLLECTION_DIR] DEST [NAMESPACE.NAME ...]
#   DEST is emptied first. Molecule runs it as every scenario's dependency step,
#   with community.docker for the lab hosts' connection (.config/molecule/config.yml).
#   --from builds another tree of the collection instead of this checkout's (molecule/upgrade:
#   the previous release, taken from git).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
collection="$root/ansible_collections/runlocalai/mlops"
if [ "${1:-}" = --from ]; then
  collection="$(cd "${2:?usage: $0 [--from COLLECTION_DIR] DEST [NAMESPACE.NAME ...]}" && pwd)"
  shift 2
fi
dest="${1:?usage: $0 [--from COLLECTION_DIR] DEST [NAMESPACE.NAME ...]}"
shift

# A configuration of our own, so that no ansible.cfg around adds collections.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '[defaults]\n' >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg"

# The bundled collections: where ansible-galaxy finds ansible.posix on sys.path.
bundled="$(ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=true ansible-galaxy collection list ansible.posix 2>/dev/null |
  sed -n 's/^# \(.*\/site-packages\/ansible_collections\)$/\1/p' | head -1)"
[ -d "$bundled" ] || { echo "install-collection: no bundled collections found (is the ansible package in .venv?)" >&2; exit 1; }

# The dependencies galaxy.yml declares: the keys of its `dependencies:` mapping.
mapfile -t deps < <(awk '/^dependencies:/ {d = 1; next} d && /^[^ #]/ {d = 0}
  d && /^  [a-z0-9_]+\.[a-z0-9_]+:/ {sub(":", "", $1); print $1}' "$collection/galaxy.yml")

rm -rf "$dest"
mkdir -p "$dest/ansible_collections"
export ANSIBLE_COLLECTIONS_PATH="$dest" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false

for name in "${deps[@]}" "$@"; do
  src="$bundled/${name%%.*}/${name#*.}"
  [ -f "$src/MANIFEST.json" ] || { echo "install-collection: $name is not bundled in $bundled" >&2; exit 1; }
  mkdir -p "$dest/ansible_collections/${name%%.*}"
  cp -a "$src" "$dest/ansible_collections/${name%%.*}/"
done

ansible-galaxy collection build "$collection" --output-path "$work" >/dev/null
ansible-galaxy collection install "$work"/runlocalai-mlops-*.tar.gz -p "$dest" --offline >/dev/null
echo "install-collection: runlocalai.mlops and ${deps[*]} $* in $dest"
