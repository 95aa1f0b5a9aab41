"""Verify the training pipeline (molecule/mlflow_sqlite): the Prefect server and worker as services,
their doors, and what side_effect's runs (training.yml) left behind, read back from the real programs:
Prefect's API through the nginx TLS site, MLflow's registry through its own, the node-exporter
textfile, and the controller's git for the commit that shipped."""

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."))
WORKER_VENV = "/opt/runlocalai/venvs/prefect-worker"
TEXTFILE = "/var/lib/prometheus/node-exporter/mlops_pipeline_breast-cancer.prom"
MODEL = "breast-cancer"


def measured(line):
    """Print a measurement and keep it where the test runner keeps its logs (README's Measured table)."""
    print(line)
    out = PROJECT / ".cache" / "test-output"
    out.mkdir(parents=True, exist_ok=True)
    with open(str(out / "mlflow_sqlite-measured.txt"), "a") as handle:
        handle.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")


def secret(name):
    return (SECRETS / name).read_text().split()[0]


@pytest.fixture(scope="module")
def address(host):
    return host.check_output("hostname -I").split()[0]


@pytest.fixture(scope="module")
def prefect(address):
    """Calls to the Prefect API as a worker makes them: TLS, the shared auth string."""
    user, password = ("prefect", secret("prefect"))
    url = "https://%s:4443/api" % address
    cert = str(SECRETS / "prefect.crt")

    def call(method, path, body=None, auth=(user, password)):
        return requests.request(method, url + path, json=body, auth=auth, verify=cert, timeout=30)
    return call


@pytest.fixture(scope="module")
def mlflow_api(address):
    url = "https://%s" % address
    cert = str(SECRETS / "mlflow.crt")

    def get(endpoint, **params):
        answer = requests.get(url + endpoint, params=params, auth=("admin", secret("admin")), verify=cert, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()
    return get


def flow_runs(prefect):
    answer = prefect("POST", "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC", "limit": 200})
    assert answer.status_code == 200, answer.text
    return answer.json()


def versions(mlflow_api):
    found = mlflow_api("/api/2.0/mlflow/model-versions/search", filter="name='%s'" % MODEL)
    return sorted(found.get("model_versions", []), key=lambda v: int(v["version"]))


@pytest.mark.parametrize("unit,user", [("prefect-server", "prefect"), ("prefect-worker", "prefect-worker"),
                                       ("runlocalai-training-trigger", "prefect")])
def test_services_run_sandboxed_as_their_users(host, unit, user):
    assert host.service(unit).is_running and host.service(unit).is_enabled
    pid = host.check_output("systemctl show -p MainPID --value %s", unit)
    assert host.check_output("ps -o user= -p %s", pid) == user
    out = host.check_output("systemd-analyze security --no-pager %s.service", unit)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    print("systemd-analyze security %s.service: %.1f" % (unit, score))
    assert score <= 3.5, out


def test_server_listens_on_loopback_and_nginx_on_the_address(host, address):
    listening = host.check_output("ss -Hltn")
    assert re.search(r"127\.0\.0\.1:4200\s", listening), listening
    assert not re.search(r"(0\.0\.0\.0|\*|\[::\]|%s):4200\s" % re.escape(address), listening), listening
    assert re.search(r"%s:4443\s" % re.escape(address), listening), listening


def test_api_refuses_calls_without_the_auth_string(prefect):
    assert prefect("POST", "/flows/filter", {}, auth=None).status_code == 401
    assert prefect("POST", "/flows/filter", {}, auth=("prefect", "wrong-password-123")).status_code == 401
    assert prefect("POST", "/flows/filter", {}).status_code == 200


def test_telemetry_is_off(host):
    env = host.file("/etc/prefect/server.env").content_string
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in env
    secrets = host.file("/etc/prefect/server-secrets.env")
    assert (secrets.user, secrets.group, secrets.mode) == ("root", "root", 0o600)


def test_the_shipped_code_is_the_controllers_commit(host):
    head = subprocess.check_output(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], text=True).strip()
    found = host.check_output("cat /var/lib/runlocalai-training/code/*/PIPELINE_SOURCE.json")
    sources = [json.loads(part) for part in found.replace("}\n{", "}\x00{").split("\x00")]
    assert head in [s["commit"] for s in sources]
    code = host.file("/var/lib/runlocalai-training/code/%s/breast_cancer.py" % [s for s in sources if s["commit"] == head][-1]["id"])
    assert code.user == "root" and not code.mode & 0o022


def test_a_manual_run_registered_a_candidate_and_a_rerun_skipped(host, prefect):
    left = json.loads(host.file("/root/training-runs.json").content_string)
    assert left["unchanged"]["state"]["name"] == "Skipped", left["unchanged"]
    assert "unchanged data" in left["unchanged"]["state"]["message"]
    registered = [r for r in flow_runs(prefect) if (r["state"]["message"] or "").startswith("registered %s version" % MODEL)]
    assert sorted(r["parameters"]["trigger"]["kind"] for r in registered) == ["manual", "new-data"], [r["state"] for r in flow_runs(prefect)]


def test_new_data_started_one_run_that_trained_on_it(host, mlflow_api):
    runs = json.loads(host.file("/root/training-runs.json").content_string)["new_data"]
    assert len(runs) == 1, runs  # PathChanged may fire more than once: one run per content
    trigger = runs[0]["parameters"]["trigger"]
    digest = host.check_output("sha256sum /srv/training/breast-cancer-next.csv").split()[0]
    assert trigger == {"kind": "new-data", "path": "/srv/training/breast-cancer.csv", "sha256": digest}
    assert runs[0]["state"]["message"].startswith("registered %s version 2" % MODEL), runs[0]["state"]
    tags = dict((t["key"], t["value"]) for t in versions(mlflow_api)[1]["tags"])
    assert tags["training.trigger"] == "new-data" and tags["training.data_sha256"] == digest


def test_a_schema_violation_stops_the_run_in_validation(host):
    invalid = json.loads(host.file("/root/training-runs.json").content_string)["invalid"]
    assert invalid["state"]["type"] == "FAILED", invalid
    assert "validate: the data violates its schema" in invalid["state"]["message"], invalid
    assert "mean_radius" in invalid["state"]["message"], invalid


def test_the_schedule_started_runs(host):
    scheduled = json.loads(host.file("/root/training-runs.json").content_string)["scheduled"]
    assert scheduled and all(r["state"]["type"] == "COMPLETED" and "auto-scheduled" in r["tags"] for r in scheduled), scheduled
    assert scheduled[0]["parameters"]["spec"]["model"] == MODEL


def test_the_candidate_carries_its_provenance(host, prefect, mlflow_api):
    found = versions(mlflow_api)
    assert [v["version"] for v in found] == ["1", "2"], found
    version = found[0]
    tags = dict((t["key"], t["value"]) for t in version.get("tags", []))
    head = subprocess.check_output(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], text=True).strip()
    dirty = bool(subprocess.check_output(["git", "-C", str(PROJECT), "status", "--porcelain", "--", "pipelines"], text=True).strip())
    assert tags["training.git_commit"] == head
    assert tags["training.git_dirty"] == str(dirty).lower()
    assert tags["training.data_uri"] == "file:///srv/training/breast-cancer.csv"
    # Version 1 trained on the first extract (the file now holds the next one).
    assert tags["training.data_sha256"] != host.check_output("sha256sum /srv/training/breast-cancer.csv").split()[0]
    assert tags["training.data_sha256"] == host.check_output("sha256sum /srv/training/breast-cancer-all.csv").split()[0]
    assert "Python " + tags["training.python"] == host.check_output(WORKER_VENV + "/bin/python --version")
    assert tags["training.host"] == host.check_output("hostname")
    assert tags["training.cpu"]
    run = prefect("GET", "/flow_runs/%s" % tags["training.flow_run_id"]).json()
    assert run["state"]["message"].startswith("registered %s version %s" % (MODEL, version["version"]))
    assert tags["training.trigger"] == json.loads(tags["training.trigger_detail"])["kind"]
    # The exact package set, as an artifact of the run, and its digest as a tag.
    lock = requests.get("https://%s/get-artifact" % host.check_output("hostname -I").split()[0],
                        params={"run_id": version["run_id"], "path": "provenance/requirements.lock"},
                        auth=("admin", secret("admin")), verify=str(SECRETS / "mlflow.crt"), timeout=30).text
    assert "prefect==3.9.1" in lock.splitlines() and "scikit-learn==1.9.1" in lock.splitlines()
    assert hashlib.sha256(lock.strip("\n").encode()).hexdigest() == tags["training.packages_sha256"]
    # A candidate: no alias points at it until deploy_model.yml's gate and approvals.
    model = mlflow_api("/api/2.0/mlflow/registered-models/get", name=MODEL)["registered_model"]
    assert not model.get("aliases")


def test_the_candidate_has_its_reference_profile_and_pinned_requirements(host, mlflow_api, address):
    version = versions(mlflow_api)[0]
    listing = mlflow_api("/api/2.0/mlflow/artifacts/list", run_id=version["run_id"], path="drift")
    assert "drift/reference_profile.json" in [f["path"] for f in listing.get("files", [])]
    # The registered version's own files (MLflow 3 keeps a logged model apart from its run's artifacts).
    requirements = requests.get("https://%s/model-versions/get-artifact" % address,
                                params={"name": MODEL, "version": version["version"], "path": "requirements.txt"},
                                auth=("admin", secret("admin")), verify=str(SECRETS / "mlflow.crt"), timeout=30).text
    assert "scikit-learn==1.9.1" in requirements.splitlines(), requirements


def test_the_worker_writes_its_series_by_acl_in_a_directory_it_does_not_own(host):
    """node-exporter's package owns the textfile directory where both are installed: the role leaves it
    root's and grants the worker write access by ACL (the demo found a group change undone by the monitoring role)."""
    directory = host.file(os.path.dirname(TEXTFILE))
    assert (directory.user, directory.group) == ("root", "root")
    # The group bits of the mode are the ACL's mask: read the entries themselves.
    acl = host.check_output("getfacl -p %s", directory.path).split()
    assert {"user::rwx", "group::r-x", "other::r-x", "user:prefect-worker:rwx"} <= set(acl), acl
    assert host.file(TEXTFILE).user == "prefect-worker"


def test_runs_and_evaluation_are_series(host, mlflow_api):
    families = dict((f.name, f) for f in text_string_to_metric_families(host.file(TEXTFILE).content_string))
    runs = dict((s.labels["outcome"], s.value) for s in families["mlops_pipeline_runs"].samples if s.name.endswith("_total"))
    assert runs["success"] == 2 and runs["skipped_unchanged"] >= 1 and runs["failed"] >= 1, runs
    last_failed = [s.value for s in families["mlops_pipeline_last_run_failed"].samples]
    assert last_failed in ([0.0], [1.0])
    version = versions(mlflow_api)[-1]  # the last candidate's evaluation
    run = mlflow_api("/api/2.0/mlflow/runs/get", run_id=version["run_id"])["run"]
    logged = dict((m["key"], m["value"]) for m in run["data"]["metrics"])
    evaluation = dict(((s.labels["metric"], s.labels["group"]), s) for s in families["mlops_evaluation_metric"].samples)
    assert set(s.labels["stage"] for s in evaluation.values()) == {"pipeline"}
    accuracy = evaluation[("accuracy", "all")]
    assert accuracy.labels["version"] == version["version"] and accuracy.labels["run_id"] == version["run_id"]
    assert accuracy.value == pytest.approx(logged["accuracy"])
    assert 0.9 < accuracy.value <= 1.0
    assert ("accuracy", "low") in evaluation and ("accuracy", "high") in evaluation
    assert evaluation[("max_disparity", "all")].value == pytest.approx(logged["max_disparity"])


def test_a_restored_snapshot_brings_back_the_deployments_of_its_time(host, prefect):
    restored = json.loads(host.file("/root/training-runs.json").content_string)["restored"]
    assert restored[0]["name"] == MODEL and restored[0]["id"], restored
    assert restored[1]["name"] == "made-after-the-snapshot" and restored[1]["id"] is None, restored
    assert prefect("GET", "/deployments/name/training-pipeline/made-after-the-snapshot").status_code == 404
    snapshots = host.check_output("ls /var/lib/prefect/backups")
    assert re.search(r"prefect-\d{8}T\d{6}Z\.db", snapshots), snapshots


def alertmanager_payload(starts):
    """What Alertmanager sends when ModelDataDrift fires for breast-cancer (webhook format version 4)."""
    labels = {"alertname": "ModelDataDrift", "model": MODEL, "model_version": "1", "severity": "warning"}
    return {"version": "4", "groupKey": '{}:{alertname="ModelDataDrift"}', "status": "firing", "receiver": "retrain",
            "groupLabels": {"alertname": "ModelDataDrift"}, "commonLabels": labels, "externalURL": "http://alertmanager",
            "alerts": [{"status": "firing", "labels": dict(labels, feature=f), "annotations": {}, "startsAt": starts,
                        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f} for f in ("mean_radius", "worst_area")]}


def test_a_drift_alert_starts_one_run_and_its_repeats_none(address, prefect):
    url = "https://%s:4443/hooks/alertmanager" % address
    cert = str(SECRETS / "prefect.crt")
    token = {"Authorization": "Bearer " + secret("trigger")}
    body = alertmanager_payload("2026-12-07T10:00:00.000Z")
    first = requests.post(url, json=body, headers=token, verify=cert, timeout=30)
    again = requests.post(url, json=body, headers=token, verify=cert, timeout=30)
    assert first.status_code == 202 and again.status_code == 202, (first.text, again.text)
    run_id = first.json()["started"][0]["flow_run_id"]
    assert again.json()["started"][0]["flow_run_id"] == run_id
    deadline = time.time() + 180
    while True:
        run = prefect("GET", "/flow_runs/%s" % run_id).json()
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") or time.time() > deadline:
            break
        time.sleep(3)
    assert run["state"]["name"] == "Skipped", run["state"]  # the data has not changed since the candidate
    assert run["parameters"]["trigger"]["kind"] == "drift-alert" and "trigger:drift-alert" in run["tags"]
    assert run["parameters"]["trigger"]["fingerprints"] == ["mean_radius", "worst_area"]


@pytest.mark.parametrize("headers,body,status", [
    ({}, b"{}", 401),
    ({"Authorization": "Bearer not-the-token"}, b"{}", 401),
    ("token", b"{not json", 400),
    ("token", b"[" * 100000 + b"]" * 100000, 400),
    ("token", b'{"alerts": []}', 400),
])
def test_the_receiver_answers_hostile_input_with_4xx(address, headers, body, status):
    if headers == "token":
        headers = {"Authorization": "Bearer " + secret("trigger")}
    headers = dict(headers, **{"Content-Type": "application/json"})
    answer = requests.post("https://%s:4443/hooks/alertmanager" % address, data=body, headers=headers,
                           verify=str(SECRETS / "prefect.crt"), timeout=30)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize("unit,limit", [("prefect-server", 1024), ("prefect-worker", 4096)])
def test_memory_stays_under_the_units_ceiling(host, unit, limit):
    """What the engine costs on a lab host (printed for the README's Measured table), within its MemoryMax."""
    used = int(host.check_output("systemctl show -p MemoryCurrent --value %s", unit)) / 2 ** 20
    ceiling = int(host.check_output("systemctl show -p MemoryMax --value %s", unit)) / 2 ** 20
    measured("%s MemoryCurrent %.0f MiB (MemoryMax %.0f MiB)" % (unit, used, ceiling))
    assert ceiling == limit and 0 < used < ceiling


def test_how_long_a_training_run_takes(prefect):
    registered = [r for r in flow_runs(prefect) if (r["state"]["message"] or "").startswith("registered %s version" % MODEL)]
    for run in registered:
        measured("training run %s (trigger %s): %.1f s" % (run["name"], run["parameters"]["trigger"]["kind"], run["total_run_time"]))
    assert all(run["total_run_time"] > 0 for run in registered)
