# -*- coding: utf-8 -*-
"""Token auth and the TLS-verification switch, for both registry modules.

The real MLflow server sits behind a TLS reverse proxy that takes bearer tokens
(tests/unit/plugins/mlflow_server.py: Gateway); its certificate is self-signed.
"""

import json

from ansible_collections.runlocalai.mlops.plugins.modules import mlflow_model, model_validation
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: F401 pylint: disable=unused-import
    mlflow_server, tls_gateway, trained)


def via_gateway(gateway, **extra):
    value = dict(tracking_uri=gateway.url, token=gateway.TOKEN, ca_path=gateway.ca_path)
    value.update(extra)
    return value


def test_token_over_verified_tls_registers_promotes_and_rolls_back(run_module, tls_gateway, trained):  # noqa: F811
    seen = tls_gateway.requests_seen
    first = run_module(mlflow_model, via_gateway(tls_gateway, name="tok", source=trained["good"]["runs_uri"]))
    assert first["failed"] is False, first.get("msg")
    assert first["changed"] is True and first["version"] == "1"
    assert tls_gateway.requests_seen > seen  # went through the token-checking proxy
    run_module(mlflow_model, via_gateway(tls_gateway, name="tok", source=trained["weak"]["runs_uri"]))
    for version in ("1", "2"):
        moved = run_module(mlflow_model, via_gateway(tls_gateway, name="tok", version=version, alias="staging"))
        assert moved["failed"] is False and moved["changed"] is True, moved.get("msg")
    again = run_module(mlflow_model, via_gateway(tls_gateway, name="tok", version="2", alias="staging"))
    assert again["changed"] is False
    back = run_module(mlflow_model, via_gateway(tls_gateway, name="tok", alias="staging", state="rolled_back"))
    assert back["failed"] is False and back["version"] == "1", back.get("msg")


def test_model_validation_loads_the_model_through_the_gateway(run_module, tls_gateway, trained, tmp_path):  # noqa: F811
    data = tmp_path / "eval.csv"
    trained["evaluation"].drop(columns=["group"]).to_csv(data, index=False)
    run_module(mlflow_model, via_gateway(tls_gateway, name="tok-gate", source=trained["good"]["runs_uri"]))
    result = run_module(model_validation, via_gateway(tls_gateway, model_uri="models:/tok-gate/1", data_path=str(data),
                                                      label_column="label", latency_samples=3, thresholds={"accuracy": ">=0.85"}))
    assert result["failed"] is False, result.get("msg")
    assert result["passed"] is True and result["metrics"]["accuracy"] >= 0.85


def test_tls_verification_switch(run_module, tls_gateway, trained):  # noqa: F811
    unverified = via_gateway(tls_gateway, name="tls-switch", ca_path=None)
    refused = run_module(mlflow_model, unverified)
    assert refused["failed"] is True
    assert refused["msg"].startswith("tracking_uri: TLS verification failed for %s (set ca_path, or validate_certs: false)" % tls_gateway.url)
    insecure = run_module(mlflow_model, dict(unverified, validate_certs=False, source=trained["good"]["runs_uri"]))
    assert insecure["failed"] is False and insecure["version"] == "1", insecure.get("msg")
    gate = run_module(model_validation, dict(via_gateway(tls_gateway, ca_path=None), model_uri="models:/tls-switch/1", data_path="/nonexistent.csv",
                                             label_column="label"))
    assert gate["failed"] is True and "TLS verification failed" in gate["msg"]


def test_wrong_or_missing_token_is_a_clear_error(run_module, tls_gateway):  # noqa: F811
    for token in ("not-the-token", None):
        result = run_module(mlflow_model, via_gateway(tls_gateway, name="x", token=token))
        assert result["failed"] is True
        assert result["msg"] == "MLflow at %s rejected the credentials (HTTP 401): check username/password or token" % tls_gateway.url
        assert "not-the-token" not in json.dumps(result)
