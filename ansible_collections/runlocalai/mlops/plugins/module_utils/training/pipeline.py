# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The stages of the training pipeline, as plain functions (flow.py runs them as Prefect tasks):

fetch the data -> validate it (drift.validation: schema, nulls, ranges) -> skip when the data equals
the data the champion (or the newest candidate of the same code) was trained on -> train (the user's
callable, `module:function` in the pipeline code) -> log the model with pinned requirements -> evaluate
the logged model as the gate will (mlflow.evaluation: quality metrics, per-group fairness) -> register
a candidate version with its provenance tags and the reference drift profile of its training data.

A candidate never gets an alias here: deploy_model.yml's gate and approvals decide."""

from __future__ import absolute_import, division, print_function

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile

from ..common.errors import MlopsError
from ..common.files import file_sha256
from .source import SOURCE_FILE

# The pipeline's options (a training_pipelines entry, as the deployment passes it).
SPEC_KEYS = {
    "model": None, "entrypoint": None, "data_uri": None, "label_column": None,
    "columns": {}, "min_rows": None, "params": {}, "eval_fraction": 0.3, "seed": 42,
    "sensitive_column": None, "fairness_metric": None, "positive_label": None, "drop_columns": [],
    "experiment": None, "champion_alias": "production",
    # Distributions the model needs at serving time, pinned to the versions this host trained with.
    "requirements": ["scikit-learn"],
    # More tags on the registered version (governance.owner, say: what deploy_model.yml's required metadata asks).
    "version_tags": {},
}
REQUIRED = ("model", "entrypoint", "data_uri", "label_column")
TAG_PREFIX = "training."


class PipelineError(MlopsError):
    """A stage refused the run; the message says which stage and why."""


def normalize_spec(spec):
    """The spec with defaults filled in; PipelineError naming the key for anything missing or wrong."""
    if not isinstance(spec, dict):
        raise PipelineError("spec: expected a mapping, got %s" % type(spec).__name__)
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise PipelineError("spec: unknown key(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(SPEC_KEYS))))
    out = dict(SPEC_KEYS)
    out.update(dict((k, v) for k, v in spec.items() if v is not None))
    for key in REQUIRED:
        if not out[key] or not isinstance(out[key], str):
            raise PipelineError("spec.%s: required (a non-empty string)" % key)
    if ":" not in out["entrypoint"]:
        raise PipelineError("spec.entrypoint: expected MODULE:FUNCTION, got %r" % out["entrypoint"])
    fraction = out["eval_fraction"]
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise PipelineError("spec.eval_fraction: expected a number between 0 and 1, got %r" % (fraction,))
    tags = out["version_tags"]
    if not isinstance(tags, dict) or any(not isinstance(k, str) or not k for k in tags):
        raise PipelineError("spec.version_tags: expected a mapping of tag names to values, got %r" % (tags,))
    reserved = sorted(k for k in tags if k.startswith(TAG_PREFIX))
    if reserved:
        raise PipelineError("spec.version_tags: %s: the %s* tags are the pipeline's provenance" % (", ".join(reserved), TAG_PREFIX))
    out["version_tags"] = dict((k, str(v)) for k, v in tags.items())
    out["experiment"] = out["experiment"] or "training-%s" % out["model"]
    return out


# -- fetch --------------------------------------------------------------------
def fetch(data_uri, workdir, s3_client=None):
    """Copy the data to `workdir`; returns (local path, sha256). file:///PATH, a plain path, or s3://BUCKET/KEY."""
    if data_uri.startswith("s3://"):
        bucket, _sep, key = data_uri[len("s3://"):].partition("/")
        if not bucket or not key:
            raise PipelineError("fetch: %s is not s3://BUCKET/KEY" % data_uri)
        if s3_client is None:
            try:
                import boto3  # pylint: disable=import-outside-toplevel
            except ImportError:
                raise PipelineError("fetch: %s needs boto3 on the training host" % data_uri)
            s3_client = boto3.client("s3")
        path = os.path.join(workdir, os.path.basename(key) or "data")
        s3_client.download_file(bucket, key, path)
    else:
        source = data_uri[len("file://"):] if data_uri.startswith("file://") else data_uri
        if not os.path.isabs(source):
            raise PipelineError("fetch: %s is neither file:///ABSOLUTE/PATH, an absolute path nor s3://" % data_uri)
        if not os.path.isfile(source):
            raise PipelineError("fetch: %s does not exist on this host" % source)
        path = os.path.join(workdir, os.path.basename(source))
        shutil.copyfile(source, path)
    return path, file_sha256(path)


# -- validate -----------------------------------------------------------------
def validate_data(path, spec):
    """drift.validation's checks (schema, nulls, ranges, row count), the label and sensitive columns
    required too; raises PipelineError listing every failure."""
    from ..drift.validation import validate  # pylint: disable=import-outside-toplevel
    columns = dict(spec["columns"] or {})
    for key in ("label_column", "sensitive_column"):
        if spec[key]:
            columns[spec[key]] = dict(columns.get(spec[key]) or {}, required=True)
    result = validate(path, columns=columns or None, min_rows=spec["min_rows"])
    if result["failures"]:
        raise PipelineError("validate: the data violates its schema: %s" % "; ".join(f["message"] for f in result["failures"]))
    return {"rows": result["rows"], "checks": result["checks"]}


# -- skip ---------------------------------------------------------------------
def skip_reason(client, spec, data_sha256, code_commit):
    """Why this run need not train (a text), or None. Skipped when the champion (spec.champion_alias) was
    trained on the same data, or when the newest version was trained on the same data by the same code."""
    name = spec["model"]
    try:
        champion = client.get_model_version_by_alias(name, spec["champion_alias"])
    except Exception:  # pylint: disable=broad-except  # no model or no alias yet: nothing to compare
        champion = None
    if champion is not None and champion.tags.get(TAG_PREFIX + "data_sha256") == data_sha256:
        return "unchanged data: the %s version %s was trained on data sha256 %s" % (spec["champion_alias"], champion.version, data_sha256)
    versions = _versions(client, name)
    if versions:
        newest = max(versions, key=lambda v: int(v.version))
        if newest.tags.get(TAG_PREFIX + "data_sha256") == data_sha256 and newest.tags.get(TAG_PREFIX + "git_commit") == code_commit:
            return "unchanged data: candidate version %s was trained on data sha256 %s by commit %s" % (newest.version, data_sha256, code_commit)
    return None


def _versions(client, name):
    try:
        return list(client.search_model_versions("name='%s'" % name.replace("'", "\\'")))
    except Exception:  # pylint: disable=broad-except  # a model not registered yet
        return []


# -- train --------------------------------------------------------------------
def load_entrypoint(code_dir, entrypoint):
    """The user's callable, `module:function`, imported from the pipeline code directory."""
    module_name, _sep, function = entrypoint.partition(":")
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError("train: cannot import %s from %s: %s" % (module_name, code_dir, exc))
    target = getattr(module, function, None)
    if not callable(target):
        raise PipelineError("train: %s has no callable %r" % (module_name, function))
    return target


def split(data, spec):
    """Training and evaluation rows: a seeded, stratified (classification) split."""
    from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
    label = data[spec["label_column"]]
    stratify = label if label.dtype.kind in "biuO" and label.nunique() <= 20 else None
    return train_test_split(data, test_size=spec["eval_fraction"], random_state=spec["seed"], stratify=stratify)


def features_of(data, spec):
    drop = [spec["label_column"]] + [c for c in [spec["sensitive_column"]] + list(spec["drop_columns"] or []) if c]
    return data.drop(columns=[c for c in drop if c in data.columns])


def train(train_fn, train_data, spec):
    """Call the user's function: train(features, target, params) -> a fitted scikit-learn estimator."""
    model = train_fn(features_of(train_data, spec), train_data[spec["label_column"]], dict(spec["params"] or {}))
    if not hasattr(model, "predict"):
        raise PipelineError("train: %s returned %s, not a fitted estimator with predict()" % (spec["entrypoint"], type(model).__name__))
    return model


# -- evaluate -----------------------------------------------------------------
def evaluate(pyfunc_model, eval_data, spec):
    """The gate's own metrics (mlflow.evaluation) of the logged model on the evaluation rows, per group too."""
    from ..mlflow import evaluation  # pylint: disable=import-outside-toplevel
    features = features_of(eval_data, spec)
    y_true = eval_data[spec["label_column"]].values
    column = eval_data[spec["label_column"]]
    task = "regression" if column.dtype.kind == "f" and column.nunique() > 20 else "classification"
    raw = pyfunc_model.get_raw_model() if hasattr(pyfunc_model, "get_raw_model") else None
    proba = getattr(raw, "predict_proba", None)
    quality = evaluation.quality(pyfunc_model, proba, features, y_true, task, spec["positive_label"])
    predictions = quality.pop("_predictions")
    quality.pop("confusion_matrix", None)
    quality.pop("positive_label", None)
    report = {"task": task, "rows": int(len(eval_data)), "metrics": dict((k, float(v)) for k, v in quality.items())}
    if spec["sensitive_column"]:
        fair = evaluation.fairness(y_true, predictions, eval_data[spec["sensitive_column"]].values, task,
                                   spec["fairness_metric"], spec["positive_label"])
        report["fairness"] = fair
        report["metrics"]["max_disparity"] = float(fair["max_disparity"])
    return report


def metric_rows(report):
    """(metric, group, value) of an evaluation report: group "all" for the whole evaluation data."""
    from ..monitoring.evaluation import ALL_GROUPS  # pylint: disable=import-outside-toplevel
    rows = [(name, ALL_GROUPS, value) for name, value in sorted(report["metrics"].items())]
    for group, metrics in sorted((report.get("fairness") or {}).get("groups", {}).items()):
        for name, value in sorted(metrics.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((name, str(group), float(value)))
    return rows


# -- register -----------------------------------------------------------------
def provenance_tags(source, data_uri, data_sha256, packages_sha256, python_version, host, flow_run_id, trigger):
    """The version tags that say where a candidate came from (all strings)."""
    tags = {
        "git_commit": source.get("commit", ""), "git_dirty": str(bool(source.get("dirty"))).lower(),
        "code_sha256": source.get("content_sha256", ""), "code_ref": source.get("ref", ""),
        "data_uri": data_uri, "data_sha256": data_sha256,
        "packages_sha256": packages_sha256, "python": python_version,
        "host": host.get("hostname", ""), "cpu": host.get("cpu", ""), "gpu": host.get("gpu", ""),
        "cuda": host.get("cuda", ""), "flow_run_id": flow_run_id or "",
        "trigger": trigger.get("kind", "manual"), "trigger_detail": json.dumps(trigger, sort_keys=True),
    }
    return dict((TAG_PREFIX + k, str(v)) for k, v in tags.items())


def installed_packages():
    """Every distribution of this Python, "name==version", sorted: the exact package set of the run."""
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    seen = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            seen.setdefault(name.lower(), "%s==%s" % (name, dist.version))
    return [seen[k] for k in sorted(seen)]


def pinned_requirements(names, packages):
    """`names` pinned to the versions in `packages` (installed_packages()); PipelineError for one not installed."""
    by_name = dict((p.split("==")[0].lower().replace("_", "-"), p) for p in packages)
    out = []
    for name in names:
        key = name.lower().replace("_", "-")
        if key not in by_name:
            raise PipelineError("spec.requirements: %s is not installed on the training host" % name)
        out.append(by_name[key])
    return out


def host_summary():
    """hostname, CPU model, GPUs and CUDA version of this host (host.facts), as short strings."""
    import socket  # pylint: disable=import-outside-toplevel
    from ..host import facts  # pylint: disable=import-outside-toplevel
    gathered = facts.gather(disk_paths=[])
    gpus = gathered.get("gpus") or []
    return {"hostname": socket.gethostname(), "cpu": (gathered.get("cpu") or {}).get("model") or "",
            "gpu": ", ".join(sorted(set(g.get("name") or "" for g in gpus))), "cuda": gathered.get("cuda_version") or ""}


def log_model(mlflow, model, train_data, spec, requirements, lock_lines, report_dir):
    """Log the fitted estimator (signature, input example, explicit pinned requirements) and the exact
    package set to the active run; returns the model URI of the run."""
    from mlflow.models import infer_signature  # pylint: disable=import-outside-toplevel
    features = features_of(train_data, spec)
    signature = infer_signature(features, model.predict(features))
    info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=features.head(3),
                                    pip_requirements=requirements)
    lock = os.path.join(report_dir, "requirements.lock")
    with open(lock, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lock_lines) + "\n")
    mlflow.log_artifact(lock, "provenance")
    return info.model_uri


def register(client, mlflow, spec, model_uri, run_id, tags, profile):
    """The candidate version: registered from the run's model, tagged, with drift/reference_profile.json on its run."""
    from ..drift import cli as drift_cli  # pylint: disable=import-outside-toplevel
    drift_cli.write_profile_artifact(profile, run_id=run_id, client=client)
    version = mlflow.register_model(model_uri, spec["model"], tags=dict(spec["version_tags"], **tags))
    return str(version.version)


def read_source(code_dir):
    """What the controller shipped: PIPELINE_SOURCE.json (commit, dirty, ref, content_sha256)."""
    path = os.path.join(code_dir, SOURCE_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise PipelineError("provenance: cannot read %s: %s" % (path, exc))


def train_evaluate_register(spec, path, data_sha256, source, code_dir, trigger, workdir, flow_run_id="", run_name=""):
    """Train, log, evaluate and register; returns (version, run_id, metric rows)."""
    import mlflow  # pylint: disable=import-outside-toplevel
    import mlflow.sklearn  # pylint: disable=import-outside-toplevel,unused-import
    import pandas as pd  # pylint: disable=import-outside-toplevel
    from mlflow import MlflowClient  # pylint: disable=import-outside-toplevel
    from ..drift import engine  # pylint: disable=import-outside-toplevel

    data = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    train_rows, eval_rows = split(data, spec)
    model = train(load_entrypoint(code_dir, spec["entrypoint"]), train_rows, spec)
    packages = installed_packages()
    requirements = pinned_requirements(spec["requirements"], packages)
    train_features = os.path.join(workdir, "train-features.csv")
    features_of(train_rows, spec).to_csv(train_features, index=False)
    profile, _built = engine.read_reference(train_features, None, engine.make_options())
    client = MlflowClient()
    mlflow.set_experiment(spec["experiment"])
    with mlflow.start_run(run_name=run_name or None) as run:
        model_uri = log_model(mlflow, model, train_rows, spec, requirements, packages, workdir)
        report = evaluate(mlflow.pyfunc.load_model(model_uri), eval_rows, spec)
        mlflow.log_metrics(report["metrics"])
        mlflow.log_dict(report, "evaluation/report.json")
        tags = provenance_tags(source, spec["data_uri"], data_sha256, sha256_text("\n".join(packages)), python_version(),
                               host_summary(), flow_run_id, trigger)
        mlflow.set_tags(tags)
        version = register(client, mlflow, spec, model_uri, run.info.run_id, tags, profile)
    return version, run.info.run_id, metric_rows(report)


def identity_stage(_name, function, _retries=0):
    return function


def run(spec, trigger, code_dir, textfile_dir, state_dir, flow_run_id="", run_name="", stage=identity_stage, clock=None):
    """The whole pipeline. `stage(name, function, retries)` wraps each stage (flow.py: as a Prefect task).
    Returns {"outcome": success|skipped_unchanged, "message": ...}; a refusing stage raises PipelineError.
    Every run, failed ones included, is counted in the model's series (metrics.record_run)."""
    import time  # pylint: disable=import-outside-toplevel
    from . import metrics  # pylint: disable=import-outside-toplevel
    clock = clock or time.time
    started = clock()
    spec = normalize_spec(spec)
    trigger = dict(trigger or {"kind": "manual"})
    work = tempfile.mkdtemp(prefix="training-")
    outcome, evaluation = "failed", None
    try:
        source = read_source(code_dir)
        path, data_sha256 = stage("fetch", fetch, 2)(spec["data_uri"], work)
        stage("validate", validate_data)(path, spec)
        reason = stage("skip-unchanged", _skip_reason_now, 2)(spec, data_sha256, source.get("commit", ""))
        if reason:
            outcome = "skipped_unchanged"
            return {"outcome": outcome, "message": "skipped: %s" % reason}
        version, run_id, rows = stage("train-evaluate-register", train_evaluate_register)(
            spec, path, data_sha256, source, code_dir, trigger, work, flow_run_id, run_name)
        outcome, evaluation = "success", (version, run_id, rows)
        return {"outcome": outcome, "version": version, "run_id": run_id,
                "message": "registered %s version %s (run %s, data sha256 %s, commit %s)" % (
                    spec["model"], version, run_id, data_sha256, source.get("commit", ""))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        metrics.record_run(textfile_dir, state_dir, spec["model"], outcome, started, clock(), evaluation)


def _skip_reason_now(spec, data_sha256, commit):
    from mlflow import MlflowClient  # pylint: disable=import-outside-toplevel
    return skip_reason(MlflowClient(), spec, data_sha256, commit)


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def python_version():
    return "%d.%d.%d" % sys.version_info[:3]
