#!/usr/bin/env bash
# Build the lab base image for one Debian release: a minimal root file system
# with systemd as PID 1 and python3 for Ansible, made by debootstrap and
# imported into Docker (no registry is needed).
#
# usage: scripts/lab-image.sh RELEASE        (bookworm | trixie)
#
# The image is tagged runlocalai-lab:RELEASE-<recipe hash> and
# runlocalai-lab:RELEASE. The recipe hash covers this file, so editing the
# recipe makes `make setup` build a new image; an unchanged recipe builds
# nothing. Set LAB_DEBIAN_MIRROR to use a local mirror (air-gapped sites).
set -euo pipefail

release="${1:?usage: $0 RELEASE}"
case "$release" in
  bookworm | trixie) ;;
  *) echo "lab-image: unsupported release '$release' (bookworm or trixie)" >&2; exit 2 ;;
esac

# What every lab host has before Ansible touches it: an init system, python3
# for Ansible's modules, and the tools fact gathering uses. Everything else
# (pip, venv, CA bundle, ...) is the runtime role's job.
packages="systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,sudo"

here="$(cd "$(dirname "$0")" && pwd)"
recipe_hash="$( (cat "$here/lab-image.sh"; echo "$release") | sha256sum | cut -c1-12)"
image="runlocalai-lab:${release}-${recipe_hash}"

if [ "${2:-}" = "--print-tag" ]; then
  echo "$image"
  exit 0
fi

if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" "runlocalai-lab:${release}"
  echo "lab-image: $image present, nothing to build"
  exit 0
fi

rootfs="$(mktemp -d /var/tmp/lab-rootfs-${release}.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "lab-image: building $image (debootstrap, about 2 minutes)"
# shellcheck disable=SC2086  # the mirror is optional: empty means debootstrap's default
debootstrap --variant=minbase --include="$packages" "$release" "$rootfs" ${LAB_DEBIAN_MIRROR:-} \
  >"$rootfs.log" 2>&1 || { tail -30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# A container has no consoles to log in on and no hardware to wait for.
for unit in getty.target console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-firstboot.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# Keep the package lists: apt's cache_valid_time judges freshness by their age,
# and an emptied list directory looks fresh while knowing no packages.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb
: >"$rootfs/etc/machine-id"

tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["/lib/systemd/systemd"]' \
  -c 'ENV container=docker' \
  - "$image" >/dev/null
docker tag "$image" "runlocalai-lab:${release}"
# Images of older recipes are no longer used by anything this repo runs.
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' runlocalai-lab | grep "^runlocalai-lab:${release}-" | grep -vx "$image"); do
  docker rmi "$old" >/dev/null 2>&1 || true
done
echo "lab-image: built $image"
