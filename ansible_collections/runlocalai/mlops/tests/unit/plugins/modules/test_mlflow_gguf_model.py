# -*- coding: utf-8 -*-
"""mlflow_gguf_model against a real MLflow server (basic-auth app) on loopback, with tiny GGUF files."""

import json
import os

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import gguf, registration
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryClient, alias_dict, tag_dict
from ansible_collections.runlocalai.mlops.plugins.modules import drift_check, mlflow_gguf_model
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.gguf_files import write_gguf
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import mlflow_server  # noqa: F401 pylint: disable=unused-import


@pytest.fixture
def client(mlflow_server):  # noqa: F811
    return RegistryClient(**mlflow_server.auth())


def args(server, **extra):
    value = dict(server.auth())
    value.update(extra)
    return value


def download(client, run_id, path):
    info = client.call("GET", "runs/get", params={"run_id": run_id})["run"]["info"]
    proxied = info["artifact_uri"].split("mlflow-artifacts:/", 1)[1].strip("/")
    response = client.session.get("%s/api/2.0/mlflow-artifacts/artifacts/%s/%s" % (client.base, proxied, path), timeout=30)
    assert response.status_code == 200, response.text[:300]
    return response.content


def test_register_once_per_file_content(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    path = tmp_path / "tiny-llama.Q8_0.gguf"
    write_gguf(path, seed=1)
    meta = gguf.read_metadata(str(path))
    # Its own experiment: the session's server is shared with other files' registrations (in the default experiment).
    first = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-once", path=str(path), description="tiny test model",
                                               tags={"team": "nlp"}, experiment_name="llm-once"))
    assert first["failed"] is False, first.get("msg")
    assert first["changed"] is True and first["version"] == "1" and first["run_id"]
    assert first["artifact_path"] == "model/tiny-llama.Q8_0.gguf"
    assert first["metadata"] == meta
    assert first["actions"][:4] == ["create_experiment", "create_run", "log_artifact model/tiny-llama.Q8_0.gguf", "log_artifact model/llm.json"]

    version = client.get_version("llm-once", "1")
    tags = tag_dict(version)
    assert tags["llm.sha256"] == meta["sha256"] and tags["llm.layers"] == "2" and tags["llm.format"] == "gguf"
    assert tags["team"] == "nlp" and tags["llm.artifact_path"] == "model/tiny-llama.Q8_0.gguf"
    assert gguf.metadata_from_tags(tags) == meta
    assert version["run_id"] == first["run_id"] and version["description"] == "tiny test model"
    assert version["source"] == first["source"] and version["source"].endswith("/artifacts/model")
    # The run holds the file, byte for byte, and its metadata; its tags carry the metadata too.
    assert download(client, first["run_id"], "model/tiny-llama.Q8_0.gguf") == path.read_bytes()
    assert json.loads(download(client, first["run_id"], "model/llm.json").decode()) == meta
    run = client.call("GET", "runs/get", params={"run_id": first["run_id"]})["run"]
    assert run["info"]["status"] == "FINISHED"
    assert dict((t["key"], t["value"]) for t in run["data"]["tags"])["llm.sha256"] == meta["sha256"]

    again = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-once", path=str(path)))
    assert again["failed"] is False and again["changed"] is False
    assert again["version"] == "1" and again["run_id"] == first["run_id"] and again["actions"] == []
    assert len(client.search_versions("llm-once")) == 1

    # Another file (other weights) is a new version; the experiment is there now.
    other = tmp_path / "tiny-llama.Q4_0.gguf"
    write_gguf(other, seed=2)
    second = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-once", path=str(other), experiment_name="llm-once"))
    assert second["changed"] is True and second["version"] == "2"
    assert second["actions"] == ["create_run", "log_artifact model/tiny-llama.Q4_0.gguf", "log_artifact model/llm.json",
                                 "create_version"]


def test_alias_on_a_new_and_on_a_found_version(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    path = tmp_path / "aliased.gguf"
    write_gguf(path, seed=3)
    first = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-alias", path=str(path), alias="staging"))
    assert first["changed"] is True and first["version"] == "1"
    assert alias_dict(client.get_model("llm-alias")) == {"staging": "1"}
    same = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-alias", path=str(path), alias="staging"))
    assert same["changed"] is False
    moved = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-alias", path=str(path), alias="candidate"))
    assert moved["changed"] is True and moved["actions"] == ["set_alias"] and moved["version"] == "1"
    assert alias_dict(client.get_model("llm-alias")) == {"staging": "1", "candidate": "1"}


def test_check_mode_creates_nothing(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    path = tmp_path / "checked.gguf"
    write_gguf(path, seed=4)
    result = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-checked", path=str(path), alias="staging",
                                                experiment_name="llm-checked-runs"), check_mode=True)
    assert result["failed"] is False and result["changed"] is True
    assert result["version"] is None and result["run_id"] is None
    assert result["actions"] == ["create_experiment", "create_run", "log_artifact model/checked.gguf", "log_artifact model/llm.json",
                                 "create_model", "create_version", "set_alias"]
    assert result["metadata"]["sha256"] == gguf.file_sha256(str(path))
    assert client.get_model("llm-checked") is None
    with pytest.raises(Exception):
        client.call("GET", "experiments/get-by-name", params={"experiment_name": "llm-checked-runs"})


def test_bad_path_and_tags_name_the_parameter(run_module, mlflow_server, tmp_path):  # noqa: F811
    missing = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-bad", path=str(tmp_path / "absent.gguf")))
    assert missing["failed"] is True and missing["msg"] == "path: %s: no such file" % (tmp_path / "absent.gguf")
    text = tmp_path / "model.safetensors"
    text.write_bytes(b"\x08\x00\x00\x00{}      ")
    wrong = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-bad", path=str(text)))
    assert wrong["failed"] is True
    assert wrong["msg"] == "path: %s is not a GGUF file (it starts with b'\\x08\\x00\\x00\\x00', a GGUF file with b'GGUF')" % text
    path = tmp_path / "ok.gguf"
    write_gguf(path, seed=5)
    clash = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-bad", path=str(path), tags={"llm.layers": "99"}))
    assert clash["failed"] is True and clash["msg"] == "tags: llm.layers use the prefix llm., which holds the file's own metadata"
    alias = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-bad", path=str(path), alias="v2"))
    assert alias["failed"] is True and alias["msg"].startswith("alias: 'v2' is not a valid alias")
    wrong_password = run_module(mlflow_gguf_model, dict(tracking_uri=mlflow_server.url, username="admin", password="wrong",
                                                        name="llm-bad", path=str(path)))
    assert wrong_password["failed"] is True
    assert wrong_password["msg"] == "MLflow at %s rejected the credentials (HTTP 401): check username/password or token" % mlflow_server.url


def test_a_store_the_server_does_not_serve_is_written_with_mlflow(run_module, mlflow_server, client, tmp_path, monkeypatch):  # noqa: F811
    """Artifacts outside the proxy (s3://, a shared path) go through the mlflow library, with the module's credentials."""
    monkeypatch.setattr(registration, "_proxied_path", lambda uri: None)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "via-mlflow.gguf"
    write_gguf(path, seed=6)
    result = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-via-mlflow", path=str(path)))
    assert result["failed"] is False, result.get("msg")
    assert result["changed"] is True and result["version"] == "1"
    assert download(client, result["run_id"], "model/via-mlflow.gguf") == path.read_bytes()
    assert json.loads(download(client, result["run_id"], "model/llm.json").decode())["sha256"] == result["metadata"]["sha256"]
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ  # put back as it was


def usage_profile(run_module, tmp_path, name, prompt_tokens):
    """A drift reference profile of usage records (drift_check builds it, as an operator would)."""
    data = tmp_path / (name + ".csv")
    data.write_text("prompt_tokens,completion_tokens\n" + "".join("%d,%d\n" % (p, 8 + p % 5) for p in prompt_tokens))
    profile = tmp_path / (name + ".json")
    result = run_module(drift_check, {"reference": str(data), "profile_path": str(profile)})
    assert result["failed"] is False, result.get("msg")
    return profile


def test_a_reference_profile_goes_with_the_version(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    path = tmp_path / "tiny-llama.Q8_0.gguf"
    write_gguf(path, seed=11)
    profile = usage_profile(run_module, tmp_path, "usage", range(20, 80))
    digest = json.loads(profile.read_text())["content_hash"]
    first = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-profile", path=str(path), reference_profile=str(profile)))
    assert first["failed"] is False, first.get("msg")
    assert "log_artifact drift/reference_profile.json" in first["actions"]
    assert download(client, first["run_id"], "drift/reference_profile.json") == profile.read_bytes()
    assert tag_dict(client.get_version("llm-profile", first["version"]))["drift.reference_profile"] == digest

    again = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-profile", path=str(path), reference_profile=str(profile)))
    assert again["changed"] is False and again["actions"] == []

    # Another profile for the same file: uploaded to the version's run, the tag follows (check mode first).
    other = usage_profile(run_module, tmp_path, "usage-long", range(200, 260))
    checked = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-profile", path=str(path), reference_profile=str(other)),
                         check_mode=True)
    assert checked["changed"] is True and checked["actions"] == ["log_artifact drift/reference_profile.json"]
    assert download(client, first["run_id"], "drift/reference_profile.json") == profile.read_bytes()
    moved = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-profile", path=str(path), reference_profile=str(other)))
    assert moved["changed"] is True and moved["version"] == first["version"]
    assert download(client, first["run_id"], "drift/reference_profile.json") == other.read_bytes()
    assert tag_dict(client.get_version("llm-profile", first["version"]))["drift.reference_profile"] == json.loads(other.read_text())["content_hash"]


def test_a_bad_reference_profile_is_refused_before_anything_is_written(run_module, mlflow_server, client, tmp_path):  # noqa: F811
    path = tmp_path / "tiny-llama.Q8_0.gguf"
    write_gguf(path, seed=12)
    broken = tmp_path / "profile.json"
    broken.write_text('{"format": "something else"}')
    for profile, message in ((broken, "is not a drift reference profile"), (tmp_path / "none.json", "cannot read profile")):
        result = run_module(mlflow_gguf_model, args(mlflow_server, name="llm-bad-profile", path=str(path), reference_profile=str(profile)))
        assert result["failed"] is True and result["msg"].startswith("reference_profile: ") and message in result["msg"], result["msg"]
    assert client.get_model("llm-bad-profile") is None
