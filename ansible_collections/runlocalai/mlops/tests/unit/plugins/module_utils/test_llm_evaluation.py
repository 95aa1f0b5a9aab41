# -*- coding: utf-8 -*-
"""Tests of the LLM gate's logic (llm/evaluation.py): the evaluation set, the matchers, the metrics and
the reading of llama-server's chat stream. The module's tests (modules/test_llm_validation.py) run it
end to end with the real llama-server and the real model."""

import json
import os

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError
from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import evaluation as ev
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.evaluation import (
    NON_DETERMINISTIC, EvalError, check_thresholds, fingerprint, validate_threshold_names)

REPO_EVAL_SET = os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 7 + ["playbooks", "files", "eval", "smollm2.yml"]))


def items(count, **extra):
    return [dict({"id": "q%d" % i, "prompt": "Question %d?" % i, "expect": {"contains": "yes"}}, **extra) for i in range(count)]


def test_the_repository_eval_set_is_valid_and_large_enough():
    evalset = ev.load_eval_set(REPO_EVAL_SET)
    assert len(evalset["items"]) >= ev.MIN_ITEMS and evalset["name"] == "smollm2-basics"
    assert set(list(i["expect"])[0] for i in evalset["items"]) == set(ev.MATCHERS)
    assert len(evalset["sha256"]) == 64


def test_items_are_normalized():
    parsed = ev.parse_eval_set({"max_tokens": 16, "items": items(1) + [
        {"id": "chat", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
         "expect": {"choice": {"choices": ["yes", "no"], "answer": "no"}}, "max_tokens": 4}]}, min_items=2)
    first, second = parsed["items"]
    assert first == {"id": "q0", "messages": [{"role": "user", "content": "Question 0?"}], "expect": {"contains": ["yes"]}, "max_tokens": 16}
    assert second["max_tokens"] == 4 and second["messages"][0]["role"] == "system"
    assert ev.request_body(second) == {"messages": second["messages"], "max_tokens": 4, "stream": True, "temperature": 0.0,
                                       "top_k": 1, "seed": 0, "cache_prompt": False}


@pytest.mark.parametrize("data, message", [
    (None, "needs a list `items`"),
    ({"items": items(3)}, "has 3 item(s); the gate needs at least 20"),
    ({"items": items(19) + [{"id": "q0", "prompt": "x", "expect": {"exact": "y"}}]}, "item 20 (q0): id is used twice"),
    ({"items": [{"id": "bad id", "prompt": "x", "expect": {"exact": "y"}}]}, "item 1: id must be"),
    ({"items": [{"id": "a", "expect": {"exact": "y"}}]}, "item 1 (a): give either prompt or messages"),
    ({"items": [{"id": "a", "prompt": "x", "messages": [], "expect": {"exact": "y"}}]}, "give either prompt or messages"),
    ({"items": [{"id": "a", "messages": [{"role": "bot", "content": "x"}], "expect": {"exact": "y"}}]}, "each message needs a role"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"startswith": "y"}}]}, "expect: 'startswith' is not one of exact"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"exact": "y", "contains": "z"}}]}, "expect must be one of"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"regex": "("}}]}, "expect.regex '(' does not compile"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"contains": []}}]}, "expect.contains must be"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"choice": {"choices": ["a", "b"], "answer": "c"}}}]}, "answer must be one of"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"choice": {"choices": ["a"], "answer": "a"}}}]}, "at least two strings"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"exact": "y"}, "max_tokens": 0}]}, "(a): max_tokens must be"),
    ({"items": [{"id": "a", "prompt": "x", "expect": {"exact": "y"}, "temperature": 1}]}, "(a): unknown key(s) temperature"),
    ({"max_tokens": "many", "items": []}, "eval_set: max_tokens must be"),
])
def test_a_bad_eval_set_is_refused_naming_item_and_field(data, message):
    with pytest.raises(InputError) as exc:
        ev.parse_eval_set(data, "set.yml", min_items=20 if message.startswith("has 3") or "used twice" in message else 1)
    assert message in str(exc.value) and str(exc.value).startswith("eval_set: ")


def test_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="eval_set: .*does not exist"):
        ev.load_eval_set(str(tmp_path / "none.yml"))
    broken = tmp_path / "broken.yml"
    broken.write_text("items: [ {id: a, prompt: What?, expect: }")
    with pytest.raises(InputError, match="eval_set: cannot read"):
        ev.load_eval_set(str(broken))


@pytest.mark.parametrize("expect, answer, result", [
    ({"exact": "Hola"}, "  hola.\n", True),
    ({"exact": "Hola"}, "Hola, amigo", False),
    ({"contains": ["Beijing", "Peking"]}, "The capital of China is peking.", True),
    ({"contains": ["Paris"]}, "Lyon", False),
    ({"regex": r"\b(4|four)\b"}, "The answer is 4.", True),
    ({"regex": r"\b(4|four)\b"}, "The answer is 14.", False),
    ({"choice": {"choices": ["yes", "no"], "answer": "no"}}, "No, a cat is not a fish, yes really.", True),
    ({"choice": {"choices": ["yes", "no"], "answer": "yes"}}, "No, the sun is not a star.", False),
    ({"choice": {"choices": ["yes", "no"], "answer": "yes"}}, "Nobody knows; eyes up.", False),
    ({"choice": {"choices": ["A", "B"], "answer": "B"}}, "B) the second", True),
    ({"contains": ["x"]}, "", False),
])
def test_matchers(expect, answer, result):
    assert ev.matches(expect, answer) is result


def test_metrics_from_results():
    results = [{"passed": i < 3, "ttft_ms": float(t), "tokens_per_second": s}
               for i, (t, s) in enumerate([(100, 80.0), (120, 90.0), (300, None), (110, 100.0)])]
    assert ev.summarize(results) == {"score": 0.75, "items": 4, "correct": 3, "ttft_p50_ms": 110.0, "ttft_p95_ms": 300.0,
                                     "tokens_per_second": 90.0}
    assert ev.percentile([5], 95) == 5 and ev.percentile(list(range(1, 21)), 95) == 19


def test_the_llm_metrics_have_a_direction_and_timings_do_not_change_the_fingerprint():
    validate_threshold_names({"score": ">=0.6", "ttft_p95_ms": 500, "tokens_per_second": 10}, ev.METRICS)
    with pytest.raises(EvalError, match="thresholds: unknown metric.*accuracy"):
        validate_threshold_names({"accuracy": 0.9}, ev.METRICS)
    failures = check_thresholds({"score": 0.5, "ttft_p95_ms": 600.0, "tokens_per_second": 5.0},
                                {"score": 0.6, "ttft_p95_ms": 500, "tokens_per_second": 10})
    assert [f["metric"] for f in failures] == ["score", "tokens_per_second", "ttft_p95_ms"]
    assert [f["threshold"] for f in failures] == [">=0.6", ">=10", "<=500"]
    assert set(["ttft_p50_ms", "ttft_p95_ms", "tokens_per_second"]) <= NON_DETERMINISTIC
    report = {"metrics": {"score": 0.75, "ttft_p95_ms": 100.0, "tokens_per_second": 90.0}, "failures": [], "passed": True}
    again = dict(report, metrics={"score": 0.75, "ttft_p95_ms": 130.0, "tokens_per_second": 70.0})
    assert fingerprint(report) == fingerprint(again)
    assert fingerprint(report) != fingerprint(dict(report, metrics={"score": 0.7, "ttft_p95_ms": 100.0, "tokens_per_second": 90.0}))


def sse(*events):
    return [b"data: " + json.dumps(e).encode() + b"\n" for e in events] + [b"\n", b"data: [DONE]\n"]


def test_reading_a_chat_stream():
    times = iter([10.25, 10.5])
    lines = sse({"choices": [{"delta": {"role": "assistant"}}]}, {"choices": [{"delta": {"content": "Ber"}}]},
                {"choices": [{"delta": {"content": "lin."}}]},
                {"choices": [{"delta": {}, "finish_reason": "stop"}], "timings": {"predicted_n": 3, "predicted_per_second": 81.5}})
    result = ev.read_stream(lines, 10.0, clock=lambda: next(times))
    assert result == {"answer": "Berlin.", "ttft_ms": 250.0, "finish_reason": "stop",
                      "timings": {"predicted_n": 3, "predicted_per_second": 81.5}}


def test_a_stream_with_an_error_or_garbage_stops_the_evaluation():
    with pytest.raises(ev.EvaluationError, match="answered an error"):
        ev.read_stream(sse({"error": {"code": 500, "message": "decode failed"}}), 0.0)
    with pytest.raises(ev.EvaluationError, match="not JSON"):
        ev.read_stream([b"data: {oops\n"], 0.0)


def test_the_binary_and_the_context_are_checked_before_anything_starts(tmp_path):
    evalset = ev.parse_eval_set({"max_tokens": 64, "items": items(1)}, min_items=1)
    with pytest.raises(InputError, match="llama_server: .* is not an executable file"):
        ev.run_eval_set(str(tmp_path / "llama-server"), "model.gguf", evalset)
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    with pytest.raises(InputError, match="ctx_size: 64 leaves no room"):
        ev.run_eval_set(str(binary), "model.gguf", evalset, ctx_size=64)
    with pytest.raises(ev.EvaluationError, match="did not start"):
        ev.run_eval_set(str(binary), "model.gguf", evalset, load_timeout=5)


@pytest.mark.parametrize("cpus,threads,expected", [({0, 1}, 2, 2), ({1}, 2, 1), ({0, 1, 2, 3}, 2, 2), ({3}, 1, 1)])
def test_the_scratch_instance_runs_no_more_threads_than_its_cpus(monkeypatch, cpus, threads, expected):
    """Pinned to one CPU (taskset, a cpuset, Mitogen's local tasks on a 2-core controller), one thread."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus)
    config = ev.scratch_config("/usr/bin/llama-server", "/tmp/m.gguf", 2048, threads, "candidate")
    assert config["threads"] == expected
