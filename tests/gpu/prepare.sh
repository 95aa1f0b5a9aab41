#!/usr/bin/env bash
# Prepare, on a machine with network and `make setup` done, what tests/gpu/run.sh needs on a GPU
# machine that has none, in one ignored folder to carry there (default .cache/gpu, about 25 MB):
#   llama.cpp-src.tar.xz  the llama.cpp tree of the pinned llama-cpp-python sdist (llm/sources.txt,
#                         sha256 checked), without its test models, docs and examples (7 MB instead
#                         of the sdist's 77 MB); llama.cpp/SOURCE names the sdist it came from
#   model-skeleton/       the test model's header and tensor index (model_skeleton.py, 2 MB): the
#                         98 MB model itself is over what may travel (64 MiB, the tree included)
#   llama-server-cpu/     the CPU build (scripts/build-llama-server.sh cpu, as make setup: cached),
#                         15 MB; SKIP_CPU=1 leaves it out (run.sh then builds it there)
# usage: tests/gpu/prepare.sh            (MODEL, GPU_CARRY, RUNLOCALAI_CACHE as for run.sh)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
carry="${GPU_CARRY:-$root/.cache/gpu}"
cache="${RUNLOCALAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runlocalai-mlops}"
model="${MODEL:-$root/.cache/llm/SmolLM2-135M-Instruct.Q4_1.gguf}"
python="$root/.venv/bin/python"
say() { echo "gpu/prepare: $*" >&2; }

read -r src_name src_version src_sha256 < <(grep -v '^#' "$root/llm/sources.txt" | awk '$1 == "llama-cpp-python"')
sdist="$cache/src/${src_name//-/_}-$src_version.tar.gz"
origin="$src_name==$src_version sdist sha256=$src_sha256"
mkdir -p "$carry" "$cache/src"

# --- the trimmed source ---------------------------------------------------------------------------
if [ "$(tar -xOf "$carry/llama.cpp-src.tar.xz" llama.cpp/SOURCE 2>/dev/null | head -n1)" != "$origin" ]; then
  if [ ! -f "$sdist" ] || [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$src_sha256" ]; then
    say "downloading $src_name==$src_version (sdist)"
    "$root/.venv/bin/pip" download -q --no-deps --no-binary :all: "$src_name==$src_version" -d "$cache/src"
  fi
  [ "$(sha256sum "$sdist" | cut -d' ' -f1)" = "$src_sha256" ] || { say "$sdist: sha256 differs from llm/sources.txt"; exit 1; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$sdist" -C "$tmp" "${src_name//-/_}-$src_version/vendor/llama.cpp"
  mv "$tmp/${src_name//-/_}-$src_version/vendor/llama.cpp" "$tmp/llama.cpp"
  echo "$origin" >"$tmp/llama.cpp/SOURCE"
  say "trimming the llama.cpp tree of $src_name==$src_version into $carry/llama.cpp-src.tar.xz"
  # Not needed to build llama-server with LLAMA_BUILD_TESTS/EXAMPLES off (checked: it configures).
  tar -C "$tmp" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    --exclude=llama.cpp/models --exclude=llama.cpp/docs --exclude=llama.cpp/benches --exclude=llama.cpp/tests \
    --exclude=llama.cpp/examples --exclude=llama.cpp/media --exclude=llama.cpp/tools/ui/tests \
    -cf - llama.cpp | xz -6 -T2 >"$carry/llama.cpp-src.tar.xz.tmp"
  mv "$carry/llama.cpp-src.tar.xz.tmp" "$carry/llama.cpp-src.tar.xz"
fi

# --- the model's skeleton ---------------------------------------------------------------------------
if [ -f "$model" ]; then
  want="$(sha256sum "$model" | cut -d' ' -f1)"
  have="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["source_sha256"])' "$carry/model-skeleton/skeleton.json" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    say "skeleton of $model"
    "$python" "$root/tests/gpu/model_skeleton.py" skeleton "$model" "$carry/model-skeleton" >&2
  fi
else
  say "no $model (make setup extracts it): no model skeleton; run.sh then needs MODEL on the GPU machine"
fi

# --- the CPU build ---------------------------------------------------------------------------------
# make setup's (cached outside the checkout: instant when built once; else about 5 minutes on 2 cores).
if [ "${SKIP_CPU:-0}" != 1 ] && binary="$("$root/scripts/build-llama-server.sh" cpu | tail -n1)" && [ -x "$binary" ]; then
  mkdir -p "$carry/llama-server-cpu"
  cp -f "$binary" "$(dirname "$binary")/BUILD-INFO" "$carry/llama-server-cpu/"
else
  rm -rf "$carry/llama-server-cpu"
  say "no CPU build carried: run.sh builds one on the GPU machine"
fi

size="$(du -sbL "$carry" | cut -f1)"
say "ready: $carry, $((size / 1048576)) MiB (carry it: the working tree and carried paths may be 64 MiB together)"
echo "$carry"
