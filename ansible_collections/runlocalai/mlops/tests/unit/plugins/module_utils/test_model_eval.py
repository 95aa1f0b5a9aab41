# -*- coding: utf-8 -*-
"""Pure metric logic of plugins/module_utils/model_eval.py (no server)."""

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow import evaluation as me


def test_parse_threshold():
    assert me.parse_threshold("accuracy", ">=0.92") == (">=", 0.92)
    assert me.parse_threshold("latency_p95_ms", " <= 50 ") == ("<=", 50.0)
    assert me.parse_threshold("accuracy", 0.9) == (">=", 0.9)
    assert me.parse_threshold("rmse", 3) == ("<=", 3.0)
    with pytest.raises(me.EvalError, match=r"thresholds.accuracy: 'about 0.9' is not a threshold like '>=0.92' or '<=50'"):
        me.parse_threshold("accuracy", "about 0.9")


def test_check_thresholds():
    metrics = {"accuracy": 0.9, "latency_p95_ms": 12.0, "f1": 0.95}
    failures = me.check_thresholds(metrics, {"accuracy": ">=0.92", "latency_p95_ms": "<=50", "f1": ">0.95", "roc_auc": ">=0.5"})
    assert failures == [
        {"metric": "accuracy", "value": 0.9, "threshold": ">=0.92"},
        {"metric": "f1", "value": 0.95, "threshold": ">0.95"},
        {"metric": "roc_auc", "value": None, "threshold": ">=0.5", "reason": "metric not computed"},
    ]
    with pytest.raises(me.EvalError, match="thresholds: unknown metric\\(s\\) acuracy; known: accuracy, f1"):
        me.validate_threshold_names({"acuracy": ">=1"}, {"accuracy": 1, "f1": 1})


def test_classification_metrics_binary():
    y_true = [0, 0, 1, 1, 1, 0]
    y_pred = [0, 1, 1, 1, 0, 0]
    scores = [0.1, 0.6, 0.8, 0.7, 0.4, 0.2]
    m = me.classification_metrics(y_true, y_pred, scores)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == {"labels": [0, 1], "matrix": [[2, 1], [1, 2]]}
    # positives 0.8, 0.7, 0.4 vs negatives 0.1, 0.6, 0.2: 8 of 9 pairs ranked right
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert m["positive_label"] == 1


def test_roc_auc_ties_and_multiclass():
    assert me.roc_auc([True, False, True, False], np.array([0.5, 0.5, 0.9, 0.1])) == pytest.approx(0.875)
    m = me.classification_metrics(["a", "b", "c", "a"], ["a", "b", "b", "a"])
    assert m["accuracy"] == 0.75
    assert m["recall"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["precision"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert "roc_auc" not in m


def test_regression_metrics():
    m = me.regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mae"] == pytest.approx(1.0)
    assert m["mape"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert m["r2"] == pytest.approx(1 - 5 / (16 / 9 + 1 / 9 + 25 / 9))  # mean 7/3


def test_fairness():
    y_true = [1, 1, 0, 0, 1, 1, 0, 0]
    y_pred = [1, 1, 0, 0, 1, 0, 1, 1]
    groups = ["a", "a", "a", "a", "b", "b", "b", "b"]
    f = me.fairness(y_true, y_pred, groups, "classification")
    assert f["metric"] == "accuracy"
    assert f["groups"]["a"] == {"count": 4, "accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    # b: predicted 1 three times, one of them right; one of its two positives found
    assert f["groups"]["b"] == pytest.approx({"count": 4, "accuracy": 0.25, "precision": 1 / 3, "recall": 0.5, "f1": 0.4})
    assert f["gaps"] == pytest.approx({"accuracy": 0.75, "precision": 2 / 3, "recall": 0.5, "f1": 0.6})
    assert f["max_disparity"] == pytest.approx(0.75)
    assert (f["lowest_group"], f["highest_group"]) == ("b", "a")
    assert me.fairness(y_true, y_pred, groups, "classification", metric="recall")["max_disparity"] == pytest.approx(0.5)
    assert f["selection_rate"] == {"a": 0.5, "b": 0.75}
    assert f["demographic_parity_difference"] == pytest.approx(0.25)
    assert f["true_positive_rate"] == {"a": 1.0, "b": 0.5}
    assert f["equal_opportunity_difference"] == pytest.approx(0.5)
    with pytest.raises(me.EvalError, match="fairness_metric: 'rmse' is not a classification metric"):
        me.fairness(y_true, y_pred, groups, "classification", metric="rmse")


def test_fairness_binary_metrics_of_one_positive_label_in_every_group():
    # Group c has no positive (1) at all: its precision/recall/F1 are not those of label 0; it gets accuracy only.
    y_true = [1, 0, 1, 0, 0, 0]
    y_pred = [1, 0, 0, 0, 0, 0]
    groups = ["a", "a", "a", "c", "c", "c"]
    f = me.fairness(y_true, y_pred, groups, "classification")
    assert f["groups"]["c"] == {"count": 3, "accuracy": 1.0}
    assert f["groups"]["a"] == pytest.approx({"count": 3, "accuracy": 2 / 3, "precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert f["gaps"] == pytest.approx({"accuracy": 1 / 3, "precision": 0.0, "recall": 0.0, "f1": 0.0})
    assert f["selection_rate"] == pytest.approx({"a": 1 / 3, "c": 0.0})
    assert f["true_positive_rate"] == {"a": 0.5}
    with pytest.raises(me.EvalError, match="positive_label: 2 is not among the labels"):
        me.fairness(y_true, y_pred, groups, "classification", positive_label=2)
    # d predicts a positive it does not have: precision 0 (defined), recall and F1 left out.
    f = me.fairness([1, 1, 0, 0], [1, 1, 1, 0], ["a", "a", "d", "d"], "classification")
    assert f["groups"]["d"] == {"count": 2, "accuracy": 0.5, "precision": 0.0}
    assert f["gaps"] == {"accuracy": 0.5, "precision": 1.0, "recall": 0.0, "f1": 0.0}
    assert f["true_positive_rate"] == {"a": 1.0} and f["selection_rate"] == {"a": 1.0, "d": 0.5}


def test_fairness_multiclass_macro_over_the_classes_of_each_group():
    y_true = [0, 1, 2, 0, 0, 1]
    y_pred = [0, 1, 1, 0, 1, 1]
    f = me.fairness(y_true, y_pred, ["a", "a", "a", "b", "b", "b"], "classification", metric="f1")
    # a: classes 0, 1, 2 -> precision (1 + 1/2 + 0)/3, recall (1 + 1 + 0)/3; b: classes 0, 1 -> precision (1 + 1/2)/2, recall (1/2 + 1)/2
    assert f["groups"]["a"] == pytest.approx({"count": 3, "accuracy": 2 / 3, "precision": 0.5, "recall": 2 / 3, "f1": (1 + 2 / 3) / 3})
    assert f["groups"]["b"] == pytest.approx({"count": 3, "accuracy": 2 / 3, "precision": 0.75, "recall": 0.75, "f1": 2 / 3})
    assert f["max_disparity"] == pytest.approx(2 / 3 - (1 + 2 / 3) / 3) and "selection_rate" not in f


def test_fairness_regression():
    f = me.fairness([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 5.0, 6.0], ["x", "x", "y", "y"], "regression")
    assert f["metric"] == "mae" and f["max_disparity"] == pytest.approx(2.0)
    assert f["groups"]["x"]["mae"] == 0.0 and f["groups"]["y"]["rmse"] == pytest.approx(2.0)
    assert set(f["gaps"]) == {"rmse", "mae", "r2", "mape"} and "selection_rate" not in f
    with pytest.raises(me.EvalError, match="fairness_metric: 'accuracy' is not a regression metric \\(use one of rmse, mae, r2, mape\\)"):
        me.fairness([1.0], [1.0], ["x"], "regression", metric="accuracy")


def test_explain_disparity():
    fair = me.fairness([1, 1, 0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0, 1, 1], list("aaaabbbb"), "classification")
    failures = me.check_thresholds({"max_disparity": fair["max_disparity"], "accuracy": 0.6}, {"max_disparity": "<=0.1", "accuracy": ">=0.9"})
    me.explain_disparity(failures, fair, "region")
    assert failures[0] == {"metric": "accuracy", "value": 0.6, "threshold": ">=0.9"}
    assert failures[1]["reason"] == "accuracy gap between the groups of region: b 0.250, a 1.000"
    # Not computed (no sensitive column): the reason stays what check_thresholds says.
    missing = me.explain_disparity(me.check_thresholds({}, {"max_disparity": "<=0.1"}), {}, "region")
    assert missing == [{"metric": "max_disparity", "value": None, "threshold": "<=0.1", "reason": "metric not computed"}]


def test_hardware_fit():
    fit = me.hardware_fit(100 * 1024 * 1024, free_memory_mb=1000, memory_factor=2.0, runtime_overhead_mb=300)
    assert fit == {"model_size_mb": 100.0, "memory_estimate_mb": 500.0, "memory_headroom_mb": 500.0, "failures": []}
    tight = me.hardware_fit(100 * 1024 * 1024, free_memory_mb=400, gpu_memory_mb=150, needs_gpu=True)
    assert [f["metric"] for f in tight["failures"]] == ["memory_estimate_mb", "gpu_memory_estimate_mb"]
    assert tight["failures"][0]["threshold"] == "<=400 (target_free_memory_mb)"


def test_compare_champion():
    assert me.compare_champion({"accuracy": 0.90}, {"accuracy": 0.91}, ["accuracy"], 0.02) == []
    failures = me.compare_champion({"accuracy": 0.85, "rmse": 2.0}, {"accuracy": 0.91, "rmse": 1.0}, ["accuracy", "rmse"], 0.02)
    assert [f["metric"] for f in failures] == ["champion_accuracy", "champion_rmse"]
    assert failures[0]["threshold"] == ">= 0.91 (champion) by at most 0.02"


def test_fingerprint_ignores_latency_only():
    report = {"metrics": {"accuracy": 0.9, "latency_p95_ms": 3.0}, "failures": [], "latency": {"samples": 5}, "passed": True}
    other = {"metrics": {"accuracy": 0.9, "latency_p95_ms": 9.0}, "failures": [], "latency": {"samples": 5}, "passed": True}
    assert me.fingerprint(report) == me.fingerprint(other)
    assert me.fingerprint(report) != me.fingerprint(dict(other, metrics={"accuracy": 0.91, "latency_p95_ms": 9.0}))


def test_add_pythonpath_puts_the_environment_entries_first(monkeypatch, tmp_path):
    # A model's own code named by the gate's PYTHONPATH must import in an interpreter that
    # started before the task set it.
    monkeypatch.setattr(me.sys, "path", ["/already/there"])
    monkeypatch.setenv("PYTHONPATH", "%s:/already/there::%s" % (tmp_path / "a", tmp_path / "b"))
    me.add_pythonpath()
    assert me.sys.path == [str(tmp_path / "a"), str(tmp_path / "b"), "/already/there"]
    me.add_pythonpath()
    assert me.sys.path == [str(tmp_path / "a"), str(tmp_path / "b"), "/already/there"]
