#!/usr/bin/env bash
# The collection's changelog (antsibull-changelog, changelogs/config.yaml):
#   1. the unreleased fragments in changelogs/fragments/ are valid (`antsibull-changelog lint`),
#      and so is changelogs/changelog.yaml (`antsibull-changelog lint-changelog-yaml`);
#   2. the committed CHANGELOG.rst is exactly what `antsibull-changelog generate` renders from
#      changelogs/changelog.yaml (written to a temporary file, compared, nothing in the
#      checkout touched).
# After a release (`antsibull-changelog release`, which moves fragments into changelog.yaml)
# or an edit of changelog.yaml, regenerate it:
#   (cd ansible_collections/runlocalai/mlops && antsibull-changelog generate)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
collection="$root/ansible_collections/runlocalai/mlops"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$collection"
antsibull-changelog lint
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
antsibull-changelog generate --output "$tmp/CHANGELOG.rst"
if ! diff -u CHANGELOG.rst "$tmp/CHANGELOG.rst"; then
  echo "test-changelog: CHANGELOG.rst is not what 'antsibull-changelog generate' makes from changelogs/changelog.yaml" >&2
  echo "test-changelog: regenerate it: (cd ${collection#"$root"/} && antsibull-changelog generate)" >&2
  exit 1
fi
echo "test-changelog: fragments and changelog.yaml lint clean; CHANGELOG.rst matches changelog.yaml" \
  "($(antsibull-changelog --version))"
