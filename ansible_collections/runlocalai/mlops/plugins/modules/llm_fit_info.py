#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: llm_fit_info
short_description: Whether one llama-server instance of a GGUF model fits a host's memory, GPUs and disk
version_added: "0.2.0"
description:
  - Estimates the memory of one llama.cpp C(llama-server) instance of a GGUF model with the declared context per slot, slots,
    KV cache types and prompt cache, on CPU or on CUDA GPUs, and compares it with what the host has free. Answers
    RV(verdict) V(fits), V(fits_partial_offload) (fits with RV(gpu_layers) layers on the GPU) or V(does_not_fit), with a
    message in plain words that names the host, the model, its version and the numbers, and RV(suggestions) (the largest
    context per slot that fits, the largest weights a quantization may have).
  - The estimate, in bytes. Weights (the file's tensors; memory-mapped on CPU, they count in RSS and against C(MemoryMax=)).
    KV cache, per token of context layers x KV heads x (key size x bytes of O(cache_type_k) + value size x bytes of
    O(cache_type_v)), for O(ctx_per_slot) x O(parallel) tokens (each slot padded to 256 tokens as llama.cpp does). Compute
    buffers for one micro-batch (O(ubatch_size) tokens) with Flash Attention, the process itself (binary, tokenizer, HTTP
    server, per slot state), the prompt cache O(cache_ram_mib) in full; on CUDA, a CUDA context per GPU and the CUDA runtime in
    RAM. The constants and where they come from are in C(plugins/module_utils/llm/fit.py); the CPU figures were measured against
    a real C(llama-server) (C(benchmarks/llm/fit_vs_rss.py), within 15% of its resident memory).
  - On CUDA, with O(gpu_layers) unset, all layers go to the GPU when they fit, else the most that fit (V(fits_partial_offload));
    with O(gpu_layers) set, that number is judged.
  - The RAM available is the smallest of the host's available memory (plus O(host_resources.released_bytes)), a container's memory
    limit and O(memory_max). The VRAM available is the free memory of the GPUs in O(gpus). The disk needs the file's size plus
    5% unless O(cached).
  - Reads only, never changes anything; O(fail_on_unfit=true) makes the task fail with the message when it does not fit.
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - gguf (only with O(gguf_path))
attributes:
  check_mode:
    description: Reads only; runs as usual.
    support: full
  diff_mode:
    description: Nothing changes, there is no diff.
    support: none
options:
  metadata:
    description:
      - The model's metadata, as the C(llm.*) tags of a registered version (M(runlocalai.mlops.mlflow_gguf_model) writes them;
        M(runlocalai.mlops.mlflow_model_info) returns them as the C(tags) of RV(runlocalai.mlops.mlflow_model_info#module:version), other
        tags are ignored), or as the RV(runlocalai.mlops.mlflow_gguf_model#module:metadata) dict.
      - Needs at least the layers, KV heads, head sizes, weights bytes, embedding length and vocabulary size.
      - One of O(metadata) and O(gguf_path) is required.
    type: dict
  gguf_path:
    description: A local GGUF file to read the metadata from, instead of O(metadata) (needs the C(gguf) library).
    type: path
  model:
    description: The model's name in the message (default the C(llm.name) of the metadata).
    type: str
  version:
    description: The model's version in the message.
    type: str
  host:
    description: The host's name in the message, e.g. C({{ inventory_hostname }}).
    type: str
  ctx_per_slot:
    description: Tokens of context of each slot (llama-server's C(--ctx-size) is this times O(parallel)).
    type: int
    required: true
  parallel:
    description: Slots, the requests served at once (llama-server's C(--parallel)).
    type: int
    default: 1
  cache_type_k:
    description: Type of the K cache (C(--cache-type-k)).
    type: str
    choices: [f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl]
    default: f16
  cache_type_v:
    description: Type of the V cache (C(--cache-type-v)).
    type: str
    choices: [f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl]
    default: f16
  cache_ram_mib:
    description:
      - The prompt cache's limit in MiB (C(--cache-ram); 0 = none). Counted in full. llama-server's -1 (no limit) cannot be
        checked and is refused.
    type: int
    default: 0
  ubatch_size:
    description: The micro-batch in tokens (C(--ubatch-size)).
    type: int
    default: 512
  kv_unified:
    description: Whether the slots share one KV buffer (C(--kv-unified)); it makes the attention mask span all slots' tokens.
    type: bool
    default: false
  device:
    description: Where the model runs.
    type: str
    choices: [cpu, cuda]
    default: cpu
  gpus:
    description: Indices of the GPUs the instance uses (nvidia-smi's order), for O(device=cuda).
    type: list
    elements: int
    default: []
  gpu_layers:
    description:
      - Layers on the GPU (C(--n-gpu-layers)); the repeating layers count first, the output layer is the last. Unset or
        negative (llama.cpp's V(-1)), all of them, or the most that fit.
    type: int
  memory_max:
    description:
      - The instance's systemd C(MemoryMax=), e.g. V(256M), V(2G), V(1.5G), V(50%) (of the host's memory) or V(infinity) (no
        limit, as when unset).
    type: str
  host_facts:
    description:
      - The result of M(runlocalai.mlops.host_facts) on the host, registered as is; its C(memory.available_mib),
        C(memory.cgroup_limit_mib), C(memory.total_mib), C(gpus) (index = position in the list; C(memory_free_mib),
        C(memory_total_mib)) and C(disks) (the entry holding O(cache_dir)) are used.
      - Values in O(host_resources) take precedence.
    type: dict
  host_resources:
    description: Host numbers given directly (or to override O(host_facts)).
    type: dict
    default: {}
    suboptions:
      mem_available_bytes:
        description: Memory available for a new process (C(MemAvailable) of C(/proc/meminfo)).
        type: int
      mem_total_bytes:
        description: Total memory (for a O(memory_max) given in percent).
        type: int
      cgroup_limit_bytes:
        description: A container's memory limit, when the host is one.
        type: int
      released_bytes:
        description: Memory that stopping the instance being replaced gives back (its RSS), added to the available memory.
        type: int
        default: 0
      released_vram_bytes:
        description: GPU memory that stopping the instance being replaced gives back, added to the GPUs' free memory.
        type: int
        default: 0
      gpus:
        description: The host's GPUs.
        type: list
        elements: dict
        suboptions:
          index:
            description: The GPU's index.
            type: int
            required: true
          memory_free_bytes:
            description: Its free memory.
            type: int
          memory_total_bytes:
            description: Its total memory.
            type: int
      disk_free_bytes:
        description: Free space of the model cache directory's file system.
        type: int
  cache_dir:
    description: The model cache directory, to pick its file system among the RV(runlocalai.mlops.host_facts#module:disks).
    type: path
  cached:
    description: The model file is already in the cache (no disk space is needed).
    type: bool
    default: false
  fail_on_unfit:
    description: Fail the task with RV(message) when the verdict is V(does_not_fit).
    type: bool
    default: false
notes:
  - The CPU constants were measured with llama.cpp of llama-cpp-python 0.3.36; the CUDA ones (context 512 MiB per GPU, runtime
    384 MiB of RAM) are common figures, not measured in this project yet.
  - Per-layer differences (sliding-window layers, per-layer head counts, experts kept on the CPU) are not modelled; per-layer
    counts count as their largest value, on the side of "needs more".
seealso:
  - module: runlocalai.mlops.mlflow_gguf_model
  - module: runlocalai.mlops.host_facts
"""

EXAMPLES = r"""
- name: Read the host
  runlocalai.mlops.host_facts:
    disk_paths: [/var/lib/runlocalai-llm]
  register: facts

- name: Read the version to deploy
  runlocalai.mlops.mlflow_model_info:
    name: smollm2-135m-instruct
    alias: production
  register: llm
  delegate_to: localhost

- name: Refuse before anything restarts when it does not fit
  runlocalai.mlops.llm_fit_info:
    metadata: "{{ llm.version.tags }}"
    model: smollm2-135m-instruct
    version: "{{ llm.version.version }}"
    host: "{{ inventory_hostname }}"
    ctx_per_slot: 8192
    parallel: 4
    memory_max: 2G
    host_facts: "{{ facts }}"
    cache_dir: /var/lib/runlocalai-llm
    fail_on_unfit: true
  register: fit

- name: A local file on CUDA GPU 0
  runlocalai.mlops.llm_fit_info:
    gguf_path: /srv/models/llama-3.1-8b-instruct.Q4_K_M.gguf
    ctx_per_slot: 16384
    parallel: 2
    device: cuda
    gpus: [0]
    host_resources:
      mem_available_bytes: 17179869184
      gpus:
        - index: 0
          memory_free_bytes: 8589934592
  register: fit
"""

RETURN = r"""
fits:
  description: Whether it fits (RV(verdict) is not V(does_not_fit)).
  returned: always
  type: bool
  sample: false
verdict:
  description: V(fits), V(fits_partial_offload) (fits with RV(gpu_layers) layers on the GPU) or V(does_not_fit).
  returned: always
  type: str
  sample: does_not_fit
message:
  description: The verdict in plain words, with the host, the model, its version and the numbers in MiB.
  returned: always
  type: str
  sample: >-
    web1: model smollm2 version 3 does not fit: needs 879 MiB of RAM (weights 92 MiB, KV cache 720 MiB for 4 slots x 8192
    tokens at f16, buffers 67 MiB: compute 22, process 45); memory_max is 256 MiB. At most 1024 tokens of context per slot
    would fit with 4 slots at f16; no quantization of this model fits with these settings
gpu_layers:
  description: Layers on the GPU in the judged setting (the output layer counted; 0 on CPU).
  returned: always
  type: int
  sample: 31
needs:
  description: What the instance needs, in bytes; C(ram) and C(vram) hold the parts.
  returned: always
  type: dict
  sample: {ram_bytes: 921904384, vram_bytes: 0, disk_bytes: 103280554,
           ram: {weights: 96576768, kv_cache: 754974720, compute: 23330816, process: 47022080, prompt_cache: 0, cuda_runtime: 0,
                 total: 921904384}, vram: {weights: 0, kv_cache: 0, compute: 0, cuda_context: 0, total: 0}}
available:
  description: What the host has, in bytes, and what limits the RAM (C(available memory), C(memory_max) or C(the container's
    memory limit)).
  returned: always
  type: dict
  sample: {ram_bytes: 268435456, ram_limited_by: memory_max, vram_bytes: null, disk_bytes: 53687091200}
reasons:
  description: Each way it does not fit, in words (empty when it fits).
  returned: always
  type: list
  elements: str
suggestions:
  description:
    - C(max_ctx_per_slot) the largest context per slot (a multiple of 256, at most the model's training context) that fits with
      the same slots and cache types, or null; C(max_weights_bytes) the largest weights another quantization of the model may
      have to fit with the same settings (an estimate), or null; C(gpu_layers) the most layers that fit on the GPU (CUDA).
  returned: always
  type: dict
  sample: {max_ctx_per_slot: 1024, max_weights_bytes: null, gpu_layers: null}
warnings:
  description: What was not checked, or looks wrong (a context beyond the model's training context).
  returned: always
  type: list
  elements: str
metadata:
  description: The model's metadata the estimate used.
  returned: always
  type: dict
estimate:
  description: The whole estimate (per-token KV bytes, KV tokens, the parts on RAM and VRAM).
  returned: always
  type: dict
"""

from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule
from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError
from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import fit, gguf

CACHE_TYPES = sorted(fit.CACHE_TYPE_BYTES, key=lambda name: (-fit.CACHE_TYPE_BYTES[name], name))


def main():
    module = MlopsModule(
        argument_spec=dict(
            metadata=dict(type="dict"),
            gguf_path=dict(type="path"),
            model=dict(type="str"),
            version=dict(type="str"),
            host=dict(type="str"),
            ctx_per_slot=dict(type="int", required=True),
            parallel=dict(type="int", default=1),
            cache_type_k=dict(type="str", choices=CACHE_TYPES, default="f16"),
            cache_type_v=dict(type="str", choices=CACHE_TYPES, default="f16"),
            cache_ram_mib=dict(type="int", default=0),
            ubatch_size=dict(type="int", default=fit.DEFAULT_UBATCH),
            kv_unified=dict(type="bool", default=False),
            device=dict(type="str", choices=list(fit.DEVICES), default="cpu"),
            gpus=dict(type="list", elements="int", default=[]),
            gpu_layers=dict(type="int"),
            memory_max=dict(type="str"),
            host_facts=dict(type="dict"),
            host_resources=dict(type="dict", default={}, options=dict(
                mem_available_bytes=dict(type="int"),
                mem_total_bytes=dict(type="int"),
                cgroup_limit_bytes=dict(type="int"),
                released_bytes=dict(type="int", default=0),
                released_vram_bytes=dict(type="int", default=0),
                gpus=dict(type="list", elements="dict", options=dict(
                    index=dict(type="int", required=True),
                    memory_free_bytes=dict(type="int"),
                    memory_total_bytes=dict(type="int"),
                )),
                disk_free_bytes=dict(type="int"),
            )),
            cache_dir=dict(type="path"),
            cached=dict(type="bool", default=False),
            fail_on_unfit=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("metadata", "gguf_path")],
        required_one_of=[("metadata", "gguf_path")],
    )
    p = module.params
    with module.reporting_errors():
        if p["gguf_path"]:
            try:
                meta = gguf.read_metadata(p["gguf_path"])
            except InputError as exc:
                module.fail_json(msg="gguf_path: %s" % exc)
        else:
            try:
                meta = gguf.normalize_metadata(p["metadata"])
            except InputError as exc:
                module.fail_json(msg="metadata: %s" % exc)
        host = fit.host_from_facts(p["host_facts"], p["cache_dir"])
        host.update(dict((key, value) for key, value in p["host_resources"].items() if value is not None))
        host["name"] = p["host"]
        host["gpu_indices"] = p["gpus"]
        host["cached"] = p["cached"]
        host["memory_max_bytes"] = fit.parse_size(p["memory_max"], "memory_max", host.get("mem_total_bytes"))
        inputs = {"meta": meta, "ctx_per_slot": p["ctx_per_slot"], "parallel": p["parallel"], "cache_type_k": p["cache_type_k"],
                  "cache_type_v": p["cache_type_v"], "cache_ram_mib": p["cache_ram_mib"], "device": p["device"],
                  "gpu_layers": p["gpu_layers"] if p["gpu_layers"] is None or p["gpu_layers"] >= 0 else None,
                  "ubatch": p["ubatch_size"], "kv_unified": p["kv_unified"], "model": p["model"] or meta.get("name"),
                  "version": p["version"]}
        answer = fit.judge(inputs, host)
    result = dict(changed=False, metadata=meta, **answer)
    if p["fail_on_unfit"] and not answer["fits"]:
        module.fail_json(msg=answer["message"], **dict(result))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
