# -*- coding: utf-8 -*-
"""llm_fit_info: the fit verdict from llm.* tags, a local GGUF file and host_facts' result."""

from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import fit, gguf
from ansible_collections.runlocalai.mlops.plugins.modules import llm_fit_info
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.gguf_files import SMOLLM2_135M, write_gguf

MIB = 1024 * 1024

# What host_facts returns (the parts the fit check reads), as a role registers it.
HOST_FACTS = {
    "changed": False,
    "memory": {"total_mib": 4096, "available_mib": 3000, "cgroup_limit_mib": None},
    "gpus": [{"pci_address": "0000:3b:00.0", "name": "NVIDIA L4", "memory_total_mib": 23034, "memory_free_mib": 22000}],
    "disks": {"/var/lib/runlocalai-llm": {"free_mib": 40000, "total_mib": 100000}},
    "cuda_available": True,
}
TAGS = dict(gguf.metadata_tags(SMOLLM2_135M), **{"validation.passed": "true"})


def args(**extra):
    value = {"metadata": dict(TAGS), "model": "smollm2", "version": "3", "host": "web1", "ctx_per_slot": 2048,
             "host_facts": HOST_FACTS, "cache_dir": "/var/lib/runlocalai-llm"}
    value.update(extra)
    return value


def test_fits_from_version_tags_and_host_facts(run_module):
    result = run_module(llm_fit_info, args(parallel=2))
    assert result["failed"] is False and result["changed"] is False
    assert result["fits"] is True and result["verdict"] == "fits"
    assert result["message"].startswith("web1: model smollm2 version 3 fits: needs ")
    assert result["available"] == {"ram_bytes": 3000 * MIB, "ram_limited_by": "available memory", "vram_bytes": None,
                                   "disk_bytes": 40000 * MIB}
    assert result["needs"]["ram"]["kv_cache"] == 90 * MIB
    assert result["metadata"] == SMOLLM2_135M
    assert result["gpu_layers"] == 0


def test_memory_max_refuses_and_fail_on_unfit_fails(run_module):
    settings = dict(ctx_per_slot=8192, parallel=4, memory_max="256M")
    result = run_module(llm_fit_info, args(**settings))
    assert result["failed"] is False and result["fits"] is False and result["verdict"] == "does_not_fit"
    assert "KV cache 720 MiB for 4 slots x 8192 tokens at f16" in result["message"] and "memory_max is 256 MiB" in result["message"]
    best = result["suggestions"]["max_ctx_per_slot"]
    assert best is not None and best < 8192
    failed = run_module(llm_fit_info, args(fail_on_unfit=True, **settings))
    assert failed["failed"] is True and failed["msg"] == result["message"] and failed["verdict"] == "does_not_fit"
    # The suggestion itself passes.
    suggested = dict(settings)
    suggested["ctx_per_slot"] = best
    assert run_module(llm_fit_info, args(fail_on_unfit=True, **suggested))["failed"] is False


def test_cuda_from_host_facts_and_direct_host_numbers(run_module):
    result = run_module(llm_fit_info, args(device="cuda", gpus=[0], ctx_per_slot=8192, parallel=4))
    assert result["verdict"] == "fits" and result["gpu_layers"] == 31
    assert result["available"]["vram_bytes"] == 22000 * MIB
    # Direct numbers override host_facts: a nearly full GPU gets part of the layers.
    tight = fit.mib(result["needs"]["vram_bytes"]) - 300
    partial = run_module(llm_fit_info, args(device="cuda", gpus=[0], ctx_per_slot=8192, parallel=4,
                                            host_resources={"gpus": [{"index": 0, "memory_free_bytes": tight * MIB}]}))
    assert partial["verdict"] == "fits_partial_offload" and partial["fits"] is True and 0 < partial["gpu_layers"] < 31
    missing = run_module(llm_fit_info, args(device="cuda", gpus=[2]))
    assert missing["failed"] is True and missing["msg"] == "gpus: the host has no GPU 2 (it has 0)"


def test_gguf_path(run_module, tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path, context=1024)
    result = run_module(llm_fit_info, {"gguf_path": str(path), "ctx_per_slot": 1024, "host_resources": {"mem_available_bytes": 1024 * MIB}})
    assert result["failed"] is False and result["fits"] is True
    assert result["metadata"]["file_name"] == "tiny.gguf"
    assert result["message"].startswith("this host: model tiny-llama version (unknown) fits: ")
    assert result["warnings"] == ["the free disk space of the model cache is not known: not checked"]

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    bad = run_module(llm_fit_info, {"gguf_path": str(text), "ctx_per_slot": 1024, "host_resources": {"mem_available_bytes": MIB}})
    assert bad["failed"] is True
    assert bad["msg"] == "gguf_path: %s is not a GGUF file (it starts with b'hell', a GGUF file with b'GGUF')" % text


def test_bad_input_names_the_parameter(run_module):
    result = run_module(llm_fit_info, args(memory_max="256MB"))
    assert result["failed"] is True and result["msg"].startswith("memory_max: '256MB' is not a size like 256M")
    result = run_module(llm_fit_info, args(metadata={"llm.layers": "many"}))
    assert result["failed"] is True and result["msg"] == "metadata: llm.layers: 'many' is not a whole number"
    result = run_module(llm_fit_info, args(metadata={"validation.passed": "true"}))
    assert result["failed"] is True and result["msg"].startswith("model metadata: missing or not a number: layers, kv_heads")
    result = run_module(llm_fit_info, args(cache_ram_mib=-1))
    assert result["failed"] is True and result["msg"].startswith("cache_ram_mib: -1 is not a number of MiB")
    result = run_module(llm_fit_info, {"ctx_per_slot": 2048})
    assert result["failed"] is True and "one of the following is required: metadata, gguf_path" in result["msg"]
    result = run_module(llm_fit_info, {"ctx_per_slot": 2048, "metadata": dict(TAGS), "host_facts": {}})
    assert result["failed"] is True and result["msg"] == "host: mem_available_bytes is required (or memory_max)"


def test_memory_max_percent_of_host_memory_and_disk(run_module):
    result = run_module(llm_fit_info, args(memory_max="5%"))
    assert result["available"]["ram_bytes"] == 4096 * MIB * 5 // 100 and result["available"]["ram_limited_by"] == "memory_max"
    full = dict(HOST_FACTS, disks={"/var/lib/runlocalai-llm": {"free_mib": 50, "total_mib": 100}})
    refused = run_module(llm_fit_info, args(host_facts=full))
    assert refused["verdict"] == "does_not_fit" and "is not in the cache" in refused["message"]
    assert run_module(llm_fit_info, args(host_facts=full, cached=True))["verdict"] == "fits"


def test_the_model_server_roles_call(run_module):
    """As roles/model_server/tasks/fit.yml calls it: the version's tags, gpu_layers -1 (all), memory_max 2G."""
    result = run_module(llm_fit_info, {
        "metadata": dict(TAGS, **{"llm.artifact_path": "model/SmolLM2-135M-Instruct.Q4_1.gguf"}), "ctx_per_slot": 2048,
        "parallel": 1, "cache_type_k": "f16", "cache_type_v": "f16", "cache_ram_mib": 0, "device": "cuda", "gpus": [0],
        "gpu_layers": -1, "memory_max": "2G", "host_facts": HOST_FACTS, "cached": False, "host": "web1", "model": "smollm2",
        "version": "3"})
    assert result["failed"] is False and result["verdict"] == "fits" and result["gpu_layers"] == 31
    assert result["available"]["ram_limited_by"] == "memory_max"
    assert result["message"].startswith("web1: model smollm2 version 3 fits: ")
