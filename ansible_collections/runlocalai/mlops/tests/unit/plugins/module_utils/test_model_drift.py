# -*- coding: utf-8 -*-
"""Model drift: accuracy decay and sequential detectors, against naive reference implementations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

import numpy as np
import pytest
from scipy import stats

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import model as md
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.stats import DriftInputError


def test_accuracy_decay_matches_hand_computed_z_test():
    out = md.accuracy_decay(0.92, 10000, 850, 1000)
    pooled = (0.92 * 10000 + 850) / 11000.0
    z = (0.85 - 0.92) / math.sqrt(pooled * (1 - pooled) * (1 / 10000.0 + 1 / 1000.0))
    assert out["z"] == pytest.approx(z)
    assert out["p_value"] == pytest.approx(stats.norm.cdf(z))
    assert out["decayed"] and out["drop"] == pytest.approx(0.07)


def test_accuracy_decay_needs_both_size_and_significance():
    assert not md.accuracy_decay(0.92, 10000, 9150, 10000)["decayed"]  # significant but only 0.005
    assert not md.accuracy_decay(0.92, 10000, 17, 20)["decayed"]  # 0.07 drop, 20 labels: noise
    with pytest.raises(DriftInputError, match="reference_accuracy"):
        md.accuracy_decay(1.5, 10, 1, 1)


def test_count_correct_canonical_comparison():
    assert md.count_correct([1, "1", 0, None, "cat"], [1.0, 1, 1, 1, "cat"]) == (3, 4)


def naive_page_hinkley(x, delta):
    total = m = 0.0
    low = 0.0
    out = []
    for i, value in enumerate(x):
        total += value
        m += value - total / (i + 1) - delta
        low = min(low, m)
        out.append(m - low)
    return np.array(out)


def naive_cusum(z, k):
    s = 0.0
    out = []
    for value in z:
        s = max(0.0, s + value - k)
        out.append(s)
    return np.array(out)


def test_page_hinkley_statistic_matches_naive_loop_and_detects_shift():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.5, 500), rng.normal(1.0, 0.5, 300)])
    assert np.allclose(md._ph_stat(x, 1.0, 0.005), naive_page_hinkley(x, 0.005))
    out = md.page_hinkley(x, delta=0.005, threshold=20.0)
    assert out["detected"] and 500 <= out["first_alarm"] < 540
    stable = md.page_hinkley(rng.normal(0, 0.5, 2000), delta=0.05, threshold=20.0)
    assert not stable["detected"] and stable["alarms"] == []
    down = md.page_hinkley(-x, delta=0.005, threshold=20.0, direction="down")
    assert down["first_alarm"] == out["first_alarm"]


def test_cusum_matches_naive_loop_and_detects_one_sd_shift():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(10, 2, 400), rng.normal(12, 2, 200)])
    z = (x - 10) / 2.0
    assert np.allclose(md._lindley(z - 0.5), naive_cusum(z, 0.5))
    out = md.cusum(x, target=10, sigma=2)
    assert out["detected"] and 400 <= out["first_alarm"] < 440
    estimated = md.cusum(x)  # target and sigma from the first 30 values
    assert estimated["detected"] and estimated["target"] == pytest.approx(np.mean(x[:30]))
    assert not md.cusum(rng.normal(10, 2, 300), target=10, sigma=2)["detected"]
    with pytest.raises(DriftInputError, match="direction"):
        md.cusum(x, direction="sideways")


# ---------------------------------------------------------------------------------------------
# run_model_checks: what model_drift_check and `drift_cli model-check` call
# ---------------------------------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402


def write_window(directory, predictions, ids, confidences=None, labels=None, per_file=500):
    """A serving window: JSON-lines files of serving records, split into hourly files."""
    os.makedirs(directory, exist_ok=True)
    for start in range(0, len(predictions), per_file):
        with open(os.path.join(directory, "window-20261127%02d.jsonl" % (start // per_file)), "w") as handle:
            for i in range(start, min(start + per_file, len(predictions))):
                outputs = {"prediction": predictions[i]}
                if confidences is not None:
                    outputs["confidence"] = confidences[i]
                record = {"inputs": {"x": 1.0}, "outputs": outputs, "ts": "2026-11-27T10:00:00Z"}
                if ids[i] is not None:
                    record["request_id"] = ids[i]
                if labels is not None and labels[i] is not None:
                    record["label"] = labels[i]
                handle.write(json.dumps(record) + "\n")
    return str(directory)


def write_feedback(path, rows):
    with open(str(path), "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


def labelled_window(tmp_path, accuracy, rows=2000, labelled=1500, seed=0):
    """Predictions 0/1 in a window, feedback labels for the first `labelled` requests with the given accuracy."""
    rng = np.random.default_rng(seed)
    preds = rng.integers(0, 2, rows).tolist()
    ids = ["req-%05d" % i for i in range(rows)]
    correct = rng.random(labelled) < accuracy
    feedback = [{"request_id": ids[i], "label": preds[i] if correct[i] else 1 - preds[i]} for i in range(labelled)]
    feedback.append({"request_id": "req-from-another-window", "label": 1})
    window = write_window(str(tmp_path / "window"), preds, ids)
    return window, write_feedback(tmp_path / "feedback.jsonl", feedback), float(correct.mean())


def test_accuracy_decay_from_window_joined_with_feedback(tmp_path):
    window, feedback, actual = labelled_window(tmp_path, accuracy=0.80)
    out = md.run_model_checks(accuracy={"current": window, "feedback": feedback, "reference_accuracy": 0.92, "reference_rows": 10000})
    check = out["checks"]["accuracy"]
    assert out["drifted"] and out["drifted_checks"] == ["accuracy"] and check["rule"] == "accuracy_decay"
    assert check["current_accuracy"] == pytest.approx(actual) and abs(actual - 0.80) < 0.03
    assert check["labels"]["rows"] == 2000 and check["labels"]["joined"] == 1500 and check["n_current"] == 1500
    assert check["labels"]["orphan_feedback"] == 1 and check["labels"]["unjoinable"] == 0
    assert check["test"] == "z_2prop" and check["threshold"] == 0.05 and check["p_value"] < 1e-10
    assert out["failures"] == ["accuracy: " + check["rule_detail"]]
    json.dumps(out, allow_nan=False)  # JSON-ready


def test_stable_accuracy_passes_and_small_noisy_drop_passes(tmp_path):
    window, feedback, actual = labelled_window(tmp_path, accuracy=0.92, seed=1)
    out = md.run_model_checks(accuracy={"current": window, "feedback": feedback, "reference_accuracy": 0.92})
    assert not out["drifted"] and out["failures"] == [] and abs(out["checks"]["accuracy"]["drop"]) < 0.03
    # 40 labels, 0.10 below: large but not significant at alpha 0.01 -> not decayed
    small = md.check_accuracy({"predictions": [1] * 40, "labels": [1] * 33 + [0] * 7, "reference_accuracy": 0.925,
                               "reference_rows": 400, "alpha": 0.01})
    assert small["drop"] == pytest.approx(0.1) and small["p_value"] > 0.01 and not small["drifted"]


def test_accuracy_labels_in_the_window_feedback_wins_and_batch_instances(tmp_path):
    ids = ["a", "b", "c", "c"]
    window = write_window(str(tmp_path / "w"), ["x", "y", "x", "y"], ids, labels=["x", "x", None, None])
    with open(os.path.join(window, "window-2026112700.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    records[2]["instance"], records[3]["instance"] = 0, 1
    with open(os.path.join(window, "window-2026112700.jsonl"), "w") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records))
    embedded = md.check_accuracy({"current": window, "reference_accuracy": 0.9, "min_labels": 1})
    assert embedded["n_current"] == 2 and embedded["current_accuracy"] == 0.5
    feedback = write_feedback(tmp_path / "fb.jsonl", [{"request_id": "b", "label": "x"}, {"request_id": "b", "label": "y"},
                                                      {"request_id": "c", "instance": 1, "label": "y"}])
    joined = md.check_accuracy({"current": window, "feedback": feedback, "reference_accuracy": 0.9, "min_labels": 1})
    # a: embedded x (correct); b: feedback, later line y wins (correct); c/0: no label; c/1: y (correct)
    assert joined["n_current"] == 3 and joined["current_accuracy"] == 1.0
    assert joined["labels"]["feedback_duplicates"] == 1 and joined["labels"]["joined"] == 2


def test_too_few_labels_is_not_decided_and_warns():
    out = md.run_model_checks(accuracy={"predictions": [1, 0, 1], "labels": [0, 1, None], "reference_accuracy": 0.9})
    check = out["checks"]["accuracy"]
    assert not out["drifted"] and not check["decided"] and check["rule"] == "insufficient_labels"
    assert check["n_current"] == 2 and out["warnings"] and "min_labels 30" in out["warnings"][0]


def step_series(seed, before=1000, after=300, level=0.9, drop=0.1, sd=0.05):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(level, sd, before), rng.normal(level - drop, sd, after)])


@pytest.mark.parametrize("seed", range(5))
def test_page_hinkley_check_finds_a_confidence_drop_within_60_values_and_not_in_a_stationary_series(seed):
    params = {"method": "page_hinkley", "direction": "down", "delta": 0.01, "threshold": 2.0}
    step = md.check_sequential(dict(params, series=step_series(seed).tolist()))
    # statistic grows by about drop - delta = 0.09 a value after the change: 2 / 0.09 = 22 values expected
    assert step["drifted"] and 1000 <= step["first_alarm"] < 1060, step["rule_detail"]
    flat = md.check_sequential(dict(params, series=step_series(100 + seed, before=2000, after=0).tolist()))
    assert not flat["drifted"] and flat["alarms"] == [] and flat["statistic"] < 2.0
    assert flat["threshold"] == 2.0 and flat["rule"] == "page_hinkley" and flat["decided"]


@pytest.mark.parametrize("seed", range(5))
def test_cusum_check_finds_a_one_sd_shift_within_50_values_and_not_in_a_stationary_series(seed):
    # k=0.5, h=10: in-control run length about 1.4e5 values (Siegmund), so 1000 values rarely alarm
    params = {"method": "cusum", "direction": "up", "target": 0.0, "sigma": 1.0, "k": 0.5, "h": 10.0}
    rng = np.random.default_rng(seed)
    step = md.check_sequential(dict(params, series=np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 200)]).tolist()))
    # Siegmund: about 20 values expected for a 1 sd shift
    assert step["drifted"] and 1000 <= step["first_alarm"] < 1050, step["rule_detail"]
    flat = md.check_sequential(dict(params, series=rng.normal(0, 1, 1000).tolist()))
    assert not flat["drifted"] and flat["statistic"] < 10.0 and flat["threshold"] == 10.0


def test_sequential_series_from_a_serving_window_field(tmp_path):
    conf = step_series(3, before=600, after=200).tolist()
    window = write_window(str(tmp_path / "w"), [1] * 800, ["r%d" % i for i in range(800)], confidences=conf, per_file=300)
    out = md.run_model_checks(sequential=[{"name": "confidence", "series": window, "field": "outputs.confidence",
                                           "direction": "down", "delta": 0.01, "threshold": 2.0}])
    check = out["checks"]["confidence"]
    assert out["drifted"] and check["n"] == 800 and check["source"] == window and 600 <= check["first_alarm"] < 660
    short = md.run_model_checks(sequential={"series": [1.0, 2.0, None], "min_instances": 30})
    assert not short["drifted"] and short["checks"]["page_hinkley:0"]["rule"] == "insufficient_values" and short["warnings"]


@pytest.mark.parametrize("accuracy, sequential, message", [
    (None, None, "accuracy or sequential: at least one check"),
    ({"current": "/nonexistent/w", "reference_accuracy": 0.9}, None, "accuracy.current: no such file or directory: /nonexistent/w"),
    ({"predictions": [1], "labels": [1]}, None, "accuracy.reference_accuracy: required"),
    ({"predictions": [1], "labels": [1], "reference_accuracy": 1.5}, None, r"accuracy.reference_accuracy: must be a number >= 0 and <= 1, got 1.5"),
    ({"predictions": [1], "labels": [1], "reference_accuracy": 0.9, "max_drop": -0.1}, None, "accuracy.max_drop"),
    ({"predictions": [1], "labels": [1], "reference_accuracy": 0.9, "alpha": 0}, None, "accuracy.alpha"),
    ({"predictions": [1, 2], "labels": [1], "reference_accuracy": 0.9}, None, "predictions and labels have different lengths"),
    ({"predictions": [1], "labels": [1], "reference_accuracy": 0.9, "tolerance": 1}, None, r"accuracy: unknown key\(s\) tolerance"),
    (None, [{"series": [1.0, "high"]}], r"sequential\[0\].series\[1\]: not a number: 'high'"),
    (None, [{"series": [1.0] * 40, "method": "adwin"}], r"sequential\[0\].method: must be one of page_hinkley, cusum"),
    (None, [{"series": [1.0] * 40, "threshold": 0}], r"sequential\[0\].threshold: must be a number > 0"),
    (None, [{"series": [1.0] * 40, "method": "cusum", "sigma": -1}], r"sequential\[0\].sigma"),
    (None, [{"series": [None, None]}], r"sequential\[0\].series: no values"),
    (None, [{"series": [1.0] * 40}, {"series": [1.0] * 40, "name": "page_hinkley:0"}], "check name 'page_hinkley:0' is used twice"),
    (None, [{"series": None}], r"sequential\[0\].series: required"),
])
def test_bad_input_names_the_parameter(accuracy, sequential, message):
    with pytest.raises(DriftInputError, match=message):
        md.run_model_checks(accuracy, sequential)


def test_bad_files_name_the_parameter_and_file(tmp_path):
    window = write_window(str(tmp_path / "w"), [1, 0], ["a", "b"], confidences=[0.5, 0.6])
    fb_no_id = write_feedback(tmp_path / "fb.jsonl", [{"label": 1}])
    with pytest.raises(DriftInputError, match="accuracy.feedback: no 'request_id' values in .*fb.jsonl"):
        md.check_accuracy({"current": window, "feedback": fb_no_id, "reference_accuracy": 0.9})
    with pytest.raises(DriftInputError, match="accuracy.current: no 'label' values in .*give accuracy.feedback"):
        md.check_accuracy({"current": window, "reference_accuracy": 0.9})
    with pytest.raises(DriftInputError, match="accuracy.current: no 'outputs.score' values .*set accuracy.prediction_field"):
        md.check_accuracy({"current": window, "reference_accuracy": 0.9, "prediction_field": "outputs.score"})
    with pytest.raises(DriftInputError, match=r"sequential\[0\].series: column 'outputs.latency' not found"):
        md.check_sequential({"series": window, "field": "outputs.latency"})
    csv_path = tmp_path / "s.csv"
    csv_path.write_text("a,b\n1,2\n")
    with pytest.raises(DriftInputError, match=r"sequential\[0\].field: required when the series file has several columns"):
        md.check_sequential({"series": str(csv_path)})
    csv_path.write_text("latency\n1.5\nslow\n")
    with pytest.raises(DriftInputError, match="feature 'latency': non-numeric value 'slow'"):
        md.check_sequential({"series": str(csv_path)})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DriftInputError, match="accuracy.current: directory .*empty has no serving-window files"):
        md.check_accuracy({"current": str(empty), "reference_accuracy": 0.9})


# --- the serving host's timer: --model-version, --no-data-ok, one-row labels -----------------------------

def versioned_window(directory, versions, predictions, confidences):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "window-2026112700-000.jsonl"), "w") as handle:
        for i, (version, pred, conf) in enumerate(zip(versions, predictions, confidences)):
            handle.write(json.dumps({"inputs": {"x": 1.0}, "outputs": {"prediction": pred, "confidence": conf},
                                     "request_id": "r%d" % i, "model_version": version}) + "\n")
    return directory


def test_only_the_records_of_the_model_version_count(tmp_path):
    """Version 2's wrong predictions and its confidence level before the deploy do not count for version 3."""
    n = 100
    versions = ["2"] * n + ["3"] * n
    preds = [0] * (2 * n)
    confidences = [0.6] * n + [0.95 + 0.01 * (i % 3) for i in range(n)]
    window = versioned_window(str(tmp_path / "w"), versions, preds, confidences)
    feedback = write_feedback(tmp_path / "fb.jsonl", [{"request_id": "r%d" % i, "label": 1 if i < n else 0} for i in range(2 * n)])
    accuracy = {"current": window, "feedback": feedback, "reference_accuracy": 0.95}
    sequential = [{"name": "ph", "series": window, "field": "outputs.confidence", "direction": "both", "threshold": 5.0}]
    everything = md.run_model_checks(accuracy, sequential)
    assert everything["checks"]["accuracy"]["drifted"] and everything["checks"]["ph"]["drifted"]
    latest = md.run_model_checks(accuracy, sequential, model_version=3)
    acc = latest["checks"]["accuracy"]
    assert acc["current_accuracy"] == 1.0 and acc["n_current"] == n and not acc["drifted"]
    assert acc["labels"]["model_version"] == "3" and acc["labels"]["other_versions"] == n
    assert latest["checks"]["ph"]["n"] == n and not latest["checks"]["ph"]["drifted"]


def test_no_data_ok_leaves_checks_undecided_instead_of_failing(tmp_path):
    window = versioned_window(str(tmp_path / "w"), ["2"] * 5, [1] * 5, [0.9] * 5)
    empty = tmp_path / "feedback"
    empty.mkdir()
    accuracy = {"current": window, "feedback": str(empty), "reference_accuracy": 0.9}
    sequential = [{"name": "ph", "series": window, "field": "outputs.confidence"}]
    with pytest.raises(DriftInputError, match="no records of model version 3"):
        md.run_model_checks(accuracy, sequential, model_version="3")
    with pytest.raises(DriftInputError, match="has no serving-window files"):
        md.run_model_checks(accuracy)
    out = md.run_model_checks(accuracy, sequential, model_version="3", no_data_ok=True)
    assert not out["drifted"] and [c["decided"] for c in out["checks"].values()] == [False, False]
    assert out["checks"]["accuracy"]["n_current"] == 0 and out["checks"]["ph"]["n"] == 0
    # the version's records, but no labels yet and no confidence field
    out = md.run_model_checks(accuracy, [{"name": "lat", "series": window, "field": "outputs.latency"}], model_version="2",
                              no_data_ok=True)
    assert out["checks"]["accuracy"]["labels"]["rows"] == 5 and out["checks"]["accuracy"]["n_current"] == 0
    assert not out["checks"]["lat"]["decided"]
    missing = str(tmp_path / "not-there")
    out = md.run_model_checks({"current": missing, "feedback": missing, "reference_accuracy": 0.9}, no_data_ok=True)
    assert not out["checks"]["accuracy"]["decided"]


def test_a_label_naming_instance_0_joins_a_one_row_request(tmp_path):
    window = write_window(str(tmp_path / "w"), ["x", "y"], ["a", "b"])
    feedback = write_feedback(tmp_path / "fb.jsonl", [{"request_id": "a", "instance": 0, "label": "x"},
                                                      {"request_id": "b", "label": "y"}])
    out = md.check_accuracy({"current": window, "feedback": feedback, "reference_accuracy": 0.9, "min_labels": 1})
    assert out["labels"]["joined"] == 2 and out["current_accuracy"] == 1.0
