"""Verify the mlflow_server role from the controller, through the real
endpoint (nginx TLS on the lab host's address), with the MLflow client.

Shared by the mlflow_sqlite and mlflow_postgresql scenarios; checks that
depend on the backend look at MOLECULE_SCENARIO_NAME.
"""

import json
import os
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"
CONFIG = "/etc/runlocalai/mlflow"
HOME = "/var/lib/runlocalai/mlflow"
VENV = "/opt/runlocalai/venvs/mlflow"
PINNED_VERSION = "3.17.2"
ROLE_DEFAULTS = (Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / "ansible_collections" / "runlocalai" / "mlops"
                 / "roles" / "mlflow_server" / "defaults" / "main.yml")


def secret(name):
    return (SECRETS / name).read_text().split()[0]


@pytest.fixture(scope="module")
def server(host, tmp_path_factory):
    """The server's URL and CA certificate, as a client sees them."""
    address = host.check_output("hostname -I").split()[0]
    cert = tmp_path_factory.mktemp("tls") / "server.crt"
    cert.write_text(host.file(CONFIG + "/tls/server.crt").content_string)
    return {"url": "https://" + address, "address": address, "cert": str(cert)}


def get(server, path, auth=None, **kwargs):
    return requests.get(server["url"] + path, auth=auth, verify=server["cert"], timeout=30, **kwargs)


@pytest.fixture(scope="module")
def logged(server):
    """Log a run and register a model through the endpoint, as a user would."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    env = {
        "MLFLOW_TRACKING_URI": server["url"],
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": secret("admin"),
        "MLFLOW_TRACKING_SERVER_CERT_PATH": server["cert"],
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        name = "molecule-" + uuid.uuid4().hex[:8]
        mlflow.set_tracking_uri(server["url"])
        mlflow.set_experiment(name)
        with mlflow.start_run() as run:
            mlflow.log_param("C", 0.5)
            mlflow.log_metric("accuracy", 0.93)
            mlflow.log_text("artifact body " + name, "notes/readme.txt")
            model = LogisticRegression(C=0.5).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
        client = MlflowClient()
        client.set_registered_model_alias(name, "champion", info.registered_model_version)
        yield {"name": name, "run_id": run.info.run_id, "version": str(info.registered_model_version)}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def read_back(server, logged):
    """What the server returns for the logged run and model (admin credentials)."""
    auth = ("admin", secret("admin"))
    run = get(server, "/api/2.0/mlflow/runs/get", auth, params={"run_id": logged["run_id"]}).json()["run"]
    alias = get(server, "/api/2.0/mlflow/registered-models/alias", auth,
                params={"name": logged["name"], "alias": "champion"}).json()["model_version"]
    artifact = get(server, "/get-artifact", auth, params={"run_id": logged["run_id"], "path": "notes/readme.txt"})
    return run, alias, artifact


def test_unit_is_active_and_runs_as_the_service_user(host):
    assert host.service("mlflow-server").is_running
    assert host.service("mlflow-server").is_enabled
    pid = host.check_output("systemctl show -p MainPID --value mlflow-server")
    assert host.check_output("ps -o user= -p %s", pid) == "mlops"


def test_unit_sandboxing_scores_35_or_better(host):
    result = host.run("systemd-analyze security --threshold=35 --no-pager mlflow-server.service")
    assert result.rc == 0, result.stdout[-3000:]
    score = float(result.stdout.strip().splitlines()[-1].split("exposure level for mlflow-server.service:")[1].split()[0])
    assert score <= 3.5


@pytest.mark.parametrize(
    "path,owner,group,mode",
    [
        (CONFIG + "/secrets.env", "root", "root", 0o600),
        (CONFIG + "/flask-secret.env", "root", "root", 0o600),
        (CONFIG + "/basic_auth.ini", "root", "mlops", 0o640),
        (CONFIG + "/mlflow.env", "root", "mlops", 0o640),
        (CONFIG + "/tls/server.key", "root", "root", 0o600),
        (CONFIG, "root", "mlops", 0o750),
        (HOME, "mlops", "mlops", 0o750),
        (HOME + "/backups", "mlops", "mlops", 0o700),
        ("/etc/systemd/system/mlflow-server.service", "root", "root", 0o644),
    ],
)
def test_files_have_owners_and_modes(host, path, owner, group, mode):
    f = host.file(path)
    assert f.exists
    assert (f.user, f.group, f.mode) == (owner, group, mode)


def test_password_checks_are_cached_for_the_role_default(host):
    """MLflow checks a scrypt hash on every request without its credential cache (about 0.5 s of CPU each);
    the role turns the cache on (a rotated password is forgotten at once: mlflow_postgresql's side effect)."""
    ttl = yaml.safe_load(ROLE_DEFAULTS.read_text())["mlflow_server_auth_cache_ttl_seconds"]
    assert ttl > 0
    assert "auth_cache_ttl_seconds = %d" % ttl in host.file(CONFIG + "/basic_auth.ini").content_string.splitlines()


def test_secret_key_is_generated_and_not_on_the_command_line(host):
    content = host.file(CONFIG + "/flask-secret.env").content_string.strip()
    key = content.split("=", 1)[1]
    assert len(key) == 64 and int(key, 16) >= 0
    cmdline = host.check_output("cat /proc/$(systemctl show -p MainPID --value mlflow-server)/cmdline | tr '\\0' ' '")
    assert key not in cmdline
    assert secret("admin") not in cmdline and "BACKEND_STORE_URI" not in cmdline
    assert "basic-auth" in cmdline


def test_mlflow_itself_listens_on_loopback_only(host, server):
    assert host.socket("tcp://127.0.0.1:5000").is_listening
    assert not host.socket("tcp://0.0.0.0:5000").is_listening
    assert not host.socket("tcp://%s:5000" % server["address"]).is_listening


def test_http_redirects_to_https(server):
    response = requests.get("http://%s/" % server["address"], allow_redirects=False, timeout=30)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://")


def test_health_is_open_and_the_api_needs_credentials(server):
    assert get(server, "/health").status_code == 200
    assert get(server, "/api/2.0/mlflow/experiments/search", params={"max_results": 1}).status_code == 401
    wrong = get(server, "/api/2.0/mlflow/experiments/search", ("admin", "wrong-" + secret("admin")),
                params={"max_results": 1})
    assert wrong.status_code == 401
    right = get(server, "/api/2.0/mlflow/experiments/search", ("admin", secret("admin")), params={"max_results": 1})
    assert right.status_code == 200


@pytest.mark.skipif(SCENARIO != "mlflow_postgresql", reason="the rotation is exercised in the PostgreSQL scenario")
def test_rotated_admin_password_replaced_the_first_one(server):
    # The side effect generated a new admin password after MLflow had created
    # the admin with the first one: the first no longer works, the new one does.
    path = "/api/2.0/mlflow/experiments/search"
    previous = secret("admin.previous")
    assert previous != secret("admin")
    assert get(server, path, ("admin", previous), params={"max_results": 1}).status_code == 401
    assert get(server, path, ("admin", secret("admin")), params={"max_results": 1}).status_code == 200


def test_tracking_and_registry_through_the_endpoint(server, logged):
    run, alias, artifact = read_back(server, logged)
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"C": "0.5"}
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"accuracy": 0.93}
    assert alias["version"] == logged["version"] == "1"
    assert alias["run_id"] == logged["run_id"]
    assert artifact.status_code == 200 and artifact.text == "artifact body " + logged["name"]


def test_model_reader_reads_the_registry_but_cannot_change_it(server, logged):
    auth = ("model-reader", secret("reader"))
    read = get(server, "/api/2.0/mlflow/registered-models/get", auth, params={"name": logged["name"]})
    assert read.status_code == 200
    write = requests.post(server["url"] + "/api/2.0/mlflow/registered-models/alias", auth=auth,
                          verify=server["cert"], timeout=30,
                          json={"name": logged["name"], "alias": "champion", "version": logged["version"]})
    assert write.status_code == 403


def test_prometheus_user_scrapes_metrics_and_nothing_else(server, logged):
    assert get(server, "/metrics").status_code == 401
    assert get(server, "/metrics", ("prometheus", "wrong-" + secret("metrics"))).status_code == 401
    metrics = get(server, "/metrics", ("prometheus", secret("metrics")))
    assert metrics.status_code == 200
    assert "http_request" in metrics.text
    # Not an MLflow user: the tracking API refuses it.
    api = get(server, "/api/2.0/mlflow/experiments/search", ("prometheus", secret("metrics")), params={"max_results": 1})
    assert api.status_code == 401


def test_everything_survives_a_restart(host, server, logged):
    before = read_back(server, logged)
    host.run_expect([0], "systemctl restart mlflow-server")
    for _ in range(60):
        if host.run("curl -sf http://127.0.0.1:5000/health").rc == 0:
            break
        time.sleep(2)
    after = read_back(server, logged)
    assert after[0]["data"] == before[0]["data"]
    assert after[1]["version"] == before[1]["version"]
    assert after[2].text == before[2].text


def test_pinned_version_is_installed(host):
    version = host.check_output(VENV + "/bin/python -c 'import importlib.metadata as m; print(m.version(\"mlflow\"))'")
    assert version == PINNED_VERSION


def test_restore_brought_back_the_snapshot_state(host, server):
    auth = ("admin", secret("admin"))
    kept = get(server, "/api/2.0/mlflow/registered-models/get", auth, params={"name": "kept-by-restore"})
    assert kept.status_code == 200, kept.text
    lost = get(server, "/api/2.0/mlflow/registered-models/get", auth, params={"name": "lost-by-restore"})
    assert lost.status_code == 404 and lost.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    proof = json.loads(host.file("/root/restore-proof.json").content_string)
    artifact = get(server, "/get-artifact", auth, params={"run_id": proof["run_id"], "path": "proof.txt"})
    assert artifact.status_code == 200 and artifact.text == "restored artifact"


def test_snapshot_archive_is_private_and_complete(host):
    archives = host.check_output("ls %s/backups/mlflow-snapshot-*.tar.gz" % HOME).split()
    assert len(archives) == 1
    archive = host.file(archives[0])
    assert (archive.user, archive.group, archive.mode) == ("mlops", "mlops", 0o600)
    members = set(host.check_output("tar -tzf %s" % archives[0]).split())
    name = os.path.basename(archives[0])[:-len(".tar.gz")]
    # SQLite + local artifacts: both databases and the artifacts. PostgreSQL + S3: pg_dump's
    # archive and the auth database; the bucket keeps its own versions.
    backend, artifacts, wanted = (("postgresql", "s3", ("manifest.json", "store.dump", "basic_auth.db"))
                                  if SCENARIO == "mlflow_postgresql" else
                                  ("sqlite", "local", ("manifest.json", "mlflow.db", "basic_auth.db", "artifacts.tar.gz")))
    assert {name + "/" + m for m in wanted} <= members
    assert (name + "/artifacts.tar.gz" in members) == (artifacts == "local")
    manifest = json.loads(host.check_output("tar -xzOf %s %s/manifest.json" % (archives[0], name)))
    assert manifest["format"] == "runlocalai.mlops/mlflow-snapshot" and manifest["mlflow_version"] == PINNED_VERSION
    assert manifest["schema_revision"] and (manifest["backend"], manifest["artifacts"]) == (backend, artifacts)
    fetched = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "backups" / host.backend.get_hostname() / os.path.basename(archives[0])
    assert fetched.stat().st_size == archive.size


@pytest.mark.skipif(SCENARIO != "mlflow_sqlite", reason="the upgrade is exercised in the SQLite scenario")
def test_upgrade_backed_up_the_old_schema_and_migrated_the_store(host):
    backups = host.check_output("ls %s/backups" % HOME).split()
    old = [b for b in backups if b.startswith("mlflow-3.16.1-") and b.endswith(".db")]
    assert len(old) == 1, backups
    backup_revision = old[0][len("mlflow-3.16.1-"):-len(".db")]
    read = "python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select version_num from alembic_version\").fetchone()[0])' %s"
    assert host.check_output(read % (HOME + "/backups/" + old[0])) == backup_revision
    current = host.check_output(read % (HOME + "/mlflow.db"))
    assert current != backup_revision
    head = host.check_output(
        "%s/bin/python -c 'from alembic.script import ScriptDirectory; from alembic.config import Config; "
        "import mlflow.store.db_migrations as m, os; c = Config(); "
        "c.set_main_option(\"script_location\", os.path.dirname(m.__file__)); "
        "print(ScriptDirectory.from_config(c).get_current_head())'" % VENV)
    assert current == head


@pytest.mark.skipif(SCENARIO != "mlflow_postgresql", reason="PostgreSQL scenario only")
def test_postgresql_is_local_only_and_holds_the_store(host):
    listen = host.check_output("runuser -u postgres -- psql -tAc 'SHOW listen_addresses'")
    assert listen == "localhost"
    tables = host.check_output("runuser -u postgres -- psql -d mlflow -tAc "
                               "\"select count(*) from information_schema.tables where table_name = 'experiments'\"")
    assert tables == "1"
    assert not host.file(HOME + "/mlflow.db").exists


@pytest.mark.skipif(SCENARIO != "mlflow_postgresql", reason="S3 scenario only")
def test_artifacts_land_in_the_s3_bucket(host, logged):
    listing = host.check_output(
        "/opt/moto/bin/python -c 'import boto3, json; s3 = boto3.client(\"s3\", endpoint_url=\"http://127.0.0.1:9000\", "
        "region_name=\"us-east-1\", aws_access_key_id=\"x\", aws_secret_access_key=\"x\"); "
        "print(json.dumps([o[\"Key\"] for o in s3.list_objects_v2(Bucket=\"mlflow-artifacts\", Prefix=\"team/\")"
        ".get(\"Contents\", [])]))'")
    keys = json.loads(listing)
    assert any(k.endswith(logged["run_id"] + "/artifacts/notes/readme.txt") for k in keys), keys
    assert not host.file(HOME + "/artifacts").exists
