#!/usr/bin/env bash
# The GPU check of the LLM path, on a machine with an NVIDIA GPU, in a few minutes (tests/gpu/README.md):
#   1. builds llama-server with the machine's own nvcc (CUDA 12.x or 13, detected; LLAMA_CUDA_ARCHS,
#      default 90 for H100/H200; all cores), or takes CUDA_SERVER; checks its BUILD-INFO against the
#      driver as the model_server role does (plugins/module_utils/llm/build.py);
#   2. takes the CPU build (CPU_SERVER, the one tests/gpu/prepare.sh carried, or make setup's), or builds it;
#   3. runs the model service (python -m runlocalai_mlops.serving, runtime llamacpp) with device cuda,
#      checks that /ready says cuda, times N chat completions, reads the GPU memory of llama-server
#      with nvidia-smi --query-compute-apps and compares it with the fit estimate (llm/fit.py);
#   4. the same on the CPU build (device cpu), for tokens/s against the GPU and RSS against the estimate;
#   5. prints a summary and writes everything to gpu-results.json (in $OUT when set).
#
# Never part of CI or `make test`. Needs: nvidia-smi, nvcc, cmake, ninja, a C++ compiler, python3
# (with numpy, for reading the model's header). No network: the llama.cpp source and the model come
# from tests/gpu/prepare.sh's folder (.cache/gpu, carried to the machine) or from make setup's files.
#
# Environment: MODEL (default .cache/llm/SmolLM2-135M-Instruct.Q4_1.gguf; when absent, a model of
# the same shape is rebuilt from .cache/gpu/model-skeleton), CUDA_SERVER, CPU_SERVER, LLAMA_CUDA_ARCHS
# (90), REQUESTS (8), MAX_TOKENS (128), CTX_PER_SLOT (2048), GPU_CARRY (.cache/gpu), RUNLOCALAI_CACHE
# (builds; default .cache/gpu-build, kept for the next run), BUILD_ONLY=1 (stop after the builds),
# PYTHON (python3), OUT, DRY_RUN=1 (print the steps only).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/gpu"
coll="$root/ansible_collections/runlocalai/mlops"
dry="${DRY_RUN:-0}"
carry="${GPU_CARRY:-$root/.cache/gpu}"
model="${MODEL:-$root/.cache/llm/SmolLM2-135M-Instruct.Q4_1.gguf}"
requests="${REQUESTS:-8}"
max_tokens="${MAX_TOKENS:-128}"
ctx="${CTX_PER_SLOT:-2048}"
python="${PYTHON:-python3}"
export LLAMA_CUDA_ARCHS="${LLAMA_CUDA_ARCHS:-90}"
jobs="$(nproc)"
out="${OUT:-}"

if [ "$dry" = 1 ]; then
  work="${GPU_WORK:-/tmp/gpu-check.XXXXXX}"
else
  work="${GPU_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}"
  mkdir -p "$work"
  if [ -n "$out" ]; then
    mkdir -p "$out"
    exec 2> >(tee -a "$out/run.log" >&2)
  fi
fi
# Builds go inside the checkout (ignored): a second run on the same machine reuses them.
cache="${RUNLOCALAI_CACHE:-$root/.cache/gpu-build}"
extra="$work/extra.json"
t0=$SECONDS

step() { echo "== [$((SECONDS - t0)) s] $*" >&2; }
# Run a command, or in a dry run print it.
run() {
  if [ "$dry" = 1 ]; then
    printf '   $' >&2
    printf ' %q' "$@" >&2
    echo >&2
  else
    "$@"
  fi
}
note() {  # key value: a fact for the results (strings)
  [ "$dry" = 1 ] && return 0
  "$python" - "$extra" "$1" "$2" <<'EOF'
import json, os, sys
path, key, value = sys.argv[1:]
data = json.load(open(path)) if os.path.exists(path) else {}
try:
    data[key] = json.loads(value)
except ValueError:
    data[key] = value
json.dump(data, open(path, "w"), indent=1)
EOF
}
die() { echo "tests/gpu/run.sh: $*" >&2; exit 1; }

# --- 0. the machine ---------------------------------------------------------------------------
step "machine: GPU, driver, nvcc"
if [ "$dry" = 1 ]; then
  run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  run nvcc --version
  driver="<driver>"
else
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this check needs an NVIDIA GPU and its driver"
  gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n1)"
  driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1 | tr -d ' ')"
  driver_cuda="$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n1)"
  nvcc_bin="$(command -v nvcc || ls -d "${CUDA_HOME:-/nonexistent}"/bin/nvcc /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc 2>/dev/null | head -n1 || true)"
  nvcc_version="$([ -n "$nvcc_bin" ] && "$nvcc_bin" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p' | head -n1 || true)"
  echo "   GPU: $gpu; driver $driver (runs CUDA ${driver_cuda:-?}); nvcc ${nvcc_version:-not found} ${nvcc_bin:-}; $jobs cores" >&2
  note gpu "$gpu"; note driver "$driver"; note driver_cuda "${driver_cuda:-}"; note nvcc "${nvcc_version:-}"; note cores "$jobs"
  if [ -n "$nvcc_bin" ]; then PATH="$(dirname "$nvcc_bin"):$PATH"; export PATH; fi
fi

# --- 1. the llama.cpp source ------------------------------------------------------------------
tarball="$carry/llama.cpp-src.tar.xz"
if [ -f "$tarball" ] || [ "$dry" = 1 ]; then
  export LLAMA_SOURCE_TARBALL="$tarball"
  step "source: $tarball (trimmed from the pinned llama-cpp-python sdist by tests/gpu/prepare.sh)"
else
  step "source: the pinned sdist (no $tarball): scripts/build-llama-server.sh downloads it unless it is cached"
fi

# --- 2. the CUDA build --------------------------------------------------------------------------
build() {  # variant -> path of the binary (last line of the build script's output)
  local variant="$1" started=$SECONDS path
  if [ "$dry" = 1 ]; then
    run env LLAMA_CUDA_TOOLKIT=local LLAMA_CUDA_ARCHS="$LLAMA_CUDA_ARCHS" LLAMA_BUILD_JOBS="$jobs" RUNLOCALAI_CACHE="$cache" \
      "$root/scripts/build-llama-server.sh" "$variant"
    echo "<$cache/llama-server/$variant-KEY/llama-server>"
    return 0
  fi
  path="$(LLAMA_CUDA_TOOLKIT=local LLAMA_BUILD_JOBS="$jobs" RUNLOCALAI_CACHE="$cache" \
    "$root/scripts/build-llama-server.sh" "$variant" | tail -n1)" || die "the $variant build failed"
  note "build_${variant}_seconds" "$((SECONDS - started))"
  echo "$path"
}
if [ -n "${CUDA_SERVER:-}" ]; then
  cuda_server="$CUDA_SERVER"
  step "CUDA build: given, $cuda_server"
else
  step "CUDA build: scripts/build-llama-server.sh cuda with this machine's nvcc, archs $LLAMA_CUDA_ARCHS, $jobs jobs"
  cuda_server="$(build cuda)"
fi
step "driver check of the CUDA build (what the model_server role does before it installs it)"
run "$python" "$coll/plugins/module_utils/llm/build.py" check "$(dirname "$cuda_server")/BUILD-INFO" "$driver" >&2 \
  || die "the CUDA build needs a newer driver than this machine's $driver"
if [ "$dry" != 1 ]; then
  note cuda_build_info "$(cat "$(dirname "$cuda_server")/BUILD-INFO" 2>/dev/null || echo none)"
  echo "   $(grep -E '^(cuda|min_driver|needs)=' "$(dirname "$cuda_server")/BUILD-INFO" | tr '\n' ' ')" >&2
fi

# --- 3. the CPU build ---------------------------------------------------------------------------
cpu_server="${CPU_SERVER:-}"
if [ -z "$cpu_server" ]; then
  for candidate in "$carry/llama-server-cpu/llama-server" "$root/.cache/llm/llama-server-cpu/llama-server"; do
    if [ -x "$candidate" ]; then cpu_server="$candidate"; break; fi
  done
fi
if [ -n "$cpu_server" ]; then
  step "CPU build: $cpu_server"
else
  step "CPU build: scripts/build-llama-server.sh cpu ($jobs jobs)"
  cpu_server="$(build cpu)"
fi

if [ "${BUILD_ONLY:-0}" = 1 ]; then
  step "BUILD_ONLY: builds done ($cuda_server, $cpu_server); run again without it to measure"
  exit 0
fi

# --- 4. the model -------------------------------------------------------------------------------
if [ -f "$model" ]; then
  step "model: $model"
  [ "$dry" = 1 ] || note model "$model"
elif [ -f "$carry/model-skeleton/skeleton.json" ] || [ "$dry" = 1 ]; then
  step "model: $model is not here; rebuilding a model of its shape from $carry/model-skeleton (synthetic weights)"
  run "$python" "$here/model_skeleton.py" rebuild "$carry/model-skeleton" "$work/model.gguf" >&2
  model="$work/model.gguf"
  [ "$dry" = 1 ] || note model "synthetic weights, shape of $("$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["source_file"], d["source_sha256"])' "$carry/model-skeleton/skeleton.json")"
else
  die "no model: $model is not a file and $carry/model-skeleton is missing (tests/gpu/prepare.sh makes it)"
fi

# --- 5. the service package (as the model_server role installs it) ----------------------------
step "the service package runlocalai_mlops (module_utils common, drift, serving, llm) in $work/py"
pypath="$work/py"
if [ "$dry" = 1 ]; then
  run mkdir -p "$pypath/runlocalai_mlops"
  run cp -r "$coll/plugins/module_utils/"{common,drift,serving,llm} "$pypath/runlocalai_mlops/"
else
  mkdir -p "$pypath/runlocalai_mlops"
  : >"$pypath/runlocalai_mlops/__init__.py"
  for package in common drift serving llm; do
    cp -r "$coll/plugins/module_utils/$package" "$pypath/runlocalai_mlops/"
  done
  find "$pypath" -name __pycache__ -prune -exec rm -rf {} +
  # gguf (for the fit estimate's reading of the model header): installed, or gguf-py of the source.
  if ! "$python" -c 'import gguf' 2>/dev/null && [ -f "$tarball" ]; then
    tar -xf "$tarball" -C "$work" llama.cpp/gguf-py
    pypath="$pypath:$work/llama.cpp/gguf-py"
  fi
fi
export PYTHONPATH="$pypath${PYTHONPATH:+:$PYTHONPATH}"

# --- 6. the fit estimates -----------------------------------------------------------------------
step "fit estimate (llm/fit.py) for device cuda and cpu, ctx_per_slot $ctx, 1 slot"
for device in cuda cpu; do
  run "$python" "$here/bench.py" estimate --device "$device" --model "$model" --ctx-per-slot "$ctx" --out "$work/fit-$device.json"
done

# --- 7. the service on the GPU, then on the CPU -------------------------------------------------
status=0
for device in cuda cpu; do
  server="$cuda_server"
  [ "$device" = cpu ] && server="$cpu_server"
  step "service with device $device ($server): /ready, $requests chat completions of $max_tokens tokens"
  run "$python" "$here/bench.py" serve --device "$device" --llama-server "$server" --model "$model" \
    --ctx-per-slot "$ctx" --requests "$requests" --max-tokens "$max_tokens" --work "$work/serve-$device" \
    --out "$work/serve-$device.json" || status=1
done

# --- 8. the results -------------------------------------------------------------------------------
step "results"
[ "$dry" = 1 ] || note total_seconds "$((SECONDS - t0))"
run "$python" "$here/bench.py" summary --cuda "$work/serve-cuda.json" --cpu "$work/serve-cpu.json" \
  --fit-cuda "$work/fit-cuda.json" --fit-cpu "$work/fit-cpu.json" --extra "$extra" --max-tokens "$max_tokens" \
  --out "$work/gpu-results.json" || status=1
if [ "$dry" != 1 ]; then
  echo "results: $work/gpu-results.json" >&2
  if [ -n "$out" ]; then
    cp "$work/gpu-results.json" "$out/gpu-results.json"
    for device in cuda cpu; do
      [ -f "$work/serve-$device/service.log" ] && cp "$work/serve-$device/service.log" "$out/service-$device.log"
    done
  fi
fi
exit "$status"
