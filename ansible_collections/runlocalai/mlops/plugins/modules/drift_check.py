#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: drift_check
short_description: Detect data and prediction drift between a reference and a current window
version_added: "0.1.0"
description:
  - Compares a current window (a data file, or a directory of JSON-lines serving logs written by the model
    server) with a reference (a data file, or a stored reference profile) feature by feature, and reports
    which features drifted, by which test, statistic, corrected p-value, threshold and decision rule.
  - "Numeric features: two-sample Kolmogorov-Smirnov (or Cramer-von Mises), Wasserstein distance normalised by
    the reference standard deviation, PSI on reference quantile bins with a missing-value bin, Jensen-Shannon
    distance (base 2). Categorical features: chi-square (two-proportion z-test for binary features),
    Jensen-Shannon distance, total variation distance, PSI, novel and vanished categories."
  - P-values are corrected for multiple testing (Benjamini-Hochberg by default). With up to O(large_sample_rows)
    values on the smaller side a feature is judged by its corrected p-value; above that, where every p-value
    goes to zero, by a distance threshold. A novel category above O(novel_category_min_share) and a change of
    the missing-value share above O(missing_share_threshold) are drift of their own. RV(features) says which rule decided.
  - Can build a reference profile once (O(profile_path)) so that later runs read only the profile and the
    current window. The profile format, the serving-window format and the Prometheus metric names are
    documented in the collection's C(docs/drift.md).
  - The same engine runs on serving hosts without Ansible (C(python -m ...module_utils.drift_cli)).
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - numpy
  - scipy
  - pyarrow (optional; Parquet input and fast CSV parsing)
extends_documentation_fragment:
  - runlocalai.mlops.drift_options
attributes:
  check_mode:
    description: Computes everything and reports which files would change; writes nothing.
    support: full
  diff_mode:
    description: Shows the JSON report and Prometheus textfile before and after, and the content hash of the profile and HTML report.
    support: full
options:
  reference:
    description:
      - Reference data file (C(.csv), C(.jsonl)/C(.ndjson), C(.parquet)) or a reference profile written earlier
        by this module. A profile is recognised by its content, whatever its name.
    type: path
    required: true
  current:
    description:
      - Current window, a data file or a directory of serving-window files (C(*.jsonl), C(*.jsonl.gz)).
      - When omitted, the module only builds the profile and writes it to O(profile_path).
    type: path
  features:
    description:
      - Features to check, as names or as dicts with C(name) and C(type) (V(numeric) or V(categorical)).
      - Default is every column of the reference (every feature of a profile); types are then inferred
        and reported in RV(features). In a serving window a name refers to an input; C(outputs.NAME) to an output.
    type: list
    elements: raw
  profile_path:
    description: Write the reference profile here (rewritten only when its content changes).
    type: path
  report_path:
    description: Write the JSON report here.
    type: path
  html_report_path:
    description: Write a self-contained HTML report (tables and inline SVG ECDFs / bar charts) here.
    type: path
  prometheus_textfile:
    description: Write drift metrics in the Prometheus text format here, for node-exporter's textfile collector (name it C(*.prom)).
    type: path
  prometheus_labels:
    description: Labels added to every metric, e.g. C(model) and C(model_version). C(feature), C(metric), C(test), C(window) are reserved.
    type: dict
    default: {}
  fail_on_drift:
    description: Fail the task when drift is detected (after writing the reports), with a message naming the drifted features.
    type: bool
    default: false
notes:
  - Drift is not bad input; with O(fail_on_drift=true) the reports are written before the task fails.
  - Bad input (missing file or column, extra column, non-numeric value in a numeric feature, empty window,
    all-missing column, constant numeric reference column) fails with a message naming it, and nothing is written.
seealso:
  - module: runlocalai.mlops.data_validation
"""

EXAMPLES = r"""
- name: Build the reference profile from the training data once
  runlocalai.mlops.drift_check:
    reference: /srv/data/train.parquet
    features:
      - age
      - income
      - {name: region, type: categorical}
    profile_path: /srv/models/churn/reference_profile.json

- name: Check the last serving window against the profile, publish metrics
  runlocalai.mlops.drift_check:
    reference: /srv/models/churn/reference_profile.json
    current: /var/lib/model-server/churn/windows
    report_path: /var/lib/mlops/drift/churn.json
    html_report_path: /var/lib/mlops/drift/churn.html
    prometheus_textfile: /var/lib/node_exporter/textfile/mlops_drift_churn.prom
    prometheus_labels:
      model: churn
      model_version: "3"
  register: drift

- name: Stop a pipeline on drift
  runlocalai.mlops.drift_check:
    reference: /srv/models/churn/reference_profile.json
    current: /srv/data/batch-2026-11-27.csv
    fail_on_drift: true
"""

RETURN = r"""
drifted:
  description: Whether any feature drifted.
  returned: when current is given
  type: bool
  sample: true
drifted_share:
  description: Share of the checked features that drifted.
  returned: when current is given
  type: float
  sample: 0.2
drifted_features:
  description: Names of the drifted features.
  returned: when current is given
  type: list
  elements: str
  sample: [income]
n_features:
  description: Number of features checked.
  returned: when current is given
  type: int
  sample: 5
features:
  description:
    - Per feature (keyed by name) the decision and every statistic. Keys include C(drifted), C(type), C(type_source),
      C(test) (ks, cvm, chi2, z_2prop), C(statistic), C(p_value) (corrected), C(p_value_raw), C(threshold) and C(rule)
      (p_value, distance, missing_share, novel_category) of the deciding rule, C(rule_detail), C(rules_fired),
      C(distance_metric), C(distance), C(distance_threshold), C(n_reference), C(n_current) (non-missing values),
      C(rows_reference), C(rows_current), C(psi), C(psi_noise), C(psi_noise_p99), C(js_distance), missing shares,
      C(warnings); numeric features add C(ks_statistic), C(wasserstein_norm), C(cvm_statistic), means and standard
      deviations; categorical ones C(tvd), C(novel_categories) (category to current share) and C(vanished_categories).
    - When O(current) is omitted, the profile's features with their types.
  returned: always
  type: dict
  sample:
    income:
      drifted: true
      test: ks
      statistic: 0.21
      p_value: 0.0
      threshold: 0.1
      rule: distance
      rule_detail: wasserstein_norm 0.31 >= 0.1 (large samples, decided by distance, not p-value)
      distance_metric: wasserstein_norm
      distance: 0.31
      n_reference: 100000
      n_current: 5000
summary:
  description: One-line human-readable result.
  returned: when current is given
  type: str
  sample: "drift in 1 of 5 features: income (wasserstein_norm 0.31 >= 0.1)"
warnings_list:
  description: Warnings about small samples or sparse categories (also emitted as task warnings).
  returned: when current is given
  type: list
  elements: str
settings:
  description: The options the check used.
  returned: when current is given
  type: dict
reference:
  description: Content hash and row count of the reference profile.
  returned: when current is given
  type: dict
  sample: {content_hash: "sha256:9f2c...", rows: 100000}
current:
  description: Source, rows, number of files and skipped partial lines of the current window.
  returned: when current is given
  type: dict
profile_hash:
  description: Content hash of the reference profile.
  returned: always
  type: str
profile_built:
  description: Whether the profile was built from a data file in this run (false when O(reference) was a profile).
  returned: always
  type: bool
written:
  description: Files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.engine import public_result, run
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.options import MODULE_OPTIONS, argument_spec as drift_options_spec, make_options
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.profiles import dumps_profile
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.report import render_html, render_json, render_prometheus, validate_labels
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.stats import DriftError
from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule


def argument_spec():
    spec = dict(
        reference=dict(type="path", required=True),
        current=dict(type="path"),
        features=dict(type="list", elements="raw"),
        profile_path=dict(type="path"),
        report_path=dict(type="path"),
        html_report_path=dict(type="path"),
        prometheus_textfile=dict(type="path"),
        prometheus_labels=dict(type="dict", default={}),
        fail_on_drift=dict(type="bool", default=False),
    )
    spec.update(drift_options_spec())
    return spec


def main():
    module = MlopsModule(argument_spec(), libraries=("numpy", "scipy"), required_one_of=[("current", "profile_path")])
    params = module.params
    result = public = None
    with module.reporting_errors():
        labels = validate_labels(params["prometheus_labels"])
        options = make_options(**dict((k, params[k]) for k in MODULE_OPTIONS))
        result, profile, built = run(params["reference"], params["current"], params["features"], options,
                                     want_plot=bool(params["html_report_path"]))
        items = []
        if params["profile_path"]:
            items.append(("profile_path", params["profile_path"], dumps_profile(profile)))
        if result is not None:
            public = public_result(result)
            if params["report_path"]:
                items.append(("report_path", params["report_path"], render_json(public)))
            if params["html_report_path"]:
                items.append(("html_report_path", params["html_report_path"], render_html(result)))
            if params["prometheus_textfile"]:
                items.append(("prometheus_textfile", params["prometheus_textfile"], render_prometheus(public, labels)))
        elif any(params[p] for p in ("report_path", "html_report_path", "prometheus_textfile")):
            raise DriftError("current: required when report_path, html_report_path or prometheus_textfile is set")
        out = module.write_files(items, summarize=("profile_path", "html_report_path"))
    out.update(profile_hash=profile["content_hash"], profile_built=built)
    if result is None:
        out["features"] = dict((name, {"type": f["type"], "type_source": f.get("type_source", "profile"), "rows": f["rows"],
                                       "missing": f["missing"]}) for name, f in profile["features"].items())
        module.exit_json(**out)
    for warning in public["warnings"]:
        module.warn(warning)
    out.update(
        drifted=public["drifted"],
        drifted_share=public["drifted_share"],
        drifted_features=public["drifted_features"],
        n_features=public["n_features"],
        features=public["features"],
        summary=public["summary"],
        warnings_list=public["warnings"],
        settings=public["settings"],
        reference=public["reference"],
        current=public["current"],
    )
    if params["fail_on_drift"] and public["drifted"]:
        module.fail_json(msg="drift detected: %s" % public["summary"], **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
