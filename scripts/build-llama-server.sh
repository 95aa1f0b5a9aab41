#!/usr/bin/env bash
# Build llama.cpp's llama-server for the lab hosts, once per source and flags.
#
# The source is the llama.cpp tree vendored in the llama-cpp-python sdist pinned in
# llm/sources.txt (name, version, sha256): downloaded once, checked, never from a git host.
# The build is static (BUILD_SHARED_LIBS=OFF, no OpenMP), so one file travels to the
# hosts; it links only glibc and libstdc++/libgcc, which every Debian host has. Built on
# Debian 12 (glibc 2.36), it runs on Debian 12 and 13. Nothing is fetched while building (no curl,
# no OpenSSL, no prebuilt web UI): the server needs none of them behind the service.
#
# Results are kept OUTSIDE the checkout, keyed by the source sha256 and the flags:
#   ${RUNLOCALAI_CACHE:-$XDG_CACHE_HOME/runlocalai-mlops}/llama-server/<key>/llama-server
# so a machine that has built it once never builds it again (fresh clones included).
# Prints the path of the binary on its last line.
#
# usage: scripts/build-llama-server.sh [cpu|cuda]   (default cpu)
#   cuda: GGML_CUDA=ON for the GPU architectures in LLAMA_CUDA_ARCHS (default "80;90": A100,
#     H100/H200; "89" for L4/L40/RTX 40xx, "86" for A10/RTX 30xx), llama libraries static, cuBLAS and
#     the CUDA runtime linked dynamically. Where the CUDA toolkit comes from (LLAMA_CUDA_TOOLKIT):
#       debian-trixie (default)  Debian 13's nvidia-cuda-toolkit (CUDA 12.4), installed with apt
#                                in a runlocalai-lab:trixie container (scripts/lab-image.sh);
#                                the result runs on Debian 13 with driver >= 550 (the distro
#                                driver of roles/nvidia_cuda there) and libcudart12 + libcublas12
#                                + libcublaslt12 from Debian's non-free archive.
#       debian-bookworm          Debian 12's nvidia-cuda-toolkit (CUDA 11.8) in a
#                                runlocalai-lab:bookworm container: Debian 12, driver >= 520
#                                (Debian 12's 535 qualifies), libcudart11.0 + libcublas11.
#       local                    the nvcc of this machine (CUDA_HOME, nvcc on PATH or
#                                /usr/local/cuda*): its CUDA version decides the driver needed.
#     The CUDA version is part of the cache key, and BUILD-INFO records it (cuda=12.4) with the
#     oldest driver branch that runs it (min_driver=550, from plugins/module_utils/llm/build.py):
#     the model_server role refuses a host whose driver is older. Takes 30 minutes and more on
#     2 cores: never part of `make setup` or CI (tests/gpu/run.sh builds it on a GPU machine).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
variant="${1:-cpu}"
cache="${RUNLOCALAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runlocalai-mlops}"
jobs="${LLAMA_BUILD_JOBS:-$(nproc)}"
say() { echo "build-llama-server: $*" >&2; }

# Configure and build llama-server in WORK (WORK/src: the llama.cpp tree, WORK/flags: the CMake
# flags, one a line); NVCC and CUDAHOSTCXX for a CUDA build. Records the binary's NEEDED libraries.
build_tree() {
  local work="$1" flags=() extra=()
  mapfile -t flags <"$work/flags"
  [ -z "${NVCC:-}" ] || extra+=("-DCMAKE_CUDA_COMPILER=$NVCC")
  [ -z "${CUDAHOSTCXX:-}" ] || extra+=("-DCMAKE_CUDA_HOST_COMPILER=$CUDAHOSTCXX")
  cmake -S "$work/src" -B "$work/build" -G Ninja "${flags[@]}" "${extra[@]}" >"$work/configure.log" 2>&1 \
    || { cat "$work/configure.log" >&2; return 1; }
  cmake --build "$work/build" --target llama-server -j "${JOBS:-$(nproc)}" >"$work/build.log" 2>&1 \
    || { tail -n 50 "$work/build.log" >&2; return 1; }
  LC_ALL=C readelf -d "$work/build/bin/llama-server" 2>/dev/null \
    | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/NEEDED=\1/p' >"$work/needed" || true
  # A CUDA build needs the driver's libcuda.so.1 to start at all: not there on a build machine.
  if [ -z "${NVCC:-}" ] || ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    "$work/build/bin/llama-server" --version >&2
  fi
}

# Inside a lab container (the cuda variant with Debian's toolkit): install the toolkit from the
# release's non-free archive, then build WORK.
if [ "${1:-}" = --in-container ]; then
  work="$2"
  export DEBIAN_FRONTEND=noninteractive
  for list in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$list" ] && sed -i -E '/^deb .* main( |$)/{/non-free( |$)/!s/ main( |$)/ main contrib non-free non-free-firmware\1/}' "$list"
  done
  for list in /etc/apt/sources.list.d/*.sources; do
    [ -f "$list" ] && sed -i -E '/^Components:/{/non-free( |$)/!s/$/ contrib non-free non-free-firmware/}' "$list"
  done
  apt-get update -q
  apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev cmake ninja-build g++ binutils
  dpkg-query -W -f 'nvidia-cuda-toolkit ${Version}\n' nvidia-cuda-toolkit | tee "$work/toolkit"
  nvcc --version
  # The newest host compiler this nvcc accepts (Debian's toolkit depends on one of them).
  host_cxx=""
  for version in 13 12 11 10; do
    if [ -x "/usr/bin/g++-$version" ]; then host_cxx="/usr/bin/g++-$version"; break; fi
  done
  NVCC="$(command -v nvcc)" CUDAHOSTCXX="$host_cxx" build_tree "$work"
  exit 0
fi

read -r src_name src_version src_sha256 < <(grep -v '^#' "$root/llm/sources.txt" | awk '$1 == "llama-cpp-python"')
sdist="$cache/src/${src_name//-/_}-$src_version.tar.gz"
# Machines that cannot download the sdist (a GPU test machine): LLAMA_SOURCE_TARBALL names a
# llama.cpp tree trimmed from it (tests/gpu/prepare.sh: llama.cpp/ with a SOURCE file naming the
# sdist). Its own sha256 then stands for the source, in the cache key and in BUILD-INFO.
source_tarball="${LLAMA_SOURCE_TARBALL:-}"
if [ -n "$source_tarball" ]; then
  [ -f "$source_tarball" ] || { say "LLAMA_SOURCE_TARBALL $source_tarball: no such file"; exit 2; }
  src_origin="$(tar -xOf "$source_tarball" llama.cpp/SOURCE 2>/dev/null | head -n1 || true)"
  src_sha256="$(sha256sum "$source_tarball" | cut -d' ' -f1)"
fi

flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON)
key_extra=()
case "$variant" in
  cpu) ;;
  cuda)
    toolkit="${LLAMA_CUDA_TOOLKIT:-debian-trixie}"
    case "$toolkit" in
      # The CUDA each Debian release ships in non-free (checked with apt-cache in the lab images).
      debian-trixie) cuda_version=12.4 image=runlocalai-lab:trixie ;;
      debian-bookworm) cuda_version=11.8 image=runlocalai-lab:bookworm ;;
      local)
        nvcc="$(command -v nvcc || ls -d "${CUDA_HOME:-/nonexistent}"/bin/nvcc /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc 2>/dev/null | head -n1 || true)"
        [ -n "$nvcc" ] && [ -x "$nvcc" ] || { say "no nvcc found (set CUDA_HOME): the CUDA build needs the CUDA toolkit"; exit 2; }
        cuda_version="$("$nvcc" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n1)"
        [ -n "$cuda_version" ] || { say "$nvcc --version names no CUDA release"; exit 2; }
        ;;
      *) say "LLAMA_CUDA_TOOLKIT '$toolkit': debian-trixie, debian-bookworm or local"; exit 2 ;;
    esac
    flags+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${LLAMA_CUDA_ARCHS:-80;90}")
    key_extra=("cuda=$cuda_version" "toolkit=$toolkit")
    min_driver="$(python3 "$root/ansible_collections/runlocalai/mlops/plugins/module_utils/llm/build.py" min-driver "$cuda_version")" \
      || { say "CUDA $cuda_version: no known minimum driver (add it to plugins/module_utils/llm/build.py)"; exit 2; }
    ;;
  *) say "unknown variant '$variant' (cpu or cuda)"; exit 2 ;;
esac

# The CPU key is the source and the flags alone; a CUDA build's adds its CUDA version and toolkit.
key="$(printf '%s\n' "$src_sha256" "$variant" "${flags[@]}" "${key_extra[@]}" | sha256sum | cut -c1-16)"
out="$cache/llama-server/$variant-$key"
if [ -x "$out/llama-server" ]; then
  say "cached: $out/llama-server"
  echo "$out/llama-server"
  exit 0
fi

mkdir -p "$cache/src" "$cache/llama-server"
if [ -n "$source_tarball" ]; then
  :
elif [ ! -f "$sdist" ] || [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$src_sha256" ]; then
  say "downloading $src_name==$src_version (sdist)"
  "$root/.venv/bin/pip" download -q --no-deps --no-binary :all: "$src_name==$src_version" -d "$cache/src"
fi
if [ -z "$source_tarball" ]; then
  got="$(sha256sum "$sdist" | cut -d' ' -f1)"
  [ "$got" = "$src_sha256" ] || { say "$sdist: sha256 $got, expected $src_sha256 - refusing to build"; exit 1; }
fi

work="$(mktemp -d "$cache/llama-server/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ -n "$source_tarball" ]; then
  tar -xf "$source_tarball" -C "$work" llama.cpp
  mv "$work/llama.cpp" "$work/src"
else
  tar -xzf "$sdist" -C "$work" "${src_name//-/_}-$src_version/vendor/llama.cpp"
  mv "$work/${src_name//-/_}-$src_version/vendor/llama.cpp" "$work/src"
fi
printf '%s\n' "${flags[@]}" >"$work/flags"
started=$SECONDS
if [ "$variant" = cuda ] && [ "$toolkit" != local ]; then
  # Debian's toolkit in a lab container of that release, the apt downloads kept in the cache.
  command -v docker >/dev/null && docker image inspect "$image" >/dev/null 2>&1 \
    || { say "$image not found: run scripts/lab-image.sh ${toolkit#debian-} (Docker), or LLAMA_CUDA_TOOLKIT=local"; exit 2; }
  mkdir -p "$cache/apt/${toolkit#debian-}"
  say "building llama-server ($variant, CUDA $cuda_version from Debian's nvidia-cuda-toolkit in $image, key $key)" \
    "with $jobs jobs: 30 minutes and more on 2 cores"
  docker run --rm --network bridge -e "JOBS=$jobs" \
    -v "$root/scripts/build-llama-server.sh:/build/build-llama-server.sh:ro" -v "$work:/build/work" \
    -v "$cache/apt/${toolkit#debian-}:/var/cache/apt/archives" \
    "$image" bash /build/build-llama-server.sh --in-container /build/work \
    >"$work/container.log" 2>&1 || { tail -n 60 "$work/container.log" >&2; exit 1; }
else
  say "building llama-server ($variant, key $key) with $jobs jobs: about 5 minutes on 2 cores${nvcc:+ (CUDA $cuda_version: much longer)}"
  JOBS="$jobs" NVCC="${nvcc:-}" build_tree "$work"
fi
say "compiled in $((SECONDS - started)) s"
mkdir -p "$out.tmp"
install -m 0755 "$work/build/bin/llama-server" "$out.tmp/llama-server"
{
  if [ -n "$source_tarball" ]; then
    echo "source=$(basename "$source_tarball") sha256=$src_sha256 (${src_origin:-origin unknown})"
  else
    echo "source=$src_name==$src_version sha256=$src_sha256"
  fi
  echo "variant=$variant"
  if [ "$variant" = cuda ]; then
    echo "cuda=$cuda_version"
    echo "min_driver=$min_driver"
    echo "toolkit=$toolkit $(cat "$work/toolkit" 2>/dev/null || echo "${nvcc:-}")"
    echo "cuda_archs=${LLAMA_CUDA_ARCHS:-80;90}"
    # The shared libraries it needs beside glibc and libstdc++ (CUDA runtime, cuBLAS, the driver's libcuda).
    echo "needs=$(sed -n 's/^NEEDED=//p' "$work/needed" 2>/dev/null | grep -Ev '^lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s)\.so' | tr '\n' ' ' | sed 's/ $//')"
  fi
  printf 'flag=%s\n' "${flags[@]}"
} >"$out.tmp/BUILD-INFO"
rm -rf "$out"
mv "$out.tmp" "$out"
say "built: $out/llama-server"
echo "$out/llama-server"
