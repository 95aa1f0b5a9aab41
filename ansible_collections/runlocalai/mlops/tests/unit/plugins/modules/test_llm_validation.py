# -*- coding: utf-8 -*-
"""The LLM gate end to end: the real SmolLM2 GGUF and a copy of it with random weights, registered in a
real MLflow server, judged by llm_validation through the real llama-server (what `make setup` builds and
links under .cache/llm/; skipped without it). The random-weights copy is refused."""

import os
import shutil

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryClient, tag_dict
from ansible_collections.runlocalai.mlops.plugins.modules import llm_validation, mlflow_gguf_model
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.gguf_files import scrambled_copy, write_gguf
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import mlflow_server  # noqa: F401 pylint: disable=unused-import

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 7))
SETUP_LLM = os.path.join(REPO, ".cache", "llm")
BINARY = os.environ.get("RUNLOCALAI_LLAMA_SERVER") or os.path.join(SETUP_LLM, "llama-server-cpu", "llama-server")
MODEL = os.environ.get("RUNLOCALAI_TEST_GGUF", os.path.join(SETUP_LLM, "SmolLM2-135M-Instruct.Q4_1.gguf"))
EVAL_SET = os.path.join(REPO, "playbooks", "files", "eval", "smollm2.yml")
# The lab's thresholds (inventories/lab/group_vars/all.yml) on score; the times are this machine's.
THRESHOLDS = {"score": ">=0.6", "ttft_p95_ms": "<=5000", "tokens_per_second": ">=1"}


@pytest.fixture
def client(mlflow_server):  # noqa: F811
    return RegistryClient(**mlflow_server.auth())


def args(server, tmp_path, **extra):
    value = dict(server.auth(), name="smol-gate", eval_set=EVAL_SET, llama_server=BINARY, cache_dir=str(tmp_path / "cache"),
                 thresholds=THRESHOLDS)
    value.update(extra)
    return value


def register(run_module, server, path, **extra):
    result = run_module(mlflow_gguf_model, dict(server.auth(), name="smol-gate", path=str(path), **extra))
    assert result["failed"] is False, result.get("msg")
    return result["version"]


def test_bad_input_is_refused_before_any_download(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    tiny = tmp_path / "tiny.gguf"
    write_gguf(tiny, seed=7)
    version = run_module(mlflow_gguf_model, dict(mlflow_server.auth(), name="tiny-gate", path=str(tiny)))["version"]
    short = tmp_path / "short.yml"
    short.write_text("items:\n  - {id: a, prompt: Hi, expect: {contains: hello}}\n")
    cases = [(dict(eval_set=str(short)), "eval_set: %s has 1 item(s); the gate needs at least 20" % short),
             (dict(thresholds={"accuracy": 0.9}), "thresholds: unknown metric(s) accuracy"),
             (dict(thresholds={"score": "about 0.6"}), "score"),
             (dict(version="99"), "version: registered model 'tiny-gate' has no version 99"),
             (dict(threads=0), "threads: must be 1 or more"),
             (dict(llama_server=str(tmp_path / "none")), "llama_server: %s is not an executable file" % (tmp_path / "none"))]
    for extra, message in cases:
        result = run_module(llm_validation, args(mlflow_server, tmp_path, **dict(dict(name="tiny-gate", version=version), **extra)))
        assert result["failed"] is True and message in result["msg"], (extra, result["msg"])
    assert not (tmp_path / "cache").exists()
    assert "validation.passed" not in tag_dict(client.get_version("tiny-gate", version))
    # A version that is not a GGUF registration.
    client.set_version_tag("tiny-gate", version, "llm.format", "onnx")
    result = run_module(llm_validation, args(mlflow_server, tmp_path, name="tiny-gate", version=version))
    assert result["failed"] is True and "is not a registered GGUF file" in result["msg"]


def test_the_real_model_passes_and_random_weights_are_refused(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    if not os.access(BINARY, os.X_OK) or not os.path.isfile(MODEL):
        pytest.skip("no llama-server or SmolLM2 under %s (make setup builds and unpacks them)" % SETUP_LLM)
    real = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    shutil.copyfile(MODEL, str(real))
    v1 = register(run_module, mlflow_server, real, alias="production")
    scrambled = scrambled_copy(real, tmp_path / "SmolLM2-random.Q4_1.gguf", seed=3)
    v2 = register(run_module, mlflow_server, scrambled)

    # Check mode: judged, nothing recorded.
    checked = run_module(llm_validation, args(mlflow_server, tmp_path, version=v1, record=True), check_mode=True, diff=True)
    assert checked["failed"] is False, checked.get("msg")
    assert checked["passed"] is True and checked["changed"] is True and checked["recorded"] is True
    assert checked["diff"]["before"]["validation.passed"] is None and checked["diff"]["after"]["validation.passed"] == "true"
    assert "validation.passed" not in tag_dict(client.get_version("smol-gate", v1))

    first = run_module(llm_validation, args(mlflow_server, tmp_path, version=v1, record=True, champion_alias="production"))
    assert first["failed"] is False and first["passed"] is True and first["changed"] is True
    metrics = first["metrics"]
    assert metrics["items"] >= 20 and 0.6 <= metrics["score"] <= 1.0 and metrics["correct"] == round(metrics["score"] * metrics["items"])
    assert metrics["ttft_p50_ms"] > 0 and metrics["tokens_per_second"] > 1
    answers = dict((i["id"], i) for i in first["report"]["items"])
    assert answers["capital-germany"]["passed"] is True and "Berlin" in answers["capital-germany"]["answer"]
    assert first["report"]["champion"]["status"].startswith("the candidate is the champion")
    tags = tag_dict(client.get_version("smol-gate", v1))
    assert tags["validation.passed"] == "true" and '"runtime":"llamacpp"' in tags["validation.report"]
    # Greedy decoding: the same answers again, so the same report; only the timings differ.
    again = run_module(llm_validation, args(mlflow_server, tmp_path, version=v1, record=True, champion_alias="production"))
    assert again["changed"] is False and again["metrics"]["score"] == metrics["score"]
    assert [f for f in os.listdir(str(tmp_path / "cache")) if f.endswith(".gguf")] == [tags["llm.sha256"] + ".gguf"]

    # The same architecture with random weights: refused on score and against the champion.
    refused = run_module(llm_validation, args(mlflow_server, tmp_path, version=v2, record=True, champion_alias="production"))
    assert refused["failed"] is False and refused["passed"] is False
    assert refused["metrics"]["score"] < 0.2
    failed = dict((f["metric"], f) for f in refused["failures"])
    assert set(failed) == set(["score", "champion_score"]) and failed["score"]["threshold"] == ">=0.6"
    assert refused["report"]["champion"] == {"alias": "production", "version": v1, "metrics": {"score": metrics["score"]},
                                             "tolerance": 0.0, "status": "compared"}
    assert tag_dict(client.get_version("smol-gate", v2))["validation.passed"] == "false"
