"""deploy_model.yml's environment check for real, on this machine: the MLflow test server (basic
auth), pyfunc versions logged by MLflow itself (its requirements.txt, python_env.yaml, conda.yaml),
and a serving host (connection local) whose model-server virtualenv is the interpreter running
these tests. The deploy must refuse a version whose required package differs in major.minor from
the host's, naming host, package, wanted and found (and audit it), and let a matching one through
the environment check. So that nothing is ever restarted here, the promotion needs an approver
nobody gave: a version that passes the gate and the environment check stops there instead."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: E402,F401 pylint: disable=unused-import
    ADMIN, ADMIN_PASSWORD, admin_credentials, mlflow_server)

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "ansible_collections/runlocalai/mlops/playbooks/deploy_model.yml"
MODEL = "envcheck-bc"
HOST = "envcheck-srv"


@pytest.fixture(scope="module")
def versions(mlflow_server, tmp_path_factory):  # noqa: F811
    """v1 requires the scikit-learn installed here (match), v2 scikit-learn==1.4.2 (mismatch); evaluation data."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.iloc[:, :6].copy()
    features.columns = ["f%d" % i for i in range(6)]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, data.target)
    signature = infer_signature(features, pipe.predict(features))
    with admin_credentials():
        mlflow.set_tracking_uri(mlflow_server.url)
        mlflow.set_experiment("envcheck-tests")
        for requirement in ("scikit-learn==%s" % sklearn.__version__, "scikit-learn==1.4.2"):
            with mlflow.start_run():
                mlflow.sklearn.log_model(pipe, name="model", signature=signature, registered_model_name=MODEL,
                                         pip_requirements=[requirement], serialization_format="cloudpickle")
    data_dir = tmp_path_factory.mktemp("envcheck-data")
    features.assign(label=data.target.values).to_csv(data_dir / "eval.csv", index=False)
    return {"eval": str(data_dir / "eval.csv"), "sklearn": sklearn.__version__}


def deploy(server, versions, tmp_path, version, **extra):
    venv = os.path.dirname(os.path.dirname(sys.executable))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become_method": "su"}
    inventory = {"all": {"vars": {"ansible_python_interpreter": sys.executable}, "children": {
        "mlflow": {"hosts": {"envcheck-tracking": local}},
        "serving": {"hosts": {HOST: dict(local, model_server_venv=venv, model_server_models=[
            {"name": MODEL, "alias": "production", "port": 18931}])}}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    extra_vars = {
        "model": MODEL, "version": str(version),
        "lifecycle_tracking_uri": server.url, "lifecycle_username": ADMIN, "lifecycle_password": ADMIN_PASSWORD,
        "lifecycle_models": {MODEL: {"eval_data": versions["eval"], "label_column": "label"}},
        "lifecycle_required_approvers": ["nobody-approved"],
        "lifecycle_audit_path": str(tmp_path / "audit" / "lifecycle.db"),
        "lifecycle_audit_heads_dir": str(tmp_path / "heads"),
    }
    extra_vars.update(extra)
    # Its own temporary directory: the scratch directories it must leave nothing of are looked for there
    # (other playbooks may run on this machine at the same time, molecule's for one).
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", TMPDIR=str(tmp_path / "tmp"))
    cmd = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(PLAYBOOK),
           "-e", json.dumps(extra_vars)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    result.output = result.stdout + result.stderr
    result.flat = " ".join(result.output.split())
    return result


def audited(tmp_path):
    """The deployment's gate entry in the audit chain."""
    conn = sqlite3.connect(str(tmp_path / "audit" / "lifecycle.db"))
    try:
        rows = conn.execute("SELECT event_type, details FROM audit_log WHERE entry_id LIKE '%-gate'").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1, rows
    return {"event_type": rows[0][0], "details": json.loads(rows[0][1])}


def test_mismatch_refused_before_anything_moves(mlflow_server, versions, tmp_path):  # noqa: F811
    result = deploy(mlflow_server, versions, tmp_path, 2)
    assert result.returncode != 0, result.output[-3000:]
    wanted = "%s: scikit-learn wanted 1.4 (==1.4.2), found %s" % (HOST, versions["sklearn"])
    assert ("envcheck-bc v2 was refused and not deployed; production still points at v? and nothing was restarted. "
            "Reason: validation gate: environment mismatch: %s;" % wanted) in result.flat, result.output[-3000:]
    assert "approv" not in result.flat.split("Reason:")[-1].split("Audited as")[0]
    entry = audited(tmp_path)
    assert entry["event_type"] == "deploy_refused"
    assert entry["details"]["gate_failures"] == [wanted]
    assert entry["details"]["environment"]["passed"] is False
    assert entry["details"]["environment"]["hosts"][HOST]["packages"] == ["mlflow", "scikit-learn"]
    # No scratch copy of the model's files is left on the host or the controller.
    assert not [p for p in (tmp_path / "tmp").glob("ansible.*-lifecycle-env")]


def test_mismatch_only_warns_with_lifecycle_environment_mismatch_warn(mlflow_server, versions, tmp_path):  # noqa: F811
    result = deploy(mlflow_server, versions, tmp_path, 2, lifecycle_environment_mismatch="warn")
    assert result.returncode != 0, result.output[-3000:]
    assert "(lifecycle_environment_mismatch=warn)" in result.flat
    reason = result.flat.split("Reason:")[-1]
    assert "environment mismatch" not in reason and "nobody-approved" in reason, result.output[-3000:]
    entry = audited(tmp_path)
    assert entry["details"]["environment"]["passed"] is True
    assert entry["details"]["environment"]["policy"] == "warn"
    assert len(entry["details"]["environment"]["mismatches"]) == 1


def test_match_passes_the_environment_check(mlflow_server, versions, tmp_path):  # noqa: F811
    result = deploy(mlflow_server, versions, tmp_path, 1)
    assert result.returncode != 0, result.output[-3000:]  # stopped at the approvals, on purpose
    assert "environment matches on 1 host(s)" in result.flat, result.output[-3000:]
    reason = result.flat.split("Reason:")[-1]
    assert "environment mismatch" not in reason and "nobody-approved" in reason, result.output[-3000:]
    entry = audited(tmp_path)
    assert entry["details"]["environment"]["passed"] is True and entry["details"]["environment"]["mismatches"] == []
    assert entry["details"]["gate_failures"] == []
