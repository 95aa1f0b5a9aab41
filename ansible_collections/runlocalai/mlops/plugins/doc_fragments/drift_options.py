# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The drift check options; their one definition is module_utils/drift/options.py
    # (CHECK_OPTIONS), which tests/unit/.../test_drift_options.py holds this text against.
    DOCUMENTATION = r"""
options:
  alpha:
    description: Significance level of the corrected p-values.
    type: float
    default: 0.05
  correction:
    description: Multiple-testing correction over all features' p-values.
    type: str
    choices: [bh, bonferroni, none]
    default: bh
  decision:
    description: V(auto) judges by p-value up to O(large_sample_rows) values and by distance above; the others force one rule.
    type: str
    choices: [auto, p_value, distance]
    default: auto
  large_sample_rows:
    description: Above this many non-missing values on the smaller side, decisions use the distance threshold.
    type: int
    default: 1000
  numeric_test:
    description: P-value test for numeric features.
    type: str
    choices: [ks, cvm]
    default: ks
  numeric_distance:
    description: Distance that decides numeric features in large samples.
    type: str
    choices: [wasserstein, psi, js, ks]
    default: wasserstein
  categorical_distance:
    description: Distance that decides categorical features in large samples.
    type: str
    choices: [js, psi, tvd]
    default: js
  numeric_threshold:
    description: Threshold of O(numeric_distance). Defaults are wasserstein 0.1 (in reference standard deviations), psi 0.2, js 0.1, ks 0.1.
    type: float
  categorical_threshold:
    description: Threshold of O(categorical_distance). Defaults are js 0.1, psi 0.2, tvd 0.1.
    type: float
  psi_bins:
    description: Number of reference quantile bins for PSI when building a profile.
    type: int
    default: 10
  sample_size:
    description: Reference values kept per numeric feature in a profile (all of them up to this size, else equal-mass quantiles).
    type: int
    default: 10000
  novel_category_min_share:
    description: A category absent from the reference is drift when it takes at least this share of the current window.
    type: float
    default: 0.01
  missing_share_threshold:
    description: A change of the missing-value share of at least this much (and significant) is drift.
    type: float
    default: 0.05
  min_rows:
    description: Warn when a side has fewer non-missing values than this.
    type: int
    default: 30
  extra_columns:
    description: When O(features) is not given, what to do with current columns the reference lacks.
    type: str
    choices: [fail, ignore]
    default: fail
"""
