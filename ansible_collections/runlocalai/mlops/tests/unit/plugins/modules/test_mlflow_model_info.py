# -*- coding: utf-8 -*-
"""mlflow_model_info against a real MLflow server (basic-auth app) on loopback, through Ansible's open_url."""

import hashlib
import json
import os
import stat

import pytest
import requests

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryClient
from ansible_collections.runlocalai.mlops.plugins.modules import mlflow_model_info
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: F401 pylint: disable=unused-import
    ADMIN, ADMIN_PASSWORD, mlflow_server, tls_gateway)

PROFILE = json.dumps({"format": "runlocalai.drift/1", "features": {"f0": {"mean": 1.5}}}, sort_keys=True).encode()
READER, READER_PASSWORD = "info-reader", "info-reader-password-1"


@pytest.fixture(scope="module")
def registry(mlflow_server):  # noqa: F811
    """Model info-m: v1 from a run with drift/reference_profile.json, v2 from a run without it; alias production -> 1,
    staging -> 2; a tag on the model. And a user without admin rights."""
    client = RegistryClient(**mlflow_server.auth())
    auth = (ADMIN, ADMIN_PASSWORD)
    api = mlflow_server.url + "/api/2.0/mlflow/"
    experiment = requests.post(api + "experiments/create", json={"name": "info-tests"}, auth=auth, timeout=30).json()["experiment_id"]
    runs = [requests.post(api + "runs/create", json={"experiment_id": experiment}, auth=auth, timeout=30).json()["run"]["info"]["run_id"]
            for dummy in range(2)]
    # The artifact, uploaded as MLflow's client does with proxied artifacts.
    upload = requests.put("%s/api/2.0/mlflow-artifacts/artifacts/%s/%s/artifacts/drift/reference_profile.json" % (
        mlflow_server.url, experiment, runs[0]), data=PROFILE, auth=auth, timeout=30)
    assert upload.status_code == 200, upload.text
    client.create_model("info-m", tags={"team": "ds"})
    for run in runs:
        client.create_version("info-m", "mlflow-artifacts:/%s/%s/artifacts/model" % (experiment, run), run_id=run)
    client.set_version_tag("info-m", "1", "validation.passed", "true")
    client.set_alias("info-m", "production", "1")
    client.set_alias("info-m", "staging", "2")
    created = requests.post(api + "users/create", json={"username": READER, "password": READER_PASSWORD}, auth=auth, timeout=30)
    assert created.status_code == 200, created.text
    return {"runs": runs}


def args(server, **extra):
    value = dict(server.auth())
    value.update(extra)
    return value


def test_found_by_alias(run_module, mlflow_server, registry):  # noqa: F811
    result = run_module(mlflow_model_info, args(mlflow_server, name="info-m", alias="production"), check_mode=True)
    assert result["failed"] is False, result.get("msg")
    assert result["changed"] is False and result["state"] == "found" and result["status"] == 200
    version = result["version"]
    assert version["version"] == "1" and version["run_id"] == registry["runs"][0] and version["status"] == "READY"
    assert version["source"].endswith("/artifacts/model") and version["tags"] == {"validation.passed": "true"}
    assert version["aliases"] == ["production"]
    assert result["aliases"] == {"production": "1", "staging": "2"} and result["model_tags"] == {"team": "ds"}
    assert result["msg"] == "registered model 'info-m' version 1 (alias 'production')"


def test_found_by_version_and_model_only(run_module, mlflow_server, registry):  # noqa: F811
    result = run_module(mlflow_model_info, args(mlflow_server, name="info-m", version="2"))
    assert result["failed"] is False and result["state"] == "found"
    assert result["version"]["version"] == "2" and result["version"]["run_id"] == registry["runs"][1]
    assert result["version"]["aliases"] == ["staging"] and result["version"]["tags"] == {}
    model = run_module(mlflow_model_info, args(mlflow_server, name="info-m"))
    assert model["failed"] is False and model["state"] == "found" and model["version"] is None
    assert model["aliases"] == {"production": "1", "staging": "2"}


def test_missing_model(run_module, mlflow_server, registry):  # noqa: F811
    result = run_module(mlflow_model_info, args(mlflow_server, name="info-none", alias="production"))
    assert result["failed"] is True and result["state"] == "missing" and result["status"] == 404
    assert result["msg"] == (
        "registered model 'info-none' does not exist at %s (HTTP 404: Registered Model with name=info-none not found). "
        "Register it (or set the alias) first, or set missing_ok: true to skip the entry until it is deployed" % mlflow_server.url)
    ok = run_module(mlflow_model_info, args(mlflow_server, name="info-none", alias="production", missing_ok=True))
    assert ok["failed"] is False and ok["changed"] is False and ok["state"] == "missing" and ok["what"] == "does not exist"
    assert ok["version"] is None and ok["aliases"] == {} and ok["model_tags"] == {}


def test_missing_model_seen_by_a_user_gets_403_and_a_search(run_module, mlflow_server, registry):  # noqa: F811
    """MLflow's basic-auth app answers 403 (not 404) to a non-admin for a model that does not exist."""
    reader = dict(tracking_uri=mlflow_server.url, username=READER, password=READER_PASSWORD)
    result = run_module(mlflow_model_info, dict(reader, name="info-none", alias="production", missing_ok=True))
    assert result["failed"] is False and result["state"] == "missing" and result["status"] == 403
    assert result["what"] == ("does not exist (the registry answers 403 for it, and a search by name does not show it to "
                              "%s)" % READER)
    found = run_module(mlflow_model_info, dict(reader, name="info-m", alias="staging"))
    assert found["failed"] is False and found["state"] == "found" and found["version"]["version"] == "2"


def test_missing_alias_and_missing_version(run_module, mlflow_server, registry):  # noqa: F811
    alias = run_module(mlflow_model_info, args(mlflow_server, name="info-m", alias="canary"))
    assert alias["failed"] is True and alias["state"] == "missing" and alias["status"] == 400
    assert alias["msg"].startswith("registered model 'info-m' has no alias 'canary' at %s (HTTP 400: Registered model alias "
                                   "canary not found). Register it" % mlflow_server.url)
    version = run_module(mlflow_model_info, args(mlflow_server, name="info-m", version="7", missing_ok=True))
    assert version["failed"] is False and version["state"] == "missing" and version["what"] == "has no version '7'"
    assert version["status"] == 404
    bad = run_module(mlflow_model_info, args(mlflow_server, name="info-m", version="seven"))
    assert bad["failed"] is True and bad["msg"] == "version: 'seven' is not a model version number"


def test_wrong_password_unreachable_and_role_names(run_module, mlflow_server, registry):  # noqa: F811
    wrong = run_module(mlflow_model_info, dict(tracking_uri=mlflow_server.url, username=ADMIN, password="wrong-password-1",
                                               name="info-m", alias="production", missing_ok=True))
    assert wrong["failed"] is True and wrong["state"] == "unauthenticated" and wrong["status"] == 401
    assert wrong["msg"] == ("the tracking server at %s did not accept the credentials of user 'admin' (HTTP 401) reading "
                            "registered model 'info-m': check username and password" % mlflow_server.url)
    assert "wrong-password-1" not in json.dumps(wrong)
    names = {"username": "model_server_tracking_username", "password": "model_server_tracking_password",
             "tracking_uri": "model_server_tracking_uri"}
    anonymous = run_module(mlflow_model_info, dict(tracking_uri=mlflow_server.url + "/", username="", password="",
                                                   name="info-m", alias="production", setting_names=names))
    assert anonymous["state"] == "unauthenticated"
    assert anonymous["msg"] == ("the tracking server at %s did not accept the credentials of an anonymous client (HTTP 401) "
                                "reading registered model 'info-m': check model_server_tracking_username and "
                                "model_server_tracking_password" % mlflow_server.url)
    down = run_module(mlflow_model_info, dict(tracking_uri="http://127.0.0.1:9", name="info-m", version="1", setting_names=names))
    assert down["failed"] is True and down["state"] == "unreachable" and down["status"] == -1
    assert down["msg"].startswith("could not reach the tracking server at http://127.0.0.1:9 (model_server_tracking_uri) to read "
                                  "registered model 'info-m': Request failed: <urlopen error")


def test_artifact_download_changed_unchanged_check_mode(run_module, mlflow_server, registry, tmp_path):  # noqa: F811
    dest = tmp_path / "reference_profile.json"
    base = args(mlflow_server, name="info-m", alias="production", artifact_path="drift/reference_profile.json",
                dest=str(dest), mode="0640")
    checked = run_module(mlflow_model_info, base, check_mode=True, diff=True)
    assert checked["failed"] is False, checked.get("msg")
    assert checked["changed"] is True and checked["artifact_found"] is True and not dest.exists()
    digest = hashlib.sha256(PROFILE).hexdigest()
    assert checked["artifact_sha256"] == digest
    assert checked["diff"]["before"] == "" and checked["diff"]["after"] == "sha256:%s (%d bytes)\n" % (digest, len(PROFILE))
    first = run_module(mlflow_model_info, base, diff=True)
    assert first["changed"] is True and first["dest"] == str(dest)
    assert dest.read_bytes() == PROFILE and stat.S_IMODE(os.stat(dest).st_mode) == 0o640
    second = run_module(mlflow_model_info, base, diff=True)
    assert second["changed"] is False and second["diff"]["before"] == second["diff"]["after"]
    assert run_module(mlflow_model_info, base, check_mode=True)["changed"] is False
    # Another mode is a change of the file's attributes, not of its content.
    assert run_module(mlflow_model_info, dict(base, mode="0600"))["changed"] is True
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    # Different content on disk: rewritten (check mode first: left as it is).
    dest.write_bytes(b"{}")
    assert run_module(mlflow_model_info, dict(base, mode="0600"), check_mode=True)["changed"] is True
    assert dest.read_bytes() == b"{}"
    assert run_module(mlflow_model_info, dict(base, mode="0600"))["changed"] is True
    assert dest.read_bytes() == PROFILE
    # Check mode, in a directory an earlier task of the run would create: a change, nothing written.
    later = tmp_path / "later" / "reference_profile.json"
    planned = run_module(mlflow_model_info, dict(base, dest=str(later)), check_mode=True)
    assert planned["failed"] is False and planned["changed"] is True and not later.parent.exists()


def test_artifact_missing_is_not_a_failure(run_module, mlflow_server, registry, tmp_path):  # noqa: F811
    dest = tmp_path / "reference_profile.json"
    dest.write_bytes(b"kept")
    result = run_module(mlflow_model_info, args(mlflow_server, name="info-m", version="2", artifact_path="drift/reference_profile.json",
                                                dest=str(dest)))
    assert result["failed"] is False, result.get("msg")
    assert result["changed"] is False and result["state"] == "found" and result["artifact_found"] is False
    assert dest.read_bytes() == b"kept"
    other = run_module(mlflow_model_info, args(mlflow_server, name="info-m", alias="production", artifact_path="nothing/here.json",
                                               dest=str(dest)))
    assert other["failed"] is False and other["artifact_found"] is False


def test_artifact_of_the_model_version_itself(run_module, mlflow_server, registry, tmp_path):  # noqa: F811
    """artifact_source=model_version reads the version's own files (/model-versions/get-artifact), which is where
    MLflow 3 keeps a logged model's requirements.txt; the run's artifacts (the default) do not have them there."""
    auth = (ADMIN, ADMIN_PASSWORD)
    experiment = requests.get(mlflow_server.url + "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "info-tests"},
                              auth=auth, timeout=30).json()["experiment"]["experiment_id"]
    upload = requests.put("%s/api/2.0/mlflow-artifacts/artifacts/%s/%s/artifacts/model/requirements.txt" % (
        mlflow_server.url, experiment, registry["runs"][0]), data=b"mlflow==3.17.2\nscikit-learn==1.9.1\n", auth=auth, timeout=30)
    assert upload.status_code == 200, upload.text
    dest = tmp_path / "requirements.txt"
    base = args(mlflow_server, name="info-m", version="1", artifact_path="requirements.txt", dest=str(dest))
    from_run = run_module(mlflow_model_info, base)
    assert from_run["failed"] is False and from_run["artifact_found"] is False and not dest.exists()
    found = run_module(mlflow_model_info, dict(base, artifact_source="model_version"))
    assert found["failed"] is False, found.get("msg")
    assert found["artifact_found"] is True and found["changed"] is True
    assert dest.read_bytes() == b"mlflow==3.17.2\nscikit-learn==1.9.1\n"
    missing = run_module(mlflow_model_info, dict(base, artifact_source="model_version", artifact_path="conda.yaml",
                                                 dest=str(tmp_path / "conda.yaml")))
    assert missing["failed"] is False and missing["artifact_found"] is False
    other = run_module(mlflow_model_info, dict(base, artifact_source="nowhere"))
    assert other["failed"] is True and "artifact_source" in other["msg"]


def test_bad_inputs(run_module, mlflow_server, registry, tmp_path):  # noqa: F811
    cases = [
        (dict(alias="production", version="1"), "parameters are mutually exclusive: alias|version"),
        (dict(artifact_path="drift/reference_profile.json"), "parameters are required together: artifact_path, dest"),
        (dict(artifact_path="x.json", dest=str(tmp_path / "x.json")), "artifact_path: needs alias or version"),
        (dict(version="1", artifact_path="drift/reference_profile.json", dest=str(tmp_path / "no" / "x.json")),
         "dest: directory %s does not exist" % (tmp_path / "no")),
        (dict(version="1", artifact_path="drift/reference_profile.json", dest=str(tmp_path)), "dest: %s is a directory" % tmp_path),
        (dict(tracking_uri="mlflow.internal"), "tracking_uri: 'mlflow.internal' is not an http(s) URL"),
        (dict(token="t"), "parameters are mutually exclusive: token|username"),
    ]
    for extra, message in cases:
        result = run_module(mlflow_model_info, args(mlflow_server, name="info-m", **extra))
        assert result["failed"] is True, extra
        assert message in result["msg"], (extra, result["msg"])


def test_token_and_ca_path_through_the_tls_gateway(run_module, tls_gateway, registry):  # noqa: F811
    base = dict(tracking_uri=tls_gateway.url, token=tls_gateway.TOKEN, name="info-m", alias="production")
    result = run_module(mlflow_model_info, dict(base, ca_path=tls_gateway.ca_path))
    assert result["failed"] is False and result["state"] == "found" and result["version"]["version"] == "1", result.get("msg")
    unverified = run_module(mlflow_model_info, base)
    assert unverified["failed"] is True and unverified["state"] == "unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in unverified["msg"] or "certificate" in unverified["msg"].lower()
    insecure = run_module(mlflow_model_info, dict(base, validate_certs=False))
    assert insecure["state"] == "found"
    wrong = run_module(mlflow_model_info, dict(base, ca_path=tls_gateway.ca_path, token="not-the-token"))
    assert wrong["state"] == "unauthenticated" and wrong["msg"].endswith("check token")
    assert "not-the-token" not in json.dumps(wrong)


def test_the_default_requests_transport_gives_the_same_verdicts(run_module, mlflow_server, registry):  # noqa: F811
    from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.lookup import RegistryReader

    reader = RegistryReader(mlflow_server.url, username=ADMIN, password=ADMIN_PASSWORD)  # requests, not open_url
    for kwargs in (dict(alias="production"), dict(alias="canary"), dict(version="7"), dict()):
        direct = reader.lookup("info-m", **kwargs)
        module = run_module(mlflow_model_info, args(mlflow_server, name="info-m", missing_ok=True, **kwargs))
        for key in ("state", "what", "status", "detail", "msg", "version", "aliases", "model_tags"):
            assert direct[key] == module[key], (kwargs, key)
    reader_user = RegistryReader(mlflow_server.url, username=READER, password=READER_PASSWORD)
    assert reader_user.lookup("info-none", alias="production")["state"] == "missing"
    wrong = RegistryReader(mlflow_server.url, username=ADMIN, password="wrong-password-1").lookup("info-m")
    assert wrong["state"] == "unauthenticated"
