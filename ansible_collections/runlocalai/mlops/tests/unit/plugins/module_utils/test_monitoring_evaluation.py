# -*- coding: utf-8 -*-
"""The gate's verdict and metrics as Prometheus series (module_utils/monitoring/evaluation.py), parsed back
with prometheus_client's own parser."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring import evaluation

METRICS = {"accuracy": 0.95, "f1": 0.96, "max_disparity": 0.036, "champion": "no champion", "ok": True, "missing": None}
GROUPS = {"low": {"count": 143, "accuracy": 0.972}, "high": {"count": 141, "accuracy": 0.936, "note": "x"}}


def parsed(text):
    """(name, sorted labels) -> value of every sample of the text."""
    return dict(((s.name, tuple(sorted(s.labels.items()))), s.value)
                for family in text_string_to_metric_families(text) for s in family.samples)


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def test_gate_series_round_trip():
    rows, skipped = evaluation.gate_series("breast-cancer", 4, "6f2e1c", True, 1700000000.5, METRICS, GROUPS)
    samples = parsed(evaluation.render(rows))
    base = dict(model="breast-cancer", version="4", run_id="6f2e1c")
    assert samples[key("mlops_gate_passed", **base)] == 1.0
    assert samples[key("mlops_gate_timestamp_seconds", **base)] == 1700000000.5
    ev = dict(base, stage="gate")
    assert samples[key("mlops_evaluation_metric", metric="accuracy", group="all", **ev)] == 0.95
    assert samples[key("mlops_evaluation_metric", metric="ok", group="all", **ev)] == 1.0
    assert samples[key("mlops_evaluation_metric", metric="accuracy", group="high", **ev)] == 0.936
    assert samples[key("mlops_evaluation_metric", metric="count", group="low", **ev)] == 143.0
    # Text and None are left out, and said so.
    assert sorted(skipped) == ["champion", "missing", "note[high]"]
    assert len(samples) == len(rows) == 2 + 4 + 4
    # Deterministic for the same verdict (the file changes only when the verdict does).
    again, dummy = evaluation.gate_series("breast-cancer", 4, "6f2e1c", True, 1700000000.5, METRICS, GROUPS)
    assert evaluation.render(rows) == evaluation.render(again)


def test_a_refusal_is_zero_and_run_id_may_be_empty():
    rows, skipped = evaluation.gate_series("m", "1", None, False, 10, {}, None)
    samples = parsed(evaluation.render(rows))
    assert samples == {key("mlops_gate_passed", model="m", version="1", run_id=""): 0.0,
                       key("mlops_gate_timestamp_seconds", model="m", version="1", run_id=""): 10.0}
    assert skipped == []


def test_label_values_are_escaped():
    rows, dummy = evaluation.gate_series('we"ird', "1", "r", True, 1, {}, {'a"b\\c': {"accuracy": 1}})
    samples = parsed(evaluation.render(rows))
    assert samples[key("mlops_evaluation_metric", model='we"ird', version="1", run_id="r", metric="accuracy", group='a"b\\c',
                       stage="gate")] == 1.0


@pytest.mark.parametrize("model,version,metrics,groups,message", [
    ("", "1", {}, {}, "model and version are required"),
    ("m", "", {}, {}, "model and version are required"),
    ("m", "1", [], {}, "metrics must be a dict"),
    ("m", "1", {}, {"g": 0.5}, "the metrics of group 'g' must be a dict"),
])
def test_bad_input(model, version, metrics, groups, message):
    with pytest.raises(evaluation.SeriesError, match=message):
        evaluation.gate_series(model, version, "r", True, 1, metrics, groups)


def test_pipeline_contract():
    names = [name for name, _kind, _labels, _help in evaluation.PIPELINE_SERIES]
    assert names == ["mlops_pipeline_runs_total", "mlops_pipeline_last_run_timestamp_seconds",
                     "mlops_pipeline_last_success_timestamp_seconds", "mlops_pipeline_last_run_failed",
                     "mlops_pipeline_last_run_duration_seconds"]
    assert evaluation.PIPELINE_OUTCOMES == ("success", "skipped_unchanged", "failed")
