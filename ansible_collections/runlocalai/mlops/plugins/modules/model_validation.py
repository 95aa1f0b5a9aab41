#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_validation
short_description: Validation gate for an MLflow model - quality, latency, fairness, hardware fit, champion comparison
version_added: "0.1.0"
description:
  - Evaluates a model given by MLflow URI (C(models:/name/version), C(models:/name@alias), C(runs:/run_id/path)) on an
    evaluation file (CSV or Parquet) with a label column.
  - "Classification: accuracy, precision, recall, F1 (binary: of the positive label; multi-class: macro), ROC-AUC (binary,
    when the model exposes C(predict_proba)), confusion matrix. Regression: RMSE, MAE, R2, MAPE."
  - Latency p50/p95/p99 over single-row predictions; hardware fit of a memory estimate against the target's free RAM and
    GPU memory (given as parameters, e.g. from host facts).
  - "Fairness, with O(sensitive_column): the quality metrics per group of that column (classification: accuracy,
    precision, recall, F1; regression: RMSE, MAE, R2, MAPE), the gap of each (largest minus smallest over the groups),
    demographic-parity and equal-opportunity differences (binary classification). C(max_disparity) is the gap of
    O(fairness_metric); a threshold on it (C(max_disparity: \"<=0.1\")) refuses a candidate whose groups are served
    unequally, and the failure names the two groups and their values."
  - Thresholds are data (O(thresholds)); an optional champion comparison fails the gate when the candidate is worse than
    the version behind O(champion_alias) by more than O(champion_tolerance).
  - With O(record=true) the report is stored on the model version as tags (C(validation.passed), C(validation.report),
    C(validation.fingerprint)), which M(runlocalai.mlops.mlflow_model) checks before moving a protected alias. Recording is
    idempotent; a report whose deterministic content (everything but latency timings) is unchanged writes nothing.
extends_documentation_fragment:
  - runlocalai.mlops.mlflow_connection
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - mlflow
  - pandas
  - numpy
  - requests
attributes:
  check_mode:
    description: Evaluates the model (read-only) and reports whether tags would be written, without writing them.
    support: full
  diff_mode:
    description: Shows the validation tags before and after when O(record=true).
    support: full
options:
  model_uri:
    description: The candidate, C(models:/name/version), C(models:/name@alias) or C(runs:/run_id/path).
    type: str
    required: true
  data_path:
    description: Evaluation data, CSV (header row) or Parquet (C(.parquet)).
    type: path
    required: true
  label_column:
    description: Column holding the true label or target.
    type: str
    required: true
  task:
    description: C(auto) picks regression for float labels with more than 20 distinct values, else classification.
    type: str
    choices: [auto, classification, regression]
    default: auto
  positive_label:
    description: Positive class for binary metrics (default the greater label).
    type: raw
  drop_columns:
    description: Columns to remove before predicting (besides O(label_column)). Columns not in the model's signature are dropped anyway.
    type: list
    elements: str
    default: []
  thresholds:
    description:
      - 'Metric name to threshold, for example C(accuracy: ">=0.92"), C(latency_p95_ms: "<=50"), C(max_disparity: "<=0.1").'
      - Operators C(>=), C(<=), C(>), C(<), C(==); a bare number means C(>=) for higher-is-better metrics and C(<=) otherwise.
    type: dict
    default: {}
  latency_samples:
    description: Single-row predictions timed for the latency percentiles (0 skips latency).
    type: int
    default: 50
  sensitive_column:
    description:
      - Column with the group of each row, for the fairness metrics (a model with a signature gets only the columns of its
        signature; for one without, list this column in O(drop_columns) too).
      - Without it no fairness metric is computed, and a threshold on C(max_disparity) fails as C(metric not computed).
    type: str
  fairness_metric:
    description:
      - Metric whose gap across the groups of O(sensitive_column) is C(max_disparity), the one O(thresholds) judge.
      - C(accuracy), C(precision), C(recall) or C(f1) for classification (default C(accuracy)); C(rmse), C(mae), C(r2) or
        C(mape) for regression (default C(mae)).
    type: str
  target_free_memory_mb:
    description: Free RAM on the serving target (MiB).
    type: float
  target_gpu_memory_mb:
    description: Free GPU memory on the serving target (MiB), checked when O(needs_gpu=true).
    type: float
  needs_gpu:
    description: The model is served on a GPU.
    type: bool
    default: false
  memory_factor:
    description: Memory estimate is model size times this factor plus O(runtime_overhead_mb).
    type: float
    default: 2.0
  runtime_overhead_mb:
    description: Fixed memory of the serving runtime (MiB) added to the estimate.
    type: float
    default: 300.0
  champion_alias:
    description: Alias of the current champion (e.g. C(production)); skipped when the alias is not set yet.
    type: str
  champion_model:
    description: Registered model holding O(champion_alias) (default the candidate's registered model).
    type: str
  champion_metrics:
    description: Metrics compared with the champion (default C(accuracy), or C(rmse) for regression).
    type: list
    elements: str
  champion_tolerance:
    description: How much worse (absolute) than the champion the candidate may be.
    type: float
    default: 0.0
  record:
    description: Store the report on the model version as tags (needs a C(models:/) URI).
    type: bool
    default: false
  fail_on_error:
    description: Fail the task when the gate does not pass (the result still carries the metrics and failures).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Gate the candidate and record the report on the version
  runlocalai.mlops.model_validation:
    tracking_uri: https://mlflow.internal:5000
    username: ci
    password: "{{ vault_mlflow_password }}"
    model_uri: "models:/churn/{{ candidate_version }}"
    data_path: /srv/data/churn-holdout.csv
    label_column: churned
    sensitive_column: region
    thresholds:
      accuracy: ">=0.92"
      latency_p95_ms: "<=50"
      max_disparity: "<=0.1"
    target_free_memory_mb: "{{ ansible_memfree_mb }}"
    champion_alias: production
    champion_tolerance: 0.01
    record: true
    fail_on_error: true
  register: gate
"""

RETURN = r"""
passed:
  description: Whether every threshold, the hardware fit and the champion comparison passed.
  returned: success
  type: bool
  sample: true
metrics:
  description: All metrics computed (quality, latency, fairness summary, model size and memory estimate).
  returned: success
  type: dict
  sample: {accuracy: 0.95, f1: 0.96, roc_auc: 0.99, latency_p95_ms: 4.1, max_disparity: 0.02, memory_estimate_mb: 300.1}
failures:
  description:
    - Each failed check with C(metric), C(value) and C(threshold); C(reason) where there is more to say (a metric not
      computed; for C(max_disparity), the metric and the two groups with their values).
  returned: success
  type: list
  elements: dict
  sample: [{metric: accuracy, value: 0.61, threshold: ">=0.92"}]
report:
  description:
    - The full report (what is recorded), with confusion matrix, fairness per group, hardware and champion details.
    - "C(fairness) (with O(sensitive_column)): C(metric) (O(fairness_metric)), C(groups) (per group: C(count) and its
      metrics), C(gaps) (per metric: largest minus smallest over the groups), C(max_disparity) (the gap of C(metric)),
      C(lowest_group) and C(highest_group) (the groups that make it), C(selection_rate), C(true_positive_rate),
      C(demographic_parity_difference), C(equal_opportunity_difference) (binary classification)."
  returned: success
  type: dict
  sample:
    fairness:
      metric: accuracy
      groups:
        high: {count: 141, accuracy: 0.936, precision: 0.903, recall: 0.949, f1: 0.926}
        low: {count: 143, accuracy: 0.972, precision: 0.966, recall: 1.0, f1: 0.983}
      gaps: {accuracy: 0.036, precision: 0.063, recall: 0.051, f1: 0.057}
      max_disparity: 0.036
      lowest_group: high
      highest_group: low
recorded:
  description: Whether the report tags were written (or would be, in check mode).
  returned: success
  type: bool
  sample: true
version:
  description: The registered model version evaluated (null for runs:/ URIs).
  returned: success
  type: str
  sample: "3"
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import (
    HAS_REQUESTS,
    TAG_VALIDATION_FINGERPRINT,
    TAG_VALIDATION_PASSED,
    CONNECTION_MUTUALLY_EXCLUSIVE,
    client_from_params,
    connection_argument_spec,
    RegistryError,
    tag_dict,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.evaluation import (
    HAS_MLFLOW,
    HAS_NUMPY,
    MLFLOW_IMPORT_ERROR,
    EvalError,
    evaluate,
    fingerprint,
    record_report,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            connection_argument_spec(env_fallback),
            model_uri=dict(type="str", required=True),
            data_path=dict(type="path", required=True),
            label_column=dict(type="str", required=True),
            task=dict(type="str", choices=["auto", "classification", "regression"], default="auto"),
            positive_label=dict(type="raw"),
            drop_columns=dict(type="list", elements="str", default=[]),
            thresholds=dict(type="dict", default={}),
            latency_samples=dict(type="int", default=50),
            sensitive_column=dict(type="str"),
            fairness_metric=dict(type="str"),
            target_free_memory_mb=dict(type="float"),
            target_gpu_memory_mb=dict(type="float"),
            needs_gpu=dict(type="bool", default=False),
            memory_factor=dict(type="float", default=2.0),
            runtime_overhead_mb=dict(type="float", default=300.0),
            champion_alias=dict(type="str"),
            champion_model=dict(type="str"),
            champion_metrics=dict(type="list", elements="str"),
            champion_tolerance=dict(type="float", default=0.0),
            record=dict(type="bool", default=False),
            fail_on_error=dict(type="bool", default=False),
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    if not HAS_MLFLOW or not HAS_NUMPY:
        module.fail_json(msg=missing_required_lib("mlflow (with pandas and numpy)"), exception=str(MLFLOW_IMPORT_ERROR))
    p = module.params
    if p["latency_samples"] < 0:
        module.fail_json(msg="latency_samples: must be 0 or more, got %d" % p["latency_samples"])
    if p["memory_factor"] <= 0:
        module.fail_json(msg="memory_factor: must be positive, got %s" % p["memory_factor"])
    connection = dict((k, p[k]) for k in ("tracking_uri", "username", "password", "token", "validate_certs", "ca_path"))
    spec = dict((k, p[k]) for k in ("model_uri", "data_path", "label_column", "task", "positive_label", "drop_columns", "thresholds",
                                    "latency_samples", "sensitive_column", "fairness_metric", "target_free_memory_mb",
                                    "target_gpu_memory_mb", "needs_gpu", "memory_factor", "runtime_overhead_mb", "champion_alias",
                                    "champion_model", "champion_metrics", "champion_tolerance"))
    spec["connection"] = connection
    try:
        client = client_from_params(p)
        report = evaluate(client, spec)
        version = report["model"]["version"]
        recorded = False
        diff = None
        if p["record"]:
            if not version:
                module.fail_json(msg="record: needs a registered model version; model_uri %s is not models:/NAME/VERSION or models:/NAME@ALIAS"
                                 % p["model_uri"])
            before = tag_dict(client.get_version(report["model"]["name"], version))
            recorded = record_report(client, report["model"]["name"], version, report, check=module.check_mode)
            diff = {"before": {TAG_VALIDATION_PASSED: before.get(TAG_VALIDATION_PASSED), TAG_VALIDATION_FINGERPRINT: before.get(TAG_VALIDATION_FINGERPRINT)},
                    "after": {TAG_VALIDATION_PASSED: "true" if report["passed"] else "false", TAG_VALIDATION_FINGERPRINT: fingerprint(report)}}
    except (EvalError, RegistryError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=recorded, passed=report["passed"], metrics=report["metrics"], failures=report["failures"], report=report,
                  recorded=recorded, version=version)
    if module._diff and diff is not None:
        result["diff"] = diff
    if p["fail_on_error"] and not report["passed"]:
        module.fail_json(msg="validation of %s failed: %s" % (p["model_uri"], "; ".join(
            "%s=%s (needs %s)" % (f["metric"], f["value"], f["threshold"]) for f in report["failures"])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
