# -*- coding: utf-8 -*-
"""Fairness in the validation gate, end to end: real scikit-learn models in a real MLflow server, judged by
model_validation on the demo's evaluation data.

breast-cancer has no sensitive attribute, so the demo's evaluation data carries a DERIVED group column
(playbooks/files/demo/register_models.py: `derived_texture_group`, mean_texture above or at/below its
median). The group stands in for a sensitive one; these tests use the demo's own functions to make it.

- An unfair candidate (a decision tree trained on data where the `high` group's labels are flipped) is
  refused on max_disparity, with the groups named; the same kind of tree trained on the true labels passes.
- The demo's v1, trained and registered by register_models.py's own main(), passes the gate with the
  lab inventory's settings for breast-cancer (its fairness threshold included), and v2 is refused.
"""

import os
import sys

import numpy as np
import pytest
import yaml

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryClient, tag_dict
from ansible_collections.runlocalai.mlops.plugins.modules import data_validation, model_validation
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import ADMIN, ADMIN_PASSWORD
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import mlflow_server  # noqa: F401 pylint: disable=unused-import

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 7)))
DEMO = os.path.join(REPO, "playbooks", "files", "demo")
LAB_VARS = os.path.join(REPO, "inventories", "lab", "group_vars", "all.yml")


@pytest.fixture(scope="module")
def demo():
    """playbooks/files/demo/register_models.py, imported as make demo runs it (demo_features beside it)."""
    sys.path.insert(0, DEMO)
    try:
        import register_models  # pylint: disable=import-outside-toplevel
        yield register_models
    finally:
        sys.path.remove(DEMO)


@pytest.fixture(scope="module")
def lab_gate():
    """The lab inventory's lifecycle_models entry of breast-cancer (what deploy_model.yml's gate reads)."""
    with open(LAB_VARS) as handle:
        return yaml.safe_load(handle)["lifecycle_models"]["breast-cancer"]


@pytest.fixture(scope="module")
def demo_data(demo, tmp_path_factory):
    """The demo's data files, written by its own write_data (eval.csv with the derived group)."""
    data_dir = str(tmp_path_factory.mktemp("demo-data"))
    features, target = demo.load_data()
    train, train_target = demo.write_data(data_dir, features, target)
    return {"dir": data_dir, "eval": os.path.join(data_dir, "eval.csv"), "features": features, "target": target,
            "train": train, "train_target": train_target}


@pytest.fixture
def mlflow_auth_env(monkeypatch, mlflow_server):  # noqa: F811
    import mlflow  # pylint: disable=import-outside-toplevel
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    mlflow.set_tracking_uri(mlflow_server.url)
    return mlflow


def gate_args(server, model_uri, data_path, **extra):
    value = dict(server.auth(), model_uri=model_uri, data_path=data_path, label_column="target", latency_samples=0)
    value.update(extra)
    return value


def test_demo_eval_data_carries_the_derived_group(demo, demo_data, lab_gate):
    import pandas as pd  # pylint: disable=import-outside-toplevel
    frame = pd.read_csv(demo_data["eval"])
    assert demo.GROUP_COLUMN == "derived_texture_group" == lab_gate["sensitive_column"]
    assert "derived" in demo.GROUP_COLUMN and demo.GROUP_FEATURE in demo.__doc__ and "DERIVED" in demo.__doc__
    median = demo_data["features"]["mean_texture"].median()
    holdout = demo_data["features"].iloc[1::2]
    expected = np.where(holdout["mean_texture"].values > median, "high", "low")
    assert (frame[demo.GROUP_COLUMN].values == expected).all()
    counts = frame[demo.GROUP_COLUMN].value_counts().to_dict()
    assert counts == {"low": 143, "high": 141}
    # The models never see it: not in the training data, so not in their signature.
    assert demo.GROUP_COLUMN not in demo_data["train"].columns


def test_unfair_candidate_refused_fair_one_passes(run_module, mlflow_server, mlflow_auth_env, demo, demo_data):  # noqa: F811
    import mlflow.sklearn  # pylint: disable=import-outside-toplevel
    import sklearn  # pylint: disable=import-outside-toplevel
    from mlflow.models import infer_signature  # pylint: disable=import-outside-toplevel
    from sklearn.tree import DecisionTreeClassifier  # pylint: disable=import-outside-toplevel

    train, labels = demo_data["train"], demo_data["train_target"].values
    group = demo.derive_group(demo_data["features"]).iloc[::2].values
    flipped = np.where(group == "high", 1 - labels, labels)
    assert (flipped != labels).sum() == (group == "high").sum() > 100
    fair = DecisionTreeClassifier(random_state=0).fit(train, labels)
    unfair = DecisionTreeClassifier(random_state=0).fit(train, flipped)
    client = RegistryClient(**mlflow_server.auth())
    client.create_model("fairness-gate")
    versions = {}
    mlflow_auth_env.set_experiment("fairness-tests")
    with mlflow_auth_env.start_run() as run:
        for name, model in (("fair", fair), ("unfair", unfair)):
            info = mlflow.sklearn.log_model(model, name=name, signature=infer_signature(train, model.predict(train)),
                                            pip_requirements=["scikit-learn==%s" % sklearn.__version__],
                                            serialization_format="cloudpickle")
            versions[name] = str(client.create_version("fairness-gate", info.model_uri, run_id=run.info.run_id,
                                                       model_id=info.model_id)["version"])

    thresholds = {"max_disparity": "<=0.1"}
    args = dict(sensitive_column=demo.GROUP_COLUMN, fairness_metric="accuracy", thresholds=thresholds, record=True)
    passed = run_module(model_validation, gate_args(mlflow_server, "models:/fairness-gate/%s" % versions["fair"], demo_data["eval"], **args))
    assert passed["failed"] is False, passed.get("msg")
    assert passed["passed"] is True and passed["failures"] == []
    fairness = passed["report"]["fairness"]
    assert fairness["metric"] == "accuracy" and sorted(fairness["groups"]) == ["high", "low"]
    assert fairness["groups"]["low"]["count"] == 143 and fairness["groups"]["high"]["count"] == 141
    for group_metrics in fairness["groups"].values():
        assert set(group_metrics) == {"count", "accuracy", "precision", "recall", "f1"}
        assert group_metrics["accuracy"] > 0.85
    assert set(fairness["gaps"]) == {"accuracy", "precision", "recall", "f1"}
    assert passed["metrics"]["max_disparity"] == fairness["max_disparity"] == fairness["gaps"]["accuracy"] <= 0.1
    assert tag_dict(client.get_version("fairness-gate", versions["fair"]))["validation.passed"] == "true"

    refused = run_module(model_validation, gate_args(mlflow_server, "models:/fairness-gate/%s" % versions["unfair"], demo_data["eval"], **args))
    assert refused["failed"] is False, refused.get("msg")
    assert refused["passed"] is False
    assert [f["metric"] for f in refused["failures"]] == ["max_disparity"]
    failure = refused["failures"][0]
    fairness = refused["report"]["fairness"]
    assert failure["value"] == fairness["max_disparity"] > 0.5 and failure["threshold"] == "<=0.1"
    assert fairness["lowest_group"] == "high" and fairness["highest_group"] == "low"
    assert fairness["groups"]["high"]["accuracy"] < 0.3 < 0.7 < fairness["groups"]["low"]["accuracy"]
    assert failure["reason"] == "accuracy gap between the groups of derived_texture_group: high %.3f, low %.3f" % (
        fairness["groups"]["high"]["accuracy"], fairness["groups"]["low"]["accuracy"])
    assert tag_dict(client.get_version("fairness-gate", versions["unfair"]))["validation.passed"] == "false"


def test_demo_v1_passes_the_lab_gate_and_v2_is_refused(run_module, mlflow_server, mlflow_auth_env, demo, demo_data, lab_gate,  # noqa: F811
                                                       capsys):
    # Train and register the demo's versions exactly as `make demo` does (playbooks/demo_models.yml).
    assert demo.main("breast-cancer-fairness", demo_data["dir"]) == 0
    versions = demo.existing_versions(mlflow_auth_env.MlflowClient(), "breast-cancer-fairness")
    assert sorted(versions) == ["good", "unportable", "weak"]
    capsys.readouterr()

    # Data validation with the lab's column checks (the derived group included), as gate_pyfunc.yml runs it.
    assert lab_gate["data_columns"]["derived_texture_group"]["allowed_values"] == ["low", "high"]
    checked = run_module(data_validation, dict(data=demo_data["eval"], columns=lab_gate["data_columns"], min_rows=lab_gate["data_min_rows"],
                                               fail_on_failure=False))
    assert checked["failed"] is False and checked["passed"] is True, checked

    # The lab's gate settings as gate_pyfunc.yml passes them. Latency thresholds judge the machine, not the
    # model (and tests make no wall-clock assertions): they are left out, with latency_samples=0.
    thresholds = dict((k, v) for k, v in lab_gate["thresholds"].items() if not k.startswith("latency_"))
    assert thresholds["max_disparity"] == "<=0.1" and lab_gate["fairness_metric"] == "accuracy"
    args = dict(label_column=lab_gate["label_column"], sensitive_column=lab_gate["sensitive_column"],
                fairness_metric=lab_gate["fairness_metric"], thresholds=thresholds, drop_columns=lab_gate.get("drop_columns", []))

    good = run_module(model_validation, gate_args(mlflow_server, "models:/breast-cancer-fairness/%s" % versions["good"], demo_data["eval"], **args))
    assert good["failed"] is False, good.get("msg")
    assert good["passed"] is True and good["failures"] == []
    fairness = good["report"]["fairness"]
    assert good["metrics"]["accuracy"] >= 0.9
    assert fairness["max_disparity"] == pytest.approx(abs(fairness["groups"]["low"]["accuracy"] - fairness["groups"]["high"]["accuracy"]))
    assert fairness["max_disparity"] <= 0.1

    weak = run_module(model_validation, gate_args(mlflow_server, "models:/breast-cancer-fairness/%s" % versions["weak"], demo_data["eval"], **args))
    assert weak["passed"] is False
    assert {"accuracy", "max_disparity"} <= set(f["metric"] for f in weak["failures"])
