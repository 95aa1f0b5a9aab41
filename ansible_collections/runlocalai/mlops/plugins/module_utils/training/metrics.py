# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The training pipeline's Prometheus series, written with prometheus_client as a node-exporter
textfile (one file per model) after every run. The run counters survive between runs in a small
JSON state file next to the pipeline's other state.

  mlops_pipeline_runs_total{model,outcome}              runs by outcome: success, skipped_unchanged, failed
  mlops_pipeline_last_run_timestamp_seconds{model}      end of the last run
  mlops_pipeline_last_success_timestamp_seconds{model}  end of the last run that succeeded or skipped
  mlops_pipeline_last_run_failed{model}                 1 when the last run failed
  mlops_pipeline_last_run_duration_seconds{model}       wall time of the last run
  mlops_evaluation_metric{model,version,run_id,metric,group}  the last candidate's evaluation
                                                        (group "all": the whole evaluation data)"""

from __future__ import absolute_import, division, print_function

import json
import os

OUTCOMES = ("success", "skipped_unchanged", "failed")


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
    runs = Counter("mlops_pipeline_runs", "Training pipeline runs by outcome.", ["model", "outcome"], registry=registry)
    for name in OUTCOMES:
        runs.labels(model, name).inc(counts[name])
    Gauge("mlops_pipeline_last_run_timestamp_seconds", "End of the last pipeline run.", ["model"],
          registry=registry).labels(model).set(state["last_run"])
    if "last_success" in state:
        Gauge("mlops_pipeline_last_success_timestamp_seconds", "End of the last pipeline run that succeeded or skipped.",
              ["model"], registry=registry).labels(model).set(state["last_success"])
    Gauge("mlops_pipeline_last_run_failed", "1 when the last pipeline run failed.", ["model"],
          registry=registry).labels(model).set(1 if state["last_failed"] else 0)
    Gauge("mlops_pipeline_last_run_duration_seconds", "Wall time of the last pipeline run.", ["model"],
          registry=registry).labels(model).set(state["last_duration"])
    if state.get("evaluation"):
        metric = Gauge("mlops_evaluation_metric", "Evaluation of the last candidate the pipeline registered.",
                       ["model", "version", "run_id", "metric", "group"], registry=registry)
        ev = state["evaluation"]
        for name, group, value in ev["rows"]:
            metric.labels(model, ev["version"], ev["run_id"], name, group).set(value)
    tmp = state_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle, sort_keys=True)
    os.replace(tmp, state_path)
    write_to_textfile(os.path.join(textfile_dir, "mlops_pipeline_%s.prom" % model), registry)
    return state
