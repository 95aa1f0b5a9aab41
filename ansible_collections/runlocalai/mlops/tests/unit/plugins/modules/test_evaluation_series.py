# -*- coding: utf-8 -*-
"""evaluation_series: the gate's verdict as the text node-exporter reads; nothing written, never changed."""

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.runlocalai.mlops.plugins.modules import evaluation_series


def test_renders_the_verdict(run_module):
    result = run_module(evaluation_series, {"model": "iris", "version": "3", "run_id": "abc", "passed": True, "timestamp": 5.0,
                                            "metrics": {"accuracy": 0.9, "champion": "none"},
                                            "groups": {"a": {"accuracy": 0.8}}})
    assert result["failed"] is False and result["changed"] is False
    assert result["series"] == 4 and result["skipped"] == ["champion"]
    samples = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(result["content"]) for s in f.samples]
    assert ("mlops_gate_passed", {"model": "iris", "version": "3", "run_id": "abc"}, 1.0) in samples
    assert ("mlops_gate_timestamp_seconds", {"model": "iris", "version": "3", "run_id": "abc"}, 5.0) in samples
    assert ("mlops_evaluation_metric", {"model": "iris", "version": "3", "run_id": "abc", "metric": "accuracy", "group": "a",
                                        "stage": "gate"}, 0.8) in samples


def test_default_timestamp_is_now_and_bad_groups_fail(run_module):
    result = run_module(evaluation_series, {"model": "iris", "version": "3", "passed": False})
    stamp = [s.value for f in text_string_to_metric_families(result["content"]) for s in f.samples
             if s.name == "mlops_gate_timestamp_seconds"]
    assert len(stamp) == 1 and stamp[0] > 1.7e9
    failed = run_module(evaluation_series, {"model": "iris", "version": "3", "passed": False, "groups": {"a": 1}})
    assert failed["failed"] is True and "the metrics of group 'a' must be a dict" in failed["msg"]
