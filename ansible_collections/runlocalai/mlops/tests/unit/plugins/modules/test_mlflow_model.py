# -*- coding: utf-8 -*-
"""mlflow_model against a real MLflow server (basic-auth app) on loopback."""

import json

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryClient, tag_dict, alias_dict
from ansible_collections.runlocalai.mlops.plugins.modules import mlflow_model
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import mlflow_server, trained  # noqa: F401 pylint: disable=unused-import


@pytest.fixture
def client(mlflow_server):  # noqa: F811
    return RegistryClient(**mlflow_server.auth())


def args(server, **extra):
    value = dict(server.auth())
    value.update(extra)
    return value


def mark_validated(client, name, version, passed=True):
    client.set_version_tag(name, version, "validation.passed", "true" if passed else "false")
    client.set_version_tag(name, version, "validation.report", json.dumps({"passed": passed}))


def register(run_module, server, name, source, **extra):
    result = run_module(mlflow_model, args(server, name=name, source=source, **extra))
    assert result["failed"] is False, result.get("msg")
    return result


def test_register_is_idempotent_and_records_metadata(run_module, mlflow_server, trained, client):  # noqa: F811
    first = register(run_module, mlflow_server, "reg-idem", trained["good"]["runs_uri"], owner="ds-team", risk_level="high",
                     training_data_hash="sha256:abc", description="churn model", version_tags={"team": "ds"})
    assert first["changed"] is True and first["version"] == "1"
    version = client.get_version("reg-idem", "1")
    assert version["source"] == trained["good"]["model_uri"]
    assert version["run_id"] == trained["run_id"]
    tags = tag_dict(version)
    assert tags["governance.owner"] == "ds-team" and tags["governance.risk_level"] == "high"
    assert tags["governance.training_data_hash"] == "sha256:abc" and tags["team"] == "ds"
    assert client.get_model("reg-idem")["description"] == "churn model"
    second = register(run_module, mlflow_server, "reg-idem", trained["good"]["runs_uri"], owner="ds-team", risk_level="high",
                      training_data_hash="sha256:abc", description="churn model", version_tags={"team": "ds"})
    assert second["changed"] is False and second["version"] == "1" and second["actions"] == []
    assert len(client.search_versions("reg-idem")) == 1


def test_promote_repromote_rollback(run_module, mlflow_server, trained, client):  # noqa: F811
    name = "promo"
    register(run_module, mlflow_server, name, trained["good"]["runs_uri"])
    register(run_module, mlflow_server, name, trained["weak"]["runs_uri"])
    for version in ("1", "2"):
        mark_validated(client, name, version)
    approvals = [{"approver": "alice", "comment": "CHG-1"}, {"approver": "bob"}]
    gate = dict(required_approvers=["alice", "bob"], approvals=approvals, alias="production")

    first = run_module(mlflow_model, args(mlflow_server, name=name, version="1", **gate), diff=True)
    assert first["failed"] is False, first.get("msg")
    assert first["changed"] is True and first["previous_version"] is None
    assert first["diff"]["before"]["aliases"] == {} and first["diff"]["after"]["aliases"] == {"production": "1"}
    assert first["audit_entry"]["action"] == "alias production None -> 1"
    assert json.loads(tag_dict(client.get_version(name, "1"))["governance.approvals"]) == {"alice": "CHG-1", "bob": "approved"}

    again = run_module(mlflow_model, args(mlflow_server, name=name, version="1", **gate))
    assert again["changed"] is False and again["actions"] == [] and again["audit_entry"] is None

    second = run_module(mlflow_model, args(mlflow_server, name=name, version="2", actor="ci", **gate), diff=True)
    assert second["changed"] is True and second["previous_version"] == "1" and second["version"] == "2"
    assert second["diff"]["before"]["aliases"]["production"] == "1"
    assert second["diff"]["after"]["aliases"]["production"] == "2"
    assert second["diff"]["after"]["tags"]["governance.alias.production.previous"] == "1"
    assert second["audit_entry"]["event_type"] == "model_promotion" and second["audit_entry"]["action"] == "alias production 1 -> 2"
    model = client.get_model(name)
    assert alias_dict(model) == {"production": "2"}
    assert tag_dict(model)["governance.alias.production.previous"] == "1"
    promoted = json.loads(tag_dict(client.get_version(name, "2"))["governance.promoted.production"])
    assert promoted == {"by": "ci", "previous_version": "1", "forced": False}

    checked = run_module(mlflow_model, args(mlflow_server, name=name, alias="production", state="rolled_back"), check_mode=True, diff=True)
    assert checked["changed"] is True and checked["version"] == "1"
    assert alias_dict(client.get_model(name)) == {"production": "2"}

    back = run_module(mlflow_model, args(mlflow_server, name=name, alias="production", state="rolled_back"), diff=True)
    assert back["changed"] is True and back["version"] == "1" and back["previous_version"] == "2"
    assert back["diff"]["before"]["aliases"]["production"] == "2" and back["diff"]["after"]["aliases"]["production"] == "1"
    assert back["audit_entry"]["event_type"] == "model_rollback"
    model = client.get_model(name)
    assert alias_dict(model) == {"production": "1"}
    assert tag_dict(model)["governance.alias.production.rolled_back_from"] == "2"
    again = run_module(mlflow_model, args(mlflow_server, name=name, alias="production", state="rolled_back"))
    assert again["changed"] is False and again["version"] == "1"


def test_gate_refuses_missing_approvals_and_failed_validation(run_module, mlflow_server, trained, client):  # noqa: F811
    name = "gated"
    register(run_module, mlflow_server, name, trained["good"]["runs_uri"])
    result = run_module(mlflow_model, args(mlflow_server, name=name, version="1", alias="production",
                                           required_approvers=["alice", "bob"], approvals=[{"approver": "alice"}],
                                           required_metadata=["owner"]))
    assert result["failed"] is True
    assert result["msg"] == ("promotion of gated version 1 to protected alias 'production' refused: no validation report on the "
                             "version (tag validation.passed); missing approvals from: bob; missing governance metadata: owner "
                             "(force: true overrides, and is recorded)")
    assert result["gate"]["missing_approvers"] == ["bob"]
    # Nothing written: not even alice's approval.
    assert "governance.approvals" not in tag_dict(client.get_version(name, "1"))
    assert alias_dict(client.get_model(name)) == {}

    mark_validated(client, name, "1", passed=False)
    failing = run_module(mlflow_model, args(mlflow_server, name=name, version="1", alias="production"))
    assert failing["failed"] is True
    assert "the validation report on the version did not pass" in failing["msg"]

    # An unprotected alias is not gated.
    staging = run_module(mlflow_model, args(mlflow_server, name=name, version="1", alias="staging"))
    assert staging["failed"] is False and staging["changed"] is True and staging["gate"]["protected"] is False

    forced = run_module(mlflow_model, args(mlflow_server, name=name, version="1", alias="production", force=True,
                                           force_reason="incident 42", actor="oncall"))
    assert forced["failed"] is False and forced["changed"] is True
    tags = tag_dict(client.get_version(name, "1"))
    assert json.loads(tags["governance.forced.production"]) == {
        "by": "oncall", "reason": "incident 42", "missing": ["the validation report on the version did not pass"]}
    assert json.loads(tags["governance.promoted.production"])["forced"] is True
    assert alias_dict(client.get_model(name))["production"] == "1"


def test_check_mode_changes_nothing(run_module, mlflow_server, trained, client):  # noqa: F811
    result = run_module(mlflow_model, args(mlflow_server, name="checked", source=trained["good"]["runs_uri"], alias="staging",
                                           owner="x"), check_mode=True, diff=True)
    assert result["failed"] is False and result["changed"] is True
    assert result["version"] is None
    assert result["actions"][:2] == ["create_model", "create_version"]
    assert result["diff"]["after"]["aliases"] == {"staging": "(new)"}
    assert client.get_model("checked") is None


def test_errors(run_module, mlflow_server, trained):  # noqa: F811
    wrong = run_module(mlflow_model, dict(tracking_uri=mlflow_server.url, username="admin", password="wrong", name="promo"))
    assert wrong["failed"] is True
    assert wrong["msg"] == "MLflow at %s rejected the credentials (HTTP 401): check username/password or token" % mlflow_server.url
    down = run_module(mlflow_model, dict(tracking_uri="http://127.0.0.1:9", name="x"))
    assert down["msg"] == "tracking_uri: cannot reach MLflow at http://127.0.0.1:9: ConnectionError"
    unknown = run_module(mlflow_model, args(mlflow_server, name="no-such-model", version="1"))
    assert unknown["msg"] == "name: registered model 'no-such-model' not found (version 1 was asked for)"
    register(run_module, mlflow_server, "errs", trained["good"]["runs_uri"])
    missing = run_module(mlflow_model, args(mlflow_server, name="errs", version="7", alias="staging"))
    assert missing["msg"] == "version: registered model 'errs' has no version 7"
    bad_version = run_module(mlflow_model, args(mlflow_server, name="errs", version="seven"))
    assert bad_version["msg"] == "version: 'seven' is not a model version number"
    no_prev = run_module(mlflow_model, args(mlflow_server, name="errs", alias="production", state="rolled_back"))
    assert no_prev["msg"].startswith("alias: no previous version recorded for alias 'production' of model 'errs'")
    gone = run_module(mlflow_model, args(mlflow_server, name="gone", alias="production", state="rolled_back"))
    assert gone["msg"] == "name: registered model 'gone' not found"
    bad_run = run_module(mlflow_model, args(mlflow_server, name="errs", source="runs:/%s/nothing" % trained["run_id"]))
    assert bad_run["msg"] == "source: run %s has no logged model named 'nothing' (runs:/%s/nothing)" % (trained["run_id"], trained["run_id"])
    bad_alias = run_module(mlflow_model, args(mlflow_server, name="errs", version="1", alias="prod uction"))
    assert bad_alias["msg"].startswith("alias: 'prod uction' is not a valid alias")
    no_uri = run_module(mlflow_model, dict(name="x", tracking_uri=""))
    assert no_uri["msg"] == "tracking_uri: required (or set MLFLOW_TRACKING_URI)"
    both = run_module(mlflow_model, args(mlflow_server, name="x", token="t"))
    assert both["failed"] is True and "mutually exclusive" in both["msg"]
    secret = run_module(mlflow_model, dict(tracking_uri=mlflow_server.url, username="admin", password="s3cr3t-value", name="x"))
    assert "s3cr3t-value" not in json.dumps(secret)
