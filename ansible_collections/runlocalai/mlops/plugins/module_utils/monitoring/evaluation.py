# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Evaluation results and pipeline runs as Prometheus series: a contract owned here (names and labels),
written for node-exporter's textfile collector with prometheus_client.

The validation gate (lifecycle role, deploy_model.yml) writes, per judged version:

    mlops_gate_passed{model,version,run_id}                        1 when the gate passed the version, else 0
    mlops_gate_timestamp_seconds{model,version,run_id}             when the gate judged it (Unix time)
    mlops_evaluation_metric{model,version,run_id,metric,group,stage}
        each metric the gate measured on the whole data (group="all") and, with a sensitive column, each
        metric of each group (group=the group's value); stage="gate"

The training pipeline writes (the same names, on the training host's textfile directory):

    mlops_pipeline_runs_total{model,outcome}                       counter; outcome: success, skipped_unchanged, failed
    mlops_pipeline_last_run_timestamp_seconds{model}
    mlops_pipeline_last_success_timestamp_seconds{model}           a success or a skip (unchanged data)
    mlops_pipeline_last_run_failed{model}                          1 when the last run failed, else 0
    mlops_pipeline_last_run_duration_seconds{model}
    mlops_evaluation_metric{model,version,run_id,metric,group,...}  the candidate's evaluation

No Ansible imports; prometheus_client is needed only to render (registry_for, render)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import numbers

try:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest
    HAS_PROMETHEUS_CLIENT = True
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    HAS_PROMETHEUS_CLIENT = False

GATE_PASSED = "mlops_gate_passed"
GATE_TIMESTAMP = "mlops_gate_timestamp_seconds"
EVALUATION_METRIC = "mlops_evaluation_metric"
GATE_LABELS = ("model", "version", "run_id")
EVALUATION_LABELS = ("model", "version", "run_id", "metric", "group", "stage")
# The group label of a metric measured on the whole data.
ALL_GROUPS = "all"

# name -> (type, labels, help): the training pipeline's series (it writes them with prometheus_client).
PIPELINE_SERIES = (
    ("mlops_pipeline_runs_total", "counter", ("model", "outcome"),
     "Pipeline runs by outcome (success, skipped_unchanged, failed)."),
    ("mlops_pipeline_last_run_timestamp_seconds", "gauge", ("model",), "When the last run ended (Unix time)."),
    ("mlops_pipeline_last_success_timestamp_seconds", "gauge", ("model",),
     "When the last run that succeeded or was skipped on unchanged data ended (Unix time)."),
    ("mlops_pipeline_last_run_failed", "gauge", ("model",), "1 when the last run failed, else 0."),
    ("mlops_pipeline_last_run_duration_seconds", "gauge", ("model",), "Duration of the last run."),
)
PIPELINE_OUTCOMES = ("success", "skipped_unchanged", "failed")


class SeriesError(ValueError):
    pass


def _number(value):
    """A float for a numeric value (booleans as 0/1), None for anything else (strings, None, lists)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Number):
        return float(value)
    return None


def gate_series(model, version, run_id, passed, timestamp, metrics, groups=None, stage="gate"):
    """The series of one gate verdict: (name, labels dict, value) tuples, in a stable order, and the
    metric keys left out because their value is not a number (e.g. a champion's status text).

    metrics: {metric: value} measured on the whole data; groups: {group: {metric: value}} (the
    fairness report's groups, their row count included as metric "count")."""
    if not model or not str(version):
        raise SeriesError("model and version are required")
    if not isinstance(metrics, dict) or not isinstance(groups or {}, dict):
        raise SeriesError("metrics must be a dict of metric -> value, groups a dict of group -> {metric: value}")
    base = {"model": str(model), "version": str(version), "run_id": str(run_id or "")}
    rows = [(GATE_PASSED, dict(base), 1.0 if passed else 0.0), (GATE_TIMESTAMP, dict(base), float(timestamp))]
    skipped = []
    for group, values in [(ALL_GROUPS, metrics)] + sorted((str(g), v) for g, v in (groups or {}).items()):
        if not isinstance(values, dict):
            raise SeriesError("groups: the metrics of group %r must be a dict, got %r" % (group, values))
        for metric in sorted(values):
            value = _number(values[metric])
            if value is None:
                skipped.append(metric if group == ALL_GROUPS else "%s[%s]" % (metric, group))
                continue
            labels = dict(base, metric=str(metric), group=group, stage=stage)
            rows.append((EVALUATION_METRIC, labels, value))
    return rows, skipped


def registry_for(rows):
    """A prometheus_client registry holding gate_series()'s rows."""
    registry = CollectorRegistry()
    gauges = {
        GATE_PASSED: Gauge(GATE_PASSED, "1 when the validation gate passed the version, else 0.", GATE_LABELS, registry=registry),
        GATE_TIMESTAMP: Gauge(GATE_TIMESTAMP, "When the validation gate judged the version (Unix time).", GATE_LABELS, registry=registry),
        EVALUATION_METRIC: Gauge(EVALUATION_METRIC, "An evaluation metric of a model version (label group: all or a group's value).",
                                 EVALUATION_LABELS, registry=registry),
    }
    for name, labels, value in rows:
        gauges[name].labels(**labels).set(value)
    return registry


def render(rows):
    """The text exposition of gate_series()'s rows (what node-exporter's textfile collector reads)."""
    return generate_latest(registry_for(rows)).decode("utf-8")
