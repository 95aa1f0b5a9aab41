# -*- coding: utf-8 -*-
"""The training pipeline's stages (module_utils/training/pipeline.py) and its series (metrics.py), run
as flow.py runs them but without Prefect, against a real MLflow server: a first run registers a
candidate with provenance and a reference profile, a second on the same data is skipped, data that
breaks the schema stops in validation; each run counted in the textfile, read back with
prometheus_client's parser."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.runlocalai.mlops.plugins.module_utils.training import metrics, pipeline
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: F401 pylint: disable=unused-import
    admin_credentials, mlflow_server)

ENTRYPOINT = '''
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(features, target, params):
    return make_pipeline(StandardScaler(), LogisticRegression(C=params.get("C", 1.0), max_iter=1000)).fit(features, target)
'''
SOURCE = {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "content_sha256": "ab" * 32, "ref": "pipelines", "id": "0123456789ab"}


def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    data = load_breast_cancer(as_frame=True)
    frame = data.data.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    group = frame["mean_texture"].gt(frame["mean_texture"].median()).map({True: "high", False: "low"})
    return frame.assign(target=data.target.values, group=group.values)


@pytest.fixture
def layout(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / ("trainer_%s.py" % tmp_path.name.replace("-", "_"))).write_text(ENTRYPOINT)
    (code / pipeline.SOURCE_FILE).write_text(json.dumps(SOURCE))
    for name in ("textfile", "state", "data"):
        (tmp_path / name).mkdir()
    data = breast_cancer()
    data.to_csv(str(tmp_path / "data" / "good.csv"), index=False)
    bad = data.copy()
    bad.loc[bad.index[:20], "mean_radius"] = None
    bad.to_csv(str(tmp_path / "data" / "bad.csv"), index=False)
    return tmp_path


def spec_for(layout, model, data="good.csv"):
    return {"model": model, "entrypoint": "trainer_%s:train" % layout.name.replace("-", "_"),
            "data_uri": "file://%s" % (layout / "data" / data), "label_column": "target",
            "sensitive_column": "group", "fairness_metric": "accuracy", "min_rows": 100,
            "columns": {"mean_radius": {"type": "numeric", "max_null_rate": 0, "min": 0}}}


def series(layout, model):
    text = (layout / "textfile" / ("mlops_pipeline_%s.prom" % model)).read_text()
    return dict((f.name, f) for f in text_string_to_metric_families(text))


def run(layout, spec, trigger=None):
    return pipeline.run(spec, trigger or {"kind": "manual", "by": "test"}, str(layout / "code"), str(layout / "textfile"),
                        str(layout / "state"), flow_run_id="flow-run-1", run_name="test")


def test_register_then_skip_then_refuse(layout, mlflow_server, monkeypatch):  # noqa: F811
    from mlflow import MlflowClient
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    model = "pipeline-" + layout.name.replace("_", "-")[-20:]
    with admin_credentials():
        first = run(layout, dict(spec_for(layout, model), version_tags={"governance.owner": "ml-team"}),
                    {"kind": "drift-alert", "alert": "ModelDataDrift"})
        assert first["outcome"] == "success", first
        version = MlflowClient().get_model_version(model, first["version"])
        tags = version.tags
        assert tags["governance.owner"] == "ml-team"
        assert tags["training.git_commit"] == SOURCE["commit"] and tags["training.git_dirty"] == "false"
        assert tags["training.data_sha256"] == hashlib.sha256((layout / "data" / "good.csv").read_bytes()).hexdigest()
        assert tags["training.trigger"] == "drift-alert" and json.loads(tags["training.trigger_detail"])["alert"] == "ModelDataDrift"
        assert tags["training.flow_run_id"] == "flow-run-1" and tags["training.python"]
        client = MlflowClient()
        artifacts = [a.path for a in client.list_artifacts(version.run_id, "drift")] + [a.path for a in client.list_artifacts(version.run_id, "provenance")]
        assert "drift/reference_profile.json" in artifacts and "provenance/requirements.lock" in artifacts
        assert client.get_registered_model(model).aliases == {}

        second = run(layout, spec_for(layout, model))
        assert second["outcome"] == "skipped_unchanged"
        assert "candidate version %s" % first["version"] in second["message"]

        with pytest.raises(pipeline.PipelineError, match="validate: the data violates its schema.*mean_radius"):
            run(layout, spec_for(layout, model, "bad.csv"))
        assert len(client.search_model_versions("name='%s'" % model)) == 1

    found = series(layout, model)
    runs = dict((s.labels["outcome"], s.value) for s in found["mlops_pipeline_runs"].samples if s.name.endswith("_total"))
    assert runs == {"success": 1.0, "skipped_unchanged": 1.0, "failed": 1.0}
    assert found["mlops_pipeline_last_run_failed"].samples[0].value == 1.0
    evaluation = dict(((s.labels["metric"], s.labels["group"]), s) for s in found["mlops_evaluation_metric"].samples)
    assert 0.9 < evaluation[("accuracy", "all")].value <= 1.0
    assert evaluation[("accuracy", "all")].labels["version"] == first["version"]
    assert ("accuracy", "low") in evaluation and ("accuracy", "high") in evaluation


def test_a_champion_trained_on_the_same_data_skips(layout, mlflow_server, monkeypatch):  # noqa: F811
    from mlflow import MlflowClient
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    model = "champion-" + layout.name.replace("_", "-")[-20:]
    with admin_credentials():
        first = run(layout, spec_for(layout, model))
        MlflowClient().set_registered_model_alias(model, "production", first["version"])
        source = dict(SOURCE, commit="f" * 40)  # new code, same data: the champion's data decides
        (layout / "code" / pipeline.SOURCE_FILE).write_text(json.dumps(source))
        again = run(layout, spec_for(layout, model))
    assert again["outcome"] == "skipped_unchanged"
    assert "the production version %s was trained on data" % first["version"] in again["message"]


@pytest.mark.parametrize("spec,message", [
    ({}, "spec.model: required"),
    ({"model": "m", "entrypoint": "x:y", "data_uri": "/d", "label_column": "t", "colour": 1}, "unknown key"),
    ({"model": "m", "entrypoint": "xy", "data_uri": "/d", "label_column": "t"}, "spec.entrypoint: expected MODULE:FUNCTION"),
    ({"model": "m", "entrypoint": "x:y", "data_uri": "/d", "label_column": "t", "eval_fraction": 1.5}, "spec.eval_fraction"),
    ({"model": "m", "entrypoint": "x:y", "data_uri": "/d", "label_column": "t", "version_tags": ["owner"]}, "spec.version_tags: expected"),
    ({"model": "m", "entrypoint": "x:y", "data_uri": "/d", "label_column": "t", "version_tags": {"training.git_commit": "x"}},
     "spec.version_tags: training.git_commit: the training.. tags are the pipeline's provenance"),
])
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(pipeline.PipelineError, match=message):
        pipeline.normalize_spec(spec)


def test_fetch(tmp_path):
    (tmp_path / "d.csv").write_text("a\n1\n")
    work = tmp_path / "work"
    work.mkdir()
    path, digest = pipeline.fetch("file://%s" % (tmp_path / "d.csv"), str(work))
    assert open(path).read() == "a\n1\n" and digest == hashlib.sha256(b"a\n1\n").hexdigest()
    with pytest.raises(pipeline.PipelineError, match="does not exist"):
        pipeline.fetch(str(tmp_path / "missing.csv"), str(work))
    with pytest.raises(pipeline.PipelineError, match="neither"):
        pipeline.fetch("data/d.csv", str(work))

    class S3:
        def download_file(self, bucket, key, path):
            assert (bucket, key) == ("bucket", "in/d.csv")
            open(path, "w").write("b\n2\n")
    path, digest = pipeline.fetch("s3://bucket/in/d.csv", str(work), s3_client=S3())
    assert digest == hashlib.sha256(b"b\n2\n").hexdigest()


def test_requirements_are_pinned_from_the_installed_set():
    packages = pipeline.installed_packages()
    pinned = pipeline.pinned_requirements(["scikit-learn", "numpy"], packages)
    import numpy
    import sklearn
    assert pinned == ["scikit-learn==%s" % sklearn.__version__, "numpy==%s" % numpy.__version__]
    with pytest.raises(pipeline.PipelineError, match="spec.requirements: not-a-package"):
        pipeline.pinned_requirements(["not-a-package"], packages)


def test_metrics_refuse_an_unknown_outcome(tmp_path):
    with pytest.raises(ValueError, match="outcome"):
        metrics.record_run(str(tmp_path), str(tmp_path), "m", "maybe", 0, 1)
