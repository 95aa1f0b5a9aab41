#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: data_validation
short_description: Validate a data set before training or deployment
version_added: "0.1.0"
description:
  - Checks a data file (CSV, JSON lines, Parquet) or a serving-window directory against a schema
    (required columns and types), null-rate limits, numeric ranges, allowed values, row-count bounds and
    duplicate keys, and optionally runs a drift check against a reference profile (the same engine as
    M(runlocalai.mlops.drift_check)).
  - Returns RV(passed) and a RV(failures) list; fails the task on any failure unless O(fail_on_failure=false).
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - numpy
  - scipy
  - pyarrow (optional; Parquet input)
attributes:
  check_mode:
    description: Runs every check; writes no report.
    support: full
  diff_mode:
    description: Shows the JSON report before and after.
    support: full
options:
  data:
    description: Data file or serving-window directory to validate.
    type: path
    required: true
  columns:
    description:
      - Column name to checks. Each value may hold C(type) (V(numeric), V(categorical) or V(any)), C(required)
        (default true), C(max_null_rate) (0 to 1), C(min), C(max) and C(allowed_values) (a list).
    type: dict
    default: {}
  min_rows:
    description: Least number of rows.
    type: int
  max_rows:
    description: Greatest number of rows.
    type: int
  unique_keys:
    description: Columns that together must be unique (no duplicate keys).
    type: list
    elements: str
  allow_extra_columns:
    description: Whether columns not listed in O(columns) are allowed.
    type: bool
    default: true
  drift:
    description:
      - Also check drift against C(reference) (a profile or data file); drifted features become failures.
        Other keys are drift options of M(runlocalai.mlops.drift_check) (C(features), C(alpha), C(correction),
        C(decision), C(numeric_distance), ...).
    type: dict
  report_path:
    description: Write the result as JSON here (rewritten only when its content changes).
    type: path
  fail_on_failure:
    description: Fail the task when a check fails (the report is written first).
    type: bool
    default: true
seealso:
  - module: runlocalai.mlops.drift_check
"""

EXAMPLES = r"""
- name: Gate the training data
  runlocalai.mlops.data_validation:
    data: /srv/data/train.parquet
    min_rows: 10000
    unique_keys: [customer_id]
    columns:
      customer_id: {type: categorical, max_null_rate: 0}
      age: {type: numeric, min: 0, max: 120, max_null_rate: 0.01}
      region: {allowed_values: [north, south, east, west]}
    drift:
      reference: /srv/models/churn/reference_profile.json
      features: [age, region]
"""

RETURN = r"""
passed:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: false
failures:
  description: Failed checks, each with C(check), C(column), C(message), C(observed), C(expected).
  returned: always
  type: list
  elements: dict
  sample: [{check: max, column: age, message: "column 'age': 2 values above max 120 (highest 130.0)", observed: 130.0, expected: 120}]
rows:
  description: Rows validated.
  returned: always
  type: int
checks:
  description: Number of checks run.
  returned: always
  type: int
drift:
  description: The drift check result (as M(runlocalai.mlops.drift_check) returns it), when O(drift) is set.
  returned: when drift is set
  type: dict
"""

import json

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.engine import public_result
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.validation import validate
from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule


def main():
    module = MlopsModule(
        dict(
            data=dict(type="path", required=True),
            columns=dict(type="dict", default={}),
            min_rows=dict(type="int"),
            max_rows=dict(type="int"),
            unique_keys=dict(type="list", elements="str", no_log=False),
            allow_extra_columns=dict(type="bool", default=True),
            drift=dict(type="dict"),
            report_path=dict(type="path"),
            fail_on_failure=dict(type="bool", default=True),
        ),
        libraries=("numpy", "scipy"),
    )
    params = module.params
    with module.reporting_errors():
        result = validate(params["data"], params["columns"], params["min_rows"], params["max_rows"], params["unique_keys"],
                          params["allow_extra_columns"], params["drift"])
        if "drift" in result:
            result["drift"] = public_result(result["drift"])
        text = None
        if params["report_path"]:
            text = json.dumps({"format": "runlocalai.mlops/validation-report", "format_version": 1, "result": result},
                              sort_keys=True, indent=2, allow_nan=False) + "\n"
        written = module.write_files([("report_path", params["report_path"], text)])
    out = dict(result, changed=written["changed"])
    if written.get("diff"):
        out["diff"] = written["diff"]
    if params["fail_on_failure"] and not result["passed"]:
        module.fail_json(msg="data validation failed: %s" % "; ".join(f["message"] for f in result["failures"]), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
