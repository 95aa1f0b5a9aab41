# -*- coding: utf-8 -*-
"""The registry lookup's judgement on recorded MLflow answers (MLflow 3.17, basic-auth app), no server.

The answers below were recorded from a real server; the messages are those the model_server role
gave (docs/model_server.md, "A model not in the registry yet").
"""

import json

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow import lookup
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.lookup import (
    Answer,
    RegistryReader,
    detail_of,
    failure_message,
    judge,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import RegistryError

BASE = "https://mlflow.internal"
ROLE_NAMES = {"tracking_uri": "model_server_tracking_uri", "username": "model_server_tracking_username",
              "password": "model_server_tracking_password", "missing_ok": "model_server_allow_missing_model"}

VERSION = {"name": "churn", "version": "3", "creation_timestamp": 1796558096695, "last_updated_timestamp": 1796558096695,
           "current_stage": "None", "description": "", "source": "models:/m-1a2b", "run_id": "d67581b7f7aa4780a5e779db18af2580",
           "status": "READY", "run_link": "", "aliases": ["production"], "tags": [{"key": "validation.passed", "value": "true"}]}
MODEL = {"name": "churn", "creation_timestamp": 1796558085974, "last_updated_timestamp": 1796558096695,
         "aliases": [{"alias": "production", "version": "3"}], "tags": [{"key": "team", "value": "ds"}]}

FOUND_VERSION = Answer.record(200, {"model_version": VERSION})
FOUND_MODEL = Answer.record(200, {"registered_model": MODEL})
NO_MODEL = Answer.record(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=churn not found",
                               "sqlstate": "KAM00", "error_class": "RESOURCE_NOT_FOUND"})
NO_ALIAS = Answer.record(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias production not found.",
                               "sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"})
NO_VERSION = Answer.record(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Model Version (name=churn, version=7) not found",
                                 "sqlstate": "KAM00", "error_class": "RESOURCE_NOT_FOUND"})
DENIED = Answer.record(403, text="Permission denied")
UNAUTHENTICATED = Answer.record(401, text="You are not authenticated. Please see "
                                "https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.")
SEARCH_EMPTY = Answer.record(200, {})
SEARCH_SHOWS = Answer.record(200, {"registered_models": [{"name": "churn"}, {"name": "churn-2"}]})
REFUSED = Answer(-1, b"", "Request failed: <urlopen error [Errno 111] Connection refused>")
BAD_GATEWAY = Answer.record(502, text="<html><body>502 Bad Gateway</body></html>")


def message(judged, username="model-reader", names="role"):
    return failure_message(judged, "churn", BASE, username=username, names=ROLE_NAMES if names == "role" else names)


def test_found_by_alias_and_by_version():
    by_alias = judge("churn", alias="production", alias_answer=FOUND_VERSION, details_answer=FOUND_VERSION)
    assert by_alias["state"] == "found" and by_alias["status"] == 200 and by_alias["want"] == "3"
    assert message(by_alias) is None
    by_version = judge("churn", version="3", details_answer=FOUND_VERSION)
    assert by_version["state"] == "found" and by_version["from_alias"] is False
    model_only = judge("churn", model_answer=FOUND_MODEL)
    assert model_only["state"] == "found" and model_only["want"] is None


def test_missing_alias_is_missing_with_the_roles_message():
    judged = judge("churn", alias="production", alias_answer=NO_ALIAS)
    assert (judged["state"], judged["status"], judged["what"]) == ("missing", 400, "has no alias 'production'")
    assert judged["detail"] == "Registered model alias production not found"  # the final full stop dropped
    assert message(judged) == (
        "registered model 'churn' has no alias 'production' at https://mlflow.internal (HTTP 400: Registered model alias "
        "production not found). Register it (or set the alias) first, or set model_server_allow_missing_model: true to skip "
        "the entry until it is deployed")
    assert message(judged, names=None).endswith("or set missing_ok: true to skip the entry until it is deployed")


def test_missing_model_and_missing_version():
    for judged in (judge("churn", alias="production", alias_answer=NO_MODEL),
                   judge("churn", model_answer=NO_MODEL)):
        assert (judged["state"], judged["status"], judged["what"]) == ("missing", 404, "does not exist")
        assert message(judged).startswith(
            "registered model 'churn' does not exist at https://mlflow.internal (HTTP 404: Registered Model with name=churn "
            "not found). Register it")
    fixed = judge("churn", version="7", details_answer=NO_VERSION)
    assert (fixed["state"], fixed["what"]) == ("missing", "has no version '7'")
    # The alias resolved, its version is gone (deleted between the two reads).
    pointed = judge("churn", alias="production", alias_answer=FOUND_VERSION, details_answer=NO_VERSION)
    assert (pointed["state"], pointed["what"]) == ("missing", "has no version '3' (alias 'production' points at it)")


def test_403_and_a_search_that_does_not_show_the_model_is_missing():
    judged = judge("churn", alias="production", alias_answer=DENIED, search_answer=SEARCH_EMPTY, username="model-reader")
    assert (judged["state"], judged["status"]) == ("missing", 403)
    assert judged["what"] == ("does not exist (the registry answers 403 for it, and a search by name does not show it to "
                              "model-reader)")
    assert judged["detail"] == "Permission denied"
    assert message(judged) == (
        "registered model 'churn' does not exist (the registry answers 403 for it, and a search by name does not show it to "
        "model-reader) at https://mlflow.internal (HTTP 403: Permission denied). Register it (or set the alias) first, or set "
        "model_server_allow_missing_model: true to skip the entry until it is deployed")
    anonymous = judge("churn", version="1", details_answer=DENIED, search_answer=SEARCH_EMPTY)
    assert anonymous["what"].endswith("does not show it to an anonymous client)")


def test_403_and_a_search_that_shows_the_model_is_forbidden():
    judged = judge("churn", alias="production", alias_answer=DENIED, search_answer=SEARCH_SHOWS, username="model-reader")
    assert (judged["state"], judged["status"]) == ("forbidden", 403)
    assert message(judged) == ("user 'model-reader' may not read registered model 'churn' at https://mlflow.internal (HTTP 403, "
                               "and a search by name shows the model): give it READ on the model")
    # No search answer (or a failed one): not shown to be missing, so a permission error.
    for search in (None, Answer.record(500, text="oops")):
        assert judge("churn", alias="production", alias_answer=DENIED, search_answer=search)["state"] == "forbidden"
    assert message(judge("churn", alias="production", alias_answer=DENIED), username=None).startswith(
        "an anonymous client may not read registered model 'churn'")


def test_unauthenticated_unreachable_and_error():
    judged = judge("churn", alias="production", alias_answer=UNAUTHENTICATED)
    assert (judged["state"], judged["status"]) == ("unauthenticated", 401)
    assert message(judged) == (
        "the tracking server at https://mlflow.internal did not accept the credentials of user 'model-reader' (HTTP 401) "
        "reading registered model 'churn': check model_server_tracking_username and model_server_tracking_password")
    assert message(judged, username=None, names=None).endswith(
        "credentials of an anonymous client (HTTP 401) reading registered model 'churn': check username and password")
    assert failure_message(judged, "churn", BASE, token="t").endswith(
        "credentials of a client with a bearer token (HTTP 401) reading registered model 'churn': check token")

    down = judge("churn", alias="production", alias_answer=REFUSED)
    assert (down["state"], down["status"]) == ("unreachable", -1)
    assert message(down) == (
        "could not reach the tracking server at https://mlflow.internal (model_server_tracking_uri) to read registered model "
        "'churn': Request failed: <urlopen error [Errno 111] Connection refused>")

    other = judge("churn", version="3", details_answer=BAD_GATEWAY)
    assert (other["state"], other["status"]) == ("error", 502)
    assert message(other) == ("the tracking server at https://mlflow.internal answered HTTP 502 reading registered model "
                              "'churn': <html><body>502 Bad Gateway</body></html>")
    # A 400 that is not "not found", and a 200 without a version, are errors too.
    invalid = Answer.record(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Parameter 'version' must be an integer"})
    assert judge("churn", version="x", details_answer=invalid)["state"] == "error"
    assert judge("churn", version="3", details_answer=Answer.record(200, {}))["state"] == "error"
    empty = judge("churn", version="3", details_answer=Answer(502, b"", "HTTP Error 502: Bad Gateway"))
    assert empty["detail"] == "HTTP Error 502: Bad Gateway"


def test_detail_is_trimmed_and_truncated_as_jinja_did():
    assert detail_of(Answer.record(500, {"message": "  spaced out.  "})) == "spaced out"
    text = ("word " * 100).strip()
    detail = detail_of(Answer.record(500, {"message": text}))
    assert detail == text[:297].rsplit(" ", 1)[0] + ".."  # truncate's "..." loses its last dot like any final full stop
    exact = "x" * 305
    assert detail_of(Answer.record(500, {"message": exact})) == exact  # Ansible's leeway of 5


class Recorder:
    """A transport that answers from a table keyed by (path, sorted params) and records the requests."""

    def __init__(self, table):
        self.table = table
        self.requests = []

    def __call__(self, method, url, params, body, headers):
        path = url[len(BASE):]
        self.requests.append((method, path, dict(params or {}), dict(headers or {})))
        answer = self.table.get((path, tuple(sorted((params or {}).items()))))
        if answer is None:
            return 404, json.dumps({"error_code": "ENDPOINT_NOT_FOUND", "message": "no such endpoint"}).encode(), "HTTP Error 404"
        return answer.status, answer.body, answer.error or None


def key(endpoint, **params):
    return ("/api/2.0/mlflow/" + endpoint, tuple(sorted(params.items())))


def test_reader_resolves_an_alias_with_two_reads_and_the_model():
    transport = Recorder({
        key("registered-models/alias", name="churn", alias="production"): FOUND_VERSION,
        key("model-versions/get", name="churn", version="3"): FOUND_VERSION,
        key("registered-models/get", name="churn"): FOUND_MODEL,
    })
    reader = RegistryReader(BASE + "/", transport, username="model-reader", password="pw")
    result = reader.lookup("churn", alias="production")
    assert result["state"] == "found" and result["status"] == 200
    assert result["version"]["version"] == "3" and result["version"]["run_id"] == VERSION["run_id"]
    assert result["version"]["tags"] == {"validation.passed": "true"} and result["version"]["aliases"] == ["production"]
    assert result["aliases"] == {"production": "3"} and result["model_tags"] == {"team": "ds"}
    assert result["msg"] == "registered model 'churn' version 3 (alias 'production')"
    assert [r[1].rsplit("/", 2)[-2] + "/" + r[1].rsplit("/", 1)[-1] for r in transport.requests] == [
        "registered-models/alias", "model-versions/get", "registered-models/get"]
    assert all(r[3]["Authorization"] == "Basic bW9kZWwtcmVhZGVyOnB3" for r in transport.requests)


def test_reader_searches_after_a_403_and_sends_a_token():
    transport = Recorder({
        key("registered-models/alias", name="it's", alias="production"): DENIED,
        key("registered-models/search", filter="name='it\\'s'"): SEARCH_EMPTY,
    })
    reader = RegistryReader(BASE, transport, token="tok")
    result = reader.lookup("it's", alias="production", names=ROLE_NAMES)
    assert result["state"] == "missing" and result["version"] is None and result["aliases"] == {}
    assert "does not show it to a client with a bearer token" in result["msg"]
    assert transport.requests[-1][1].endswith("registered-models/search")
    assert transport.requests[0][3]["Authorization"] == "Bearer tok"


def test_reader_without_alias_or_version_reads_the_model_only():
    transport = Recorder({key("registered-models/get", name="churn"): FOUND_MODEL})
    result = RegistryReader(BASE, transport).lookup("churn")
    assert result["state"] == "found" and result["version"] is None and result["aliases"] == {"production": "3"}
    assert "Authorization" not in transport.requests[0][3]
    missing = RegistryReader(BASE, Recorder({key("registered-models/get", name="churn"): NO_MODEL})).lookup("churn")
    assert (missing["state"], missing["what"]) == ("missing", "does not exist")


def test_reader_artifact_and_its_failures():
    run = VERSION["run_id"]
    transport = Recorder({
        ("/get-artifact", (("path", "drift/reference_profile.json"), ("run_id", run))): Answer(200, b'{"a": 1}'),
        ("/get-artifact", (("path", "nothing.json"), ("run_id", run))): Answer.record(
            404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such artifact"}),
    })
    reader = RegistryReader(BASE, transport)
    answer, found = reader.artifact(run, "drift/reference_profile.json")
    assert found is True and answer.body == b'{"a": 1}'
    assert reader.artifact(run, "nothing.json")[1] is False
    assert reader.artifact_failure(REFUSED, "churn", "3", run, "x.json") == (
        "could not reach the tracking server at https://mlflow.internal to read artifact x.json of run %s (registered model "
        "'churn' version 3): Request failed: <urlopen error [Errno 111] Connection refused>" % run)
    assert reader.artifact_failure(BAD_GATEWAY, "churn", "3", run, "x.json").startswith(
        "the tracking server at https://mlflow.internal answered HTTP 502 reading artifact x.json")


@pytest.mark.parametrize("kwargs, text", [
    (dict(tracking_uri=""), "tracking_uri: required (or set MLFLOW_TRACKING_URI)"),
    (dict(tracking_uri="mlflow.internal"), "tracking_uri: 'mlflow.internal' is not an http(s) URL of an MLflow tracking server"),
    (dict(tracking_uri=BASE, token="t", username="u", password="p"), "token: give either token or username/password, not both"),
    (dict(tracking_uri=BASE, username="u"), "username and password: give both or neither"),
])
def test_reader_connection_errors(kwargs, text):
    with pytest.raises(RegistryError) as exc:
        RegistryReader(transport=Recorder({}), **kwargs)
    assert str(exc.value) == text


def test_requests_transport_reports_no_answer(monkeypatch):
    transport = lookup.requests_transport(timeout=2)
    status, body, error = transport("GET", "http://127.0.0.1:9/api/2.0/mlflow/registered-models/get", {"name": "x"}, None, {})
    assert status == -1 and body == b"" and error.startswith("ConnectionError: ")
    monkeypatch.setattr(lookup, "HAS_REQUESTS", False)
    with pytest.raises(RegistryError, match="requests is required"):
        lookup.requests_transport()
