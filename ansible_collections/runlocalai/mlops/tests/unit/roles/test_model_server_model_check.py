# -*- coding: utf-8 -*-
"""The model_server role's model-check timer, end to end on this machine: the real service (a scikit-learn
pyfunc model behind its real HTTP layer) writes the serving window and the feedback labels as it does on a
host; the role's own templates (unit, env, spec) are rendered from its defaults and vars with the role's own
set_fact expression (filter runlocalai.mlops.model_check_spec over the version's tags); the unit's exact
ExecStart command line then runs (systemd's %i and ${MODEL_VERSION} substituted, the collection's packages
installed as runlocalai_mlops the way the role installs them) and its textfile is read back with
prometheus_client's parser."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

np = pytest.importorskip("numpy")
pytest.importorskip("mlflow")
pytest.importorskip("sklearn")
parser = pytest.importorskip("prometheus_client.parser")

from ansible_collections.runlocalai.mlops.plugins.module_utils import serving as ms  # noqa: E402
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.serving import Running  # noqa: E402

COLLECTION = Path(__file__).resolve().parents[3]
ROLE = COLLECTION / "roles" / "model_server"
MODULE_UTILS = COLLECTION / "plugins" / "module_utils"
NAME = "bc"
VERSION = "3"
FEATURES = ["f%d" % i for i in range(8)]
REFERENCE_ACCURACY = 0.95


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.iloc[:, :8].copy()
    features.columns = FEATURES
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, data.target)
    path = str(tmp_path_factory.mktemp("model") / "model")
    mlflow.sklearn.save_model(pipe, path, signature=infer_signature(features, pipe.predict(features)),
                              pip_requirements=["scikit-learn==%s" % sklearn.__version__], serialization_format="cloudpickle")
    confidence = pipe.predict_proba(features).max(axis=1)
    return {"pipe": pipe, "features": features, "path": path, "confidence": confidence}


def records(trained, indexes):
    frame = trained["features"].iloc[list(indexes)]
    return [dict((k, float(v)) for k, v in row.items()) for row in frame.to_dict(orient="records")]


class Host:
    """The role's directories under tmp_path, and the collection's packages installed as the role installs them."""

    def __init__(self, tmp_path):
        self.state = tmp_path / "var-lib"
        self.config = tmp_path / "etc"
        self.textfiles = tmp_path / "textfiles"
        self.lib = tmp_path / "lib"
        for path in (self.state / NAME / "drift", self.config, self.textfiles, self.lib / "runlocalai_mlops"):
            path.mkdir(parents=True)
        for package in ("common", "drift", "serving"):  # tasks/install.yml runtime_code_packages
            os.symlink(str(MODULE_UTILS / package), str(self.lib / "runlocalai_mlops" / package))
        (self.lib / "runlocalai_mlops" / "__init__.py").write_text("")

    def serve(self, trained, version=VERSION):
        """The real service of model NAME, its state where the role puts it, capturing every request."""
        config = ms.make_config({"name": NAME, "version": version, "model_uri": trained["path"], "port": 0, "sample_rate": 1.0,
                                 "state_dir": str(self.state / NAME), "log_dir": str(self.state / "log")})
        app = ms.ModelServer(config, rng=random.Random(1))
        app.load()
        return Running(app)


def version_tags(accuracy=REFERENCE_ACCURACY, rows=200):
    """The tags the validation gate records on a version (model_validation record=true)."""
    report = {"model_uri": "models:/%s/%s" % (NAME, VERSION), "task": "classification", "rows": rows,
              "metrics": {"accuracy": accuracy, "f1": 0.9}}
    return {"validation.passed": "true", "validation.report": json.dumps(report)}


def render_timer(host, model_check=None, tags=None):
    """tasks/model_check.yml's set_fact (its own expression, read from the file), then the unit, env and spec
    templates, rendered by ansible-playbook's template action over the role's defaults and vars. Returns (ExecStart
    argv with %i and ${MODEL_VERSION} substituted, the unit's Environment, the spec, the set_fact's value)."""
    tasks = yaml.safe_load((ROLE / "tasks" / "model_check.yml").read_text())
    expression = tasks[0]["ansible.builtin.set_fact"]["__model_server_model_check"]
    out = host.config.parent / "rendered"
    out.mkdir(exist_ok=True)
    extra = {"__model_server_m": {"name": NAME, "drift_enabled": True, "drift_schedule": "hourly",
                                  "model_check": {} if model_check is None else model_check},
             "__model_server_dir": str(host.state / NAME),
             "__model_server_pin": {"version": VERSION, "run_id": "r1", "tags": version_tags() if tags is None else tags},
             "model_server_state_dir": str(host.state), "model_server_config_dir": str(host.config),
             "model_server_textfile_dir": str(host.textfiles), "model_server_lib_dir": str(host.lib),
             "ansible_python_interpreter": sys.executable}
    templates = ["runlocalai-model-check@.service.j2", "model-check.env.j2", "model-check.json.j2"]
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
             "tasks": [{"ansible.builtin.set_fact": {"__model_server_model_check": expression}},
                       {"ansible.builtin.copy": {"content": "{{ __model_server_model_check | to_json }}", "dest": str(out / "computed.json")}}]
             + [{"ansible.builtin.template": {"src": str(ROLE / "templates" / name), "dest": str(out / name)}} for name in templates]}]
    (out / "play.yml").write_text(yaml.safe_dump(play))
    (out / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTION.parents[2]), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    ran = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          "-e", "@" + str(out / "extra.json"), str(out / "play.yml")],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    if ran.returncode != 0:
        raise RenderError(ran.stdout + ran.stderr)
    unit, env_text, spec_text = [(out / name).read_text() for name in templates]
    spec_path = host.config / ("%s.model-check.json" % NAME)
    spec_path.write_text(spec_text)
    (host.config / ("%s.model-check.env" % NAME)).write_text(env_text)
    joined = unit.replace("\\\n", " ")
    directives = [line.partition("=") for line in joined.splitlines() if "=" in line and not line.startswith("#")]
    env_file = [value for key, _sep, value in directives if key == "EnvironmentFile"]
    assert env_file == [str(host.config / "%i.model-check.env")]
    environment = dict(value.partition("=")[::2] for key, _sep, value in directives if key == "Environment")
    settings = dict(line.partition("=")[::2] for line in env_text.splitlines() if line and not line.startswith("#"))
    (exec_start,) = [value for key, _sep, value in directives if key == "ExecStart"]
    command = exec_start.replace("%i", NAME)
    command = re.sub(r"\$\{(\w+)\}", lambda m: settings[m.group(1)], command)
    assert "%" not in command and "$" not in command, command
    return shlex.split(command), environment, json.loads(spec_text), json.loads((out / "computed.json").read_text())


class RenderError(Exception):
    """ansible-playbook failed to render the timer (its output is the message)."""


def run_exec_start(host, argv, environment):
    """The ExecStart command line as systemd runs it: the virtualenv's python is this interpreter."""
    assert argv[0] == yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["model_server_venv"] + "/bin/python"
    env = dict(os.environ)
    env.update(environment)
    assert env["PYTHONPATH"] == str(host.lib)
    return subprocess.run([sys.executable] + argv[1:], env=env, capture_output=True, text=True, timeout=300, check=False)


def run_timer(host, argv, environment):
    """One run of the timer's unit that succeeds: (the process, the series it wrote)."""
    result = run_exec_start(host, argv, environment)
    assert result.returncode == 0, result.stderr
    return result, samples(host)


def samples(host):
    """(metric name, labels) -> value of the timer's textfile; every sample carries model and model_version."""
    text = (host.textfiles / ("mlops_model_check_%s.prom" % NAME)).read_text()
    out = {}
    for family in parser.text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            labels = dict(sample.labels)
            assert (labels.pop("model"), labels.pop("model_version")) == (NAME, VERSION), sample
            out[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return out


def value(series, name, **labels):
    return series[(name, tuple(sorted(labels.items())))]


def label_everything(running, trained, indexes, agree, batch=1):
    """Predict the rows (batch rows per request), then post a label for every prediction: the predicted
    class when agree, else the other one. Single-row labels name instance 0 every other time (as a client may)."""
    indexes = list(indexes)
    for start in range(0, len(indexes), batch):
        chunk = indexes[start:start + batch]
        answer = running.post("/v1/predict", {"records": records(trained, chunk)}).json()
        labels = [int(p) if agree else 1 - int(p) for p in answer["predictions"]]
        if batch > 1:
            body = {"request_id": answer["request_id"], "labels": labels}
        else:
            body = {"request_id": answer["request_id"], "label": labels[0]}
            if start % 2:
                body["instance"] = 0
        assert running.post("/v1/feedback", body).status_code == 200


def test_feedback_that_disagrees_is_accuracy_decay(trained, tmp_path):
    host = Host(tmp_path)
    running = host.serve(trained)
    try:
        label_everything(running, trained, range(0, 60), agree=False)
        label_everything(running, trained, range(60, 100), agree=False, batch=4)
    finally:
        running.stop()
    argv, environment, spec, _computed = render_timer(host)
    assert spec["accuracy"]["reference_accuracy"] == REFERENCE_ACCURACY and spec["accuracy"]["reference_rows"] == 200
    result, series = run_timer(host, argv, environment)
    assert value(series, "mlops_model_check_drifted", check="accuracy") == 1.0
    assert value(series, "mlops_model_check_decided", check="accuracy") == 1.0
    assert value(series, "mlops_model_accuracy", window="reference") == REFERENCE_ACCURACY
    assert value(series, "mlops_model_accuracy", window="current") == 0.0
    assert value(series, "mlops_model_accuracy_labelled") == 100.0
    assert value(series, "mlops_model_drift_detected") == 1.0
    assert value(series, "mlops_model_drift_checks") == 3.0
    report = json.loads((host.state / NAME / "drift" / "model-check.json").read_text())
    assert report["result"]["checks"]["accuracy"]["labels"]["joined"] == 100


def test_feedback_that_agrees_is_no_decay_and_older_versions_do_not_count(trained, tmp_path):
    host = Host(tmp_path)
    running = host.serve(trained, version="2")  # the version before: its records stay in the window
    try:
        label_everything(running, trained, range(0, 40), agree=False)
    finally:
        running.stop()
    running = host.serve(trained)
    try:
        label_everything(running, trained, range(40, 100), agree=True)
    finally:
        running.stop()
    argv, environment, _spec, _computed = render_timer(host)
    result, series = run_timer(host, argv, environment)
    assert value(series, "mlops_model_check_drifted", check="accuracy") == 0.0
    assert value(series, "mlops_model_accuracy", window="current") == 1.0
    assert value(series, "mlops_model_accuracy_labelled") == 60.0
    summary = json.loads(result.stdout)
    assert summary["drifted"] is False, summary


def test_a_confidence_step_change_raises_page_hinkley_and_cusum_alarms(trained, tmp_path):
    confidence = trained["confidence"]
    sure = [int(i) for i in np.flatnonzero(confidence > 0.99)]
    sure = (sure * (250 // len(sure) + 1))[:250]  # CUSUM takes its target and sigma from the first 200
    unsure = [int(i) for i in np.flatnonzero((confidence > 0.5) & (confidence < 0.8))]
    unsure = (unsure * (150 // len(unsure) + 1))[:150]
    assert len(sure) == 250 and len(unsure) == 150
    host = Host(tmp_path)
    running = host.serve(trained)
    try:
        for index in sure + unsure:
            assert running.post("/v1/predict", {"records": records(trained, [index])}).status_code == 200
    finally:
        running.stop()
    argv, environment, spec, computed = render_timer(host, tags={})  # no validation report: accuracy is off
    assert "accuracy" not in spec and computed["off"]["accuracy"].startswith("the version has no validation report")
    result, series = run_timer(host, argv, environment)
    for check in ("page_hinkley", "cusum"):
        assert value(series, "mlops_model_check_drifted", check=check) == 1.0, check
        assert value(series, "mlops_model_sequential_alarms", check=check) >= 1.0, check
    assert value(series, "mlops_model_drift_checks") == 2.0
    assert not [key for key in series if key[0] in ("mlops_model_accuracy", "mlops_model_accuracy_labelled")]
    report = json.loads((host.state / NAME / "drift" / "model-check.json").read_text())
    for check in ("page_hinkley", "cusum"):
        assert report["result"]["checks"][check]["first_alarm"] >= 250, check  # after the step, not before


def test_steady_confidence_raises_no_alarm(trained, tmp_path):
    confidence = trained["confidence"]
    steady = [int(i) for i in np.flatnonzero(confidence > 0.9)[:320]]
    random.Random(7).shuffle(steady)
    host = Host(tmp_path)
    running = host.serve(trained)
    try:
        for index in steady:
            assert running.post("/v1/predict", {"records": records(trained, [index])}).status_code == 200
    finally:
        running.stop()
    argv, environment, _spec, _computed = render_timer(host, model_check={"accuracy": False})
    _result, series = run_timer(host, argv, environment)
    for check in ("page_hinkley", "cusum"):
        assert value(series, "mlops_model_check_decided", check=check) == 1.0, check
        assert value(series, "mlops_model_check_drifted", check=check) == 0.0, check
        assert value(series, "mlops_model_sequential_alarms", check=check) == 0.0, check
    assert value(series, "mlops_model_drift_detected") == 0.0


def test_a_service_without_labels_or_records_of_its_version_yet_is_undecided(trained, tmp_path):
    host = Host(tmp_path)
    running = host.serve(trained, version="2")
    try:
        for index in range(5):
            running.post("/v1/predict", {"records": records(trained, [index])})
    finally:
        running.stop()
    argv, environment, _spec, _computed = render_timer(host)
    _result, series = run_timer(host, argv, environment)
    for check in ("accuracy", "page_hinkley", "cusum"):
        assert value(series, "mlops_model_check_decided", check=check) == 0.0, check
        assert value(series, "mlops_model_check_drifted", check=check) == 0.0, check
    assert value(series, "mlops_model_accuracy_labelled") == 0.0


def test_bad_options_fail_rendering_naming_them(tmp_path):
    host = Host(tmp_path)
    with pytest.raises(RenderError, match=r"model_check\.page_hinkley\.threshold: must be a number > 0"):
        render_timer(host, model_check={"page_hinkley": {"threshold": 0}})
    with pytest.raises(RenderError, match=r"model_check\.cusum: unknown setting\(s\) lambda"):
        render_timer(host, model_check={"cusum": {"lambda": 3}})
    with pytest.raises(RenderError, match=r"model_check: unknown part\(s\) adwin"):
        render_timer(host, model_check={"adwin": {}})
