# -*- coding: utf-8 -*-
"""model_drift_check module: accuracy decay and sequential detectors, reports, idempotence, check mode, bad input."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.modules import model_drift_check


def textfile_samples(text):
    """(metric, sorted labels) -> value, read with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    return dict(((sample.name, tuple(sorted(sample.labels.items()))), sample.value)
                for family in text_string_to_metric_families(text) for sample in family.samples)


def write_window(directory, rows, accuracy_seed=0, conf_drop_at=None):
    """Serving window: 0/1 predictions with request ids, a confidence column (dropping by 0.1 at conf_drop_at)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(accuracy_seed)
    preds = rng.integers(0, 2, rows)
    conf = rng.normal(0.9, 0.03, rows)
    if conf_drop_at is not None:
        conf[conf_drop_at:] -= 0.1
    with open(os.path.join(directory, "window-2026112710.jsonl"), "w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"inputs": {"x": float(i)}, "outputs": {"prediction": int(preds[i]), "confidence": float(conf[i])},
                                     "request_id": "r%d" % i, "ts": "2026-11-27T10:00:00Z"}) + "\n")
    return directory, preds


def write_feedback(path, preds, accuracy, seed=1):
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for i, pred in enumerate(preds):
            label = int(pred) if rng.random() < accuracy else 1 - int(pred)
            handle.write(json.dumps({"request_id": "r%d" % i, "label": label}) + "\n")
    return path


@pytest.fixture
def files(tmp_path):
    window, preds = write_window(str(tmp_path / "window"), 1200, conf_drop_at=800)
    out = tmp_path / "out"
    out.mkdir()
    return {
        "window": window,
        "good": write_feedback(str(tmp_path / "good.jsonl"), preds, 0.92),
        "bad": write_feedback(str(tmp_path / "bad.jsonl"), preds, 0.80),
        "report": str(out / "model.json"),
        "prom": str(out / "model.prom"),
        "out": out,
    }


def args_for(files, feedback, **extra):
    args = {
        "accuracy": {"current": files["window"], "feedback": files[feedback], "reference_accuracy": 0.92, "reference_rows": 5000},
        "sequential": [{"name": "confidence", "series": files["window"], "field": "outputs.confidence", "direction": "down",
                        "delta": 0.01, "threshold": 1.0}],
        "report_path": files["report"],
        "prometheus_textfile": files["prom"],
        "prometheus_labels": {"model": "churn"},
    }
    args.update(extra)
    return args


def test_decayed_accuracy_and_confidence_drop_then_idempotent(run_module, files):
    first = run_module(model_drift_check, args_for(files, "bad"))
    assert not first["failed"], first.get("msg")
    assert first["changed"] and sorted(first["written"]) == sorted([files["report"], files["prom"]])
    assert first["drifted"] and first["drifted_checks"] == ["accuracy", "confidence"] and first["n_checks"] == 2
    acc = first["checks"]["accuracy"]
    assert acc["rule"] == "accuracy_decay" and acc["threshold"] == 0.05 and acc["n_current"] == 1200
    assert 0.77 < acc["current_accuracy"] < 0.83 and acc["p_value"] < 1e-6
    conf = first["checks"]["confidence"]
    assert conf["rule"] == "page_hinkley" and 800 <= conf["first_alarm"] < 830 and conf["threshold"] == 1.0
    assert len(first["failures"]) == 2 and first["failures"][0].startswith("accuracy: accuracy 0.9200 -> 0.")
    report = json.load(open(files["report"]))
    assert report["format"] == "runlocalai.mlops/model-drift-report" and report["result"]["drifted"] is True
    prom = textfile_samples(open(files["prom"]).read())
    assert prom[("mlops_model_drift_detected", (("model", "churn"),))] == 1
    assert prom[("mlops_model_check_drifted", (("check", "confidence"), ("model", "churn")))] == 1
    assert prom[("mlops_model_accuracy", (("model", "churn"), ("window", "reference")))] == 0.92
    assert prom[("mlops_model_accuracy_labelled", (("model", "churn"),))] == 1200
    second = run_module(model_drift_check, args_for(files, "bad"))
    assert not second["failed"] and not second["changed"] and second["written"] == []


def test_stable_accuracy_passes_check_mode_writes_nothing_diff(run_module, files):
    args = args_for(files, "good", sequential=[{"name": "confidence", "series": files["window"], "field": "outputs.confidence",
                                                "method": "cusum", "target": 0.9, "sigma": 0.03, "h": 10.0,
                                                "direction": "up"}])
    result = run_module(model_drift_check, args, check_mode=True, diff=True)
    assert not result["failed"], result.get("msg")
    assert not result["drifted"] and result["failures"] == [] and result["checks"]["accuracy"]["drifted"] is False
    assert abs(result["checks"]["accuracy"]["drop"]) < 0.03 and result["checks"]["confidence"]["alarms"] == []
    assert result["changed"] and sorted(result["written"]) == sorted([files["report"], files["prom"]])
    assert os.listdir(str(files["out"])) == []
    assert {d["after_header"] for d in result["diff"]} == {files["report"], files["prom"]}


def test_fail_on_drift_writes_reports_then_fails(run_module, files):
    result = run_module(model_drift_check, args_for(files, "bad", fail_on_drift=True, sequential=None))
    assert result["failed"] and result["msg"].startswith("model drift detected: model drift in 1 of 1 checks: accuracy: accuracy 0.9200")
    assert os.path.exists(files["report"]) and result["drifted_checks"] == ["accuracy"]


def test_too_few_labels_warns(run_module, files):
    result = run_module(model_drift_check, {"accuracy": {"predictions": [1, 0], "labels": [1, 1], "reference_accuracy": 0.9}})
    assert not result["failed"] and not result["drifted"] and result["checks"]["accuracy"]["rule"] == "insufficient_labels"
    assert result["warnings_list"] and not result["changed"]


@pytest.mark.parametrize("change, message", [
    ({"accuracy": {"current": "/nonexistent", "reference_accuracy": 0.9}}, "accuracy.current: no such file or directory: /nonexistent"),
    ({"accuracy": {"current": "WINDOW", "feedback": "/nonexistent.jsonl", "reference_accuracy": 0.9}},
     "accuracy.feedback: no such file or directory: /nonexistent.jsonl"),
    ({"accuracy": {"current": "WINDOW", "reference_accuracy": 1.2}}, "accuracy.reference_accuracy: must be a number >= 0 and <= 1"),
    ({"sequential": [{"series": "WINDOW", "field": "outputs.nope"}]}, r"sequential\[0\].series: column 'outputs.nope' not found"),
    ({"sequential": [{"series": [0.1, "x"]}]}, r"sequential\[0\].series\[1\]: not a number"),
    ({"prometheus_labels": {"check": "x"}}, "prometheus_labels: label name 'check' is reserved"),
    ({"report_path": "/nonexistent/dir/r.json"}, "report_path: directory /nonexistent/dir does not exist"),
])
def test_bad_input_fails_and_writes_nothing(run_module, files, change, message):
    args = args_for(files, "bad")
    for key, value in change.items():
        text = json.dumps(value).replace("WINDOW", files["window"])
        args[key] = json.loads(text)
    if "sequential" in change:
        args.pop("accuracy")
    if "accuracy" in change:
        args.pop("sequential")
    result = run_module(model_drift_check, args)
    assert result["failed"] and re.search(message, result["msg"]), result["msg"]
    assert os.listdir(str(files["out"])) == []


def test_requires_a_check(run_module):
    result = run_module(model_drift_check, {"report_path": "/tmp/x.json"})
    assert result["failed"] and "accuracy, sequential" in result["msg"]
