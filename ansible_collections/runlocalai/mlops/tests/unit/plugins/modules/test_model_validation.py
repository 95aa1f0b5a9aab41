# -*- coding: utf-8 -*-
"""model_validation against a real MLflow server, with the mlflow_model gate reading its report."""

import json

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryClient, tag_dict
from ansible_collections.runlocalai.mlops.plugins.modules import mlflow_model, model_validation
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import mlflow_server, trained  # noqa: F401 pylint: disable=unused-import


@pytest.fixture(scope="module")
def registered(mlflow_server, trained, tmp_path_factory):  # noqa: F811
    client = RegistryClient(**mlflow_server.auth())
    client.create_model("gate")
    good = client.create_version("gate", trained["good"]["model_uri"], run_id=trained["run_id"], model_id=trained["good"]["model_id"])
    weak = client.create_version("gate", trained["weak"]["model_uri"], run_id=trained["run_id"], model_id=trained["weak"]["model_id"])
    data = tmp_path_factory.mktemp("eval") / "eval.csv"
    trained["evaluation"].to_csv(data, index=False)
    return {"client": client, "good": str(good["version"]), "weak": str(weak["version"]), "data": str(data)}


def params(server, registered, **extra):
    value = dict(server.auth(), data_path=registered["data"], label_column="label", latency_samples=5)
    value.update(extra)
    return value


def test_gate_metrics_and_record_idempotent(run_module, mlflow_server, registered):  # noqa: F811
    args = params(mlflow_server, registered, model_uri="models:/gate/%s" % registered["good"], sensitive_column="group",
                  drop_columns=["group"], thresholds={"accuracy": ">=0.85", "latency_p95_ms": "<=100000", "max_disparity": "<=0.2"},
                  target_free_memory_mb=4096, record=True)
    checked = run_module(model_validation, args, check_mode=True, diff=True)
    assert checked["failed"] is False, checked.get("msg")
    assert checked["changed"] is True and checked["recorded"] is True
    assert "validation.passed" not in tag_dict(registered["client"].get_version("gate", registered["good"]))

    result = run_module(model_validation, args, diff=True)
    assert result["passed"] is True and result["failures"] == [] and result["changed"] is True
    metrics = result["metrics"]
    assert 0.85 <= metrics["accuracy"] <= 1.0 and 0.85 <= metrics["roc_auc"] <= 1.0
    assert set(["precision", "recall", "f1", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "max_disparity",
                "demographic_parity_difference", "equal_opportunity_difference", "model_size_mb", "memory_estimate_mb"]) <= set(metrics)
    matrix = result["report"]["confusion_matrix"]
    assert matrix["labels"] == [0, 1] and sum(map(sum, matrix["matrix"])) == result["report"]["rows"] == 284
    assert sorted(result["report"]["fairness"]["groups"]) == ["a", "b"]
    assert result["diff"]["after"]["validation.passed"] == "true" and result["diff"]["before"]["validation.passed"] is None
    tags = tag_dict(registered["client"].get_version("gate", registered["good"]))
    assert tags["validation.passed"] == "true"
    assert json.loads(tags["validation.report"])["metrics"]["accuracy"] == metrics["accuracy"]

    again = run_module(model_validation, args)
    assert again["changed"] is False and again["recorded"] is False and again["passed"] is True


def test_gate_failing_blocks_promotion(run_module, mlflow_server, registered):  # noqa: F811
    args = params(mlflow_server, registered, model_uri="models:/gate/%s" % registered["weak"], thresholds={"accuracy": ">=0.85"}, record=True)
    result = run_module(model_validation, args)
    assert result["failed"] is False and result["passed"] is False
    assert [f["metric"] for f in result["failures"]] == ["accuracy"]
    assert result["failures"][0]["threshold"] == ">=0.85" and result["failures"][0]["value"] < 0.85
    assert tag_dict(registered["client"].get_version("gate", registered["weak"]))["validation.passed"] == "false"

    failing = run_module(model_validation, dict(args, fail_on_error=True))
    assert failing["failed"] is True
    assert failing["msg"].startswith("validation of models:/gate/%s failed: accuracy=" % registered["weak"])
    assert failing["passed"] is False

    promote = run_module(mlflow_model, dict(mlflow_server.auth(), name="gate", version=registered["weak"], alias="production"))
    assert promote["failed"] is True
    assert "the validation report on the version did not pass" in promote["msg"]


def test_champion_comparison(run_module, mlflow_server, registered):  # noqa: F811
    registered["client"].set_alias("gate", "champion", registered["good"])
    worse = run_module(model_validation, params(mlflow_server, registered, model_uri="models:/gate/%s" % registered["weak"],
                                                champion_alias="champion", champion_tolerance=0.01))
    assert worse["passed"] is False
    assert [f["metric"] for f in worse["failures"]] == ["champion_accuracy"]
    assert worse["report"]["champion"]["version"] == registered["good"]
    same = run_module(model_validation, params(mlflow_server, registered, model_uri="models:/gate@champion",
                                               champion_alias="champion", champion_metrics=["accuracy", "f1"]))
    assert same["passed"] is True and same["version"] == registered["good"]
    none = run_module(model_validation, params(mlflow_server, registered, model_uri="models:/gate/%s" % registered["good"],
                                               champion_alias="nobody"))
    assert none["passed"] is True and none["report"]["champion"]["status"].startswith("no champion")


def test_hardware_fit_failure(run_module, mlflow_server, registered):  # noqa: F811
    result = run_module(model_validation, params(mlflow_server, registered, model_uri="models:/gate/%s" % registered["good"],
                                                 target_free_memory_mb=100, latency_samples=0))
    assert result["passed"] is False
    assert result["failures"][0]["metric"] == "memory_estimate_mb" and result["failures"][0]["threshold"] == "<=100 (target_free_memory_mb)"
    assert "latency_p95_ms" not in result["metrics"]


def test_bad_inputs(run_module, mlflow_server, registered, tmp_path):  # noqa: F811
    good = "models:/gate/%s" % registered["good"]
    cases = [
        (dict(model_uri="models:/nope/1"), "model_uri: registered model 'nope' not found"),
        (dict(model_uri="models:/gate/99"), "model_uri: registered model 'gate' has no version 99"),
        (dict(model_uri="models:/gate@missing"), "model_uri: registered model 'gate' has no alias 'missing'"),
        (dict(model_uri="s3://bucket/model"), "model_uri: 's3://bucket/model' is not models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH"),
        (dict(model_uri="runs:/0123456789abcdef/model"), "model_uri: run 0123456789abcdef not found"),
        (dict(model_uri=good, label_column="target"), "label_column: 'target' is not a column of"),
        (dict(model_uri=good, data_path=str(tmp_path / "none.csv")), "data_path: %s does not exist" % (tmp_path / "none.csv")),
        (dict(model_uri=good, sensitive_column="region"), "sensitive_column: 'region' is not a column of"),
        (dict(model_uri=good, sensitive_column="group", fairness_metric="rmse"),
         "fairness_metric: 'rmse' is not a classification metric (use one of accuracy, precision, recall, f1)"),
        (dict(model_uri=good, thresholds={"acuracy": ">=0.9"}), "thresholds: unknown metric(s) acuracy; known:"),
        (dict(model_uri=good, thresholds={"accuracy": "high"}), "thresholds.accuracy: 'high' is not a threshold like '>=0.92' or '<=50'"),
        (dict(model_uri=good, latency_samples=-1), "latency_samples: must be 0 or more, got -1"),
        (dict(model_uri=good, drop_columns=["nope"]), "drop_columns: nope not in the evaluation data"),
        (dict(model_uri=good, champion_alias="champion", champion_metrics=["speed"]), "champion_metrics: unknown metric 'speed'"),
        (dict(model_uri=good, password="wrong"), "MLflow at %s rejected the credentials (HTTP 401)" % mlflow_server.url),
        (dict(model_uri=good, tracking_uri="http://127.0.0.1:9"), "tracking_uri: cannot reach MLflow at http://127.0.0.1:9: ConnectionError"),
    ]
    for extra, message in cases:
        result = run_module(model_validation, params(mlflow_server, registered, **extra))
        assert result["failed"] is True, extra
        assert result["msg"].startswith(message), (extra, result["msg"])
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("label\n1\n0\n")
    result = run_module(model_validation, params(mlflow_server, registered, model_uri=good, data_path=str(bad_csv)))
    assert result["msg"].startswith("data_path: the model expects column(s) f0, f1")
