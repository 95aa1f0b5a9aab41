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

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import cli as drift_cli
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import profiles as drift_profile


MODULE_UTILS = os.path.dirname(os.path.dirname(drift_cli.__file__))
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
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.engine import make_options, read_reference
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
    proc = _run(["-m", "ansible_collections.runlocalai.mlops.plugins.module_utils.drift.cli", "check",
                 "--reference", data["ref"], "--current", data["same"]], cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["drifted"] is False


def test_runs_copied_into_another_package_without_ansible(data, tmp_path):
    package = tmp_path / "site" / "mlops_drift"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for sub in ("common", "drift"):  # whole packages, as the model_server role installs them
        (package / sub).mkdir()
        for path in glob.glob(os.path.join(MODULE_UTILS, sub, "*.py")):
            shutil.copy(path, str(package / sub))
            assert "ansible" not in "".join(line for line in open(path) if line.lstrip().startswith(("import ", "from ")))
    # One interpreter (each start costs seconds under load): `python -m mlops_drift.drift.cli check ...` run
    # through runpy exactly as -m does, then --help, then the check that nothing of Ansible was imported.
    code = ("import contextlib, io, runpy, sys\n"
            "try:\n"
            "    runpy.run_module('mlops_drift.drift.cli', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n"
            "    rc = exc.code\n"
            "from mlops_drift.drift import cli as drift_cli\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try:\n"
            "        drift_cli.main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "sys.stderr.write('HELP:' + buf.getvalue())\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_collections')], 'ansible imported'\n"
            "sys.exit(rc)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    proc = _run(["-c", code, "check", "--reference", data["ref"], "--current", data["shifted"], "--fail-on-drift"],
                cwd=str(tmp_path), env=env)
    assert proc.returncode == drift_cli.EXIT_DRIFT, proc.stderr
    assert json.loads(proc.stdout)["drifted_features"] == ["x"]
    assert "HELP:usage: drift_cli" in proc.stderr and "write-profile-artifact" in proc.stderr


def write_model_window(directory, rows=600, accuracy=0.8, seed=5):
    """Serving window with confidence stepping down by 0.1 at row 400, and a feedback file of labels."""
    os.makedirs(str(directory))
    rng = np.random.default_rng(seed)
    conf = rng.normal(0.9, 0.03, rows)
    conf[400:] -= 0.1
    feedback = str(directory) + ".feedback.jsonl"
    with open(os.path.join(str(directory), "window-2026112710.jsonl"), "w") as win, open(feedback, "w") as fb:
        for i in range(rows):
            pred = int(rng.integers(0, 2))
            win.write(json.dumps({"inputs": {"x": 1}, "outputs": {"prediction": pred, "confidence": float(conf[i])},
                                  "request_id": "r%d" % i, "ts": "2026-11-27T10:00:00Z"}) + "\n")
            fb.write(json.dumps({"request_id": "r%d" % i, "label": pred if rng.random() < accuracy else 1 - pred}) + "\n")
    return str(directory), feedback


def test_model_check_accuracy_and_page_hinkley_idempotent_and_exit_codes(tmp_path):
    window, feedback = write_model_window(tmp_path / "w")
    report, prom = str(tmp_path / "m.json"), str(tmp_path / "m.prom")
    argv = ["model-check", "--predictions", window, "--feedback", feedback, "--reference-accuracy", "0.92",
            "--series", window, "--field", "outputs.confidence", "--direction", "down", "--delta", "0.01", "--threshold", "1",
            "--report", report, "--textfile", prom, "--label", "model=churn"]
    code, out, err = cli(argv)
    assert code == drift_cli.EXIT_OK, err
    assert out["drifted"] and out["drifted_checks"] == ["accuracy", "page_hinkley:outputs.confidence"] and len(out["failures"]) == 2
    assert out["checks"]["accuracy"]["rule"] == "accuracy_decay" and out["checks"]["accuracy"]["threshold"] == 0.05
    assert out["checks"]["page_hinkley:outputs.confidence"]["threshold"] == 1.0 and sorted(out["written"]) == sorted([report, prom])
    assert json.load(open(report))["result"]["checks"]["page_hinkley:outputs.confidence"]["first_alarm"] >= 400
    code, out, err = cli(argv + ["--fail-on-drift"])
    assert code == drift_cli.EXIT_DRIFT and out["written"] == [] and not out["changed"] and "model drift in 2 of 2" in err
    code, _out, err = cli(["model-check", "--predictions", window, "--reference-accuracy", "0.9"])
    assert code == drift_cli.EXIT_BAD_INPUT and "accuracy.current: no 'label' values" in err
    code, _out, err = cli(["model-check", "--feedback", feedback])
    assert code == drift_cli.EXIT_BAD_INPUT and "--reference-accuracy: required" in err


def test_model_check_spec_file_with_two_detectors_check_only(tmp_path):
    window, _feedback = write_model_window(tmp_path / "w")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"sequential": [
        {"name": "conf_ph", "series": window, "field": "outputs.confidence", "direction": "down", "delta": 0.01, "threshold": 1},
        {"name": "conf_cusum", "series": window, "field": "outputs.confidence", "method": "cusum", "target": 0.9, "sigma": 0.03,
         "h": 10, "direction": "up"}]}))
    report = str(tmp_path / "m.json")
    code, out, err = cli(["model-check", "--spec", str(spec), "--report", report, "--check-only"])
    assert code == drift_cli.EXIT_OK, err
    assert out["drifted_checks"] == ["conf_ph"] and out["checks"]["conf_cusum"]["drifted"] is False
    assert out["written"] == [report] and not os.path.exists(report)
    spec.write_text("{not json")
    code, _out, err = cli(["model-check", "--spec", str(spec)])
    assert code == drift_cli.EXIT_BAD_INPUT and "--spec: cannot read" in err


def test_model_check_copied_into_another_package_without_ansible(tmp_path):
    """model-check from the whole drift package (it always travels with model.py now)."""
    window, feedback = write_model_window(tmp_path / "w", accuracy=0.92)
    package = tmp_path / "site" / "mlops_drift"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for sub in ("common", "drift"):
        (package / sub).mkdir()
        for path in glob.glob(os.path.join(MODULE_UTILS, sub, "*.py")):
            shutil.copy(path, str(package / sub))
    code = ("import sys\n"
            "from mlops_drift.drift import cli as drift_cli\n"
            "code = drift_cli.main(sys.argv[1:])\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_collections')], 'ansible imported'\n"
            "sys.exit(code)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    argv = ["-c", code, "model-check", "--predictions", window, "--feedback", feedback, "--reference-accuracy", "0.92"]
    proc = _run(argv, cwd=str(tmp_path), env=env)
    assert proc.returncode == drift_cli.EXIT_OK, proc.stderr
    assert json.loads(proc.stdout)["drifted"] is False
