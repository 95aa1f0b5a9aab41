# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Model evaluation for the validation gate: quality metrics, latency, fairness,
hardware fit, thresholds as data and champion comparison.

Plain Python (imports nothing from Ansible). Metric code needs numpy only;
loading a model needs mlflow and pandas (callers check HAS_NUMPY / HAS_MLFLOW).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time

from ..common.environ import scoped_environ
from ..common.files import file_sha256

try:
    import numpy as np
    HAS_NUMPY = True
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    np = None
    HAS_NUMPY = False

try:
    import mlflow
    import mlflow.artifacts
    import mlflow.pyfunc
    import pandas as pd
    HAS_MLFLOW = True
    MLFLOW_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity test
    mlflow = None
    pd = None
    HAS_MLFLOW = False
    MLFLOW_IMPORT_ERROR = exc

from .registry import (
    TAG_VALIDATION_FINGERPRINT,
    TAG_VALIDATION_PASSED,
    TAG_VALIDATION_REPORT,
    NotFound,
    RegistryError,
    alias_dict,
    tag_dict,
)

# Metric names of both gates: pyfunc models (here) and LLMs (llm/evaluation.py: score, ttft_*, tokens_per_second).
HIGHER_IS_BETTER = frozenset(["accuracy", "precision", "recall", "f1", "roc_auc", "r2", "score", "tokens_per_second"])
LOWER_IS_BETTER = frozenset(["rmse", "mae", "mape", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                             "max_disparity", "demographic_parity_difference", "equal_opportunity_difference",
                             "memory_estimate_mb", "model_size_mb", "ttft_p50_ms", "ttft_p95_ms"])
NON_DETERMINISTIC = frozenset(["latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "ttft_p95_ms", "tokens_per_second"])
_THRESHOLD_RE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
        "==": lambda a, b: abs(a - b) <= 1e-12}


class EvalError(Exception):
    """Bad input or an unusable model/data; the message names the parameter."""


# -- thresholds --------------------------------------------------------------
def parse_threshold(metric, text):
    """'>=0.92' -> ('>=', 0.92). A bare number means '>=' for higher-is-better metrics, else '<='."""
    if isinstance(text, bool):
        raise EvalError("thresholds.%s: %r is not a threshold like '>=0.92' or '<=50'" % (metric, text))
    if isinstance(text, (int, float)):
        return (">=" if metric in HIGHER_IS_BETTER else "<="), float(text)
    match = _THRESHOLD_RE.match(str(text))
    if not match:
        raise EvalError("thresholds.%s: %r is not a threshold like '>=0.92' or '<=50'" % (metric, text))
    return match.group(1), float(match.group(2))


def check_thresholds(metrics, thresholds):
    """Return the failures: [{metric, value, threshold}] (value None when the metric was not computed)."""
    failures = []
    for metric in sorted(thresholds or {}):
        op, bound = parse_threshold(metric, thresholds[metric])
        value = metrics.get(metric)
        text = "%s%s" % (op, _num(bound))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            failures.append({"metric": metric, "value": None, "threshold": text, "reason": "metric not computed"})
        elif not _OPS[op](value, bound):
            failures.append({"metric": metric, "value": value, "threshold": text})
    return failures


def validate_threshold_names(thresholds, available):
    unknown = sorted(set(thresholds or {}) - set(available))
    if unknown:
        raise EvalError("thresholds: unknown metric(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(available))))


def _num(value):
    return ("%.10g" % value) if isinstance(value, float) else str(value)


# -- quality metrics ----------------------------------------------------------
def classification_metrics(y_true, y_pred, y_score=None, positive_label=None):
    """Accuracy, precision, recall, F1 (binary: of the positive label; multi-class: macro), ROC-AUC, confusion matrix."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=lambda v: (str(type(v)), v))
    index = dict((label, i) for i, label in enumerate(labels))
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        matrix[index[t], index[p]] += 1
    metrics = {"accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
               "confusion_matrix": {"labels": [_plain(v) for v in labels], "matrix": matrix.tolist()}}
    if len(labels) <= 2:
        positive = positive_label if positive_label is not None else labels[-1]
        if positive not in index:
            raise EvalError("positive_label: %r is not among the labels %s" % (positive, [_plain(v) for v in labels]))
        precision, recall, f1 = _prf(matrix, index[positive])
        metrics.update(precision=precision, recall=recall, f1=f1, positive_label=_plain(positive))
        if y_score is not None:
            metrics["roc_auc"] = roc_auc(y_true == positive, np.asarray(y_score, dtype=float))
    else:
        scores = [_prf(matrix, i) for i in range(len(labels))]
        metrics.update(precision=float(np.mean([s[0] for s in scores])), recall=float(np.mean([s[1] for s in scores])),
                       f1=float(np.mean([s[2] for s in scores])))
    return metrics


def _prf(matrix, i):
    tp = matrix[i, i]
    predicted = matrix[:, i].sum()
    actual = matrix[i, :].sum()
    precision = float(tp / predicted) if predicted else 0.0
    recall = float(tp / actual) if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, float(f1)


def roc_auc(is_positive, scores):
    """ROC-AUC as the Mann-Whitney statistic (ties count half)."""
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def regression_metrics(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    nonzero = y_true != 0
    return {
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1 - np.sum(err ** 2) / ss_tot) if ss_tot else float("nan"),
        "mape": float(np.mean(np.abs(err[nonzero] / y_true[nonzero]))) if nonzero.any() else float("nan"),
    }


# -- fairness -----------------------------------------------------------------
FAIRNESS_METRICS = {"classification": ("accuracy", "precision", "recall", "f1"), "regression": ("rmse", "mae", "r2", "mape")}


def fairness(y_true, y_pred, groups, task, metric=None, positive_label=None):
    """The quality metrics per group, the gap (largest - smallest over the groups) of each, and the
    demographic-parity and equal-opportunity differences (binary classification).

    `max_disparity` is the gap of `metric` (the one thresholds judge: accuracy for classification,
    mae for regression by default); `lowest_group` / `highest_group` name the groups that make it.
    Binary metrics are of one positive label in every group (positive_label, default the greater label),
    and a group leaves out those undefined for it: precision without a predicted positive, recall without
    an actual one, F1 without either. Multi-class: macro averages over the classes present in the group."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    groups = np.asarray(groups).astype(str)
    metric = metric or ("accuracy" if task == "classification" else "mae")
    if metric not in FAIRNESS_METRICS[task]:
        raise EvalError("fairness_metric: %r is not a %s metric (use one of %s)" % (metric, task, ", ".join(FAIRNESS_METRICS[task])))
    labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=lambda v: (str(type(v)), v))
    binary = task == "classification" and len(labels) <= 2
    positive = None
    if binary:
        positive = positive_label if positive_label is not None else labels[-1]
        if positive not in labels:
            raise EvalError("positive_label: %r is not among the labels %s" % (positive, [_plain(v) for v in labels]))
    per_group = {}
    selection = {}
    tpr = {}
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        if task == "regression":
            values = regression_metrics(y_true[mask], y_pred[mask])
        elif binary:
            predicted = y_pred[mask] == positive
            actual = y_true[mask] == positive
            values = {"accuracy": float(np.mean(y_true[mask] == y_pred[mask]))}
            if predicted.any() or actual.any():
                values = classification_metrics(y_true[mask], y_pred[mask], positive_label=positive)
            if not predicted.any():
                values.pop("precision", None)
                values.pop("f1", None)
            if not actual.any():
                values.pop("recall", None)
                values.pop("f1", None)
            selection[group] = float(np.mean(predicted))
            if actual.any():
                tpr[group] = float(np.mean(predicted[actual]))
        else:
            values = _macro_metrics(y_true[mask], y_pred[mask], labels)
        per_group[group] = dict([("count", int(mask.sum()))] + [(m, values[m]) for m in FAIRNESS_METRICS[task]
                                                                if m in values and not math.isnan(values[m])])
    gaps = {}
    for name in FAIRNESS_METRICS[task]:
        scores = [v[name] for v in per_group.values() if name in v]
        if scores:
            gaps[name] = float(max(scores) - min(scores))
    result = {"metric": metric, "groups": per_group, "gaps": gaps, "max_disparity": gaps.get(metric, float("nan"))}
    ranked = sorted((v[metric], g) for g, v in per_group.items() if metric in v)
    if ranked:
        result["lowest_group"], result["highest_group"] = ranked[0][1], ranked[-1][1]
    if selection:
        result["demographic_parity_difference"] = float(max(selection.values()) - min(selection.values()))
        result["selection_rate"] = selection
    if tpr:
        result["equal_opportunity_difference"] = float(max(tpr.values()) - min(tpr.values()))
        result["true_positive_rate"] = tpr
    return result


def _macro_metrics(y_true, y_pred, labels):
    """Accuracy and macro precision/recall/F1 over the classes (of labels) present in these rows."""
    index = dict((label, i) for i, label in enumerate(labels))
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        matrix[index[t], index[p]] += 1
    scores = [_prf(matrix, i) for i in range(len(labels)) if matrix[i, :].sum() or matrix[:, i].sum()]
    return {"accuracy": float(np.mean(y_true == y_pred)), "precision": float(np.mean([v[0] for v in scores])),
            "recall": float(np.mean([v[1] for v in scores])), "f1": float(np.mean([v[2] for v in scores]))}


def explain_disparity(failures, fair, column):
    """Add to a failed max_disparity the groups behind it (which group, which metric, what each scored)."""
    for failure in failures:
        if failure["metric"] == "max_disparity" and failure["value"] is not None and "lowest_group" in fair:
            low, high = fair["lowest_group"], fair["highest_group"]
            metric = fair["metric"]
            failure["reason"] = "%s gap between the groups of %s: %s %.3f, %s %.3f" % (
                metric, column, low, fair["groups"][low][metric], high, fair["groups"][high][metric])
    return failures


# -- latency and hardware ---------------------------------------------------------
def latency(predict, rows, samples):
    """p50/p95/p99 in ms over single-row predictions (cycling through rows)."""
    timings = []
    for i in range(samples):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        predict(row)
        timings.append((time.perf_counter() - start) * 1000.0)
    timings = np.asarray(timings)
    return {"latency_p50_ms": float(np.percentile(timings, 50)), "latency_p95_ms": float(np.percentile(timings, 95)),
            "latency_p99_ms": float(np.percentile(timings, 99)), "latency_samples": samples}


def directory_size(path):
    total = 0
    for root, dummy, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def hardware_fit(model_size_bytes, free_memory_mb=None, gpu_memory_mb=None, memory_factor=2.0, runtime_overhead_mb=300.0,
                 needs_gpu=False):
    """Estimate memory (size x factor + runtime overhead) against the target's free RAM and GPU memory."""
    size_mb = model_size_bytes / (1024.0 * 1024.0)
    estimate = size_mb * memory_factor + runtime_overhead_mb
    result = {"model_size_mb": round(size_mb, 3), "memory_estimate_mb": round(estimate, 3), "failures": []}
    if free_memory_mb is not None:
        result["memory_headroom_mb"] = round(free_memory_mb - estimate, 3)
        if estimate > free_memory_mb:
            result["failures"].append({"metric": "memory_estimate_mb", "value": result["memory_estimate_mb"],
                                       "threshold": "<=%s (target_free_memory_mb)" % _num(float(free_memory_mb))})
    if needs_gpu:
        gpu_estimate = size_mb * memory_factor
        result["gpu_memory_estimate_mb"] = round(gpu_estimate, 3)
        if gpu_memory_mb is None or gpu_estimate > gpu_memory_mb:
            result["failures"].append({"metric": "gpu_memory_estimate_mb", "value": result["gpu_memory_estimate_mb"],
                                       "threshold": "<=%s (target_gpu_memory_mb)" % _num(float(gpu_memory_mb or 0))})
    return result


# -- champion ---------------------------------------------------------------------
def compare_champion(candidate, champion, metrics, tolerance):
    """The candidate may not be worse than the champion by more than tolerance (absolute) on each metric."""
    failures = []
    for metric in metrics:
        if metric not in HIGHER_IS_BETTER and metric not in LOWER_IS_BETTER:
            raise EvalError("champion_metrics: unknown metric %r" % metric)
        cand, champ = candidate.get(metric), champion.get(metric)
        if cand is None or champ is None:
            raise EvalError("champion_metrics: %r was not computed for this task" % metric)
        worse_by = (champ - cand) if metric in HIGHER_IS_BETTER else (cand - champ)
        if worse_by > tolerance + 1e-12:
            failures.append({"metric": "champion_" + metric, "value": cand, "threshold": "%s %s (champion) by at most %s" % (
                ">=" if metric in HIGHER_IS_BETTER else "<=", _num(champ), _num(float(tolerance))), "champion_value": champ})
    return failures


# -- report -------------------------------------------------------------------------
def fingerprint(report):
    """SHA-256 of the report without its run-to-run varying parts (latency timings)."""
    stable = dict(report)
    stable["metrics"] = dict((k, v) for k, v in report.get("metrics", {}).items() if k not in NON_DETERMINISTIC)
    stable["failures"] = [dict((k, v) for k, v in f.items() if f["metric"] not in NON_DETERMINISTIC or k != "value")
                          for f in report.get("failures", [])]
    stable.pop("latency", None)
    return hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")).hexdigest()


def _plain(value):
    if np is not None and isinstance(value, np.generic):
        return value.item()
    return value


# -- MLflow ---------------------------------------------------------------------------
@contextlib.contextmanager
def mlflow_env(tracking_uri, username=None, password=None, token=None, validate_certs=True, ca_path=None):
    """Point mlflow at the server with these credentials for the duration (restores the environment)."""
    values = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password,
              "MLFLOW_TRACKING_TOKEN": token, "MLFLOW_TRACKING_INSECURE_TLS": None if validate_certs else "true",
              "MLFLOW_TRACKING_SERVER_CERT_PATH": ca_path if validate_certs else None,
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    with scoped_environ(values):
        mlflow.set_tracking_uri(tracking_uri)
        yield


def resolve_model_uri(client, model_uri):
    """Check a model URI against the registry; returns dict(name, version) (None for runs:/ URIs)."""
    match = re.match(r"^models:/([^/@]+)(?:/([^/]+)|@([A-Za-z0-9_\-]+))$", model_uri or "")
    if match:
        name, version, alias = match.groups()
        if client.get_model(name) is None:
            raise EvalError("model_uri: registered model %r not found" % name)
        if alias:
            version = alias_dict(client.get_model(name)).get(alias)
            if version is None:
                raise EvalError("model_uri: registered model %r has no alias %r" % (name, alias))
        if not re.match(r"^[0-9]+$", version) or client.get_version(name, version) is None:
            raise EvalError("model_uri: registered model %r has no version %s" % (name, version))
        return {"name": name, "version": str(version)}
    match = re.match(r"^runs:/([^/]+)/.+$", model_uri or "")
    if match:
        try:
            client.call("GET", "runs/get", params={"run_id": match.group(1)})
        except NotFound:
            raise EvalError("model_uri: run %s not found" % match.group(1))
        return {"name": None, "version": None}
    raise EvalError("model_uri: %r is not models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH" % (model_uri,))


def add_pythonpath():
    """Put $PYTHONPATH's entries on sys.path, where the model's own code may live.

    A fresh interpreter does this at start; one that runs many tasks (Mitogen's) does not
    re-read the environment a task sets, and the model would not unpickle."""
    for path in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if path and path not in sys.path:
            sys.path.insert(0, path)


def load_model(model_uri, workdir):
    """Download and load a pyfunc model; returns (model, size in bytes, predict_proba or None)."""
    add_pythonpath()
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=workdir)
        model = mlflow.pyfunc.load_model(local)
    except Exception as exc:  # mlflow raises many types; the message is what matters
        raise EvalError("model_uri: cannot load %s: %s" % (model_uri, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    proba = None
    try:
        raw = model.get_raw_model()
        proba = getattr(raw, "predict_proba", None)
    except Exception:  # pylint: disable=broad-except  # not every flavour exposes a raw model
        proba = None
    return model, directory_size(local), proba


def read_data(path):
    if not os.path.isfile(path):
        raise EvalError("data_path: %s does not exist" % path)
    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # pylint: disable=broad-except  # pandas parser errors vary
        raise EvalError("data_path: cannot read %s: %s" % (path, exc))


def evaluate(client, spec):
    """Run the whole gate. spec: see the model_validation module's options. Returns the report dict."""
    resolved = resolve_model_uri(client, spec["model_uri"])
    data = read_data(spec["data_path"])
    label = spec["label_column"]
    if label not in data.columns:
        raise EvalError("label_column: %r is not a column of %s (columns: %s)" % (label, spec["data_path"], ", ".join(map(str, data.columns))))
    sensitive = spec.get("sensitive_column")
    if sensitive and sensitive not in data.columns:
        raise EvalError("sensitive_column: %r is not a column of %s" % (sensitive, spec["data_path"]))
    if len(data) == 0:
        raise EvalError("data_path: %s has no rows" % spec["data_path"])
    # Cheap checks before downloading the model.
    validate_threshold_names(spec.get("thresholds"), HIGHER_IS_BETTER | LOWER_IS_BETTER | set(["gpu_memory_estimate_mb"]))
    check_thresholds({}, spec.get("thresholds"))
    for metric in spec.get("champion_metrics") or []:
        if metric not in HIGHER_IS_BETTER and metric not in LOWER_IS_BETTER:
            raise EvalError("champion_metrics: unknown metric %r" % metric)
    missing = [c for c in spec.get("drop_columns") or [] if c not in data.columns]
    if missing:
        raise EvalError("drop_columns: %s not in the evaluation data" % ", ".join(missing))
    task = spec.get("task") or "auto"
    if task == "auto":
        column = data[label]
        task = "regression" if column.dtype.kind == "f" and column.nunique() > 20 else "classification"
    if sensitive and spec.get("fairness_metric") and spec["fairness_metric"] not in FAIRNESS_METRICS[task]:
        raise EvalError("fairness_metric: %r is not a %s metric (use one of %s)" % (spec["fairness_metric"], task, ", ".join(FAIRNESS_METRICS[task])))
    workdir = tempfile.mkdtemp(prefix="model-validation-")
    try:
        with mlflow_env(**spec["connection"]):
            model, size, proba = load_model(spec["model_uri"], workdir)
            features = _features(model, data, label, spec.get("drop_columns") or [])
            candidate = quality(model, proba, features, data[label].values, task, spec.get("positive_label"))
            metrics = dict(candidate)
            matrix = metrics.pop("confusion_matrix", None)
            positive = metrics.pop("positive_label", None)
            predictions = candidate.pop("_predictions")
            metrics.pop("_predictions", None)
            report = {"model_uri": spec["model_uri"], "model": resolved, "task": task, "data_sha256": file_sha256(spec["data_path"]),
                      "rows": int(len(data)), "metrics": metrics, "thresholds": dict((k, str(v)) for k, v in sorted((spec.get("thresholds") or {}).items()))}
            if matrix is not None:
                report["confusion_matrix"] = matrix
            if positive is not None:
                report["positive_label"] = positive
            samples = int(spec.get("latency_samples") or 0)
            if samples > 0:
                rows = [features.iloc[[i]] for i in range(min(len(features), 50))]
                lat = latency(model.predict, rows, samples)
                report["latency"] = {"samples": lat.pop("latency_samples")}
                metrics.update(lat)
            if sensitive:
                fair = fairness(data[label].values, predictions, data[sensitive].values, task, spec.get("fairness_metric"), spec.get("positive_label"))
                report["fairness"] = fair
                for key in ("max_disparity", "demographic_parity_difference", "equal_opportunity_difference"):
                    if key in fair:
                        metrics[key] = fair[key]
            hw = hardware_fit(size, spec.get("target_free_memory_mb"), spec.get("target_gpu_memory_mb"),
                              spec.get("memory_factor") or 2.0, spec.get("runtime_overhead_mb") if spec.get("runtime_overhead_mb") is not None else 300.0,
                              bool(spec.get("needs_gpu")))
            hw_failures = hw.pop("failures")
            report["hardware"] = hw
            metrics["model_size_mb"] = hw["model_size_mb"]
            metrics["memory_estimate_mb"] = hw["memory_estimate_mb"]
            validate_threshold_names(spec.get("thresholds"), metrics)
            failures = check_thresholds(metrics, spec.get("thresholds"))
            if sensitive:
                explain_disparity(failures, report["fairness"], sensitive)
            failures += hw_failures
            champion_alias = spec.get("champion_alias")
            if champion_alias:
                report["champion"], champion_failures = _champion(client, spec, resolved, champion_alias, features, data, task, metrics, workdir)
                failures += champion_failures
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["failures"] = failures
    report["passed"] = not failures
    return report


def _features(model, data, label, drop):
    missing = [c for c in drop if c not in data.columns]
    if missing:
        raise EvalError("drop_columns: %s not in the evaluation data" % ", ".join(missing))
    features = data.drop(columns=[label] + list(drop))
    schema = model.metadata.get_input_schema() if model.metadata else None
    if schema is not None and schema.has_input_names():
        names = schema.input_names()
        absent = [n for n in names if n not in features.columns]
        if absent:
            raise EvalError("data_path: the model expects column(s) %s, missing from the evaluation data" % ", ".join(absent))
        features = features[names]
    return features


def quality(model, proba, features, y_true, task, positive_label):
    """The quality metrics of `model` (a pyfunc model; `proba` its raw model's predict_proba or None) on
    `features` against `y_true`, plus `_predictions`. Used by the gate and by the training pipeline."""
    try:
        predictions = np.asarray(model.predict(features)).reshape(-1)
    except Exception as exc:  # pylint: disable=broad-except  # model errors vary by flavour
        raise EvalError("data_path: the model cannot predict on the evaluation data: %s" % str(exc).splitlines()[0])
    if task == "classification":
        scores = None
        if proba is not None:
            try:
                probabilities = np.asarray(proba(features))
                classes = list(getattr(getattr(model.get_raw_model(), "classes_", None), "tolist", lambda: [])())
                positive = positive_label if positive_label is not None else (sorted(classes)[-1] if classes else None)
                if probabilities.ndim == 2 and len(classes) == 2 and positive in classes:
                    scores = probabilities[:, classes.index(positive)]
            except Exception:  # pylint: disable=broad-except  # ROC-AUC is skipped when scores are unavailable
                scores = None
        result = classification_metrics(y_true, predictions, scores, positive_label)
    else:
        result = regression_metrics(y_true, predictions)
    result["_predictions"] = predictions
    return result


def _champion(client, spec, resolved, alias, features, data, task, metrics, workdir):
    name = spec.get("champion_model") or resolved.get("name")
    if not name:
        raise EvalError("champion_model: required with champion_alias when model_uri is a runs:/ URI")
    model = client.get_model(name)
    if model is None:
        raise EvalError("champion_model: registered model %r not found" % name)
    version = alias_dict(model).get(alias)
    chosen = spec.get("champion_metrics") or (["accuracy"] if task == "classification" else ["rmse"])
    if version is None:
        return {"alias": alias, "status": "no champion: alias %r not set on %r; comparison skipped" % (alias, name)}, []
    uri = "models:/%s/%s" % (name, version)
    champ_model, dummy, champ_proba = load_model(uri, os.path.join(workdir, "champion"))
    champ = quality(champ_model, champ_proba, features, data[spec["label_column"]].values, task, spec.get("positive_label"))
    champ.pop("_predictions")
    champ.pop("confusion_matrix", None)
    tolerance = float(spec.get("champion_tolerance") or 0.0)
    failures = compare_champion(metrics, champ, chosen, tolerance)
    return {"alias": alias, "version": version, "model_uri": uri, "metrics": dict((m, champ.get(m)) for m in chosen),
            "tolerance": tolerance, "status": "compared"}, failures


def record_report(client, name, version, report, check=False):
    """Store the report on the version as tags; idempotent on the fingerprint. Returns True when tags change."""
    entity = client.get_version(name, version)
    if entity is None:
        raise RegistryError("model_uri: registered model %r has no version %s" % (name, version))
    tags = tag_dict(entity)
    digest = fingerprint(report)
    if tags.get(TAG_VALIDATION_FINGERPRINT) == digest:
        return False
    if not check:
        report_json = json.dumps(report, sort_keys=True, separators=(",", ":"), default=str)
        client.set_version_tag(name, version, TAG_VALIDATION_REPORT, report_json[:100000])
        client.set_version_tag(name, version, TAG_VALIDATION_PASSED, "true" if report["passed"] else "false")
        client.set_version_tag(name, version, TAG_VALIDATION_FINGERPRINT, digest)
    return True
