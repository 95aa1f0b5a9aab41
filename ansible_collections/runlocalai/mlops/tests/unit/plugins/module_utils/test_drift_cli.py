# -*- coding: utf-8 -*-
"""drift_cli: the engine without Ansible, in place and copied into another package."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils import drift_cli
from ansible_collections.runlocalai.mlops.plugins.module_utils import drift_profile

MODULE_UTILS = os.path.dirname(drift_cli.__file__)
REPO_ROOT = os.path.abspath(os.path.join(MODULE_UTILS, "..", "..", "..", "..", ".."))


def write_csv(path, rows, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    with open(str(path), "w") as handle:
        handle.write("x,y,colour\n")
        for _row in range(rows):
            handle.write("%.6g,%.6g,%s\n" % (rng.normal(shift, 1), rng.exponential(), rng.choice(["red", "blue"])))
    return str(path)


def cli(argv):
    out, err = io.StringIO(), io.StringIO()
    code = drift_cli.main(argv, stdout=out, stderr=err)
    return code, (json.loads(out.getvalue()) if out.getvalue() else None), err.getvalue()


@pytest.fixture
def data(tmp_path):
    return {"ref": write_csv(tmp_path / "ref.csv", 2000, 1), "same": write_csv(tmp_path / "same.csv", 500, 2),
            "shifted": write_csv(tmp_path / "shifted.csv", 500, 4, shift=0.5), "dir": tmp_path}


def test_profile_then_check_idempotent(data):
    profile = str(data["dir"] / "profile.json")
    code, out, _err = cli(["profile", "--reference", data["ref"], "--output", profile])
    assert code == 0 and out["changed"] and out["features"] == {"x": "numeric", "y": "numeric", "colour": "categorical"}
    assert cli(["profile", "--reference", data["ref"], "--output", profile])[1]["changed"] is False
    prom = str(data["dir"] / "drift.prom")
    code, out, _err = cli(["check", "--reference", profile, "--current", data["shifted"], "--textfile", prom, "--label", "model=m1"])
    assert code == 0 and out["drifted"] and out["drifted_features"] == ["x"] and out["written"] == [prom]
    assert 'mlops_feature_drifted{feature="x",model="m1"} 1' in open(prom).read()
    code, out, _err = cli(["check", "--reference", profile, "--current", data["shifted"], "--textfile", prom, "--label", "model=m1"])
    assert code == 0 and out["changed"] is False


def test_exit_codes(data):
    code, _out, err = cli(["check", "--reference", data["ref"], "--current", data["shifted"], "--fail-on-drift"])
    assert code == drift_cli.EXIT_DRIFT and "drift detected" in err
    code, _out, err = cli(["check", "--reference", data["ref"], "--current", str(data["dir"] / "missing.csv")])
    assert code == drift_cli.EXIT_BAD_INPUT and "current: no such file or directory" in err
    code, _out, _err = cli(["check", "--reference", data["ref"], "--current", data["same"], "--fail-on-drift"])
    assert code == drift_cli.EXIT_OK


def test_check_only_writes_nothing(data):
    report = str(data["dir"] / "r.json")
    code, out, _err = cli(["check", "--reference", data["ref"], "--current", data["same"], "--report", report, "--check-only"])
    assert code == 0 and out["written"] == [report] and not os.path.exists(report)


def test_write_profile_artifact_to_directory(data):
    code, out, _err = cli(["write-profile-artifact", "--reference", data["ref"], "--output-dir", str(data["dir"])])
    path = str(data["dir"] / "drift" / "reference_profile.json")
    assert code == 0 and out["artifact"] == path
    assert drift_profile.load_profile(path)["content_hash"] == out["profile_hash"]


def test_write_profile_artifact_to_mlflow_run(data):
    """The profile goes to drift/reference_profile.json of the run (MLflow client stand-in)."""
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift_engine import make_options, read_reference
    profile, _built = read_reference(data["ref"], None, make_options())
    calls = []

    class Client:
        def log_artifact(self, run_id, local_path, artifact_path=None):
            calls.append((run_id, os.path.basename(local_path), artifact_path, open(local_path).read()))

    where = drift_cli.write_profile_artifact(profile, run_id="abc123", client=Client())
    assert where == "runs:/abc123/drift/reference_profile.json"
    assert calls == [("abc123", "reference_profile.json", "drift", drift_profile.dumps_profile(profile))]


def _run(args, cwd, env=None):
    return subprocess.run([sys.executable] + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, check=False)


def test_runs_as_python_m_from_the_repository(data):
    proc = _run(["-m", "ansible_collections.runlocalai.mlops.plugins.module_utils.drift_cli", "check",
                 "--reference", data["ref"], "--current", data["same"]], cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["drifted"] is False


def test_runs_copied_into_another_package_without_ansible(data, tmp_path):
    package = tmp_path / "site" / "mlops_drift"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for path in glob.glob(os.path.join(MODULE_UTILS, "drift_*.py")):
        shutil.copy(path, str(package))
        assert "ansible" not in "".join(line for line in open(path) if line.lstrip().startswith(("import ", "from ")))
    code = ("import json, sys\n"
            "from mlops_drift import drift_cli\n"
            "rc = drift_cli.main(sys.argv[1:])\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_collections')], 'ansible imported'\n"
            "sys.exit(rc)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    proc = _run(["-c", code, "check", "--reference", data["ref"], "--current", data["shifted"], "--fail-on-drift"],
                cwd=str(tmp_path), env=env)
    assert proc.returncode == drift_cli.EXIT_DRIFT, proc.stderr
    assert json.loads(proc.stdout)["drifted_features"] == ["x"]
    proc = _run(["-m", "mlops_drift.drift_cli", "--help"], cwd=str(tmp_path), env=env)
    assert proc.returncode == 0 and "write-profile-artifact" in proc.stdout
