#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_drift_check
short_description: Model drift checks - accuracy decay once labels arrive, and Page-Hinkley / CUSUM detectors over a series
version_added: "0.1.0"
description:
  - Sibling of M(runlocalai.mlops.drift_check). Where C(drift_check) compares input, prediction and confidence
    B(distributions) (features C(outputs.prediction), C(outputs.confidence) of a serving window), this module checks
    the model's B(behaviour over time).
  - O(accuracy) compares the accuracy of a labelled window of predictions with a reference accuracy. Labels come
    inline, from the serving window itself (key C(label)), or from a feedback JSON-lines file joined by request id.
    It fires when the drop is at least O(accuracy.max_drop) B(and) significant (one-sided z-test, p < O(accuracy.alpha)).
  - O(sequential) runs a sequential change detector (Page-Hinkley or tabular CUSUM) over a monitored series, for example
    the confidence or latency column of a serving window. It fires when the detector raises at least one alarm.
  - The logic lives in C(plugins/module_utils/model_drift.py) (no Ansible imports), which the C(model-check) command of
    C(drift_cli) also runs on serving hosts. Parameters and file formats are documented in C(docs/drift.md).
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - numpy
  - scipy
  - prometheus_client (only with O(prometheus_textfile))
  - pyarrow (only for Parquet input)
attributes:
  check_mode:
    support: full
    description: Computes every check and writes nothing; RV(written) lists what would be written.
  diff_mode:
    support: full
    description: Shows the JSON report and textfile before and after.
options:
  accuracy:
    description:
      - Accuracy-decay check. Give O(accuracy.current) (optionally with O(accuracy.feedback)), or O(accuracy.predictions)
        with O(accuracy.labels).
    type: dict
    suboptions:
      current:
        description:
          - Serving-window directory (C(*.jsonl), C(*.jsonl.gz)) or data file (JSON lines, CSV, Parquet) holding the predictions.
        type: path
      feedback:
        description:
          - 'Feedback JSON-lines file or directory (or CSV / Parquet) of late labels, one object per labelled request,
            C({"request_id": "9f1c", "label": 1}) (plus C(instance) for batched requests). Joined to O(accuracy.current)
            by O(accuracy.id_field) and C(instance); a later line for the same request wins. A feedback label takes
            precedence over a label stored in the window.'
        type: path
      predictions:
        description: Inline predictions (instead of O(accuracy.current)); same length as O(accuracy.labels).
        type: list
        elements: raw
      labels:
        description: Inline ground truth for O(accuracy.predictions); C(null) for a not yet labelled prediction.
        type: list
        elements: raw
      prediction_field:
        description: Column of the prediction (in a serving window C(outputs.<name>)).
        type: str
        default: outputs.prediction
      label_field:
        description: Column of the label, in the window and in the feedback file.
        type: str
        default: label
      id_field:
        description: Column of the request id the feedback is joined on.
        type: str
        default: request_id
      reference_accuracy:
        description: Accuracy of the model on its reference (validation) data, in [0, 1].
        type: float
        required: true
      reference_rows:
        description:
          - Labelled rows behind O(accuracy.reference_accuracy); the test is then a pooled two-proportion z-test.
            When omitted the reference accuracy is taken as exact (one-sample z-test).
        type: int
      max_drop:
        description: Tolerated accuracy drop (absolute); a smaller drop never fires.
        type: float
        default: 0.05
      alpha:
        description: Significance level of the one-sided test; a drop that is not significant never fires.
        type: float
        default: 0.05
      min_labels:
        description: With fewer labelled predictions the check is not decided (C(rule=insufficient_labels), a warning, not drift).
        type: int
        default: 30
  sequential:
    description: Sequential change detectors, one per monitored series.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the check in RV(checks) and in the metrics. Default C(<method>:<field or index>).
        type: str
      series:
        description:
          - The series, in order - a list of numbers (C(null) is skipped), or a data file or serving-window directory
            (records in file-name and line order) with the column O(sequential[].field).
        type: raw
        required: true
      field:
        description: Column of the series in a file, e.g. C(outputs.confidence). Optional when the file has a single column.
        type: str
      method:
        description: Detector.
        type: str
        choices: [page_hinkley, cusum]
        default: page_hinkley
      direction:
        description: Change to watch for. Default V(up) for Page-Hinkley, V(both) for CUSUM.
        type: str
        choices: [up, down, both]
      delta:
        description: Page-Hinkley - magnitude of change tolerated, in the series' units.
        type: float
        default: 0.005
      threshold:
        description:
          - Page-Hinkley - alarm threshold (lambda), in the series' units times values; a sustained shift of size d
            is found after about threshold / (d - delta) values.
        type: float
        default: 50.0
      k:
        description: CUSUM - slack in standard deviations (half the shift to detect).
        type: float
        default: 0.5
      h:
        description: CUSUM - decision interval in standard deviations (k=0.5, h=5 - about 465 values between false alarms, a 1 sd shift found in about 10).
        type: float
        default: 5.0
      target:
        description: CUSUM - in-control mean. Default - the mean of the first O(sequential[].min_instances) values.
        type: float
      sigma:
        description: CUSUM - in-control standard deviation. Default - that of the first O(sequential[].min_instances) values.
        type: float
      min_instances:
        description: No alarm before this many values; a shorter series is not decided (a warning, not drift).
        type: int
        default: 30
  report_path:
    description: Write the JSON report here (rewritten only when its content changes).
    type: path
  prometheus_textfile:
    description: Write the model drift metrics in the Prometheus text format here, for node-exporter's textfile collector.
    type: path
  prometheus_labels:
    description: Labels added to every metric, e.g. C(model) and C(model_version). C(check), C(metric), C(window) are reserved.
    type: dict
    default: {}
  fail_on_drift:
    description: Fail the task when a check fires (after writing the reports), with a message naming the checks.
    type: bool
    default: false
notes:
  - At least one of O(accuracy) and O(sequential) is required.
  - Bad input (missing file, missing column, non-numeric series value, empty window, feedback without request ids,
    out-of-range parameter) fails with a message naming the parameter or file, and nothing is written.
seealso:
  - module: runlocalai.mlops.drift_check
"""

EXAMPLES = r"""
- name: Accuracy of yesterday's predictions, labels joined from the feedback file
  runlocalai.mlops.model_drift_check:
    accuracy:
      current: /var/lib/model-server/churn/windows
      feedback: /var/lib/mlops/feedback/churn.jsonl
      reference_accuracy: 0.91
      reference_rows: 20000
      max_drop: 0.03
    prometheus_textfile: /var/lib/node_exporter/textfile/mlops_model_drift_churn.prom
    prometheus_labels:
      model: churn
  register: model_drift

- name: Watch the confidence for a drop and the latency for a rise
  runlocalai.mlops.model_drift_check:
    sequential:
      - name: confidence
        series: /var/lib/model-server/churn/windows
        field: outputs.confidence
        method: page_hinkley
        direction: down
        delta: 0.01
        threshold: 5
      - name: latency
        series: /var/lib/model-server/churn/windows
        field: outputs.latency_ms
        method: cusum
        direction: up
        target: 42.0
        sigma: 6.5
    report_path: /var/lib/mlops/drift/churn-model.json
    fail_on_drift: true
"""

RETURN = r"""
drifted:
  description: Whether any check fired.
  returned: always
  type: bool
  sample: true
drifted_checks:
  description: Names of the checks that fired.
  returned: always
  type: list
  elements: str
  sample: [accuracy]
n_checks:
  description: Number of checks run.
  returned: always
  type: int
  sample: 2
failures:
  description: One line per fired check - its name and the rule detail.
  returned: always
  type: list
  elements: str
  sample: ["accuracy: accuracy 0.9100 -> 0.8400 (drop 0.0700 >= 0.0300, one-sided p=1.2e-09 < alpha 0.05)"]
checks:
  description:
    - Per check (keyed by name, C(accuracy) for the accuracy check) - C(kind) (accuracy, sequential), C(drifted), C(decided),
      C(rule) (accuracy_decay, insufficient_labels, page_hinkley, cusum, insufficient_values), C(rule_detail), C(statistic),
      C(threshold), C(warnings).
    - Accuracy adds C(reference_accuracy), C(current_accuracy), C(drop), C(alpha), C(p_value), C(test) (z_1prop, z_2prop),
      C(n_reference), C(n_current), C(min_labels) and C(labels) (source, rows, predictions, labelled, embedded_labels and,
      with feedback, feedback_rows, joined, unjoinable, orphan_feedback, feedback_duplicates).
    - Sequential adds C(method), C(direction), C(source), C(field), C(n) (values), C(alarms) (0-based indexes), C(first_alarm),
      C(last_alarm), C(max_statistic), C(min_instances), and C(delta) or C(k), C(h), C(target), C(sigma).
  returned: always
  type: dict
summary:
  description: One-line human-readable result.
  returned: always
  type: str
  sample: "no model drift in 2 checks (2 decided)"
warnings_list:
  description: Checks not decided for lack of data (also emitted as task warnings).
  returned: always
  type: list
  elements: str
written:
  description: Files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.model import run_model_checks
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.options import ACCURACY_OPTIONS, SEQUENTIAL_OPTIONS, argument_spec as options_spec
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.report import (
    MODEL_REPORT_FORMAT, MODEL_RESERVED_LABELS, render_json, render_model_prometheus, validate_labels,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule


def argument_spec():
    return dict(
        accuracy=dict(type="dict", options=options_spec(ACCURACY_OPTIONS)),
        sequential=dict(type="list", elements="dict", options=options_spec(SEQUENTIAL_OPTIONS)),
        report_path=dict(type="path"),
        prometheus_textfile=dict(type="path"),
        prometheus_labels=dict(type="dict", default={}),
        fail_on_drift=dict(type="bool", default=False),
    )


def main():
    module = MlopsModule(argument_spec(), libraries=("numpy", "scipy"), required_one_of=[("accuracy", "sequential")])
    params = module.params
    with module.reporting_errors():
        labels = validate_labels(params["prometheus_labels"], MODEL_RESERVED_LABELS)
        result = run_model_checks(params["accuracy"], params["sequential"])
        items = []
        if params["report_path"]:
            items.append(("report_path", params["report_path"], render_json(result, MODEL_REPORT_FORMAT)))
        if params["prometheus_textfile"]:
            items.append(("prometheus_textfile", params["prometheus_textfile"], render_model_prometheus(result, labels)))
        out = module.write_files(items)
    out.update(
        drifted=result["drifted"],
        drifted_checks=result["drifted_checks"],
        n_checks=result["n_checks"],
        failures=result["failures"],
        checks=result["checks"],
        summary=result["summary"],
        warnings_list=result["warnings"],
    )
    for warning in result["warnings"]:
        module.warn(warning)
    if params["fail_on_drift"] and result["drifted"]:
        module.fail_json(msg="model drift detected: %s" % result["summary"], **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
