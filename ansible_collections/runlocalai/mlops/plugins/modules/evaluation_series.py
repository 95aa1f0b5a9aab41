#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: evaluation_series
short_description: A validation gate's verdict and metrics as Prometheus series (text for node-exporter's textfile collector)
version_added: "0.1.0"
description:
  - Renders, with prometheus_client, the series C(mlops_gate_passed), C(mlops_gate_timestamp_seconds) (labels C(model),
    C(version), C(run_id)) and C(mlops_evaluation_metric) (labels C(model), C(version), C(run_id), C(metric), C(group),
    C(stage)) of one gate verdict; C(group) is V(all) for a metric of the whole data, else the value of the sensitive
    column's group.
  - Returns the text; writing it (for example with M(ansible.builtin.copy) into node-exporter's textfile directory of a
    scraped host) is left to the play. The lifecycle role's gate does both.
  - Writes nothing and never reports a change.
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - prometheus_client in the Python that runs the module (the controller's, in the project's requirements.txt)
attributes:
  check_mode:
    description: Renders exactly as in a normal run.
    support: full
  diff_mode:
    description: Nothing changes.
    support: none
options:
  model:
    description: The registered model's name.
    type: str
    required: true
  version:
    description: The version judged.
    type: str
    required: true
  run_id:
    description: The MLflow run that produced the version (empty when unknown).
    type: str
    default: ""
  passed:
    description: Whether the gate passed the version.
    type: bool
    required: true
  metrics:
    description: Metric name to value, measured on the whole data; values that are not numbers are left out (RV(skipped)).
    type: dict
    default: {}
  groups:
    description: Group value to its metrics (a fairness report's C(groups)), each a dict of metric name to value.
    type: dict
    default: {}
  stage:
    description: The C(stage) label of C(mlops_evaluation_metric).
    type: str
    default: gate
  timestamp:
    description: Unix time of the verdict (C(mlops_gate_timestamp_seconds)); default now.
    type: float
"""

EXAMPLES = r"""
- name: The gate's verdict as series
  runlocalai.mlops.evaluation_series:
    model: breast-cancer
    version: "4"
    run_id: 6f2e1c
    passed: true
    metrics: {accuracy: 0.95, f1: 0.96}
    groups: {high: {count: 141, accuracy: 0.936}, low: {count: 143, accuracy: 0.972}}
  register: series

- name: Where node-exporter reads them
  ansible.builtin.copy:
    content: "{{ series.content }}"
    dest: /var/lib/prometheus/node-exporter/mlops_gate_breast-cancer.prom
    mode: "0644"
"""

RETURN = r"""
content:
  description: The series in Prometheus' text format.
  returned: success
  type: str
  sample: "mlops_gate_passed{model=\"breast-cancer\",run_id=\"6f2e1c\",version=\"4\"} 1.0\n"
series:
  description: How many series the text holds.
  returned: success
  type: int
  sample: 8
skipped:
  description: Metric keys left out because their value is not a number (C(metric[group]) for a group's).
  returned: success
  type: list
  elements: str
  sample: []
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring.evaluation import (
    HAS_PROMETHEUS_CLIENT,
    SeriesError,
    gate_series,
    render,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model=dict(type="str", required=True),
            version=dict(type="str", required=True),
            run_id=dict(type="str", default=""),
            passed=dict(type="bool", required=True),
            metrics=dict(type="dict", default={}),
            groups=dict(type="dict", default={}),
            stage=dict(type="str", default="gate"),
            timestamp=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    if not HAS_PROMETHEUS_CLIENT:
        module.fail_json(msg=missing_required_lib("prometheus_client"))
    p = module.params
    timestamp = p["timestamp"] if p["timestamp"] is not None else time.time()
    try:
        rows, skipped = gate_series(p["model"], p["version"], p["run_id"], p["passed"], timestamp, p["metrics"], p["groups"], p["stage"])
    except SeriesError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, content=render(rows), series=len(rows), skipped=skipped)


if __name__ == "__main__":
    main()
