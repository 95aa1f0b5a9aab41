# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The training pipeline's Prometheus series, written with prometheus_client as a node-exporter
textfile (one file per model) after every run. Names, labels and help are the contract of
monitoring/evaluation.py (PIPELINE_SERIES, and mlops_evaluation_metric with stage="pipeline" for the
last candidate's evaluation, group "all" for the whole evaluation data). The run counters survive
between runs in a small JSON state file next to the pipeline's other state."""

from __future__ import absolute_import, division, print_function

import json
import os

from ..monitoring.evaluation import EVALUATION_LABELS, EVALUATION_METRIC, PIPELINE_OUTCOMES as OUTCOMES, PIPELINE_SERIES

STAGE = "pipeline"


def _load(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def record_run(textfile_dir, state_dir, model, outcome, started, ended, evaluation=None):
    """Add one run to the model's state and rewrite its textfile. evaluation: (version, run_id, rows) with
    rows of (metric, group, value) for a registered candidate; a skipped or failed run keeps the last one."""
    from prometheus_client import (  # pylint: disable=import-outside-toplevel
        CollectorRegistry, Counter, Gauge, disable_created_metrics, write_to_textfile)
    disable_created_metrics()  # no *_created series: the counters' start is not news
    if outcome not in OUTCOMES:
        raise ValueError("outcome: %r is not one of %s" % (outcome, ", ".join(OUTCOMES)))
    state_path = os.path.join(state_dir, "pipeline-%s.json" % model)
    state = _load(state_path)
    counts = dict((o, int(state.get("runs", {}).get(o, 0))) for o in OUTCOMES)
    counts[outcome] += 1
    state["runs"] = counts
    state["last_run"] = ended
    state["last_failed"] = outcome == "failed"
    state["last_duration"] = max(0.0, ended - started)
    if outcome != "failed":
        state["last_success"] = ended
    if evaluation is not None:
        version, run_id, rows = evaluation
        state["evaluation"] = {"version": str(version), "run_id": run_id, "rows": [list(r) for r in rows]}

    registry = CollectorRegistry()
    gauges = {"mlops_pipeline_last_run_timestamp_seconds": state["last_run"],
              "mlops_pipeline_last_success_timestamp_seconds": state.get("last_success"),
              "mlops_pipeline_last_run_failed": 1 if state["last_failed"] else 0,
              "mlops_pipeline_last_run_duration_seconds": state["last_duration"]}
    for name, kind, labels, text in PIPELINE_SERIES:
        if kind == "counter":  # prometheus_client adds _total
            runs = Counter(name[:-len("_total")], text, labels, registry=registry)
            for each in OUTCOMES:
                runs.labels(model, each).inc(counts[each])
        elif gauges.get(name) is not None:
            Gauge(name, text, labels, registry=registry).labels(model).set(gauges[name])
    if state.get("evaluation"):
        metric = Gauge(EVALUATION_METRIC, "An evaluation metric of a model version (label group: all or a group's value).",
                       EVALUATION_LABELS, registry=registry)
        ev = state["evaluation"]
        for name, group, value in ev["rows"]:
            metric.labels(model, ev["version"], ev["run_id"], name, group, STAGE).set(value)
    tmp = state_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle, sort_keys=True)
    os.replace(tmp, state_path)
    write_to_textfile(os.path.join(textfile_dir, "mlops_pipeline_%s.prom" % model), registry)
    return state
