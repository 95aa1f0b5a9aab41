# -*- coding: utf-8 -*-
"""Tests of the model serving app against a real pyfunc model (a scikit-learn pipeline logged with a
signature), over real HTTP on loopback; the model download against the real MLflow test server."""

import glob
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import requests

np = pytest.importorskip("numpy")
pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.evaluation import mlflow_env  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import cli as drift_cli  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as drift_io  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils import serving as ms  # noqa: E402
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.serving import Running  # noqa: E402
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: E402,F401 pylint: disable=unused-import
    ADMIN, ADMIN_PASSWORD, mlflow_server)

MODULE_UTILS = os.path.dirname(os.path.dirname(ms.__file__))
FEATURES = ["f%d" % i for i in range(8)]
SECRET_VALUE = 17.987654321  # appears in inputs; must never appear in the audit log


def _train():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.iloc[:, :8].copy()
    features.columns = FEATURES
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, data.target)
    return pipe, features, data.target


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    pipe, features, target = _train()
    path = str(tmp_path_factory.mktemp("model") / "model")
    mlflow.sklearn.save_model(pipe, path, signature=infer_signature(features, pipe.predict(features)),
                              pip_requirements=["scikit-learn==%s" % sklearn.__version__], serialization_format="cloudpickle")
    reference = str(tmp_path_factory.mktemp("ref") / "train.csv")
    features.to_csv(reference, index=False)
    return {"pipe": pipe, "features": features, "target": target, "path": path, "reference": reference}


def make_config(tmp_path, model_uri, **extra):
    raw = {"name": "bc", "version": "3", "run_id": "run123", "alias": "production", "model_uri": model_uri,
           "state_dir": str(tmp_path / "state"), "log_dir": str(tmp_path / "log"), "port": 0, "sample_rate": 1.0}
    raw.update(extra)
    return ms.make_config(raw)


@pytest.fixture
def server(trained, tmp_path):
    running = Running(ms.ModelServer(make_config(tmp_path, trained["path"]), rng=random.Random(1)))
    running.app.load()
    yield running
    running.stop()


def rows(trained, start=0, count=3):
    frame = trained["features"].iloc[start:start + count]
    return [dict((k, float(v)) for k, v in row.items()) for row in frame.to_dict(orient="records")]


def metric_lines(text, name):
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def audit_entries(app):
    with open(app.config["audit_path"]) as handle:
        return [json.loads(line) for line in handle]


# --- lifecycle ---------------------------------------------------------------------------------------

def test_health_answers_and_ready_is_503_until_the_model_is_loaded(trained, tmp_path):
    running = Running(ms.ModelServer(make_config(tmp_path, trained["path"])))
    try:
        assert running.get("/health").json()["status"] == "alive"
        answer = running.get("/ready")
        assert answer.status_code == 503 and answer.json()["status"] == "loading"
        assert metric_lines(running.get("/metrics").text, "mlops_model_ready") == ['mlops_model_ready{model="bc",version="3"} 0.0']
        assert running.post("/v1/predict", {"records": rows(trained)}).status_code == 503
        running.app.load()
        answer = running.get("/ready")
        assert answer.status_code == 200 and answer.json()["version"] == "3"
        assert metric_lines(running.get("/metrics").text, "mlops_model_ready") == ['mlops_model_ready{model="bc",version="3"} 1.0']
    finally:
        running.stop()


def test_a_failed_load_is_reported_on_ready_and_retried(trained, tmp_path):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("registry unreachable")
        return ms.LoadedModel(trained["path"])

    app = ms.ModelServer(make_config(tmp_path, trained["path"]), loader=flaky)
    running = Running(app)
    try:
        assert app.try_load() is False
        answer = running.get("/ready")
        assert answer.status_code == 503
        assert answer.json()["status"] == "error" and "registry unreachable" in answer.json()["error"]
        app.load_forever(first_delay=0)
        assert len(attempts) == 2 and running.get("/ready").status_code == 200
    finally:
        running.stop()


def test_models_endpoint_reports_name_version_run_alias_and_load_time(server):
    body = server.get("/v1/models").json()
    entry = body["models"][0]
    assert (entry["name"], entry["version"], entry["run_id"], entry["alias"]) == ("bc", "3", "run123", "production")
    assert entry["ready"] is True and entry["loaded_at"].endswith("Z")
    assert [c["name"] for c in entry["input_schema"]] == FEATURES
    assert entry["classes"] == [0, 1]


# --- predictions ---------------------------------------------------------------------------------------

def test_predictions_equal_the_pyfunc_model_in_every_input_form(server, trained):
    import mlflow.pyfunc
    import pandas as pd

    batch = rows(trained, 0, 25)
    expected = mlflow.pyfunc.load_model(trained["path"]).predict(pd.DataFrame(batch)).tolist()
    proba = trained["pipe"].predict_proba(pd.DataFrame(batch)).tolist()
    forms = [
        {"records": batch},
        {"dataframe_records": batch},
        {"columns": dict((f, [r[f] for r in batch]) for f in FEATURES)},
        {"dataframe_split": {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in batch]}},
    ]
    for form in forms:
        answer = server.post("/v1/predict", form)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == expected
        assert body["classes"] == [0, 1]
        assert np.allclose(body["probabilities"], proba, rtol=0, atol=1e-12)
        assert body["confidence"] == [max(p) for p in body["probabilities"]]
        assert (body["model"], body["version"]) == ("bc", "3")
        assert answer.headers["X-Request-ID"] == body["request_id"]
    assert len(set(expected)) == 2  # the batch holds both classes


# --- the scikit-learn fast path (no pandas per request): results identical to pyfunc predict -------------------

def _pyfunc_results(model, batch):
    """What the pyfunc path gives for these records: pyfunc predict and the raw model's predict_proba of the
    DataFrame that build_frame makes from the validated columns (LoadedModel.predict)."""
    names, columns = ms.validate_records(batch, model.schema)
    return model.predict(ms.build_frame(names, columns, model.schema))


def test_fast_path_equals_pyfunc_predict_bit_for_bit(trained):
    import mlflow.pyfunc
    import pandas as pd

    model = ms.LoadedModel(trained["path"])
    assert model.fast is not None and model.fast.names == FEATURES
    pyfunc = mlflow.pyfunc.load_model(trained["path"])
    everything = rows(trained, 0, len(trained["features"]))
    # one row at a time (what one-row requests get), for every row of the data set
    for record in everything:
        names, columns = ms.validate_records([record], model.schema)
        fast = model.predict_columns(names, columns)
        assert fast == _pyfunc_results(model, [record])
        assert fast[0] == pyfunc.predict(pd.DataFrame([record])).tolist()
        assert fast[1] == trained["pipe"].predict_proba(pd.DataFrame([record])).tolist()
    # batches of several sizes
    for size in (2, 7, 64, len(everything)):
        batch = everything[:size]
        names, columns = ms.validate_records(batch, model.schema)
        fast = model.predict_columns(names, columns)
        assert fast == _pyfunc_results(model, batch)
        assert fast[0] == pyfunc.predict(pd.DataFrame(batch)).tolist()
        assert fast[1] == trained["pipe"].predict_proba(pd.DataFrame(batch)).tolist()
    # integral JSON numbers for double columns
    record = dict(everything[0], f0=14, f1=-3)
    names, columns = ms.validate_records([record], model.schema)
    assert model.predict_columns(names, columns) == _pyfunc_results(model, [record])


def test_fast_path_over_http_equals_pyfunc_for_every_row(server, trained):
    import mlflow.pyfunc
    import pandas as pd

    assert server.app.model.fast is not None
    pyfunc = mlflow.pyfunc.load_model(trained["path"])
    for record in rows(trained, 0, len(trained["features"])):
        body = server.post("/v1/predict", {"records": [record]}).json()
        assert body["predictions"] == pyfunc.predict(pd.DataFrame([record])).tolist()
        assert body["probabilities"] == trained["pipe"].predict_proba(pd.DataFrame([record])).tolist()


def test_non_finite_values_take_the_pyfunc_path_and_fail_as_before(server, trained):
    model = server.app.model
    record = rows(trained, 0, 1)[0]
    scale = trained["pipe"].steps[0][1].scale_
    small = FEATURES[int(np.argmin(scale))]
    for changed in (dict(record, f2=float("inf")), dict(record, **{small: 1e308})):  # infinite input / infinite once scaled
        names, columns = ms.validate_records([changed], model.schema)
        assert model.fast.predict(names, columns) is None
        with pytest.raises(ValueError, match="infinity"):
            model.predict(ms.build_frame(names, columns, model.schema))
        with pytest.raises(ValueError, match="infinity"):
            model.predict_columns(names, columns)
    answer = server.post("/v1/predict", {"records": [dict(record, **{small: 1e308})]})
    assert answer.status_code == 500 and answer.json()["error"] == "internal error: ValueError"


def _save(tmp_path, name, pipe, features, **kwargs):
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    path = str(tmp_path / name)
    mlflow.sklearn.save_model(pipe, path, signature=infer_signature(features, pipe.predict(features)),
                              pip_requirements=["scikit-learn==%s" % sklearn.__version__], serialization_format="cloudpickle",
                              **kwargs)
    return path


def test_models_outside_the_fast_path_keep_the_pyfunc_path(trained, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    batch = rows(trained, 0, 40)
    # a long column in the signature
    features = trained["features"].copy()
    features["f7"] = (features["f7"] * 1000).round().astype("int64")
    from sklearn.base import clone
    pipe = clone(trained["pipe"]).fit(features, trained["target"])
    long_batch = [dict(r, f7=int(round(r["f7"] * 1000))) for r in batch]
    # pyfunc predict_fn predict_proba
    cases = [(_save(tmp_path, "long", pipe, features), long_batch),
             (_save(tmp_path, "proba", trained["pipe"], trained["features"], pyfunc_predict_fn="predict_proba"), batch)]
    for path, records in cases:
        model = ms.LoadedModel(path)
        assert model.fast is None
        names, columns = ms.validate_records(records, model.schema)
        predictions, _probabilities = model.predict_columns(names, columns)
        expected = mlflow.pyfunc.load_model(path).predict(pd.DataFrame(records))
        assert predictions == ms.to_python(expected)


def test_a_fast_path_that_disagrees_with_pyfunc_is_not_used(trained, monkeypatch):
    original = ms.SklearnFastPath.predict

    def off_by_a_bit(self, names, columns):
        predictions, probabilities = original(self, names, columns)
        return predictions, [[p[0] + (1e-12 if i == 0 else 0.0), p[1]] for i, p in enumerate(probabilities)]

    monkeypatch.setattr(ms.SklearnFastPath, "predict", off_by_a_bit)
    assert ms.LoadedModel(trained["path"]).fast is None
    monkeypatch.setattr(ms.SklearnFastPath, "predict", original)
    assert ms.LoadedModel(trained["path"]).fast is not None


# --- HTTP layer: one write per answer, keep-alive, Expect: 100-continue --------------------------------------------

def _read_response(sock, buffer=b""):
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        buffer += chunk
    head, _sep, rest = buffer.partition(b"\r\n\r\n")
    length = int([line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")][0])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        rest += chunk
    return head.decode("latin-1"), rest[:length], rest[length:]


def test_keep_alive_serves_several_requests_on_one_connection_and_expect_100(server, trained):
    import socket

    port = server.httpd.server_address[1]
    body = json.dumps({"records": rows(trained, 0, 1)}).encode()
    request = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % len(body)) + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(request + request + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined on one connection
        rest = b""
        answers = []
        for dummy in range(3):
            head, payload, rest = _read_response(sock, rest)
            answers.append((head.split(" ", 2)[1], json.loads(payload)))
        assert [a[0] for a in answers] == ["200", "200", "200"]
        assert answers[0][1]["predictions"] == answers[1][1]["predictions"] and answers[2][1]["status"] == "alive"
        # Expect: 100-continue: the interim answer arrives before the body is sent (writes are buffered)
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        head, payload, rest = _read_response(sock, interim.partition(b"\r\n\r\n")[2])
        assert head.startswith("HTTP/1.1 200") and json.loads(payload)["predictions"] == answers[0][1]["predictions"]
    finally:
        sock.close()


def test_integral_numbers_are_accepted_for_double_fields(server, trained):
    record = rows(trained, 0, 1)[0]
    record["f0"] = 14  # JSON integer for a double column
    assert server.post("/v1/predict", {"records": [record]}).status_code == 200


@pytest.mark.parametrize("mutate,status,field,words", [
    (lambda r: r.pop("f3"), 422, "f3", "missing required field 'f3'"),
    (lambda r: r.update(f2="abc"), 422, "f2", "field 'f2' (instance 1): expected double, got str"),
    (lambda r: r.update(f5=True), 422, "f5", "expected double, got bool"),
    (lambda r: r.update(f1=None), 422, "f1", "null in required field 'f1'"),
    (lambda r: r.update(surprise=1), 422, "surprise", "field 'surprise' (instance 1) is not in the model's input schema"),
    (lambda r: r.update(f0=[1, 2]), 422, "f0", "expected double, got list"),
])
def test_a_bad_field_gets_a_4xx_naming_it(server, trained, mutate, status, field, words):
    batch = rows(trained, 0, 2)
    mutate(batch[1])
    answer = server.post("/v1/predict", {"records": batch})
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field
    assert words in body["error"]
    assert body["request_id"] == answer.headers["X-Request-ID"]


@pytest.mark.parametrize("data,status,words", [
    (b"{not json", 400, "not valid JSON"),
    (b'{"records": [{"f0": NaN}]}', 400, "NaN is not valid JSON"),
    (b'{"records": [{"f0": 1e999}]}', 400, "number 1e999 is out of range"),
    (b"", 400, "empty"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'{"records": []}', 400, "no instances"),
    (b'{"records": [1]}', 400, "list of objects"),
    (b'{"records": [], "columns": {}}', 400, "exactly one of"),
    (b'{"columns": {"f0": [1, 2], "f1": [1]}}', 400, "different lengths"),
    (b'{"dataframe_split": {"columns": ["f0"], "data": [[1, 2]]}}', 400, "dataframe_split.data[0]"),
])
def test_malformed_bodies_are_4xx(server, data, status, words):
    answer = server.post("/v1/predict", data=data)
    assert answer.status_code == status
    assert words in answer.json()["error"]


def test_size_limits_on_bodies_and_instances(trained, tmp_path):
    app = ms.ModelServer(make_config(tmp_path, trained["path"], max_body_bytes=2000, max_instances=2))
    app.load()
    running = Running(app)
    try:
        answer = running.post("/v1/predict", {"records": rows(trained, 0, 30)})
        assert answer.status_code == 413 and "limit is 2000" in answer.json()["error"]
        answer = running.post("/v1/predict", {"records": rows(trained, 0, 3)})
        assert answer.status_code == 413 and "limit is 2" in answer.json()["error"]
        assert running.post("/v1/predict", {"records": rows(trained, 0, 2)}).status_code == 200
        assert 'endpoint="predict",status="413"' in running.get("/metrics").text
        assert [(e["status"], e["input_sha256"] is None) for e in audit_entries(app)] == [(413, True), (413, False), (200, False)]
    finally:
        running.stop()


def test_unknown_paths_and_methods(server):
    assert server.get("/nope").status_code == 404
    answer = server.get("/v1/predict")
    assert answer.status_code == 405 and "not allowed" in answer.json()["error"]


def test_request_ids_are_echoed_when_valid_and_made_otherwise(server, trained):
    answer = server.post("/v1/predict", {"records": rows(trained, 0, 1)}, headers={"X-Request-ID": "client-42"})
    assert answer.headers["X-Request-ID"] == "client-42" and answer.json()["request_id"] == "client-42"
    made = server.post("/v1/predict", {"records": rows(trained, 0, 1)}, headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces" and len(made.headers["X-Request-ID"]) == 32
    assert server.get("/health").headers["X-Request-ID"]


# --- metrics -----------------------------------------------------------------------------------------------

def test_metrics_carry_the_contract_names_and_labels(server, trained):
    batch = rows(trained, 0, 25)
    body = server.post("/v1/predict", {"records": batch}).json()
    server.post("/v1/predict", {"records": [{"f0": "x"}]})
    text = server.get("/metrics").text
    assert 'mlops_model_requests_total{model="bc",version="3",endpoint="predict",status="200"} 1.0' in text
    assert 'mlops_model_requests_total{model="bc",version="3",endpoint="predict",status="422"} 1.0' in text
    assert 'mlops_model_info{model="bc",version="3",run_id="run123",alias="production"} 1.0' in text
    assert 'mlops_model_request_duration_seconds_bucket{model="bc",version="3",endpoint="predict",le="+Inf"} 2' in text
    assert 'mlops_model_request_duration_seconds_count{model="bc",version="3",endpoint="predict"} 2' in text
    assert 'mlops_model_prediction_confidence_count{model="bc",version="3"} 25' in text
    counts = dict((c, body["predictions"].count(c)) for c in (0, 1))
    for cls, count in counts.items():
        assert 'mlops_model_predictions_total{model="bc",version="3",class="%d"} %.1f' % (cls, count) in text
    low = sum(1 for c in body["confidence"] if c <= 0.9)
    assert 'mlops_model_prediction_confidence_bucket{model="bc",version="3",le="0.9"} %d' % low in text
    for name in ("mlops_model_requests_total", "mlops_model_request_duration_seconds", "mlops_model_prediction_confidence",
                 "mlops_model_predictions_total", "mlops_model_info", "mlops_model_ready", "mlops_model_feedback_total",
                 "mlops_model_feedback_accuracy"):
        assert "# TYPE %s " % name in text
    # no accuracy sample before any feedback
    assert metric_lines(text, "mlops_model_feedback_accuracy") == []
    assert server.get("/metrics").headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_label_values_are_escaped():
    metrics = ms.Metrics('we"ird\\name', "1", "r\n", None)
    assert 'model="we\\"ird\\\\name"' in metrics.render() and 'run_id="r\\n"' in metrics.render()


# --- feedback ---------------------------------------------------------------------------------------------

def test_feedback_feeds_the_rolling_accuracy(trained, tmp_path):
    app = ms.ModelServer(make_config(tmp_path, trained["path"], feedback_window=4))
    app.load()
    running = Running(app)
    try:
        ids = []
        for i in range(5):
            answer = running.post("/v1/predict", {"records": rows(trained, i, 1)})
            ids.append((answer.json()["request_id"], answer.json()["predictions"][0]))
        # right, right, wrong, right -> 0.75; then a 5th right pushes the wrong one... no: window of 4 keeps the last 4
        outcomes = [True, True, False, True, True]
        for (rid, pred), right in zip(ids, outcomes):
            answer = running.post("/v1/feedback", {"request_id": rid, "label": pred if right else 1 - pred})
            assert answer.status_code == 200, answer.text
        assert answer.json()["accuracy"] == 0.75  # last 4: True, False, True, True
        # a correction replaces the earlier label of the same prediction
        rid, pred = ids[2]
        assert running.post("/v1/feedback", {"request_id": rid, "label": pred}).json()["accuracy"] == 1.0
        text = running.get("/metrics").text
        assert 'mlops_model_feedback_total{model="bc",version="3"} 6.0' in text
        assert 'mlops_model_feedback_accuracy{model="bc",version="3"} 1.0' in text
        unknown = running.post("/v1/feedback", {"request_id": "nope", "label": 1})
        assert unknown.status_code == 404 and unknown.json()["field"] == "request_id"
        missing = running.post("/v1/feedback", {"request_id": rid})
        assert missing.status_code == 422 and missing.json()["field"] == "label"
        # batched request: labels per instance; out-of-range instance names the field
        batch = running.post("/v1/predict", {"records": rows(trained, 0, 3)}).json()
        assert running.post("/v1/feedback", {"request_id": batch["request_id"], "labels": batch["predictions"]}).status_code == 200
        bad = running.post("/v1/feedback", {"request_id": batch["request_id"], "label": 1, "instance": 7})
        assert bad.status_code == 422 and bad.json()["field"] == "instance"
    finally:
        running.stop()


def test_feedback_file_and_window_join_in_the_drift_model_check(trained, tmp_path):
    """The window and the feedback files the app writes are what drift_cli model-check reads."""
    app = ms.ModelServer(make_config(tmp_path, trained["path"]))
    app.load()
    running = Running(app)
    try:
        for i in range(40):
            body = running.post("/v1/predict", {"records": rows(trained, i * 3, 2)}).json()
            labels = [int(v) for v in trained["target"].iloc[i * 3:i * 3 + 2]]
            running.post("/v1/feedback", {"request_id": body["request_id"], "labels": labels})
    finally:
        running.stop()
    report = tmp_path / "model-report.json"
    with open(str(tmp_path / "out.json"), "w") as stdout:
        code = drift_cli.main(["model-check", "--predictions", app.config["window_dir"], "--feedback", app.config["feedback_dir"],
                               "--reference-accuracy", "0.9", "--report", str(report)], stdout=stdout)
    assert code == 0
    check = json.loads(report.read_text())["result"]["checks"]["accuracy"]
    assert check["decided"] is True
    assert check["labels"]["joined"] == 80 and check["labels"]["orphan_feedback"] == 0


# --- audit --------------------------------------------------------------------------------------------------

def test_audit_log_has_hashes_and_never_the_inputs(server, trained):
    record = rows(trained, 0, 1)[0]
    record["f4"] = SECRET_VALUE
    payload = {"records": [record]}
    first = server.post("/v1/predict", data=json.dumps(payload))
    # the same input with other key order and spacing
    reordered = json.dumps({"records": [dict(sorted(record.items(), reverse=True))]}, indent=2)
    second = server.post("/v1/predict", data=reordered)
    bad = server.post("/v1/predict", {"records": [{"f0": "leaked-text"}]})
    server.get("/health")
    entries = audit_entries(server.app)
    assert [e["request_id"] for e in entries] == [first.json()["request_id"], second.json()["request_id"], bad.json()["request_id"]]
    expected = "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert entries[0]["input_sha256"] == entries[1]["input_sha256"] == expected
    assert [e["status"] for e in entries] == [200, 200, 422]
    for entry in entries:
        assert set(entry) >= {"ts", "model", "version", "request_id", "input_sha256", "status", "latency_ms", "endpoint"}
        assert (entry["model"], entry["version"]) == ("bc", "3")
    text = open(server.app.config["audit_path"]).read()
    assert str(SECRET_VALUE) not in text and "leaked-text" not in text and '"f4"' not in text and "records" not in text


def test_audit_log_rotates_by_size_and_keeps_n_files(trained, tmp_path):
    app = ms.ModelServer(make_config(tmp_path, trained["path"], audit_max_bytes=2000, audit_backup_count=2))
    for i in range(60):
        app.handle("GET", "/v1/models", {}, b"")
    app.close()
    names = sorted(os.listdir(str(tmp_path / "log")))
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in names:
        assert os.path.getsize(str(tmp_path / "log" / name)) <= 2000


# --- drift window ---------------------------------------------------------------------------------------------

def test_window_is_the_serving_window_format_drift_reads(server, trained, tmp_path):
    for i in range(0, 60, 3):
        server.post("/v1/predict", {"records": rows(trained, i, 3)})
    server.post("/v1/predict", {"records": rows(trained, 100, 1)})
    server.app.window.close()
    table = drift_io.read_serving_window(server.app.config["window_dir"])
    assert table.rows == 61
    assert table.input_columns == FEATURES
    first = json.loads(open(drift_io.window_files(server.app.config["window_dir"])[0]).readline())
    assert set(first) == {"inputs", "outputs", "ts", "request_id", "instance", "model", "model_version"}
    assert first["model_version"] == "3" and set(first["outputs"]) == {"prediction", "confidence"}
    assert first["inputs"] == rows(trained, 0, 1)[0]
    # the drift check against a profile of the training data, with the timer's labels
    prom = tmp_path / "mlops_drift_bc.prom"
    with open(str(tmp_path / "summary.json"), "w") as stdout:
        code = drift_cli.main(["check", "--reference", trained["reference"], "--current", server.app.config["window_dir"],
                               "--textfile", str(prom), "--label", "model=bc", "--label", "model_version=3"], stdout=stdout)
    assert code == 0
    assert 'mlops_drift_detected{model="bc",model_version="3"}' in prom.read_text()


def test_window_sampling_rate(trained, tmp_path):
    app = ms.ModelServer(make_config(tmp_path, trained["path"], sample_rate=0.25), rng=random.Random(7))
    app.load()
    body = json.dumps({"records": rows(trained, 0, 1)}).encode()
    for dummy in range(400):
        app.handle("POST", "/v1/predict", {}, body)
    app.close()
    table = drift_io.read_serving_window(app.config["window_dir"])
    assert 60 <= table.rows <= 140  # 100 expected; binomial sd 8.7
    off = ms.ModelServer(make_config(tmp_path / "off", trained["path"], sample_rate=0.0))
    off.load()
    off.handle("POST", "/v1/predict", {}, body)
    off.close()
    assert os.listdir(off.config["window_dir"]) == []


def test_window_is_bounded_by_size_and_rolls_by_hour(tmp_path):
    window = ms.JsonlWindow(str(tmp_path), "window", max_bytes=10000, file_max_bytes=3000, max_age_hours=1000)
    line = json.dumps({"inputs": {"x": 1.0}, "ts": "2026-01-01T00:00:00Z", "pad": "p" * 60}) + "\n"
    start = 1767225600  # 2026-01-01T00:00:00Z
    for i in range(400):
        window.write_lines([line], now=start + i * 30)  # 400 lines over 3h20m
    window.close()
    names = window.files()
    total = sum(os.path.getsize(str(tmp_path / n)) for n in names)
    assert total <= 10000 + 3000
    assert all(os.path.getsize(str(tmp_path / n)) <= 3000 for n in names)
    assert names == sorted(names) and names[-1].startswith("window-2026010103-")
    assert drift_io.read_serving_window(str(tmp_path)).rows == total // len(line)


# --- bearer token -----------------------------------------------------------------------------------------------

def test_bearer_token_protects_v1_only(trained, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-0123456789\n")
    app = ms.ModelServer(make_config(tmp_path, trained["path"], token_file=str(token_file)))
    app.load()
    running = Running(app)
    try:
        refused = running.post("/v1/predict", {"records": rows(trained, 0, 1)})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = running.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = running.post("/v1/predict", {"records": rows(trained, 0, 1)},
                            headers={"Authorization": "Bearer s3cret-token-0123456789", "Content-Type": "application/json"})
        assert good.status_code == 200
        assert running.get("/health").status_code == 200 and running.get("/metrics").status_code == 200
    finally:
        running.stop()
    token_file.write_text("short\n")
    with pytest.raises(ms.ConfigError, match="shorter than 16"):
        ms.read_token(str(token_file))


# --- configuration ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,words", [
    ({"name": "bad name"}, "name 'bad name'"),
    ({"version": ""}, "'version' is required"),
    ({"sample_rate": 1.5}, "sample_rate must be a number in [0, 1]"),
    ({"threads": 0}, "threads must be a positive integer"),
    ({"device": "tpu"}, "device must be cpu or cuda"),
])
def test_config_errors_name_the_key(tmp_path, change, words):
    raw = {"name": "bc", "version": "1", "model_uri": "models:/bc/1", "state_dir": str(tmp_path), "log_dir": str(tmp_path)}
    raw.update(change)
    with pytest.raises(ms.ConfigError) as err:
        ms.make_config(raw)
    assert words in str(err.value)


# --- download and cache from the registry ----------------------------------------------------------------------------

def test_registry_version_is_downloaded_once_and_cached_by_version(mlflow_server, trained, tmp_path):  # noqa: F811
    import mlflow
    import mlflow.artifacts
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    name = "serving-" + uuid.uuid4().hex[:6]

    def register():
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(trained["pipe"], name="model", registered_model_name=name,
                                            signature=infer_signature(trained["features"], trained["pipe"].predict(trained["features"])),
                                            pip_requirements=["scikit-learn==%s" % sklearn.__version__],
                                            serialization_format="cloudpickle")
        calls = []

        def downloader(uri, dst):
            calls.append(uri)
            return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst)

        cache = str(tmp_path / "cache")
        version = str(info.registered_model_version)
        first = ms.fetch_model("models:/%s/%s" % (name, version), cache, version, downloader=downloader)
        second = ms.fetch_model("models:/%s/%s" % (name, version), cache, version, downloader=downloader)
        return first, second, calls, cache, version

    with mlflow_env(mlflow_server.url, username=ADMIN, password=ADMIN_PASSWORD):
        first, second, calls, cache, version = register()
    assert first == second and os.path.isfile(os.path.join(first, "MLmodel"))
    assert calls == ["models:/%s/%s" % (name, version)]
    assert first.startswith(os.path.join(cache, version) + os.sep)
    model = ms.LoadedModel(first)
    assert model.schema is not None and model.classes == [0, 1]
    # older versions beyond cache_keep are removed, the current one stays
    for old in ("a", "b", "c"):
        os.makedirs(os.path.join(cache, old))
        time.sleep(0.01)
    ms.prune_cache(cache, 2, current=version)
    assert sorted(n for n in os.listdir(cache) if not n.startswith(".")) == sorted([version, "c"])


# --- the copied package on a host ---------------------------------------------------------------------------------

def test_runs_copied_into_a_package_without_ansible(trained, tmp_path):
    """What the role installs: the module_utils files as a package, run with python -m."""
    package = tmp_path / "lib" / "runlocalai_mlops"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for sub in ("common", "drift", "serving"):
        (package / sub).mkdir()
        for path in glob.glob(os.path.join(MODULE_UTILS, sub, "*.py")):
            shutil.copy(path, str(package / sub))
    config = make_config(tmp_path, trained["path"])
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    config["port"] = sock.getsockname()[1]
    sock.close()
    config_path = tmp_path / "bc.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "lib"))
    proc = subprocess.Popen([sys.executable, "-m", "runlocalai_mlops.serving", "--config", str(config_path)],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % config["port"]
    try:
        deadline = time.time() + 120
        status = None
        while time.time() < deadline and status != 200:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                status = requests.get(url + "/ready", timeout=2).status_code
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert status == 200
        answer = requests.post(url + "/v1/predict", json={"records": rows(trained, 0, 2)}, timeout=10)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert "serving bc version 3" in output
    check = subprocess.run([sys.executable, "-c", "import sys, runlocalai_mlops.serving.app; "
                            "sys.exit(any(m.split('.')[0] in ('ansible', 'ansible_collections') for m in sys.modules))"],
                           env=env, cwd=str(tmp_path), check=False)
    assert check.returncode == 0


# --- vectorised validation and the frame path (issue 19) ---------------------------------------------------

def _per_value(records, schema, monkeypatch):
    """validate_records with the column-at-a-time checks switched off: the per-value reference."""
    from ansible_collections.runlocalai.mlops.plugins.module_utils.serving import schema as schema_module
    with monkeypatch.context() as patch:
        patch.setattr(schema_module, "_validate_columns", lambda _records, _schema: None)
        return _outcome(records, schema)


def _outcome(records, schema):
    try:
        names, columns = ms.validate_records(records, schema)
    except ms.ServingError as exc:
        return ("error", exc.status, exc.message, exc.field)
    return ("ok", names, dict((n, [(type(v), v) for v in columns[n]]) for n in names))


def test_column_validation_equals_the_per_value_checks(monkeypatch):
    schema = ms.InputSchema([("d", "double", True), ("f", "float", True), ("i", "integer", True), ("l", "long", True),
                             ("b", "boolean", True), ("s", "string", True), ("o", "double", False), ("x", "long", False)])
    good = {"d": 1.5, "f": 2, "i": 3, "l": 2 ** 40, "b": True, "s": "a", "o": None, "x": 4}
    bad_values = [None, True, False, "1", 1.5, 2.0, 2 ** 31, -2 ** 31, -2 ** 31 - 1, [1], {"a": 1}, 0, -0.0, 1e300, "", 7]
    rng = random.Random(19)
    cases = [[dict(good) for _unused in range(3)]]
    for name in good:
        for value in bad_values:
            for index in (0, 2):
                batch = [dict(good) for _unused in range(3)]
                batch[index][name] = value
                cases.append(batch)
        batch = [dict(good) for _unused in range(2)]
        batch[1].pop(name)
        cases.append(batch)
    for _unused in range(300):
        batch = [dict(good) for _unused in range(rng.randint(1, 4))]
        for _change in range(rng.randint(1, 3)):
            record = rng.choice(batch)
            roll = rng.random()
            if roll < 0.7:
                record[rng.choice(sorted(good))] = rng.choice(bad_values)
            elif roll < 0.85:
                record.pop(rng.choice(sorted(good)), None)
            else:
                record["extra%d" % rng.randint(0, 2)] = 1
        cases.append(batch)
    for batch in cases:
        assert _outcome(batch, schema) == _per_value(batch, schema, monkeypatch), batch
    one = ms.InputSchema([("only", "double", True)])
    for batch in ([{"only": 1.0}], [{"only": 1}, {"only": "x"}], [{"only": 1.0}, {}]):
        assert _outcome(batch, one) == _per_value(batch, one, monkeypatch)


def test_to_python_keeps_replacing_non_finite_values():
    assert ms.to_python(np.array([[0.25, np.nan], [np.inf, 1.0]])) == [[0.25, None], [None, 1.0]]
    assert ms.to_python(np.array([[0.25, 0.75]])) == [[0.25, 0.75]] and type(ms.to_python(np.array([1.5]))[0]) is float  # pylint: disable=unidiomatic-typecheck
    assert ms.to_python(np.array([1, 0], dtype="int64")) == [1, 0] and ms.to_python(np.float64("nan")) is None
    assert ms.to_python(np.array(["a", "b"], dtype=object)) == ["a", "b"]


def _categorical(tmp_path, handle_unknown="ignore"):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pipe, features, target = _train()
    features = features.copy()
    features["size"] = ["small" if v < 12 else ("medium" if v < 15 else "large") for v in features["f0"]]
    pre = ColumnTransformer([("num", StandardScaler(), FEATURES), ("cat", OneHotEncoder(handle_unknown=handle_unknown), ["size"])])
    pipe = make_pipeline(pre, LogisticRegression(max_iter=500)).fit(features, target)
    return _save(tmp_path, "cat-" + handle_unknown, pipe, features), features


def test_frame_path_equals_pyfunc_for_a_one_hot_encoded_string_column(tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    path, features = _categorical(tmp_path)
    model = ms.LoadedModel(path)
    assert model.fast is None and model.frame_path is not None
    assert [(type(t).__name__, c, d) for t, c, d in model.frame_path.plan] == [("StandardScaler", FEATURES, "float64"),
                                                                               ("OneHotEncoder", ["size"], "object")]
    records = [dict((k, v if isinstance(v, str) else float(v)) for k, v in r.items()) for r in features.to_dict(orient="records")]
    pyfunc = mlflow.pyfunc.load_model(path)
    for batch in [records[i:i + 1] for i in range(0, len(records), 7)] + [records[:64], records]:
        names, columns = ms.validate_records(batch, model.schema)
        expected = model.predict(ms.build_frame(names, columns, model.schema))
        got = model.predict_columns(names, columns)
        assert got == expected
        assert got[0] == ms.to_python(pyfunc.predict(pd.DataFrame(batch)))
    assert model.frame_path.to_verify <= 0 and not model.frame_path.disabled
    # an unknown category is encoded as all zeros by handle_unknown="ignore", like the pyfunc path
    names, columns = ms.validate_records([dict(records[0], size="huge")], model.schema)
    assert model.predict_columns(names, columns) == model.predict(ms.build_frame(names, columns, model.schema))


def test_frame_path_verifies_real_requests_and_turns_itself_off(tmp_path, monkeypatch):
    path, features = _categorical(tmp_path)
    model = ms.LoadedModel(path)
    path_object = model.frame_path
    records = [dict((k, v if isinstance(v, str) else float(v)) for k, v in r.items()) for r in features.to_dict(orient="records")]
    original = ms.SklearnFramePath._run
    calls = {"fast": 0}

    def off_by_a_bit(self, names, columns):
        calls["fast"] += 1
        predictions, probabilities = original(self, names, columns)
        return predictions, [[p[0] + 1e-12, p[1]] for p in probabilities]

    monkeypatch.setattr(ms.SklearnFramePath, "_run", off_by_a_bit)
    names, columns = ms.validate_records(records[:3], model.schema)
    expected = model.predict(ms.build_frame(names, columns, model.schema))
    assert model.predict_columns(names, columns) == expected  # answered by pyfunc while verifying
    assert path_object.disabled and calls["fast"] == 1
    assert model.predict_columns(names, columns) == expected and calls["fast"] == 1  # off for good


def test_frame_path_is_not_used_when_its_self_check_cannot_run(tmp_path):
    # handle_unknown="error" with strings the encoder knows: the self-check runs and passes
    path, _features = _categorical(tmp_path, handle_unknown="error")
    assert ms.LoadedModel(path).frame_path is not None


def test_frame_path_over_http_answers_like_pyfunc(tmp_path):
    path, features = _categorical(tmp_path)
    running = Running(ms.ModelServer(make_config(tmp_path, path), rng=random.Random(1)))
    try:
        running.app.load()
        assert running.app.model.frame_path is not None
        records = [dict((k, v if isinstance(v, str) else float(v)) for k, v in r.items()) for r in features.to_dict(orient="records")]
        for record in records[:40]:
            answer = running.post("/v1/predict", {"records": [record]})
            assert answer.status_code == 200
            names, columns = ms.validate_records([record], running.app.model.schema)
            expected = running.app.model.predict(ms.build_frame(names, columns, running.app.model.schema))
            assert (answer.json()["predictions"], answer.json()["probabilities"]) == expected
        bad = running.post("/v1/predict", {"records": [dict(records[0], size=3)]})
        assert bad.status_code == 422 and bad.json()["field"] == "size" and "expected string, got int" in bad.json()["error"]
    finally:
        running.stop()


def test_connections_over_the_limit_get_503_without_a_thread(server, monkeypatch):
    import socket as socket_module

    monkeypatch.setattr(ms.HTTPServer, "max_connections", 2)
    app = server.app
    limited = Running(app)
    try:
        port = limited.httpd.server_address[1]
        idle = [socket_module.create_connection(("127.0.0.1", port), timeout=10) for _unused in range(2)]
        time.sleep(0.2)
        extra = socket_module.create_connection(("127.0.0.1", port), timeout=10)
        answer = b""
        while True:
            chunk = extra.recv(65536)
            if not chunk:
                break
            answer += chunk
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer and answer.endswith(b"retry later\"}\n")
        idle[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body, _rest = _read_response(idle[0])
        assert head.startswith("HTTP/1.1 200") and json.loads(body)["status"] == "alive"
        for sock in idle:
            sock.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if requests.get(limited.url + "/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        assert requests.get(limited.url + "/health", timeout=5).status_code == 200
    finally:
        limited.httpd.shutdown()
        limited.httpd.server_close()


def test_parsed_body_hash_is_the_canonical_json_of_the_body():
    body = b'{"records": [{"f1": 2.50, "f0": 1}], "z": "\\u00e9"}'
    parsed = ms.parse_json_body(body)
    expected = "sha256:" + hashlib.sha256(json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                                                     ensure_ascii=False).encode("utf-8")).hexdigest()
    assert ms.input_hash(body, parsed) == expected
    assert ms.input_hash(body, parsed) == expected  # again, without the parse's cached text
    assert ms.input_hash(body, json.loads(body)) == expected
    with pytest.raises(ms.ServingError) as raised:
        ms.parse_json_body(b'{"a": [1.0, 2e400]}')
    assert raised.value.status == 400 and "number 2e400 is out of range" in raised.value.message
