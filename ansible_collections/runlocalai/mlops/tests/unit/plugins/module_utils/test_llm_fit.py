# -*- coding: utf-8 -*-
"""llm/fit.py: the memory estimate of one llama-server instance and the verdict on a host."""

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError
from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import fit
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.gguf_files import SMOLLM2_135M

MIB = 1024 * 1024
GIB = 1024 * MIB


def inputs(**extra):
    value = {"meta": dict(SMOLLM2_135M), "ctx_per_slot": 2048, "parallel": 1, "cache_type_k": "f16", "cache_type_v": "f16",
             "cache_ram_mib": 0, "device": "cpu", "gpu_layers": None, "model": "smollm2", "version": "3"}
    value.update(extra)
    return value


def host(**extra):
    value = {"name": "web1", "mem_available_bytes": 16 * GIB, "memory_max_bytes": None, "disk_free_bytes": 50 * GIB, "cached": False}
    value.update(extra)
    return value


# -- the estimate ---------------------------------------------------------------------------

def test_smollm2_kv_cache_per_token_and_totals():
    meta = SMOLLM2_135M
    assert fit.kv_bytes_per_token(meta, "f16", "f16") == 30 * 3 * (64 + 64) * 2 == 23040  # 22.5 KiB
    assert fit.estimate(meta, 2048, 1)["ram"]["kv_cache"] == 45 * MIB
    assert fit.estimate(meta, 8192, 1)["ram"]["kv_cache"] == 180 * MIB
    assert fit.estimate(meta, 2048, 4)["ram"]["kv_cache"] == 180 * MIB  # the total over the slots
    assert fit.estimate(meta, 8192, 4)["ram"]["kv_cache"] == 720 * MIB
    assert fit.estimate(meta, 8192, 4)["kv_tokens"] == 32768


def test_cache_types_and_padding():
    meta = SMOLLM2_135M
    assert fit.kv_bytes_per_token(meta, "q8_0", "q8_0") == 30 * 3 * 128 * 34 // 32
    assert fit.kv_bytes_per_token(meta, "f16", "q4_0") == 30 * 3 * (64 * 2 + 64 * 18 // 32)
    assert fit.kv_bytes_per_token(meta, "f32", "f32") == 46080
    # llama.cpp pads each slot to 256 tokens.
    assert fit.estimate(meta, 1000, 3)["kv_tokens"] == 3 * 1024
    with pytest.raises(InputError) as error:
        fit.kv_bytes_per_token(meta, "q3_k", "f16")
    assert str(error.value).startswith("cache_type_k: 'q3_k' is not a KV cache type llama-server takes (")


def test_parts_add_up_and_grow_with_the_settings():
    est = fit.estimate(SMOLLM2_135M, 2048, 1)
    ram = est["ram"]
    assert ram["weights"] == SMOLLM2_135M["weights_bytes"]
    assert ram["total"] == est["ram_bytes"] == sum(v for k, v in ram.items() if k != "total")
    assert est["vram_bytes"] == 0 and est["gpu_layers"] == 0
    assert fit.estimate(SMOLLM2_135M, 2048, 1, cache_ram_mib=512)["ram_bytes"] == est["ram_bytes"] + 512 * MIB
    assert fit.estimate(SMOLLM2_135M, 4096, 1)["ram"]["compute"] > ram["compute"]
    assert fit.estimate(SMOLLM2_135M, 2048, 1, ubatch=1024)["ram"]["compute"] > ram["compute"]
    assert fit.estimate(SMOLLM2_135M, 2048, 4, kv_unified=True)["ram"]["compute"] > fit.estimate(SMOLLM2_135M, 2048, 4)["ram"]["compute"]


def test_bad_settings_name_the_parameter():
    with pytest.raises(InputError, match=r"^ctx_per_slot: 0 is not a whole number of at least 1$"):
        fit.estimate(SMOLLM2_135M, 0, 1)
    with pytest.raises(InputError, match=r"^parallel: "):
        fit.estimate(SMOLLM2_135M, 2048, 0)
    with pytest.raises(InputError, match=r"^cache_ram_mib: -1 is not a number of MiB"):
        fit.estimate(SMOLLM2_135M, 2048, 1, cache_ram_mib=-1)
    with pytest.raises(InputError, match=r"^device: 'rocm' is not one of cpu, cuda$"):
        fit.estimate(SMOLLM2_135M, 2048, 1, device="rocm")
    with pytest.raises(InputError) as error:
        fit.estimate({"layers": 30}, 2048, 1)
    assert "missing or not a number: kv_heads, head_size" in str(error.value) and "llm.kv_heads" in str(error.value)


def test_cuda_all_layers_and_a_split():
    meta = SMOLLM2_135M
    full = fit.estimate(meta, 2048, 1, device="cuda")
    assert full["gpu_layers"] == 31
    # The input embedding stays in RAM; the tied output matrix is copied to the GPU with the output layer.
    assert full["ram"]["weights"] == meta["embedding_bytes"]
    assert full["vram"]["weights"] == meta["weights_bytes"] - meta["embedding_bytes"] + meta["embedding_bytes"]
    assert full["vram"]["kv_cache"] == 45 * MIB and full["ram"]["kv_cache"] == 0
    assert full["vram"]["cuda_context"] == fit.CUDA_CONTEXT_VRAM_BYTES
    assert full["ram"]["cuda_runtime"] == fit.CUDA_HOST_BYTES
    half = fit.estimate(meta, 2048, 1, device="cuda", gpu_layers=15)
    assert half["vram"]["kv_cache"] == half["ram"]["kv_cache"] == 45 * MIB // 2
    per_layer = (meta["weights_bytes"] - meta["embedding_bytes"]) / 30.0
    assert half["vram"]["weights"] == round(per_layer * 15)
    assert half["ram"]["weights"] == round(meta["embedding_bytes"] + per_layer * 15)
    assert fit.estimate(meta, 2048, 1, device="cuda", gpu_layers=0)["vram"]["weights"] == 0


# -- sizes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("256M", 256 * MIB), ("2G", 2 * GIB), ("1.5G", 3 * GIB // 2), ("1024K", MIB), ("268435456", 256 * MIB), (268435456, 256 * MIB),
    ("infinity", None), ("", None), (None, None), ("1T", 1024 * GIB),
])
def test_parse_size(text, expected):
    assert fit.parse_size(text) == expected


def test_parse_size_refuses_what_systemd_refuses():
    for bad in ("256MB", "256m", "lots", "-1G", True):
        with pytest.raises(InputError) as error:
            fit.parse_size(bad)
        assert str(error.value).startswith("memory_max: ")
    assert fit.parse_size("50%", total_bytes=8 * GIB) == 4 * GIB
    with pytest.raises(InputError, match="share of the host's memory"):
        fit.parse_size("50%")


# -- the verdict ----------------------------------------------------------------------------

def test_fits_on_a_roomy_host():
    answer = fit.judge(inputs(), host())
    assert answer["fits"] is True and answer["verdict"] == "fits" and answer["reasons"] == []
    assert answer["message"].startswith("web1: model smollm2 version 3 fits: needs %d MiB of RAM (weights 92 MiB, KV cache 45 MiB "
                                        "for 1 slot x 2048 tokens at f16" % fit.mib(answer["needs"]["ram_bytes"]))
    assert answer["available"]["ram_limited_by"] == "available memory"
    assert answer["suggestions"]["max_ctx_per_slot"] == 8192  # capped at the training context


def test_memory_max_256m_refuses_8192_x_4_with_the_numbers():
    answer = fit.judge(inputs(ctx_per_slot=8192, parallel=4), host(memory_max_bytes=fit.parse_size("256M")))
    assert answer["fits"] is False and answer["verdict"] == "does_not_fit"
    needs = answer["needs"]
    message = answer["message"]
    assert message.startswith("web1: model smollm2 version 3 does not fit: needs %d MiB of RAM (weights 92 MiB, KV cache 720 MiB for "
                              "4 slots x 8192 tokens at f16, buffers " % fit.mib(needs["ram_bytes"]))
    assert "; memory_max is 256 MiB" in message
    assert needs["ram"]["kv_cache"] == 720 * MIB and needs["ram_bytes"] > 812 * MIB
    assert answer["available"] == {"ram_bytes": 256 * MIB, "ram_limited_by": "memory_max", "vram_bytes": None, "disk_bytes": 50 * GIB}
    best = answer["suggestions"]["max_ctx_per_slot"]
    assert best is not None and best % 256 == 0 and best < 8192
    assert ". At most %d tokens of context per slot would fit with 4 slots at f16" % best in message
    # Weights alone are 92 MiB: even a smaller quantization would not fit 4 x 8192 tokens of KV in 256 MiB.
    assert answer["suggestions"]["max_weights_bytes"] is None
    assert "no quantization of this model fits with these settings" in message


def test_largest_context_suggestion_fits_and_one_step_more_does_not():
    limits = host(memory_max_bytes=fit.parse_size("256M"))
    answer = fit.judge(inputs(ctx_per_slot=8192, parallel=4), limits)
    best = answer["suggestions"]["max_ctx_per_slot"]
    assert fit.judge(inputs(ctx_per_slot=best, parallel=4), limits)["verdict"] == "fits"
    assert fit.judge(inputs(ctx_per_slot=best + 256, parallel=4), limits)["verdict"] == "does_not_fit"


def test_nothing_fits_a_tiny_limit():
    answer = fit.judge(inputs(), host(memory_max_bytes=64 * MIB))
    assert answer["verdict"] == "does_not_fit" and answer["suggestions"]["max_ctx_per_slot"] is None
    assert ". Not even 256 tokens of context per slot fit with 1 slot at f16" in answer["message"]


def test_largest_weights_suggestion_on_cpu():
    """Memory for the KV cache but not for these weights: a smaller quantization of at most N MiB
    fits, and weights of exactly N fit while N + 1 MiB do not."""
    base = fit.judge(inputs(), host(mem_available_bytes=10 * GIB))
    room = base["needs"]["ram_bytes"] - 40 * MIB
    answer = fit.judge(inputs(), host(mem_available_bytes=room))
    assert answer["verdict"] == "does_not_fit"
    largest = answer["suggestions"]["max_weights_bytes"]
    assert largest == SMOLLM2_135M["weights_bytes"] - 40 * MIB
    assert "a quantization of this model with at most %d MiB of weights (this file has 92 MiB) might fit" % fit.mib(largest) in answer["message"]
    smaller = dict(SMOLLM2_135M, weights_bytes=largest, embedding_bytes=0)
    assert fit.judge(inputs(meta=smaller), host(mem_available_bytes=room))["fits"] is True
    assert fit.judge(inputs(meta=dict(smaller, weights_bytes=largest + MIB)), host(mem_available_bytes=room))["fits"] is False


def test_available_memory_container_limit_and_released_memory():
    tight = host(mem_available_bytes=200 * MIB, cgroup_limit_bytes=150 * MIB)
    answer = fit.judge(inputs(), tight)
    assert answer["available"]["ram_limited_by"] == "the container's memory limit" and answer["fits"] is False
    # Replacing an instance gives its memory back.
    answer = fit.judge(inputs(), host(mem_available_bytes=100 * MIB, released_bytes=200 * MIB))
    assert answer["available"]["ram_bytes"] == 300 * MIB and answer["fits"] is True
    with pytest.raises(InputError, match="^host: mem_available_bytes is required"):
        fit.judge(inputs(), {"name": "x"})


def gpu_host(free_mib, **extra):
    return host(gpus=[{"index": 0, "memory_free_bytes": free_mib * MIB, "memory_total_bytes": 24 * 1024 * MIB},
                      {"index": 1, "memory_free_bytes": 8 * 1024 * MIB, "memory_total_bytes": 8 * 1024 * MIB}],
                gpu_indices=[0], **extra)


def test_cuda_fits_whole_then_partial_offload():
    whole = fit.judge(inputs(device="cuda", ctx_per_slot=8192, parallel=4), gpu_host(4096))
    assert whole["verdict"] == "fits" and whole["gpu_layers"] == 31
    assert "fits: needs" in whole["message"] and "31 of 31 layers on the GPU" in whole["message"]

    full_vram = whole["needs"]["vram_bytes"]
    # Room for the CUDA context, the compute buffer and about half the layers.
    free_mib = fit.mib(full_vram) - 400
    partial = fit.judge(inputs(device="cuda", ctx_per_slot=8192, parallel=4), gpu_host(free_mib))
    assert partial["verdict"] == "fits_partial_offload" and partial["fits"] is True
    layers = partial["gpu_layers"]
    assert 1 <= layers < 30
    assert "fits with %d of 31 layers on the GPU" % layers in partial["message"]
    assert partial["suggestions"]["gpu_layers"] == layers
    # The layers found fit when asked for; one more does not.
    assert fit.judge(inputs(device="cuda", ctx_per_slot=8192, parallel=4, gpu_layers=layers), gpu_host(free_mib))["fits"] is True
    refused = fit.judge(inputs(device="cuda", ctx_per_slot=8192, parallel=4, gpu_layers=layers + 1), gpu_host(free_mib))
    assert refused["verdict"] == "does_not_fit"
    assert "GPU 0 has %d MiB free" % free_mib in refused["message"]
    assert "gpu_layers %d would fit" % layers in refused["message"]


def test_cuda_refuses_when_not_one_layer_fits_and_checks_the_gpus():
    answer = fit.judge(inputs(device="cuda"), gpu_host(300))
    assert answer["verdict"] == "does_not_fit" and "MiB of GPU memory" in answer["message"]
    with pytest.raises(InputError, match=r"^gpus: the host has no GPU 5 \(it has 0, 1\)$"):
        fit.judge(inputs(device="cuda"), dict(gpu_host(4096), gpu_indices=[5]))
    with pytest.raises(InputError, match="^gpus: device cuda needs at least one GPU index$"):
        fit.judge(inputs(device="cuda"), dict(gpu_host(4096), gpu_indices=[]))


def test_two_gpus_add_their_memory_and_a_cuda_context_each():
    one = fit.judge(inputs(device="cuda"), gpu_host(4096))
    two = fit.judge(inputs(device="cuda"), dict(gpu_host(4096), gpu_indices=[0, 1]))
    assert two["available"]["vram_bytes"] == (4096 + 8192) * MIB
    assert two["needs"]["vram_bytes"] == one["needs"]["vram_bytes"] + fit.CUDA_CONTEXT_VRAM_BYTES


def test_disk_refusal_unless_cached():
    file_bytes = SMOLLM2_135M["file_bytes"]
    short = host(disk_free_bytes=file_bytes)  # no room for the 5% margin
    answer = fit.judge(inputs(), short)
    assert answer["verdict"] == "does_not_fit"
    assert answer["needs"]["disk_bytes"] == -(-file_bytes * 105 // 100)
    assert ("the model file (94 MiB) is not in the cache and needs 98 MiB of disk with a 5% margin; the cache directory has 94 MiB "
            "free") in answer["message"]
    assert fit.judge(inputs(), dict(short, cached=True))["verdict"] == "fits"
    assert fit.judge(inputs(), host(disk_free_bytes=file_bytes * 2))["verdict"] == "fits"
    unknown = fit.judge(inputs(), host(disk_free_bytes=None))
    assert unknown["fits"] is True and unknown["warnings"] == ["the free disk space of the model cache is not known: not checked"]


def test_context_beyond_training_is_a_warning():
    answer = fit.judge(inputs(ctx_per_slot=16384), host())
    assert answer["fits"] is True
    assert answer["warnings"] == ["ctx_per_slot 16384 is more than the model's training context (8192 tokens)"]


def test_host_from_facts():
    facts = {
        "memory": {"total_mib": 16000, "available_mib": 12000, "cgroup_limit_mib": None},
        "gpus": [{"pci_address": "0000:3b:00.0", "memory_total_mib": 24576, "memory_free_mib": 20000},
                 {"pci_address": "0000:af:00.0", "memory_total_mib": None, "memory_free_mib": None}],
        "disks": {"/": {"free_mib": 1000, "total_mib": 9000}, "/var/lib/models": {"free_mib": 50000, "total_mib": 90000}},
    }
    got = fit.host_from_facts(facts, "/var/lib/models/cache")
    assert got == {"mem_available_bytes": 12000 * MIB, "mem_total_bytes": 16000 * MIB,
                   "gpus": [{"index": 0, "memory_free_bytes": 20000 * MIB, "memory_total_bytes": 24576 * MIB},
                            {"index": 1, "memory_free_bytes": None, "memory_total_bytes": None}],
                   "disk_free_bytes": 50000 * MIB}
    assert fit.host_from_facts(facts, "/srv/other")["disk_free_bytes"] == 1000 * MIB
    assert "disk_free_bytes" not in fit.host_from_facts(facts)  # two disks, no cache_dir: not guessed
    assert fit.host_from_facts({"disks": {"/": {"free_mib": 5}}})["disk_free_bytes"] == 5 * MIB
    with pytest.raises(InputError, match=r"^gpus: the free memory of GPU 1 is not known"):
        fit.judge(inputs(device="cuda"), dict(fit.host_from_facts(facts), name="x", gpu_indices=[1]))


def test_every_place_offers_the_cache_types_the_service_passes_to_llama_server():
    """One list of KV cache types (serving/llamacpp.py): the fit table, the llm_fit_info module's
    documented choices and the model_server role's argument specs name the same ones."""
    import pathlib

    import yaml

    from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.llamacpp import CACHE_TYPES
    from ansible_collections.runlocalai.mlops.plugins.modules import llm_fit_info

    assert list(fit.CACHE_TYPE_BYTES) == list(CACHE_TYPES)
    doc = yaml.safe_load(llm_fit_info.DOCUMENTATION)["options"]
    assert doc["cache_type_k"]["choices"] == doc["cache_type_v"]["choices"] == list(CACHE_TYPES)
    specs = yaml.safe_load((pathlib.Path(fit.__file__).parents[3] / "roles/model_server/meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    entry = options["model_server_models"]["options"]
    for spec in (entry["cache_type_k"], entry["cache_type_v"], options["model_server_cache_type_k"], options["model_server_cache_type_v"]):
        assert spec["choices"] == list(CACHE_TYPES)
