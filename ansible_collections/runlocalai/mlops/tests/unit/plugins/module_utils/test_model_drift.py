# -*- coding: utf-8 -*-
"""Model drift: accuracy decay and sequential detectors, against naive reference implementations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

import numpy as np
import pytest
from scipy import stats

from ansible_collections.runlocalai.mlops.plugins.module_utils import model_drift as md
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift_stats import DriftInputError


def test_accuracy_decay_matches_hand_computed_z_test():
    out = md.accuracy_decay(0.92, 10000, 850, 1000)
    pooled = (0.92 * 10000 + 850) / 11000.0
    z = (0.85 - 0.92) / math.sqrt(pooled * (1 - pooled) * (1 / 10000.0 + 1 / 1000.0))
    assert out["z"] == pytest.approx(z)
    assert out["p_value"] == pytest.approx(stats.norm.cdf(z))
    assert out["decayed"] and out["drop"] == pytest.approx(0.07)


def test_accuracy_decay_needs_both_size_and_significance():
    assert not md.accuracy_decay(0.92, 10000, 9150, 10000)["decayed"]  # significant but only 0.005
    assert not md.accuracy_decay(0.92, 10000, 17, 20)["decayed"]  # 0.07 drop, 20 labels: noise
    with pytest.raises(DriftInputError, match="reference_accuracy"):
        md.accuracy_decay(1.5, 10, 1, 1)


def test_count_correct_canonical_comparison():
    assert md.count_correct([1, "1", 0, None, "cat"], [1.0, 1, 1, 1, "cat"]) == (3, 4)


def naive_page_hinkley(x, delta):
    total = m = 0.0
    low = 0.0
    out = []
    for i, value in enumerate(x):
        total += value
        m += value - total / (i + 1) - delta
        low = min(low, m)
        out.append(m - low)
    return np.array(out)


def naive_cusum(z, k):
    s = 0.0
    out = []
    for value in z:
        s = max(0.0, s + value - k)
        out.append(s)
    return np.array(out)


def test_page_hinkley_statistic_matches_naive_loop_and_detects_shift():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.5, 500), rng.normal(1.0, 0.5, 300)])
    assert np.allclose(md._ph_stat(x, 1.0, 0.005), naive_page_hinkley(x, 0.005))
    out = md.page_hinkley(x, delta=0.005, threshold=20.0)
    assert out["detected"] and 500 <= out["first_alarm"] < 540
    stable = md.page_hinkley(rng.normal(0, 0.5, 2000), delta=0.05, threshold=20.0)
    assert not stable["detected"] and stable["alarms"] == []
    down = md.page_hinkley(-x, delta=0.005, threshold=20.0, direction="down")
    assert down["first_alarm"] == out["first_alarm"]


def test_cusum_matches_naive_loop_and_detects_one_sd_shift():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(10, 2, 400), rng.normal(12, 2, 200)])
    z = (x - 10) / 2.0
    assert np.allclose(md._lindley(z - 0.5), naive_cusum(z, 0.5))
    out = md.cusum(x, target=10, sigma=2)
    assert out["detected"] and 400 <= out["first_alarm"] < 440
    estimated = md.cusum(x)  # target and sigma from the first 30 values
    assert estimated["detected"] and estimated["target"] == pytest.approx(np.mean(x[:30]))
    assert not md.cusum(rng.normal(10, 2, 300), target=10, sigma=2)["detected"]
    with pytest.raises(DriftInputError, match="direction"):
        md.cusum(x, direction="sideways")
