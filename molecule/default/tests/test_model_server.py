"""Verify the model_server role on the serving host (Debian 13): the instance serves the version
deploy_model.yml moved the alias to in the side effect (v1), through real HTTP on the container address; the
entry the side effect removed (bc-canary) is gone but its audit log stays; the entry whose model
was never registered (bc-next) has nothing; and Prometheus on the tracking host (Debian 12)
scrapes every target and fires ModelServiceDown when the model service stops."""

import json
import os
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from molecule_probes import wait_for  # noqa: E402  (molecule/shared is not a package)

testinfra_hosts = ["ansible://default-debian13"]

MONITOR = "default-debian12"
SERVING = "default-debian13"
NAME = "breast-cancer"
VERSION = "1"  # deployed by the side effect
CANARY = "bc-canary"
PENDING = "bc-next"
LLM = "smollm2"  # the LLM beside it (tests/test_llm.py)
LLM_PORT = 8090
UNIT = "runlocalai-model@%s" % NAME
DRIFT = "runlocalai-model-drift@%s" % NAME
CHECK = "runlocalai-model-check@%s" % NAME
PORT = 8080
PROM = "http://127.0.0.1:9090"
AM = "http://127.0.0.1:9093"
TEXTFILES = "/var/lib/prometheus/node-exporter"
CONFIG = "/etc/runlocalai-model"
STATE = "/var/lib/runlocalai-model/" + NAME
LOGS = "/var/log/runlocalai-model/" + NAME
VENV_PY = "/opt/runlocalai/venvs/model-server/bin/python"
PKG = "/opt/runlocalai/lib/runlocalai_mlops"
SVC = "runlocalai-model"
SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"


def address(host):
    return host.check_output("hostname -I").split()[0]


def url(host, port=PORT):
    return "http://%s:%d" % (address(host), port)


def monitor():
    return testinfra.get_host("ansible://" + MONITOR, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def api(mon, path, base=PROM):
    """JSON of a GET on the monitoring host's loopback (Prometheus or Alertmanager)."""
    return json.loads(mon.check_output("curl -sSf %s", base + path))


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
    status = int(host.check_output(shlex.join(args + [url(host) + path])))
    text = host.file("/tmp/molecule-answer").content_string
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def instances(host, count=6):
    """Breast-cancer rows with the model's column names, read on the host from scikit-learn's copy."""
    code = ("import json; from sklearn.datasets import load_breast_cancer; d = load_breast_cancer(as_frame=True).data; "
            "d.columns = [c.replace(' ', '_') for c in d.columns]; "
            "print(json.dumps(d.iloc[1::2].head(%d).to_dict(orient='records')))" % count)
    return json.loads(host.check_output("%s -c %s" % (VENV_PY, shlex.quote(code))))


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
    assert (entry["name"], entry["version"], entry["alias"]) == (NAME, VERSION, "production")
    assert len(entry["run_id"]) == 32 and entry["loaded_at"].endswith("Z")
    pinned = json.loads(host.file("%s/%s.json" % (CONFIG, NAME)).content_string)
    assert (pinned["version"], pinned["model_uri"]) == (VERSION, "models:/%s/%s" % (NAME, VERSION))


def test_predictions_equal_the_same_model_loaded_locally(host):
    rows = instances(host)
    status, body = call(host, "/v1/predict", {"records": rows})
    assert status == 200, body
    cached = host.file(STATE + "/cache/%s/.complete" % VERSION).content_string.strip()
    code = ("import json, sys, pandas, mlflow.pyfunc; m = mlflow.pyfunc.load_model(%r); "
            "print(json.dumps(m.predict(pandas.DataFrame(json.loads(sys.argv[1]))).tolist()))" % (STATE + "/cache/%s/%s" % (VERSION, cached)))
    local = json.loads(host.check_output("%s -c %s %s" % (VENV_PY, shlex.quote(code), shlex.quote(json.dumps(rows)))))
    assert body["predictions"] == local
    assert body["version"] == VERSION and len(body["confidence"]) == len(rows)
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
    labels = 'model="%s",version="%s"' % (NAME, VERSION)
    for series in ('mlops_model_requests_total{%s,endpoint="predict",status="200"}' % labels,
                   'mlops_model_requests_total{%s,endpoint="predict",status="422"}' % labels,
                   'mlops_model_request_duration_seconds_bucket{%s,endpoint="predict",le="+Inf"}' % labels,
                   'mlops_model_prediction_confidence_count{%s}' % labels,
                   'mlops_model_predictions_total{%s,class="' % labels,
                   'mlops_model_info{model="%s",version="%s",run_id="' % (NAME, VERSION),
                   'mlops_model_ready{%s} 1.0' % labels,
                   'mlops_model_feedback_total{%s} 1.0' % labels,
                   'mlops_model_feedback_accuracy{%s} 1.0' % labels):
        assert series in text, series
    assert ',alias="production"} 1.0' in text


def test_audit_log_has_hashes_and_no_raw_values(host):
    audit = host.file(LOGS + "/audit.jsonl")
    assert (audit.user, audit.group, audit.mode) == (SVC, SVC, 0o640)
    entries = [json.loads(line) for line in audit.content_string.splitlines()]
    predicts = [e for e in entries if e["endpoint"] == "predict" and e["version"] == VERSION]
    assert predicts and all(e["input_sha256"].startswith("sha256:") and len(e["input_sha256"]) == 71 for e in predicts)
    assert {e["status"] for e in predicts} >= {200, 422}
    text = audit.content_string
    assert "mean_radius" not in text and "large" not in text and str(instances(host, 1)[0]["mean_area"]) not in text


def test_window_is_readable_by_drift_io(host):
    code = ("import sys; from runlocalai_mlops.drift import tables as drift_io; t = drift_io.read_serving_window(sys.argv[1]); "
            "print(t.rows, len(t.input_columns), 'outputs.prediction' in t.columns, 'outputs.confidence' in t.columns)")
    out = host.check_output("PYTHONPATH=/opt/runlocalai/lib %s -c %s %s" % (VENV_PY, shlex.quote(code), STATE + "/window"))
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
    assert 'mlops_drift_detected{model="%s",model_version="%s"}' % (NAME, VERSION) in prom.content_string
    assert 'mlops_feature_drift_score{' in prom.content_string
    report = json.loads(host.file(STATE + "/drift/report.json").content_string)
    assert report["result"]["n_features"] == 30


def textfile_samples(text, name):
    """The samples of metric name in a textfile: list of (labels dict, value)."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _sep, value = line[len(name) + 1:].rpartition("} ")
            out.append((dict(re.findall(r'(\w+)="([^"]*)"', labels)), float(value)))
    return out


def test_model_check_timer_is_enabled_and_active(host):
    assert host.service(CHECK + ".timer").is_enabled
    assert host.service(CHECK + ".timer").is_running
    schedule = host.check_output("systemctl show -p TimersCalendar --value %s.timer" % CHECK)
    assert "03:00:00" in schedule  # the model's drift_schedule


def test_model_check_spec_has_the_versions_validated_accuracy(host):
    """breast-cancer v1 passed the gate in deploy_model.yml (validation.report on the version)."""
    spec = json.loads(host.file("%s/%s.model-check.json" % (CONFIG, NAME)).content_string)
    assert 0 < spec["accuracy"]["reference_accuracy"] <= 1
    assert spec["accuracy"]["current"] == STATE + "/window" and spec["accuracy"]["feedback"] == STATE + "/feedback"
    assert sorted(item["method"] for item in spec["sequential"]) == ["cusum", "page_hinkley"]
    assert host.file("%s/%s.model-check.env" % (CONFIG, NAME)).content_string.endswith("MODEL_VERSION=%s\n" % VERSION)


def test_model_check_run_writes_the_textfile(host):
    result = host.run("systemctl start %s.service" % CHECK)
    assert result.rc == 0, result.stderr
    assert host.check_output("systemctl show -p Result --value %s.service" % CHECK) == "success"
    prom = host.file("%s/mlops_model_check_%s.prom" % (TEXTFILES, NAME))
    assert prom.exists and prom.mode == 0o644
    decided = textfile_samples(prom.content_string, "mlops_model_check_decided")
    assert sorted(labels["check"] for labels, _value in decided) == ["accuracy", "cusum", "page_hinkley"]
    assert all((labels["model"], labels["model_version"]) == (NAME, VERSION) for labels, _value in decided)
    report = json.loads(host.file(STATE + "/drift/model-check.json").content_string)
    assert report["format"] == "runlocalai.mlops/model-drift-report"
    assert report["result"]["checks"]["accuracy"]["labels"]["model_version"] == VERSION


def test_model_check_unit_sandboxing_score(host):
    result = host.run("systemd-analyze security --threshold=35 --no-pager %s.service" % CHECK)
    assert result.rc == 0, result.stdout[-3000:]


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
    ("%s/%s.model-check.json" % (CONFIG, NAME), "root", SVC, 0o640),
    ("%s/%s.model-check.env" % (CONFIG, NAME), "root", SVC, 0o640),
    ("/etc/systemd/system/runlocalai-model-check@.service", "root", "root", 0o644),
    ("/etc/systemd/system/runlocalai-model-check@.timer", "root", "root", 0o644),
    (CONFIG + "/api-token", "root", SVC, 0o640),
    (CONFIG + "/tracking-ca.pem", "root", SVC, 0o644),
    (STATE, SVC, SVC, 0o750),
    (STATE + "/drift/reference_profile.json", "root", SVC, 0o640),
    (LOGS, SVC, SVC, 0o750),
    (PKG + "/serving/app.py", "root", "root", 0o644),
    (PKG + "/drift/cli.py", "root", "root", 0o644),
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
    for name in ("serving/app.py", "drift/tables.py", "drift/cli.py", "common/canonical.py"):
        assert host.file(PKG + "/" + name).content_string == (here / name).read_text()


def test_removed_entry_is_stopped_and_its_files_gone_but_its_audit_log_kept(host):
    """bc-canary served version 1 and had a drift textfile until the side effect took it out."""
    for unit in ("runlocalai-model@%s.service" % CANARY, "runlocalai-model-drift@%s.timer" % CANARY,
                 "runlocalai-model-check@%s.timer" % CANARY):
        assert not host.service(unit).is_running, unit
        assert not host.service(unit).is_enabled, unit
    assert host.check_output("systemctl show -p ActiveState --value runlocalai-model-drift@%s.service" % CANARY) in (
        "inactive", "failed")
    for path in ("%s/%s.json" % (CONFIG, CANARY), "%s/%s.env" % (CONFIG, CANARY), "%s/%s.drift.env" % (CONFIG, CANARY),
                 "/etc/systemd/system/runlocalai-model@%s.service.d" % CANARY,
                 "/etc/systemd/system/runlocalai-model-drift@%s.timer.d" % CANARY,
                 "/etc/systemd/system/multi-user.target.wants/runlocalai-model@%s.service" % CANARY,
                 "/etc/systemd/system/timers.target.wants/runlocalai-model-drift@%s.timer" % CANARY,
                 "%s/mlops_drift_%s.prom" % (TEXTFILES, CANARY),
                 "%s/%s.model-check.json" % (CONFIG, CANARY), "%s/%s.model-check.env" % (CONFIG, CANARY),
                 "/etc/systemd/system/runlocalai-model-check@%s.timer.d" % CANARY,
                 "/etc/systemd/system/timers.target.wants/runlocalai-model-check@%s.timer" % CANARY,
                 "%s/mlops_model_check_%s.prom" % (TEXTFILES, CANARY)):
        assert not host.file(path).exists, path
    refused = host.run("curl -sS -o /dev/null %s/health" % url(host, 8081))
    assert refused.rc == 7, (refused.rc, refused.stderr)  # 7: could not connect
    audit = host.file("/var/log/runlocalai-model/%s/audit.jsonl" % CANARY)
    assert audit.exists and (audit.user, audit.mode) == (SVC, 0o640)
    entries = [json.loads(line) for line in audit.content_string.splitlines()]
    assert any(e["endpoint"] == "predict" and e["status"] == 200 and e["version"] == "1" for e in entries)
    assert host.file("/var/lib/runlocalai-model/%s/cache/1/.complete" % CANARY).exists
    # the declared instance was left alone
    assert host.service(UNIT).is_running and host.file("%s/mlops_drift_%s.prom" % (TEXTFILES, NAME)).exists


def test_entry_of_a_model_not_registered_has_nothing(host):
    """bc-next is declared with model_server_allow_missing_model: skipped, nothing configured or started."""
    for path in ("%s/%s.json" % (CONFIG, PENDING), "%s/%s.env" % (CONFIG, PENDING),
                 "/etc/systemd/system/runlocalai-model@%s.service.d" % PENDING,
                 "/var/lib/runlocalai-model/" + PENDING, "/var/log/runlocalai-model/" + PENDING):
        assert not host.file(path).exists, path
    assert host.check_output("systemctl show -p ActiveState --value runlocalai-model@%s.service" % PENDING) == "inactive"
    assert host.run("curl -sS -o /dev/null %s/health" % url(host, 8082)).rc == 7


def test_prometheus_scrapes_every_target_up(host):
    mon = monitor()
    serving = address(host)

    def all_up():
        targets = api(mon, "/api/v1/targets?state=active")["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for(all_up, "every scrape target up")
    jobs = sorted(t["labels"]["job"] for t in targets)
    # one model_server target per declared instance: the pyfunc and the LLM (test_llm.py)
    assert jobs == ["alertmanager", "mlflow", "model_server", "model_server", "node", "node", "prometheus"], jobs
    models = sorted((t["labels"]["model_service"], t["labels"]["instance"], t["scrapeUrl"])
                    for t in targets if t["labels"]["job"] == "model_server")
    assert models == [(NAME, SERVING, "http://%s:%d/metrics" % (serving, PORT)),
                      (LLM, SERVING, "http://%s:%d/metrics" % (serving, LLM_PORT))], models
    assert sorted(t["labels"]["instance"] for t in targets if t["labels"]["job"] == "node") == [MONITOR, SERVING]
    # the model services' own series reached Prometheus
    ready = api(mon, "/api/v1/query?query=" + quote('mlops_model_ready{job="model_server"}'))["data"]["result"]
    assert sorted((r["metric"]["model"], r["metric"]["version"], r["value"][1]) for r in ready) == [
        (NAME, VERSION, "1"), (LLM, "1", "1")]


def test_zy_a_stopped_model_service_fires_model_service_down(host):
    """(Named zy: it stops the service, so it runs after the traffic checks, before the crash test.)"""
    mon = monitor()

    def firing():
        alerts = api(mon, "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == "ModelServiceDown" and a["state"] == "firing"
                and a["labels"].get("model_service") == NAME and a["labels"].get("instance") == SERVING]

    assert not firing()
    host.run_expect([0], "systemctl stop %s" % UNIT)
    try:
        alert = wait_for(firing, "ModelServiceDown firing in Prometheus")[0]
        assert alert["labels"]["severity"] == "critical"

        def in_alertmanager():
            return [a for a in api(mon, "/api/v2/alerts", base=AM)
                    if a["labels"].get("alertname") == "ModelServiceDown" and a["labels"].get("model_service") == NAME]

        assert wait_for(in_alertmanager, "ModelServiceDown in Alertmanager")[0]["status"]["state"] == "active"
    finally:
        host.run_expect([0], "systemctl start %s" % UNIT)
    wait_for(lambda: host.run("curl -sf -o /dev/null %s/ready" % url(host)).rc == 0, "the model service ready again")

    def scraped_up():
        result = api(mon, "/api/v1/query?query=" + quote('up{job="model_server",model_service="%s"}' % NAME))["data"]["result"]
        return result and result[0]["value"][1] == "1"

    wait_for(scraped_up, "Prometheus scraping the model service again")


def test_zz_a_crash_restart_comes_back_on_the_pinned_version(host):
    """kill -9: systemd restarts the instance, which loads the pinned version from its cache.
    (Named zz: it runs last, since it resets the in-process metrics.)"""
    pid = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
    restarts = int(host.check_output("systemctl show -p NRestarts --value %s" % UNIT))
    host.run_expect([0], "kill -9 %s" % pid)
    status = None
    for dummy in range(60):
        result = host.run("curl -s -o /dev/null -w '%%{http_code}' %s/ready" % url(host))
        status = result.stdout.strip()
        if status == "200" and host.check_output("systemctl show -p MainPID --value %s" % UNIT) not in ("0", pid):
            break
        host.run("sleep 1")
    assert status == "200"
    assert host.check_output("systemctl show -p MainPID --value %s" % UNIT) != pid
    assert int(host.check_output("systemctl show -p NRestarts --value %s" % UNIT)) == restarts + 1
    assert call(host, "/v1/models")[1]["models"][0]["version"] == VERSION
