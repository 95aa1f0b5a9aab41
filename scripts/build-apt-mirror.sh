#!/usr/bin/env bash
# Build the apt mirror the lab hosts of one Debian release read instead of Debian's
# archive: exactly the packages the collection's roles install (listed from the roles'
# own variables by the collection's playbooks/apt_packages.yml), with their
# dependencies, resolved INSIDE a container of that release (runlocalai-lab:RELEASE,
# scripts/lab-image.sh), as a flat repository (Packages, Release) signed with a key made
# here once per machine.
#
# usage: scripts/build-apt-mirror.sh RELEASE [delta|full]     (bookworm | trixie; default delta)
#   delta  what the lab image lacks (apt-get install --download-only in the image):
#          the lab hosts start from that image, so this is exactly what they install.
#          The image's id is part of the cache key.
#   full   the whole dependency closure, as if nothing were installed: for hosts
#          that were not made from the lab image (a real site's own mirror seed).
#
# Results are kept OUTSIDE the checkout, keyed by everything that decides them (this
# script, the package playbook, the roles' vars files, the release, the mode, the lab
# image id in delta mode, the signing key):
#   ${RUNLOCALAI_CACHE:-$XDG_CACHE_HOME/runlocalai-mlops}/apt-mirror/<release>-<mode>-<key>/
# so a machine that built it once builds nothing again (fresh clones included). The
# public key is apt-mirror/signing-key.gpg there. Prints the mirror's path on its last line.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
collection="$root/ansible_collections/runlocalai/mlops"
say() { echo "build-apt-mirror: $*" >&2; }

# --- inside the release's container: resolve and download, then index ------------------
if [ "${1:-}" = --in-container ]; then
  mode="$2" work=/work
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  mkdir -p "$work/mirror/partial"
  status=()
  if [ "$mode" = full ]; then
    # An empty dpkg status: apt resolves as if nothing were installed.
    : >"$work/empty-status"
    status=(-o "Dir::State::status=$work/empty-status")
  fi
  # One resolution per role variable, each from the image's state (as a role's task
  # installs it), recommends on (what the roles' apt/package tasks do by default; a
  # superset of what install_recommends: false tasks need).
  while read -r role variable packages; do
    [ -n "$role" ] || continue
    # shellcheck disable=SC2086  # a list of package names
    apt-get install -qq -y --download-only "${status[@]}" \
      -o "Dir::Cache::Archives=$work/mirror" $packages >/dev/null \
      || { echo "build-apt-mirror: $role $variable: apt could not resolve: $packages" >&2; exit 1; }
  done <"$work/packages.txt"
  rm -rf "$work/mirror/partial" "$work/mirror/lock"
  # The index tool, into the container's own cache (not the mirror).
  apt-get install -qq -y --no-install-recommends apt-utils >/dev/null
  cd "$work/mirror"
  apt-ftparchive packages . >Packages
  gzip -9kn Packages
  apt-ftparchive \
    -o APT::FTPArchive::Release::Origin=runlocalai \
    -o APT::FTPArchive::Release::Label="runlocalai lab mirror" \
    -o "APT::FTPArchive::Release::Codename=$3" \
    -o "APT::FTPArchive::Release::Description=packages of the runlocalai.mlops roles for $3" \
    release . >"$work/Release"   # written outside: Release must not list itself
  mv "$work/Release" Release
  chown -R "$4" "$work"
  exit 0
fi

release="${1:?usage: $0 RELEASE [delta|full]}"
mode="${2:-delta}"
case "$release" in bookworm | trixie) ;; *) say "unsupported release '$release'"; exit 2 ;; esac
case "$mode" in delta | full) ;; *) say "mode must be delta or full"; exit 2 ;; esac
cache="${RUNLOCALAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runlocalai-mlops}/apt-mirror"
mkdir -p "$cache"
image="runlocalai-lab:$release"
image_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" \
  || { say "$image is missing: run scripts/lab-image.sh $release first"; exit 1; }

# The signing key: made once per machine, kept with the mirrors it signed (under a lock:
# set-up may build both releases at once).
export GNUPGHOME="$cache/gnupg"
{
  flock 9
  if [ ! -s "$cache/signing-key.gpg" ] || [ ! -d "$GNUPGHOME" ]; then
    say "making the mirror signing key ($cache/signing-key.gpg)"
    rm -rf "$GNUPGHOME"
    mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key "runlocalai lab apt mirror ($(hostname))" ed25519 sign never
    gpg --batch --quiet --export >"$cache/signing-key.gpg.tmp"
    mv "$cache/signing-key.gpg.tmp" "$cache/signing-key.gpg"
  fi
} 9>"$cache/.signing-key.lock"
fingerprint="$(gpg --batch --quiet --no-auto-check-trustdb --with-colons --list-secret-keys | awk -F: '$1 == "fpr" {print $10; exit}')"

key="$( (cat "$0" "$collection/playbooks/apt_packages.yml" "$collection"/roles/{runtime,mlflow_server,monitoring}/vars/*.yml
         echo "$release $mode $fingerprint"; [ "$mode" = full ] || echo "$image_id") | sha256sum | cut -c1-16)"
dir="$cache/$release-$mode-$key"
if [ -f "$dir/.complete" ]; then
  touch "$dir"  # in use: kept by the clean-up below
  say "cached: $dir"
  echo "$dir"
  exit 0
fi

start=$(date +%s)
work="$(mktemp -d "$cache/.work-$release.XXXXXX")"
trap 'rm -rf "$work"' EXIT
ANSIBLE_CONFIG="$root/ansible.cfg" "$root/.venv/bin/ansible-playbook" \
  "$collection/playbooks/apt_packages.yml" -e "apt_packages_dest=$work/packages.txt" >"$work/playbook.log" 2>&1 \
  || { cat "$work/playbook.log" >&2; say "listing the roles' packages failed"; exit 1; }
say "$release ($mode): resolving $(awk '{n += NF - 2} END {print n}' "$work/packages.txt") packages of the roles in $image"
cp "$0" "$work/build-apt-mirror.sh"
docker run --rm --network bridge -v "$work:/work" "$image" \
  bash /work/build-apt-mirror.sh --in-container "$mode" "$release" "$(id -u):$(id -g)" >"$work/container.log" 2>&1 \
  || { tail -n 30 "$work/container.log" >&2; say "resolving in $image failed"; exit 1; }
gpg --batch --yes --quiet --local-user "$fingerprint" --clearsign -o "$work/mirror/InRelease" "$work/mirror/Release"
gpg --batch --yes --quiet --local-user "$fingerprint" --detach-sign -o "$work/mirror/Release.gpg" "$work/mirror/Release"
cp "$work/packages.txt" "$work/mirror/roles-packages.txt"
chmod -R a+rX "$work/mirror"
touch "$work/mirror/.complete"
rm -rf "$dir"
mv "$work/mirror" "$dir"
# Older mirrors stay (another checkout on this machine, or a running lab host, may read
# one); those not used for 30 days go.
find "$cache" -mindepth 1 -maxdepth 1 -name "$release-$mode-*" ! -name "$(basename "$dir")" -mtime +30 \
  -exec rm -rf {} + 2>/dev/null || true
say "built $dir: $(find "$dir" -name '*.deb' | wc -l) packages, $(du -sh "$dir" | cut -f1), $(($(date +%s) - start)) s"
echo "$dir"
