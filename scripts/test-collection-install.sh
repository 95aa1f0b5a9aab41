#!/usr/bin/env bash
# Build the collection tarball, install it into an empty collections path and
# check that Ansible resolves runlocalai.mlops from there (not from this
# checkout): the role's argument spec renders and a playbook using it parses.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Work outside the checkout with a config of our own, so that only the
# installed copy is visible (the repo's ansible.cfg points at the checkout).
cd "$tmp"
printf '[defaults]\ncollections_path = %s\n' "$tmp/collections" >ansible.cfg
export ANSIBLE_CONFIG="$tmp/ansible.cfg"

ansible-galaxy collection build "$root/ansible_collections/runlocalai/mlops" --output-path "$tmp/dist"
tarball="$(ls "$tmp"/dist/runlocalai-mlops-*.tar.gz)"
ansible-galaxy collection install "$tarball" -p "$tmp/collections" --offline

# Whole outputs first: `| grep -q` closes the pipe at the first match, and
# Ansible's CLI fails on the broken pipe (which pipefail then reports).
listed="$(ansible-galaxy collection list runlocalai.mlops)"
grep -q "$tmp/collections" <<<"$listed"
test -f "$tmp/collections/ansible_collections/runlocalai/mlops/roles/runtime/meta/argument_specs.yml"
documented="$(ansible-doc -t role runlocalai.mlops.runtime)"
grep -q "runtime_pip_wheelhouse_src" <<<"$documented"
printf '%s\n' '- hosts: localhost' '  gather_facts: false' '  roles: [runlocalai.mlops.runtime]' >site.yml
ansible-playbook -i localhost, --syntax-check site.yml
echo "collection-install: $(basename "$tarball") installs and resolves from $tmp/collections"
