# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Does one llama-server instance of a GGUF model fit a host? The memory estimate (estimate) and
the verdict with its reasons and suggestions (judge), from the model's metadata (gguf.py, or the
llm.* tags of a registered version) and the host's free memory, GPUs and disk.

What one instance holds, in bytes:

- weights: the tensors (the file is memory-mapped on CPU; its pages count in RSS and against a
  cgroup's memory.max once read, and every page is read to answer a request);
- KV cache: per token, layers x kv_heads x (head_size x bytes(K type) + value_head_size x
  bytes(V type)); llama-server's --ctx-size is the total over its slots, each slot's share padded
  to a multiple of 256 tokens as llama.cpp pads it; llama.cpp clears the whole buffer at start,
  so it is resident from the first second;
- compute buffers: llama.cpp's graph working memory for one micro-batch (n_ubatch tokens) with
  Flash Attention (llama-server's default "auto" turns it on for CPU and CUDA), plus the logits
  output buffer;
- the process: the binary, the C/C++ runtime, the tokenizer's tables, the HTTP server;
- the prompt cache (--cache-ram, MiB), counted in full: llama-server fills it up to its limit.

On CUDA, with gpu_layers (llama-server's --n-gpu-layers: the L repeating layers count first,
the output layer is number L + 1; None means all), the repeating layers' weights and their share
of the KV cache go to the GPU proportionally per layer, the output layer (the output matrix, or a
copy of the embedding when the model ties them) with the last one; the input embedding always
stays in RAM, as in llama.cpp. A GPU holds a CUDA context and its own compute buffer, the host
the CUDA runtime.

Per-layer differences (sliding-window layers, per-layer head counts, mixture-of-experts that
llama.cpp may keep on the CPU) are not modelled: a per-layer list counts as its largest entry,
which errs on the side of "needs more". Recurrent models (Mamba, RWKV) are not covered.

Plain Python, standard library only, no Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

from ..common.errors import InputError
from ..serving.llamacpp import CACHE_TYPES

MIB = 1024 * 1024
GIB = 1024 * MIB

# Bytes per element of a KV cache type: llama.cpp's ggml block sizes (ggml-common.h): q8_0 packs
# 32 values in 34 bytes (32 x int8 + an f16 scale), q5_1 in 24, q5_0 in 22, q4_1 in 20, q4_0 and
# iq4_nl in 18. The names are the ones the service passes to llama-server's --cache-type-k/-v
# (serving/llamacpp.py CACHE_TYPES, their one definition: a name without a size fails here at import).
_ELEMENT_BYTES = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0,
    "q8_0": 34.0 / 32, "q5_1": 24.0 / 32, "q5_0": 22.0 / 32, "q4_1": 20.0 / 32, "q4_0": 18.0 / 32, "iq4_nl": 18.0 / 32,
}
CACHE_TYPE_BYTES = dict((name, _ELEMENT_BYTES[name]) for name in CACHE_TYPES)
DEVICES = ("cpu", "cuda")
VERDICTS = ("fits", "fits_partial_offload", "does_not_fit")

# llama.cpp pads each sequence's context to a multiple of 256 tokens (llama-context.cpp:
# n_ctx = GGML_PAD(n_ctx, 256), n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256)); the suggested
# context per slot is a multiple of it too.
CTX_PAD = 256

# llama-server's default micro-batch (--ubatch-size, common.h n_ubatch = 512).
DEFAULT_UBATCH = 512

# -- runtime constants ----------------------------------------------------------------------
# Measured on the llama-server of llama-cpp-python 0.3.36's llama.cpp (scripts/build-llama-server.sh,
# CPU build, 2 threads) with benchmarks/llm/fit_vs_rss.py: SmolLM2-135M Q4_1 with its slots'
# contexts filled, and (--vocab-sweep) small GGUF files of 1,000, 49,152 and 128,000 tokens of
# vocabulary (2 layers, one 400-token request each); see benchmarks/README.md "LLM: fit estimate
# vs measured RSS". One set of constants for every case: nothing is fitted per case.

# The process itself: the static binary's resident pages, the C/C++ runtime, the thread pool and
# the HTTP server. Measured (fit_vs_rss.py --vocab-sweep) as the intercept of the line through RSS
# minus weights, KV, compute and output buffers of three small files against their vocabulary:
# 19.0 MiB at 1,000 tokens, 32.4 at 49,152, 54.2 at 128,000 -> 18.7 MiB, taken as 19.
PROCESS_BASE_BYTES = 19 * MIB

# What serving real prompts adds beyond the compute buffer: the allocator arenas of the HTTP and
# decoding threads, the graph's metadata, the CPU backend's work buffer (activations quantized
# for the matrix products). Measured on SmolLM2 as the RSS after filling the slots minus the RSS
# at /health minus the compute buffer: 9.3 to 12.3 MiB over the four cases, of which the per-slot
# terms below account for 0.7 to 4.3 MiB; 5.6 to 9.6 MiB are left, taken as 8.
PROCESS_SERVING_BYTES = 8 * MIB

# Per vocabulary entry: the tokenizer's tables (the token text, score and attributes, the text ->
# id hash map, the piece cache, BPE merge ranks) and the sampler of the slot in use. Measured as
# the slope of the same line: 290-291 bytes per entry (13.6 MiB for SmolLM2's 49,152).
PROCESS_BYTES_PER_VOCAB_TOKEN = 290

# Per slot in use: the sampler's candidates (one llama_token_data of 12 bytes per vocabulary
# entry; at /health SmolLM2 had 7-10 bytes per entry and slot more with 4 slots than with 1) and
# the slot's tokens (the prompt in the request's parsed JSON, the slot's and the cache's copies:
# 64 bytes per token of context, an upper figure, too small to separate from the measurements'
# noise).
SLOT_BYTES_PER_VOCAB_TOKEN = 12
SLOT_BYTES_PER_CTX_TOKEN = 64

# The compute buffer llama.cpp reserves for one micro-batch (log line "CPU compute buffer
# size"), whatever the number of slots. Measured for SmolLM2 at n_ubatch 512: 14.01 MiB at 512
# tokens per slot, 15.51 at 2,048, 21.51 at 8,192, 45.51 at 32,768, i.e. 13.51 MiB + 1 KiB per
# token of a slot's context; 1.51 MiB for the --vocab-sweep files at 512 tokens.
# - The per-token part is Flash Attention's KQ mask, f16 [n_kv, n_ubatch]: n_ubatch x 2 bytes per
#   KV token of one slot (of all slots' tokens with a unified KV cache).
# - The rest is the largest set of a layer's f32 activations alive at once for n_ubatch tokens:
#   the FFN's gate, up and product (3 x feed_forward_length) beside the residual, the normed
#   input and the output (about 4 x embedding_length). SmolLM2: 512 x 4 B x (3 x 1,536 + 4 x 576)
#   = 13.50 MiB (13.51 measured); the --vocab-sweep files: 1.25 MiB (1.01 measured).
COMPUTE_FFN_VECTORS = 3
COMPUTE_EMBEDDING_VECTORS = 4
# Without feed_forward_length in the metadata, the FFN is taken as 4 x embedding_length wide
# (Llama 2 7B: 11,008 / 4,096 = 2.7; Llama 3 8B: 14,336 / 4,096 = 3.5; SmolLM2: 2.7).
DEFAULT_FFN_PER_EMBEDDING = 4
COMPUTE_MASK_BYTES_PER_KV_TOKEN_PER_UBATCH_TOKEN = 2
# The logits output buffer: n_vocab f32 per slot (llama-server asks one output per sequence;
# log line "CPU output buffer size": 0.19 MiB per slot for 49,152 tokens).
OUTPUT_BYTES_PER_VOCAB_TOKEN_PER_SLOT = 4

# CUDA, not measured in this project yet (no GPU host in its lab); figures as commonly reported
# for a CUDA 12 process with lazy module loading, on the side of "needs more":
# - a CUDA context with cuBLAS on the GPU takes 300-500 MiB beside the buffers (nvidia-smi's
#   per-process figure): 512 MiB per GPU used;
CUDA_CONTEXT_VRAM_BYTES = 512 * MIB
# - the CUDA runtime, driver and cuBLAS libraries resident in the host process: 384 MiB.
CUDA_HOST_BYTES = 384 * MIB

# Disk: the file must fit the cache directory with a margin (a partial download, the file
# system's own reserve).
DISK_MARGIN = 0.05

REQUIRED_META = ("layers", "kv_heads", "head_size", "value_head_size", "weights_bytes", "embedding_length", "vocab_size")


# -- sizes ----------------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGTPE]?)$")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4, "P": 1024 ** 5, "E": 1024 ** 6}


def parse_size(value, name="memory_max", total_bytes=None):
    """A systemd size (MemoryMax=) in bytes: 268435456, '256M', '2G', '1.5G' (base 1024, suffixes
    K M G T P E as systemd writes them), '50%' of total_bytes; None, '' and 'infinity' are None
    (no limit). InputError names the setting for anything else."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise InputError("%s: %r is not a size like 256M, 2G or infinity" % (name, value))
        return None
    if isinstance(value, int):
        if value < 0:
            raise InputError("%s: %r is not a size like 256M, 2G or infinity" % (name, value))
        return value
    text = str(value).strip()
    if text in ("", "infinity"):
        return None
    if text.endswith("%"):
        try:
            share = float(text[:-1])
        except ValueError:
            share = -1
        if not 0 <= share <= 100:
            raise InputError("%s: %r is not a percentage from 0%% to 100%%" % (name, value))
        if total_bytes is None:
            raise InputError("%s: %r is a share of the host's memory, which is not known here" % (name, value))
        return int(total_bytes * share / 100)
    match = _SIZE_RE.match(text)
    if not match:
        raise InputError("%s: %r is not a size like 256M, 2G, 1.5G or infinity (systemd's K M G T P E, base 1024)" % (name, value))
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def mib(value):
    """Bytes as whole MiB for messages."""
    return int(round(value / float(MIB)))


# -- the estimate ---------------------------------------------------------------------------

def _check_meta(meta):
    missing = [key for key in REQUIRED_META if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool)]
    if missing:
        raise InputError("model metadata: missing or not a number: %s (tags %s; register the model with mlflow_gguf_model, "
                         "or give gguf_path)" % (", ".join(missing), ", ".join("llm." + key for key in missing)))
    if meta["layers"] < 1:
        raise InputError("model metadata: llm.layers is %r, expected at least 1" % meta["layers"])


def _cache_bytes(name, cache_type):
    if cache_type not in CACHE_TYPE_BYTES:
        raise InputError("%s: %r is not a KV cache type llama-server takes (%s)" % (name, cache_type, ", ".join(sorted(CACHE_TYPE_BYTES))))
    return CACHE_TYPE_BYTES[cache_type]


def kv_bytes_per_token(meta, cache_type_k="f16", cache_type_v="f16"):
    """KV cache bytes per token of context, K and V: layers x kv_heads x (head_size x bytes(K) +
    value_head_size x bytes(V)). SmolLM2-135M (30 layers, 3 KV heads of 64) at f16: 23,040 B."""
    per_k = _cache_bytes("cache_type_k", cache_type_k)
    per_v = _cache_bytes("cache_type_v", cache_type_v)
    return int(math.ceil(meta["layers"] * meta["kv_heads"] * (meta["head_size"] * per_k + meta["value_head_size"] * per_v)))


def slot_context(ctx_per_slot):
    """A slot's context as llama.cpp sizes it: rounded up to a multiple of 256 tokens."""
    return int(math.ceil(ctx_per_slot / float(CTX_PAD))) * CTX_PAD


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError("%s: %r is not a whole number of at least %d" % (name, value, minimum))
    return value


def estimate(meta, ctx_per_slot, parallel, cache_type_k="f16", cache_type_v="f16", cache_ram_mib=0, device="cpu", gpu_layers=None,
             ubatch=DEFAULT_UBATCH, kv_unified=False):
    """The memory of one llama-server instance, in bytes.

    Returns dict: device, layers, gpu_layers (layers on the GPU, L + 1 = all with the output
    layer; 0 on CPU), kv_tokens (the KV cache's size over all slots), ctx_per_slot (padded),
    kv_bytes_per_token, ram {weights, kv_cache, compute, process, prompt_cache, cuda_runtime,
    total}, vram {weights, kv_cache, compute, cuda_context, total} (zeros on CPU), ram_bytes,
    vram_bytes, and the weights' share in each (ram_weights_bytes / vram_weights_bytes: what a
    smaller quantization would shrink). Raises InputError naming a bad setting.
    """
    _check_meta(meta)
    _positive_int("ctx_per_slot", ctx_per_slot)
    _positive_int("parallel", parallel)
    _positive_int("ubatch_size", ubatch)
    if isinstance(cache_ram_mib, bool) or not isinstance(cache_ram_mib, int) or cache_ram_mib < 0:
        raise InputError("cache_ram_mib: %r is not a number of MiB (0 = no prompt cache; llama-server's -1, no limit, "
                         "cannot be checked)" % (cache_ram_mib,))
    if device not in DEVICES:
        raise InputError("device: %r is not one of %s" % (device, ", ".join(DEVICES)))
    layers = meta["layers"]
    if device == "cpu":
        offloaded = 0
    elif gpu_layers is None:
        offloaded = layers + 1
    else:
        offloaded = min(_positive_int("gpu_layers", gpu_layers, 0), layers + 1)
    on_gpu = min(offloaded, layers)
    output_on_gpu = offloaded > layers

    ctx_seq = slot_context(ctx_per_slot)
    kv_tokens = ctx_seq * parallel
    per_token = kv_bytes_per_token(meta, cache_type_k, cache_type_v)
    kv_total = per_token * kv_tokens

    # Weights: the input embedding, the output matrix (0 when tied), the repeating layers.
    weights = meta["weights_bytes"]
    embedding = min(meta.get("embedding_bytes") or 0, weights)
    output = min(meta.get("output_bytes") or 0, weights - embedding)
    per_layer = (weights - embedding - output) / float(layers)
    output_gpu_copy = (output or embedding) if output_on_gpu else 0

    mask_tokens = kv_tokens if kv_unified else ctx_seq
    feed_forward = meta.get("feed_forward_length") or DEFAULT_FFN_PER_EMBEDDING * meta["embedding_length"]
    compute = (ubatch * 4 * (COMPUTE_FFN_VECTORS * feed_forward + COMPUTE_EMBEDDING_VECTORS * meta["embedding_length"])
               + ubatch * mask_tokens * COMPUTE_MASK_BYTES_PER_KV_TOKEN_PER_UBATCH_TOKEN)
    output_buffer = meta["vocab_size"] * OUTPUT_BYTES_PER_VOCAB_TOKEN_PER_SLOT * parallel
    process = (PROCESS_BASE_BYTES + PROCESS_SERVING_BYTES + meta["vocab_size"] * PROCESS_BYTES_PER_VOCAB_TOKEN
               + parallel * (meta["vocab_size"] * SLOT_BYTES_PER_VOCAB_TOKEN + ctx_seq * SLOT_BYTES_PER_CTX_TOKEN))

    cpu_share = (layers - on_gpu) / float(layers)
    ram_weights = int(round(embedding + per_layer * (layers - on_gpu) + (0 if output_on_gpu else output)))
    vram_weights = int(round(per_layer * on_gpu + output_gpu_copy))
    ram = {
        "weights": ram_weights,
        "kv_cache": int(round(kv_total * cpu_share)),
        # Layers on the CPU run there with the whole micro-batch; with all of them on the GPU the
        # host keeps only the input and output tensors (two embedding-length vectors per token).
        "compute": (compute if on_gpu < layers else ubatch * meta["embedding_length"] * 4 * 2) + output_buffer,
        "process": process,
        "prompt_cache": cache_ram_mib * MIB,
        "cuda_runtime": CUDA_HOST_BYTES if device == "cuda" else 0,
    }
    vram = {"weights": 0, "kv_cache": 0, "compute": 0, "cuda_context": 0}
    if device == "cuda":
        vram = {
            "weights": vram_weights,
            "kv_cache": kv_total - ram["kv_cache"],
            "compute": compute if on_gpu else 0,
            "cuda_context": CUDA_CONTEXT_VRAM_BYTES,
        }
    ram["total"] = sum(ram.values())
    vram["total"] = sum(vram.values())
    return {"device": device, "layers": layers, "gpu_layers": offloaded, "ctx_per_slot": ctx_seq, "parallel": parallel,
            "kv_tokens": kv_tokens, "kv_bytes_per_token": per_token, "cache_type_k": cache_type_k, "cache_type_v": cache_type_v,
            "ram": ram, "vram": vram, "ram_bytes": ram["total"], "vram_bytes": vram["total"],
            "ram_weights_bytes": ram_weights, "vram_weights_bytes": vram_weights if device == "cuda" else 0}


# -- the verdict ----------------------------------------------------------------------------

ESTIMATE_KEYS = ("ctx_per_slot", "parallel", "cache_type_k", "cache_type_v", "cache_ram_mib", "device", "gpu_layers", "ubatch",
                 "kv_unified")


def _estimate_of(inputs, **override):
    values = dict((key, inputs[key]) for key in ESTIMATE_KEYS if key in inputs)
    values.update(override)
    return estimate(inputs["meta"], **values)


def _ram_available(host):
    """(bytes, what limits it) from the host's free memory, the container's and the unit's limits."""
    limits = []
    if host.get("mem_available_bytes") is not None:
        limits.append((host["mem_available_bytes"] + (host.get("released_bytes") or 0), "available memory"))
    if host.get("cgroup_limit_bytes") is not None:
        limits.append((host["cgroup_limit_bytes"], "the container's memory limit"))
    if host.get("memory_max_bytes") is not None:
        limits.append((host["memory_max_bytes"], "memory_max"))
    if not limits:
        raise InputError("host: mem_available_bytes is required (or memory_max)")
    return min(limits, key=lambda item: item[0])


def _vram_available(host, device):
    if device != "cuda":
        return None, []
    indices = host.get("gpu_indices") or []
    if not indices:
        raise InputError("gpus: device cuda needs at least one GPU index")
    by_index = dict((gpu.get("index"), gpu) for gpu in host.get("gpus") or [])
    free = []
    for index in indices:
        gpu = by_index.get(index)
        if gpu is None:
            raise InputError("gpus: the host has no GPU %r (it has %s)" % (index, ", ".join(str(i) for i in sorted(by_index)) or "none"))
        if gpu.get("memory_free_bytes") is None:
            raise InputError("gpus: the free memory of GPU %r is not known (nvidia-smi did not answer)" % index)
        free.append(gpu["memory_free_bytes"])
    return sum(free) + (host.get("released_vram_bytes") or 0), indices


def _check(inputs, host, ram_available, vram_available, gpu_count, **override):
    """(fits, estimate) for one setting; the CUDA context counts once per GPU used."""
    est = _estimate_of(inputs, **override)
    if est["device"] == "cuda" and gpu_count > 1:
        extra = CUDA_CONTEXT_VRAM_BYTES * (gpu_count - 1)
        est["vram"]["cuda_context"] += extra
        est["vram"]["total"] += extra
        est["vram_bytes"] += extra
    fits = est["ram_bytes"] <= ram_available and (est["device"] != "cuda" or est["vram_bytes"] <= vram_available)
    return fits, est


def _best_offload(inputs, host, ram_available, vram_available, gpu_count):
    """The most layers on the GPU (1..L) that fit, and their estimate; (None, None) when none does."""
    for layers in range(inputs["meta"]["layers"], 0, -1):
        fits, est = _check(inputs, host, ram_available, vram_available, gpu_count, gpu_layers=layers)
        if fits:
            return layers, est
    return None, None


def _settle(inputs, host, ram_available, vram_available, gpu_count):
    """(verdict, estimate) of the declared settings; with CUDA and gpu_layers unset, all layers
    or else the most that fit."""
    fits, est = _check(inputs, host, ram_available, vram_available, gpu_count)
    layers = inputs["meta"]["layers"]
    if est["device"] != "cuda":
        return ("fits" if fits else "does_not_fit"), est
    if fits:
        return ("fits" if est["gpu_layers"] > layers else "fits_partial_offload"), est
    if inputs.get("gpu_layers") is None:
        best, best_est = _best_offload(inputs, host, ram_available, vram_available, gpu_count)
        if best is not None:
            return "fits_partial_offload", best_est
    return "does_not_fit", est


def _max_ctx(inputs, host, ram_available, vram_available, gpu_count, cap):
    """The largest context per slot (a multiple of 256, at most cap) that the settings fit, or None."""
    def ok(steps):
        verdict, _est = _settle(dict(inputs, ctx_per_slot=steps * CTX_PAD), host, ram_available, vram_available, gpu_count)
        return verdict != "does_not_fit"
    low, high = 0, max(cap // CTX_PAD, 1)
    if not ok(1):
        return None
    low = 1
    while low < high:
        middle = (low + high + 1) // 2
        if ok(middle):
            low = middle
        else:
            high = middle - 1
    return low * CTX_PAD


def _max_weights(meta, est, ram_available, vram_available, disk_free):
    """The largest weights of another quantization of this model that would fit with the same
    settings: every weight scaled by one factor, the rest unchanged (an estimate: a real file's
    per-tensor types differ)."""
    weights = meta["weights_bytes"]
    factors = []
    if est["ram_weights_bytes"]:
        factors.append((ram_available - (est["ram_bytes"] - est["ram_weights_bytes"])) / float(est["ram_weights_bytes"]))
    if est["vram_weights_bytes"]:
        factors.append((vram_available - (est["vram_bytes"] - est["vram_weights_bytes"])) / float(est["vram_weights_bytes"]))
    largest = min(factors) * weights if factors else None
    if disk_free is not None:
        by_disk = disk_free / (1 + DISK_MARGIN) - ((meta.get("file_bytes") or weights) - weights)
        largest = by_disk if largest is None else min(largest, by_disk)
    if largest is None or largest <= 0:
        return None
    return int(largest)


def _slots(count):
    return "%d slot%s" % (count, "" if count == 1 else "s")


def _cache_words(est):
    if est["cache_type_k"] == est["cache_type_v"]:
        return est["cache_type_k"]
    return "%s K / %s V" % (est["cache_type_k"], est["cache_type_v"])


def _ram_words(est):
    ram = est["ram"]
    buffers = ram["compute"] + ram["process"] + ram["prompt_cache"] + ram["cuda_runtime"]
    detail = ["compute %d" % mib(ram["compute"]), "process %d" % mib(ram["process"])]
    if ram["prompt_cache"]:
        detail.append("prompt cache %d" % mib(ram["prompt_cache"]))
    if ram["cuda_runtime"]:
        detail.append("CUDA runtime %d" % mib(ram["cuda_runtime"]))
    kv = "KV cache %d MiB for %s x %d tokens at %s" % (mib(ram["kv_cache"]), _slots(est["parallel"]), est["ctx_per_slot"], _cache_words(est))
    if est["device"] == "cuda" and est["gpu_layers"]:
        kv = "KV cache %d MiB (the CPU layers' share)" % mib(ram["kv_cache"])
    return "%d MiB of RAM (weights %d MiB, %s, buffers %d MiB: %s)" % (
        mib(ram["total"]), mib(ram["weights"]), kv, mib(buffers), ", ".join(detail))


def _vram_words(est):
    vram = est["vram"]
    share = "for" if est["gpu_layers"] >= est["layers"] else "(the GPU layers' share) of"
    return "%d MiB of GPU memory with %d of %d layers on the GPU (weights %d MiB, KV cache %d MiB %s %s x %d tokens at %s, " \
        "compute %d MiB, CUDA context %d MiB)" % (
            mib(vram["total"]), est["gpu_layers"], est["layers"] + 1, mib(vram["weights"]), mib(vram["kv_cache"]), share,
            _slots(est["parallel"]), est["ctx_per_slot"], _cache_words(est), mib(vram["compute"]), mib(vram["cuda_context"]))


def judge(inputs, host):
    """Whether one llama-server instance fits the host.

    inputs: meta (gguf metadata), ctx_per_slot, parallel, cache_type_k, cache_type_v,
    cache_ram_mib, device (cpu|cuda), gpu_layers (None: all, or the most that fit), ubatch,
    kv_unified, and the labels model and version for the message.
    host: name, mem_available_bytes, memory_max_bytes (the unit's MemoryMax=, None: no limit),
    cgroup_limit_bytes (the container's, None: none), released_bytes (RAM an instance being
    replaced gives back, default 0), gpus [{index, memory_free_bytes, memory_total_bytes}],
    gpu_indices (the GPUs assigned to the instance), released_vram_bytes, disk_free_bytes (of the
    model cache directory; None: not checked), cached (the file is already there: no disk needed).

    Returns dict: fits, verdict (fits, fits_partial_offload or does_not_fit), message, gpu_layers,
    needs {ram_bytes, vram_bytes, disk_bytes, ram {...}, vram {...}}, available {ram_bytes,
    ram_limited_by, vram_bytes, disk_bytes}, reasons, suggestions {max_ctx_per_slot,
    max_weights_bytes, gpu_layers}, warnings, estimate.
    """
    meta = inputs["meta"]
    _check_meta(meta)
    device = inputs.get("device") or "cpu"
    ram_available, ram_limited_by = _ram_available(host)
    vram_available, indices = _vram_available(host, device)
    gpu_count = len(indices)
    verdict, est = _settle(inputs, host, ram_available, vram_available, gpu_count)

    file_bytes = meta.get("file_bytes") or meta["weights_bytes"]
    disk_free = host.get("disk_free_bytes")
    cached = bool(host.get("cached"))
    disk_needed = 0 if cached else int(math.ceil(file_bytes * (1 + DISK_MARGIN)))
    reasons, warnings = [], []
    host_name = host.get("name") or "this host"
    label = "model %s version %s" % (inputs.get("model") or meta.get("name") or "(unnamed)", inputs.get("version") or "(unknown)")

    if est["ram_bytes"] > ram_available:
        reasons.append("needs %s; %s is %d MiB" % (_ram_words(est), ram_limited_by, mib(ram_available)))
    if device == "cuda" and est["vram_bytes"] > vram_available:
        reasons.append("needs %s; GPU %s has %d MiB free" % (_vram_words(est), ", ".join(str(i) for i in indices), mib(vram_available)))
    disk_short = not cached and disk_free is not None and disk_free < disk_needed
    if disk_short:
        reasons.append("the model file (%d MiB) is not in the cache and needs %d MiB of disk with a %d%% margin; the cache "
                       "directory has %d MiB free" % (mib(file_bytes), mib(disk_needed), int(DISK_MARGIN * 100), mib(disk_free)))
        verdict = "does_not_fit"
    if not cached and disk_free is None:
        warnings.append("the free disk space of the model cache is not known: not checked")
    context_length = meta.get("context_length")
    if context_length and inputs["ctx_per_slot"] > context_length:
        warnings.append("ctx_per_slot %d is more than the model's training context (%d tokens)" % (inputs["ctx_per_slot"], context_length))

    cap = max(context_length or 0, slot_context(inputs["ctx_per_slot"]))
    max_ctx = _max_ctx(dict(inputs, device=device), host, ram_available, vram_available, gpu_count, cap)
    max_weights = _max_weights(meta, est, ram_available, vram_available, None if cached else disk_free)
    suggestions = {"max_ctx_per_slot": max_ctx, "max_weights_bytes": max_weights, "gpu_layers": None}
    if device == "cuda":
        best, _best_est = _best_offload(inputs, host, ram_available, vram_available, gpu_count)
        full_fits = _check(inputs, host, ram_available, vram_available, gpu_count, gpu_layers=None)[0]
        suggestions["gpu_layers"] = meta["layers"] + 1 if full_fits else best

    fits = verdict != "does_not_fit"
    needs = {"ram_bytes": est["ram_bytes"], "vram_bytes": est["vram_bytes"], "disk_bytes": disk_needed,
             "ram": dict(est["ram"]), "vram": dict(est["vram"])}
    available = {"ram_bytes": ram_available, "ram_limited_by": ram_limited_by, "vram_bytes": vram_available,
                 "disk_bytes": disk_free}
    if fits:
        words = "needs %s of %d MiB (%s)" % (_ram_words(est), mib(ram_available), ram_limited_by)
        if device == "cuda":
            words += " and %s of %d MiB free" % (_vram_words(est), mib(vram_available))
        if verdict == "fits_partial_offload":
            message = "%s: %s fits with %d of %d layers on the GPU: %s" % (host_name, label, est["gpu_layers"], meta["layers"] + 1, words)
        else:
            message = "%s: %s fits: %s" % (host_name, label, words)
    else:
        message = "%s: %s does not fit: %s" % (host_name, label, "; ".join(reasons))
        advice = []
        if max_ctx is not None and max_ctx < slot_context(inputs["ctx_per_slot"]):
            advice.append("at most %d tokens of context per slot would fit with %s at %s" % (
                max_ctx, _slots(est["parallel"]), _cache_words(est)))
        elif max_ctx is None and not disk_short:
            advice.append("not even %d tokens of context per slot fit with %s at %s" % (CTX_PAD, _slots(est["parallel"]), _cache_words(est)))
        if device == "cuda" and inputs.get("gpu_layers") is not None and suggestions["gpu_layers"]:
            advice.append("gpu_layers %d would fit" % suggestions["gpu_layers"])
        if max_weights is not None and max_weights < meta["weights_bytes"]:
            advice.append("a quantization of this model with at most %d MiB of weights (this file has %d MiB) might fit with these "
                          "settings; an estimate: check the other file's size before choosing it" % (
                              mib(max_weights), mib(meta["weights_bytes"])))
        elif max_weights is None:
            advice.append("no quantization of this model fits with these settings")
        if advice:
            text = "; ".join(advice)
            message += ". " + text[0].upper() + text[1:]
    return {"fits": fits, "verdict": verdict, "message": message, "gpu_layers": est["gpu_layers"] if device == "cuda" else 0,
            "needs": needs, "available": available, "reasons": reasons, "suggestions": suggestions, "warnings": warnings,
            "estimate": est}


# -- host numbers from host_facts -----------------------------------------------------------

def _under(path, parent):
    parent = parent.rstrip("/") or "/"
    return path == parent or path.startswith(parent + "/") or parent == "/"


def host_from_facts(facts, cache_dir=None):
    """The host numbers judge() takes, from the result of the host_facts module (registered as
    is): memory.available_mib, memory.cgroup_limit_mib and memory.total_mib; gpus (index = the
    position in the list, nvidia-smi's order by PCI bus id) with memory_free_mib and
    memory_total_mib; the free space of the disks entry that holds cache_dir (the longest
    path that contains it; the only entry when cache_dir is not given). Missing facts stay None."""
    facts = facts or {}
    memory = facts.get("memory") or {}
    host = {}
    for key, fact in (("mem_available_bytes", "available_mib"), ("cgroup_limit_bytes", "cgroup_limit_mib"),
                      ("mem_total_bytes", "total_mib")):
        if memory.get(fact) is not None:
            host[key] = int(memory[fact]) * MIB
    gpus = []
    for index, gpu in enumerate(facts.get("gpus") or []):
        gpus.append({"index": index,
                     "memory_free_bytes": int(gpu["memory_free_mib"]) * MIB if gpu.get("memory_free_mib") is not None else None,
                     "memory_total_bytes": int(gpu["memory_total_mib"]) * MIB if gpu.get("memory_total_mib") is not None else None})
    if facts.get("gpus") is not None:
        host["gpus"] = gpus
    disks = facts.get("disks") or {}
    chosen = None
    if cache_dir:
        holding = [path for path in disks if _under(cache_dir, path)]
        chosen = max(holding, key=len) if holding else None
    elif len(disks) == 1:
        chosen = list(disks)[0]
    if chosen is not None and (disks[chosen] or {}).get("free_mib") is not None:
        host["disk_free_bytes"] = int(disks[chosen]["free_mib"]) * MIB
    return host
