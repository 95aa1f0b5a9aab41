"""Verify the model_server role on the lab host: the instance serves the version the alias
points at after the side effect (2), through real HTTP on the host's loopback."""

import json
import os
from pathlib import Path

import pytest

NAME = "bc-classifier"
UNIT = "runlocalai-model@%s" % NAME
DRIFT = "runlocalai-model-drift@%s" % NAME
URL = "http://127.0.0.1:8080"
CONFIG = "/etc/runlocalai-model"
STATE = "/var/lib/runlocalai-model/" + NAME
LOGS = "/var/log/runlocalai-model/" + NAME
VENV_PY = "/opt/runlocalai/venvs/model-server/bin/python"
PKG = "/opt/runlocalai/lib/runlocalai_mlops"
SVC = "runlocalai-model"
SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"


def token():
    return (SECRETS / "api-token").read_text().split()[0]


def call(host, path, payload=None, auth=True, method=None):
    """(status, parsed body or text) of a request from the host itself."""
    args = ["curl", "-sS", "-o", "/tmp/molecule-answer", "-w", "%{http_code}"]
    if auth:
        args += ["-H", "Authorization: Bearer " + token()]
    if payload is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(payload)]
    if method:
        args += ["-X", method]
    status = int(host.check_output(_cmd(args + [URL + path])))
    text = host.file("/tmp/molecule-answer").content_string
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _cmd(args):
    return " ".join(_quote(a) for a in args)


def instances(host, count=6):
    """Breast-cancer rows with the model's column names, read on the host from scikit-learn's copy."""
    code = ("import json; from sklearn.datasets import load_breast_cancer; d = load_breast_cancer(as_frame=True).data; "
            "d.columns = [c.replace(' ', '_') for c in d.columns]; "
            "print(json.dumps(d.iloc[1::2].head(%d).to_dict(orient='records')))" % count)
    return json.loads(host.check_output("%s -c %s" % (VENV_PY, _quote(code))))


def test_instance_is_active_as_the_service_user(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    pid = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
    assert host.check_output("ps -o user= -p %s" % pid) == SVC


def test_ready_and_models_report_the_moved_alias(host):
    status, body = call(host, "/ready", auth=False)
    assert status == 200 and body["ready"] is True
    status, body = call(host, "/v1/models")
    assert status == 200
    entry = body["models"][0]
    assert (entry["name"], entry["version"], entry["alias"]) == (NAME, "2", "production")
    assert len(entry["run_id"]) == 32 and entry["loaded_at"].endswith("Z")
    pinned = json.loads(host.file("%s/%s.json" % (CONFIG, NAME)).content_string)
    assert (pinned["version"], pinned["model_uri"]) == ("2", "models:/%s/2" % NAME)


def test_side_effect_restarted_the_instance(host):
    before = int(host.file("/root/molecule-before-side-effect").content_string.strip())
    after = int(host.check_output("systemctl show -p ActiveEnterTimestampMonotonic --value %s" % UNIT))
    assert after > before
    # the local cache holds the versions it loaded, keyed by version
    assert host.file(STATE + "/cache/2/.complete").exists


def test_predictions_equal_the_same_model_loaded_locally(host):
    rows = instances(host)
    status, body = call(host, "/v1/predict", {"records": rows})
    assert status == 200, body
    cached = host.file(STATE + "/cache/2/.complete").content_string.strip()
    code = ("import json, sys, pandas, mlflow.pyfunc; m = mlflow.pyfunc.load_model(%r); "
            "print(json.dumps(m.predict(pandas.DataFrame(json.loads(sys.argv[1]))).tolist()))" % (STATE + "/cache/2/" + cached))
    local = json.loads(host.check_output("%s -c %s %s" % (VENV_PY, _quote(code), _quote(json.dumps(rows)))))
    assert body["predictions"] == local
    assert body["version"] == "2" and len(body["confidence"]) == len(rows)
    assert all(0.5 <= c <= 1 for c in body["confidence"])


def test_a_bad_field_gets_a_4xx_naming_it(host):
    rows = instances(host, 2)
    rows[1]["mean_radius"] = "large"
    status, body = call(host, "/v1/predict", {"records": rows})
    assert status == 422
    assert body["field"] == "mean_radius" and "'mean_radius'" in body["error"]
    del rows[1]["mean_texture"]
    rows[1]["mean_radius"] = 14.0
    status, body = call(host, "/v1/predict", {"records": rows})
    assert status == 422 and body["field"] == "mean_texture"


def test_v1_needs_the_bearer_token(host):
    status, _body = call(host, "/v1/models", auth=False)
    assert status == 401
    assert call(host, "/health", auth=False)[0] == 200


def test_feedback_and_metrics_carry_the_contract_series(host):
    status, body = call(host, "/v1/predict", {"records": instances(host, 1)})
    assert status == 200
    status, fed = call(host, "/v1/feedback", {"request_id": body["request_id"], "label": body["predictions"][0]})
    assert status == 200 and fed["accuracy"] == 1.0
    status, text = call(host, "/metrics", auth=False)
    assert status == 200
    labels = 'model="%s",version="2"' % NAME
    for series in ('mlops_model_requests_total{%s,endpoint="predict",status="200"}' % labels,
                   'mlops_model_requests_total{%s,endpoint="predict",status="422"}' % labels,
                   'mlops_model_request_duration_seconds_bucket{%s,endpoint="predict",le="+Inf"}' % labels,
                   'mlops_model_prediction_confidence_count{%s}' % labels,
                   'mlops_model_predictions_total{%s,class="' % labels,
                   'mlops_model_info{model="%s",version="2",run_id="' % NAME,
                   'mlops_model_ready{%s} 1.0' % labels,
                   'mlops_model_feedback_total{%s} 1.0' % labels,
                   'mlops_model_feedback_accuracy{%s} 1.0' % labels):
        assert series in text, series
    assert ',alias="production"} 1.0' in text


def test_audit_log_has_hashes_and_no_raw_values(host):
    audit = host.file(LOGS + "/audit.jsonl")
    assert (audit.user, audit.group, audit.mode) == (SVC, SVC, 0o640)
    entries = [json.loads(line) for line in audit.content_string.splitlines()]
    predicts = [e for e in entries if e["endpoint"] == "predict" and e["version"] == "2"]
    assert predicts and all(e["input_sha256"].startswith("sha256:") and len(e["input_sha256"]) == 71 for e in predicts)
    assert {e["status"] for e in predicts} >= {200, 422}
    text = audit.content_string
    assert "mean_radius" not in text and "large" not in text and str(instances(host, 1)[0]["mean_area"]) not in text


def test_window_is_readable_by_drift_io(host):
    code = ("import sys; from runlocalai_mlops import drift_io; t = drift_io.read_serving_window(sys.argv[1]); "
            "print(t.rows, len(t.input_columns), 'outputs.prediction' in t.columns, 'outputs.confidence' in t.columns)")
    out = host.check_output("PYTHONPATH=/opt/runlocalai/lib %s -c %s %s" % (VENV_PY, _quote(code), STATE + "/window"))
    rows, columns, has_prediction, has_confidence = out.split()
    assert int(rows) >= 6 and int(columns) == 30 and has_prediction == has_confidence == "True"


def test_drift_timer_run_writes_the_textfile(host):
    assert host.service(DRIFT + ".timer").is_enabled
    assert host.service(DRIFT + ".timer").is_running
    schedule = host.check_output("systemctl show -p TimersCalendar --value %s.timer" % DRIFT)
    assert "03:00:00" in schedule
    result = host.run("systemctl start %s.service" % DRIFT)
    assert result.rc == 0, result.stderr
    assert host.check_output("systemctl show -p Result --value %s.service" % DRIFT) == "success"
    prom = host.file("/var/lib/prometheus/node-exporter/mlops_drift_%s.prom" % NAME)
    assert prom.exists and prom.mode == 0o644
    assert 'mlops_drift_detected{model="%s",model_version="2"}' % NAME in prom.content_string
    assert 'mlops_feature_drift_score{' in prom.content_string
    report = json.loads(host.file(STATE + "/drift/report.json").content_string)
    assert report["result"]["n_features"] == 30


@pytest.mark.parametrize("prop,value", [
    ("User", SVC), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"), ("ProtectControlGroups", "yes"),
    ("RestrictNamespaces", "yes"), ("CapabilityBoundingSet", ""), ("MemoryMax", str(1024 ** 3)),
    ("CPUQuotaPerSecUSec", "1.500000s"), ("UMask", "0027"),
])
def test_unit_sandboxing_and_limits(host, prop, value):
    assert host.check_output("systemctl show -p %s --value %s" % (prop, UNIT)) == value


def test_unit_sandboxing_score(host):
    result = host.run("systemd-analyze security --threshold=20 --no-pager %s.service" % UNIT)
    assert result.rc == 0, result.stdout[-3000:]


@pytest.mark.parametrize("path,owner,group,mode", [
    (CONFIG, "root", SVC, 0o750),
    ("%s/%s.json" % (CONFIG, NAME), "root", SVC, 0o640),
    ("%s/%s.env" % (CONFIG, NAME), "root", "root", 0o600),
    ("%s/%s.drift.env" % (CONFIG, NAME), "root", SVC, 0o640),
    (CONFIG + "/api-token", "root", SVC, 0o640),
    (CONFIG + "/tracking-ca.pem", "root", SVC, 0o644),
    (STATE, SVC, SVC, 0o750),
    (STATE + "/drift/reference_profile.json", "root", SVC, 0o640),
    (LOGS, SVC, SVC, 0o750),
    (PKG + "/model_serving.py", "root", "root", 0o644),
    (PKG + "/drift_cli.py", "root", "root", 0o644),
    ("/etc/systemd/system/runlocalai-model@.service", "root", "root", 0o644),
])
def test_files_have_owners_and_modes(host, path, owner, group, mode):
    f = host.file(path)
    assert f.exists, path
    assert (f.user, f.group, f.mode) == (owner, group, mode)


def test_credentials_are_the_read_only_user(host):
    env = host.file("%s/%s.env" % (CONFIG, NAME)).content_string
    assert "MLFLOW_TRACKING_USERNAME=model-reader\n" in env
    assert "MLFLOW_TRACKING_SERVER_CERT_PATH=%s/tracking-ca.pem" % CONFIG in env
    assert "admin" not in env


def test_installed_code_is_the_collections_own(host):
    here = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "ansible_collections/runlocalai/mlops/plugins/module_utils"
    for name in ("model_serving.py", "drift_io.py", "drift_cli.py"):
        assert host.file(PKG + "/" + name).content_string == (here / name).read_text()


def test_zz_a_crash_restart_comes_back_on_the_pinned_version(host):
    """kill -9: systemd restarts the instance, which loads the pinned version from its cache.
    (Named zz: it runs last, since it resets the in-process metrics.)"""
    pid = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
    restarts = int(host.check_output("systemctl show -p NRestarts --value %s" % UNIT))
    host.run_expect([0], "kill -9 %s" % pid)
    status = None
    for dummy in range(60):
        result = host.run("curl -s -o /dev/null -w '%%{http_code}' %s/ready" % URL)
        status = result.stdout.strip()
        if status == "200" and host.check_output("systemctl show -p MainPID --value %s" % UNIT) not in ("0", pid):
            break
        host.run("sleep 1")
    assert status == "200"
    assert host.check_output("systemctl show -p MainPID --value %s" % UNIT) != pid
    assert int(host.check_output("systemctl show -p NRestarts --value %s" % UNIT)) == restarts + 1
    assert call(host, "/v1/models")[1]["models"][0]["version"] == "2"
