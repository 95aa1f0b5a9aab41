# -*- coding: utf-8 -*-
"""Filter runlocalai.mlops.model_check_spec (model_server role's model-check timer) and the functions behind it
(drift/model.py reference_from_report, timer_spec; drift/options.py TIMER_PARTS)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.filter.model_check_spec import model_check_spec
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import model as md
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.options import ACCURACY_DEFAULTS, SEQUENTIAL_DEFAULTS

WINDOW = "/var/lib/runlocalai-model/bc/window"
FEEDBACK = "/var/lib/runlocalai-model/bc/feedback"


def tags(report):
    return {"validation.passed": "true", "validation.report": json.dumps(report)}


GATED = tags({"task": "classification", "rows": 114, "metrics": {"accuracy": 0.956, "f1": 0.96}})


def test_defaults_run_all_three_checks_with_the_versions_accuracy():
    out = model_check_spec({}, GATED, WINDOW, FEEDBACK)
    assert out["checks"] == ["accuracy", "page_hinkley", "cusum"] and out["off"] == {}
    assert out["reference"] == {"accuracy": 0.956, "rows": 114}
    acc = out["spec"]["accuracy"]
    assert (acc["current"], acc["feedback"], acc["reference_accuracy"], acc["reference_rows"]) == (WINDOW, FEEDBACK, 0.956, 114)
    assert (acc["max_drop"], acc["alpha"], acc["min_labels"]) == (ACCURACY_DEFAULTS["max_drop"], ACCURACY_DEFAULTS["alpha"],
                                                                  ACCURACY_DEFAULTS["min_labels"])
    ph, cusum = out["spec"]["sequential"]
    assert ph == {"name": "page_hinkley", "method": "page_hinkley", "series": WINDOW, "field": "outputs.confidence",
                  "direction": "both", "delta": 0.02, "threshold": 10.0,
                  "min_instances": SEQUENTIAL_DEFAULTS["min_instances"]}
    assert cusum == {"name": "cusum", "method": "cusum", "series": WINDOW, "field": "outputs.confidence", "direction": "both",
                     "k": 1.5, "h": 10.0, "min_instances": 200}


def test_settings_and_parts_switched_off():
    out = model_check_spec({"accuracy": {"max_drop": 0.1, "min_labels": 50}, "page_hinkley": {"threshold": 5, "direction": "down"},
                            "cusum": False}, GATED, WINDOW, FEEDBACK)
    assert out["checks"] == ["accuracy", "page_hinkley"] and list(out["off"]) == ["cusum"]
    assert out["spec"]["accuracy"]["max_drop"] == 0.1 and out["spec"]["accuracy"]["min_labels"] == 50
    (ph,) = out["spec"]["sequential"]
    assert ph["threshold"] == 5.0 and isinstance(ph["threshold"], float) and ph["direction"] == "down"
    assert model_check_spec({"page_hinkley": True}, GATED, WINDOW, FEEDBACK)["checks"] == ["accuracy", "page_hinkley", "cusum"]


@pytest.mark.parametrize("version_tags,reason", [
    ({}, "the version has no validation report"),
    (None, "the version has no validation report"),
    ({"validation.report": "{not json"}, "is not JSON"),
    (tags({"task": "regression", "rows": 50, "metrics": {"rmse": 3.1}}), "has no accuracy in [0, 1] (task regression)"),
    (tags({"rows": 50, "metrics": {"accuracy": 1.5}}), "has no accuracy in [0, 1]"),
    (tags({"rows": 50}), "has no metrics"),
])
def test_without_a_validated_accuracy_the_accuracy_part_is_off(version_tags, reason):
    out = model_check_spec({}, version_tags, WINDOW, FEEDBACK)
    assert out["checks"] == ["page_hinkley", "cusum"] and "accuracy" not in out["spec"]
    assert reason in out["off"]["accuracy"]
    assert out["reference"] == {"accuracy": None, "rows": None}


def test_rows_that_are_not_a_count_leave_the_reference_exact():
    assert md.reference_from_report(json.dumps({"rows": 0, "metrics": {"accuracy": 0.9}})) == (0.9, None, None)
    assert md.reference_from_report(json.dumps({"rows": 12.5, "metrics": {"accuracy": 1}})) == (1.0, None, None)


@pytest.mark.parametrize("options,message", [
    ({"adwin": {}}, r"model_check: unknown part\(s\) adwin \(allowed: accuracy, page_hinkley, cusum\)"),
    ([], r"model_check: must be a mapping of parts"),
    ({"cusum": "off"}, r"model_check\.cusum: must be a mapping of settings, or false"),
    ({"cusum": {"lambda": 3}}, r"model_check\.cusum: unknown setting\(s\) lambda \(allowed: field, direction, k, h"),
    ({"page_hinkley": {"k": 0.5}}, r"model_check\.page_hinkley: unknown setting\(s\) k"),
    ({"page_hinkley": {"threshold": 0}}, r"model_check\.page_hinkley\.threshold: must be a number > 0"),
    ({"page_hinkley": {"threshold": "high"}}, r"model_check\.page_hinkley\.threshold: must be a number, got 'high'"),
    ({"page_hinkley": {"direction": "sideways"}}, r"model_check\.page_hinkley\.direction: must be one of up, down, both"),
    ({"cusum": {"min_instances": 2.5}}, r"model_check\.cusum\.min_instances: must be an integer"),
    ({"cusum": {"min_instances": True}}, r"model_check\.cusum\.min_instances: must be an integer"),
    ({"cusum": {"sigma": -1}}, r"model_check\.cusum\.sigma: must be a number > 0"),
    ({"accuracy": {"max_drop": 1.5}}, r"model_check\.accuracy\.max_drop: must be a number >= 0 and <= 1"),
    ({"accuracy": {"alpha": 0}}, r"model_check\.accuracy\.alpha: must be a number > 0 and <= 1"),
    ({"accuracy": {"label_field": ""}}, r"model_check\.accuracy\.label_field: must be a non-empty string"),
])
def test_bad_options_fail_naming_them(options, message):
    with pytest.raises(AnsibleFilterError, match=message):
        model_check_spec(options, GATED, WINDOW, FEEDBACK)


def test_accuracy_settings_are_checked_even_without_a_reference():
    """tasks/validate.yml runs the filter before the version's tags are known."""
    with pytest.raises(AnsibleFilterError, match=r"model_check\.accuracy\.min_labels: must be an integer >= 1"):
        model_check_spec({"accuracy": {"min_labels": 0}}, {}, "/window", "/feedback")
    assert isinstance(model_check_spec({}, {}, "/window", "/feedback"), dict)


def test_tags_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="tags must be the model version's tags"):
        model_check_spec({}, ["validation.report"], WINDOW, FEEDBACK)


def test_the_timers_detector_defaults_on_a_real_classifiers_confidence():
    """The timer's Page-Hinkley and CUSUM defaults (drift/options.py TIMER_PARTS) on the skewed confidence of a
    real classifier: no false alarm over 20 x 1000 in-control values, an alarm soon after a drop to the
    model's unsure predictions. CUSUM's textbook k 0.5, h 5 false-alarm all along on the same series."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.iloc[:, :8]
    confidence = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, data.target) \
        .predict_proba(features).max(axis=1)
    detectors = model_check_spec({"accuracy": False}, {}, WINDOW, FEEDBACK)["spec"]["sequential"]
    rng = np.random.default_rng(0)
    alarms = dict((item["name"], 0) for item in detectors)
    textbook = 0
    for _round in range(20):
        steady = rng.choice(confidence, 1000)
        for item in detectors:
            alarms[item["name"]] += len(md.check_sequential(dict(item, series=steady.tolist()))["alarms"])
        textbook += len(md.cusum(steady, k=0.5, h=5.0, min_instances=30)["alarms"])
    assert alarms == {"page_hinkley": 0, "cusum": 0}
    assert textbook > 50
    step = np.concatenate([rng.choice(confidence, 300), rng.choice(confidence[confidence < 0.8], 100)])
    for item in detectors:
        out = md.check_sequential(dict(item, series=step.tolist()))
        assert out["drifted"] and 300 <= out["first_alarm"] < 360, (item["name"], out["alarms"])
