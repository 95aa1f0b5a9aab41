# -*- coding: utf-8 -*-
"""Statistical functions checked against scipy and hand-computed values."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import stats as ds


@pytest.mark.parametrize("n,m,shift,scale", [(50, 80, 0.0, 1.1), (300, 450, 0.2, 1.1), (3000, 1200, 0.05, 1.1), (20000, 25000, 0.01, 1.0)])
def test_ks_statistic_and_pvalue_match_scipy(n, m, shift, scale):
    rng = np.random.default_rng(n + m)
    a = rng.normal(size=n)
    b = rng.normal(shift, scale, size=m)
    stat, p = ds.ks_2samp(a, b)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert stat == pytest.approx(expected.statistic, abs=1e-12)
    if n * m / float(n + m) <= ds.KS_EXACT_EN:
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    else:  # Stephens-corrected limiting distribution: within 1% of scipy here
        assert 1e-6 < expected.pvalue < 0.9
        assert p == pytest.approx(expected.pvalue, rel=1e-2)


def test_ks_statistic_with_ties_matches_scipy():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 10, 400).astype(float)
    b = rng.integers(0, 12, 300).astype(float)
    stat, _p = ds.ks_2samp(a, b)
    assert stat == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_wasserstein_and_cvm_match_scipy():
    rng = np.random.default_rng(3)
    a = np.sort(rng.normal(size=700))
    b = np.sort(rng.normal(0.25, 1.1, size=500))
    out = ds.ecdf_compare(a, b)
    assert out["wasserstein"] == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-10)
    cvm = stats.cramervonmises_2samp(a, b, method="asymptotic")
    assert out["cvm"] == pytest.approx(cvm.statistic, rel=1e-9)
    assert 1e-5 < cvm.pvalue < 0.05
    assert ds.cvm_pvalue(out["cvm"], a.size, b.size) == pytest.approx(cvm.pvalue, rel=1e-5)


def test_cvm_pvalue_far_tail_is_zero_not_garbage():
    assert ds.cvm_pvalue(1e6, 1000, 1000) == 0.0
    assert ds.cvm_pvalue(0.0, 1000, 1000) == 1.0


def test_cvm_pvalue_under_no_drift_matches_scipy():
    rng = np.random.default_rng(4)
    a = np.sort(rng.normal(size=400))
    b = np.sort(rng.normal(size=600))
    out = ds.ecdf_compare(a, b)
    expected = stats.cramervonmises_2samp(a, b, method="asymptotic").pvalue
    assert 0.01 < expected
    assert ds.cvm_pvalue(out["cvm"], 400, 600) == pytest.approx(expected, rel=1e-6)


def test_fast_path_agrees_with_exact_path_against_a_sketch():
    rng = np.random.default_rng(5)
    ref = np.sort(rng.normal(size=200000))
    sketch, kind = ds.quantile_sketch(ref, 5000)
    assert kind == "quantiles" and sketch.size == 5000
    cur = np.sort(rng.normal(0.1, 1.2, size=300000))
    fast = ds.compare_numeric(sketch, cur, ref_n=ref.size)
    exact_vs_sketch = ds.ecdf_compare(sketch, cur, ref_n=ref.size)
    assert fast["ks"] == pytest.approx(exact_vs_sketch["ks"], abs=1e-12)
    assert fast["wasserstein"] == pytest.approx(exact_vs_sketch["wasserstein"], rel=1e-3)
    assert fast["cvm"] == pytest.approx(exact_vs_sketch["cvm"], rel=1e-3)
    # and the sketch stands for the full reference: KS within 1/k, Wasserstein within 1%.
    assert abs(fast["ks"] - stats.ks_2samp(ref, cur).statistic) <= 1.0 / 5000 + 1e-12
    assert fast["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-2)


def test_psi_hand_computed():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 3
    assert ds.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(3), rel=1e-12)
    # an empty reference bin is clipped at epsilon
    expected = 2 * (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert ds.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2], epsilon=1e-4) == pytest.approx(expected, rel=1e-12)
    assert ds.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_noise_level():
    mean, p99 = ds.psi_noise(10, 1000, 500)
    assert mean == pytest.approx(9 * (1 / 1000 + 1 / 500))
    assert p99 == pytest.approx(stats.chi2.ppf(0.99, 9) * (1 / 1000 + 1 / 500))


def test_psi_noise_matches_simulated_null_mean():
    rng = np.random.default_rng(11)
    values = []
    for _trial in range(300):
        r = np.bincount(rng.integers(0, 10, 2000), minlength=10) / 2000
        c = np.bincount(rng.integers(0, 10, 1000), minlength=10) / 1000
        values.append(ds.psi(r, c))
    mean, _p99 = ds.psi_noise(10, 2000, 1000)
    assert np.mean(values) == pytest.approx(mean, rel=0.15)


def test_js_distance_hand_computed():
    assert ds.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert ds.js_distance([3, 5], [3, 5]) == pytest.approx(0.0, abs=1e-12)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert ds.js_distance([1, 1], [1, 0]) == pytest.approx(math.sqrt(0.5 * kl_p + 0.5 * kl_q), rel=1e-12)
    p, q = [0.1, 0.4, 0.5], [0.3, 0.3, 0.4]
    assert ds.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-10)


def test_total_variation():
    assert ds.total_variation([0.5, 0.5, 0], [0.2, 0.5, 0.3]) == pytest.approx(0.3)


def test_chi2_matches_scipy_and_handles_unseen_categories():
    ref = [50, 30, 20, 0]
    cur = [20, 30, 40, 10]  # last category never seen in the reference
    stat, p, dof = ds.chi2_contingency_2xk(ref, cur)
    expected = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert dof == expected.dof == 3
    # categories empty on both sides are dropped, a single category is a void test
    assert ds.chi2_contingency_2xk([5, 0], [7, 0]) == (0.0, 1.0, 0)


def test_two_proportion_ztest_equals_uncorrected_chi2():
    z, p = ds.two_proportion_ztest(30, 100, 45, 100)
    chi = stats.chi2_contingency(np.array([[30, 70], [45, 55]]), correction=False)
    assert z ** 2 == pytest.approx(chi.statistic)
    assert p == pytest.approx(chi.pvalue)
    assert z > 0
    assert ds.two_proportion_ztest(0, 10, 0, 20) == (0.0, 1.0)


def test_adjust_pvalues_bh_and_bonferroni():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    bh = ds.adjust_pvalues(p, "bh")
    expected = stats.false_discovery_control(p[:4], method="bh")
    assert np.allclose(bh[:4], expected)
    assert np.isnan(bh[4])
    assert np.allclose(ds.adjust_pvalues(p, "bonferroni")[:4], np.minimum(1, p[:4] * 4))
    assert np.allclose(ds.adjust_pvalues(p, "none")[:4], p[:4])
    with pytest.raises(ds.DriftInputError, match="correction"):
        ds.adjust_pvalues(p, "holm")


def test_quantile_edges_and_bin_counts():
    values = np.arange(1, 101, dtype=float)
    edges = ds.quantile_edges(values, 4)
    assert edges.tolist() == [25.0, 50.0, 75.0]
    assert ds.bin_counts(values, edges).tolist() == [25, 25, 25, 25]
    assert ds.bin_counts(np.array([-1e9, 25.0, 25.5, 1e9]), edges).tolist() == [2, 1, 0, 1]
    # ties collapse duplicate edges; an edge at the maximum is dropped
    tied = np.array([1.0] * 90 + [2.0] * 10)
    assert ds.quantile_edges(tied, 10).tolist() == [1.0]


def test_quantile_sketch_keeps_small_samples_exact():
    values = np.sort(np.random.default_rng(0).normal(size=50))
    sketch, kind = ds.quantile_sketch(values, 100)
    assert kind == "exact" and np.array_equal(sketch, values)


@pytest.mark.parametrize("discrete", [False, True])
def test_fast_path_equals_its_definition(discrete):
    """The large-sample path in closed form equals a direct evaluation of its definition:
    KS against the sketch, Wasserstein with current order statistic i paired with sketch point
    floor((2i + 1) k / (2m)), CvM with F at each current point = share of sketch points <= it."""
    rng = np.random.default_rng(8)
    if discrete:
        ref = np.sort(rng.poisson(4, 300000).astype(float))
        cur = np.sort(rng.poisson(4.3, 120001).astype(float))
    else:
        ref = np.sort(rng.gamma(2, 3, 300000))
        cur = np.sort(rng.gamma(2.1, 3, 120001))
    sketch, _kind = ds.quantile_sketch(ref, 7000)
    k, m, n = sketch.size, cur.size, ref.size
    fast = ds.compare_numeric(sketch, cur, ref_n=n)
    assert fast["ks"] == ds.ecdf_compare(sketch, cur, ref_n=n)["ks"]
    paired = sketch[((2 * np.arange(m) + 1) * k) // (2 * m)]
    assert fast["wasserstein"] == pytest.approx(np.mean(np.abs(cur - paired)), rel=1e-12)
    f_at_ref = np.searchsorted(sketch, sketch, side="right") / k
    g_at_ref = np.searchsorted(cur, sketch, side="right") / m
    f_at_cur = np.searchsorted(sketch, cur, side="right") / k
    g_at_cur = np.arange(1, m + 1) / m
    total = n + m
    cvm = n * m / total * (n / total * np.mean((f_at_ref - g_at_ref) ** 2) + m / total * np.mean((f_at_cur - g_at_cur) ** 2))
    assert fast["cvm"] == pytest.approx(cvm, rel=1e-9)
    # an unsorted sketch (a hand-edited profile) gives the same answer
    shuffled = sketch.copy()
    rng.shuffle(shuffled)
    assert ds.compare_numeric(shuffled, cur, ref_n=n) == fast
