# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Pure statistical tests and distances for drift detection.

Plain numpy/scipy, no Ansible: this file is also installed on serving hosts as part of a small
package (see docs/drift.md). numpy and scipy are imported lazily-guarded so that importing this
file never fails; calling a function without them raises MissingDependencyError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ..common.errors import InputError, MlopsError, MissingDependencyError as _MissingDependencyError

try:
    import numpy as np
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    np = None

try:
    from scipy import special as sp_special
except ImportError:  # pragma: no cover
    sp_special = None


class DriftError(MlopsError):
    """Base class of the errors the drift code raises on purpose."""


class DriftInputError(DriftError, InputError):
    """Bad input: the message names the parameter, feature or file."""


class MissingDependencyError(DriftError, _MissingDependencyError):
    """A required third-party library (numpy, scipy) is not installed."""

    def __init__(self, library):
        super(MissingDependencyError, self).__init__(library, "drift checks")


def require_numpy():
    if np is None:
        raise MissingDependencyError("numpy")


def require_scipy():
    require_numpy()
    if sp_special is None:
        raise MissingDependencyError("scipy")


# ---------------------------------------------------------------------------------------------
# Numeric: two-sample comparisons of a (possibly sketched) reference with a current sample.
# ---------------------------------------------------------------------------------------------

def ecdf_compare(ref_sorted, cur_sorted, ref_n=None):
    """Compare two sorted samples through their empirical CDFs.

    ref_sorted holds either the whole sorted reference sample or an equal-mass quantile sketch
    of it (each of its k points stands for ref_n / k observations); cur_sorted is the whole sorted
    current sample. Returns a dict with:

    - ks: the two-sample Kolmogorov-Smirnov statistic sup|F - G|
    - wasserstein: the 1-Wasserstein distance, the integral of |F - G| dx
    - cvm: the two-sample Cramer-von Mises statistic T (Anderson 1962),
      T = n m / N^2 * sum over the pooled sample of (F - G)^2.
    """
    require_numpy()
    ref_sorted = np.asarray(ref_sorted, dtype=np.float64)
    cur_sorted = np.asarray(cur_sorted, dtype=np.float64)
    k = ref_sorted.size
    m = cur_sorted.size
    if k == 0 or m == 0:
        raise DriftInputError("ecdf_compare needs two non-empty samples")
    n = k if ref_n is None else int(ref_n)
    pooled = np.concatenate((ref_sorted, cur_sorted))
    # Both halves are sorted: a stable sort merges two runs in linear time.
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    from_ref = order < k
    f_ref = np.cumsum(from_ref) / float(k)
    g_cur = np.cumsum(~from_ref) / float(m)
    # Both ECDFs are right-continuous: evaluate them at the last member of each group of ties.
    last = np.empty(values.size, dtype=bool)
    last[:-1] = values[1:] != values[:-1]
    last[-1] = True
    group_end = np.flatnonzero(last)
    diff_end = f_ref[group_end] - g_cur[group_end]
    ks = float(np.max(np.abs(diff_end)))
    # Between two consecutive distinct values both ECDFs are constant.
    gaps = np.diff(values[group_end])
    wasserstein = float(np.sum(np.abs(diff_end[:-1]) * gaps))
    # Pooled-sample mass of each tie group: reference points weigh n / k, current points 1.
    group_id = np.concatenate(([0], np.cumsum(last[:-1])))
    ref_in_group = np.bincount(group_id, weights=from_ref.astype(np.float64), minlength=group_end.size)
    cur_in_group = np.bincount(group_id, weights=(~from_ref).astype(np.float64), minlength=group_end.size)
    mass = ref_in_group * (float(n) / k) + cur_in_group
    total = float(n + m)
    cvm = float(n) * m / (total * total) * float(np.sum(mass * diff_end * diff_end))
    return {"ks": ks, "wasserstein": wasserstein, "cvm": cvm}


EXACT_POOLED_LIMIT = 50000


def _sorted_runs(sorted_values):
    """Distinct values of a sorted array and the size of each run of equal values (no re-sort)."""
    size = sorted_values.size
    change = np.empty(size, dtype=bool)
    change[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    return sorted_values[starts], np.diff(np.append(starts, size))


def compare_numeric(ref_sketch, cur_sorted, ref_n=None):
    """ecdf_compare for any size: exact (pooled merge) while the two samples together have at
    most EXACT_POOLED_LIMIT points, else a path linear in the current sample (one pass over it
    for the Wasserstein distance, O(k log m) for the rest) for a small equal-mass reference
    sketch of k points against a large sorted current sample of m points:

    - ks: exact against the sketch (the sketch's ECDF is within 1/k of the reference's);
    - wasserstein: integral over u in [0, 1] of |Q_ref(u) - Q_cur(u)|, each current order
      statistic paired with the sketch point of its quantile (error of order 1/m);
    - cvm: exact sum over the sketch points, current points evaluated with ties counted apart.
    """
    require_numpy()
    ref_sketch = np.asarray(ref_sketch, dtype=np.float64)
    cur_sorted = np.asarray(cur_sorted, dtype=np.float64)
    k = ref_sketch.size
    m = cur_sorted.size
    if k + m <= EXACT_POOLED_LIMIT or k == 0 or m == 0:
        return ecdf_compare(ref_sketch, cur_sorted, ref_n)
    n = k if ref_n is None else int(ref_n)
    if np.any(ref_sketch[1:] < ref_sketch[:-1]):
        ref_sketch = np.sort(ref_sketch)
    uniq, counts = _sorted_runs(ref_sketch)
    f_end = np.cumsum(counts) / float(k)
    f_prev = np.concatenate(([0.0], f_end[:-1]))
    left = np.searchsorted(cur_sorted, uniq, side="left")
    right = np.searchsorted(cur_sorted, uniq, side="right")
    g_end = right / float(m)
    g_before = left / float(m)
    ks = float(max(np.max(np.abs(f_end - g_end)), np.max(np.abs(f_prev - g_before))))
    # Quantile pairing for the Wasserstein distance: current order statistic i (0-based) goes
    # with sketch point floor((2 i + 1) k / (2 m)); sketch point j takes the i from
    # ceil((2 m j - k) / (2 k)) on.
    j = np.arange(k + 1, dtype=np.int64)
    first = np.clip(-((k - 2 * m * j) // (2 * k)), 0, m)
    paired = np.repeat(ref_sketch, np.diff(first))
    np.subtract(paired, cur_sorted, out=paired)
    np.abs(paired, out=paired)
    wasserstein = float(np.sum(paired) / m)
    # CvM: integral of (F - G)^2 dH with H = (n F + m G) / N.
    on_ref = float(np.sum(counts / float(k) * (f_end - g_end) ** 2))
    # On the current points: between consecutive bounds F is constant (v) and the current
    # points i = b..e-1 have G = (i + 1) / m; the sum of (v - G)^2 over such a run of L points
    # is L (v - mean G)^2 + L (L^2 - 1) / (12 m^2).
    bounds = np.empty(2 * uniq.size + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = left
    bounds[2:-1:2] = right
    bounds[-1] = m
    values = np.empty(2 * uniq.size + 1)
    values[0::2] = np.concatenate((f_prev, [1.0]))
    values[1::2] = f_end
    run = np.diff(bounds).astype(np.float64)
    g_mean = (bounds[:-1] + bounds[1:] + 1) / (2.0 * m)
    on_cur = float(np.sum(run * (values - g_mean) ** 2) + np.sum(run * (run * run - 1.0)) / (12.0 * m * m)) / m
    total = float(n + m)
    cvm = float(n) * m / total * (n / total * on_ref + m / total * on_cur)
    return {"ks": ks, "wasserstein": wasserstein, "cvm": cvm}


KS_EXACT_EN = 10000


def ks_pvalue(statistic, n, m):
    """Two-sided p-value of the two-sample KS statistic, asymptotic form.

    Up to an effective size en = n m / (n + m) of KS_EXACT_EN, the same formula as
    scipy.stats.ks_2samp(method='asymp'): the exact one-sample Kolmogorov distribution at
    round(en). Above it (where that costs ~15 ms a call) the limiting Kolmogorov distribution
    with Stephens' small-sample correction, Q((sqrt(en) + 0.12 + 0.11 / sqrt(en)) D), which is
    within 0.3% of it around p = 0.05, 1% at p = 1e-4 and 3% down to p = 1e-10.
    """
    require_scipy()
    en = float(n) * m / (n + m)
    if en <= KS_EXACT_EN:
        # scipy.stats is imported here, on first use: it adds about a second to the engine's import
        # time, and large samples never need it.
        from scipy import stats as sp_stats  # pylint: disable=import-outside-toplevel
        p = sp_stats.kstwo.sf(statistic, int(round(en)))
    else:
        root = math.sqrt(en)
        p = sp_special.kolmogorov((root + 0.12 + 0.11 / root) * statistic)
    return float(min(1.0, max(0.0, p)))


def ks_2samp(reference, current):
    """KS statistic and asymptotic p-value of two raw samples (NaNs dropped)."""
    require_numpy()
    ref = np.sort(_finite(reference))
    cur = np.sort(_finite(current))
    stat = ecdf_compare(ref, cur)["ks"]
    return stat, ks_pvalue(stat, ref.size, cur.size)


def _cdf_cvm_inf(x):
    """CDF of the limiting Cramer-von Mises distribution (Csorgo and Faraway 1996, eq. 1.3)."""
    require_scipy()
    if x <= 0:
        return 0.0
    total = 0.0
    k = 0
    while True:
        u = math.exp(sp_special.gammaln(k + 0.5) - sp_special.gammaln(k + 1)) / (math.pi ** 1.5 * math.sqrt(x))
        y = 4 * k + 1
        q = y * y / (16.0 * x)
        term = u * math.sqrt(y) * math.exp(-q) * float(sp_special.kv(0.25, q))
        total += term
        k += 1
        if abs(term) < 1e-10 or k > 200:
            return total


def cvm_pvalue(statistic, n, m):
    """Asymptotic p-value of the two-sample Cramer-von Mises statistic T (Anderson 1962).

    T is standardised with its exact mean and variance under the null hypothesis and compared
    with the limiting one-sample distribution, as scipy.stats.cramervonmises_2samp does for
    samples larger than 20.
    """
    k = float(n) * m
    big_n = float(n + m)
    expected = (1 + 1 / big_n) / 6
    variance = (big_n + 1) * (4 * k * big_n - 3 * (float(n) ** 2 + float(m) ** 2) - 2 * k) / (45 * big_n ** 2 * 4 * k)
    tn = 1.0 / 6 + (statistic - expected) / math.sqrt(45 * variance)
    if tn < 0.003:
        return 1.0
    if tn > 4.0:
        # 1 - F(4) is about 1e-10, beyond the series' precision (and far below any alpha).
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - _cdf_cvm_inf(tn))))


# ---------------------------------------------------------------------------------------------
# Binned distributions: PSI, Jensen-Shannon, total variation.
# ---------------------------------------------------------------------------------------------

def shares(counts):
    require_numpy()
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise DriftInputError("cannot compute shares of an empty histogram")
    return counts / total


def psi(ref_shares, cur_shares, epsilon=1e-4):
    """Population stability index, sum (c - r) ln(c / r), with both shares clipped at epsilon."""
    require_numpy()
    r = np.clip(np.asarray(ref_shares, dtype=np.float64), epsilon, None)
    c = np.clip(np.asarray(cur_shares, dtype=np.float64), epsilon, None)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_noise(bins, n, m, quantile=0.99):
    """Sampling-noise level of the PSI when nothing drifted.

    Under no drift, PSI * n m / (n + m) is asymptotically chi-square with bins - 1 degrees of
    freedom, so the PSI expected from sampling alone is (bins - 1)(1/n + 1/m); the second value
    is the given upper quantile of that null distribution.
    """
    require_scipy()
    dof = max(int(bins) - 1, 1)
    scale = 1.0 / n + 1.0 / m
    return float(dof * scale), float(sp_special.chdtri(dof, 1.0 - quantile) * scale)


def js_distance(p, q):
    """Jensen-Shannon distance with base-2 logarithms: sqrt of the JS divergence, in [0, 1]."""
    require_numpy()
    p = shares(p)
    q = shares(q)
    mid = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / mid), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / mid), 0.0)
    divergence = 0.5 * float(np.sum(kl_p)) + 0.5 * float(np.sum(kl_q))
    return float(math.sqrt(min(1.0, max(0.0, divergence))))


def total_variation(p, q):
    """Total variation distance, half the L1 distance between the two share vectors."""
    require_numpy()
    return float(0.5 * np.sum(np.abs(shares(p) - shares(q))))


# The distances of binned shares, by the name options choose them with: the key the engine stores
# the value under in a feature's result, and the function of (reference shares, current shares,
# options). The engine computes each one the option schema lists for a feature's kind
# (options.NUMERIC_DISTANCES, options.CATEGORICAL_DISTANCES); CONTRIBUTING.md walks through adding one.
SHARE_DISTANCES = {
    "psi": ("psi", lambda ref, cur, options: psi(ref, cur, options["psi_epsilon"])),
    "js": ("js_distance", lambda ref, cur, options: js_distance(ref, cur)),
    "tvd": ("tvd", lambda ref, cur, options: total_variation(ref, cur)),
}


def share_distances(kinds, ref_shares, cur_shares, options):
    """{result key: value} of the share distances named in kinds (others are skipped)."""
    out = {}
    for name in kinds:
        if name in SHARE_DISTANCES:
            key, func = SHARE_DISTANCES[name]
            out[key] = func(ref_shares, cur_shares, options)
    return out


# ---------------------------------------------------------------------------------------------
# Categorical tests.
# ---------------------------------------------------------------------------------------------

def chi2_contingency_2xk(ref_counts, cur_counts):
    """Pearson chi-square test of homogeneity on the 2 x K table (reference, current) x categories.

    Categories absent from one side (novel or vanished) are fine: expected counts come from the
    pooled table; categories absent from both are dropped. No continuity correction. Returns
    (statistic, p_value, dof); with a single category left the test is void: (0.0, 1.0, 0).
    """
    require_scipy()
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    keep = (ref + cur) > 0
    ref = ref[keep]
    cur = cur[keep]
    dof = ref.size - 1
    n_ref = ref.sum()
    n_cur = cur.sum()
    if dof < 1 or n_ref <= 0 or n_cur <= 0:
        return 0.0, 1.0, 0
    col = ref + cur
    total = n_ref + n_cur
    exp_ref = col * n_ref / total
    exp_cur = col * n_cur / total
    stat = float(np.sum((ref - exp_ref) ** 2 / exp_ref) + np.sum((cur - exp_cur) ** 2 / exp_cur))
    return stat, float(sp_special.chdtrc(dof, stat)), int(dof)


def two_proportion_ztest(x1, n1, x2, n2):
    """Two-sided pooled two-proportion z-test of x1/n1 against x2/n2. Returns (z, p_value).

    When both proportions are 0 or both are 1 there is nothing to test: (0.0, 1.0).
    """
    require_scipy()
    if n1 <= 0 or n2 <= 0:
        raise DriftInputError("two_proportion_ztest needs non-empty samples")
    p1 = float(x1) / n1
    p2 = float(x2) / n2
    pooled = float(x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0:
        return 0.0, 1.0
    z = (p2 - p1) / math.sqrt(var)
    return float(z), float(min(1.0, 2 * sp_special.ndtr(-abs(z))))


# ---------------------------------------------------------------------------------------------
# Multiple testing.
# ---------------------------------------------------------------------------------------------

CORRECTIONS = ("bh", "bonferroni", "none")


def adjust_pvalues(pvalues, method="bh"):
    """Adjust a family of p-values for multiple testing along the last axis.

    method: 'bh' (Benjamini-Hochberg, controls the false discovery rate, and the family-wise
    error rate when no feature drifted), 'bonferroni' (family-wise error rate) or 'none'.
    NaN entries (no test) stay NaN and do not count in the family size.
    """
    require_numpy()
    if method not in CORRECTIONS:
        raise DriftInputError("correction must be one of %s, got %r" % (", ".join(CORRECTIONS), method))
    p = np.array(pvalues, dtype=np.float64, ndmin=1)
    if method == "none":
        return p
    flat = p.reshape(-1, p.shape[-1])
    out = np.full_like(flat, np.nan)
    for row in range(flat.shape[0]):
        valid = ~np.isnan(flat[row])
        vals = flat[row][valid]
        size = vals.size
        if size == 0:
            continue
        if method == "bonferroni":
            adj = np.minimum(1.0, vals * size)
        else:
            order = np.argsort(vals)
            ranked = vals[order] * size / np.arange(1, size + 1)
            ranked = np.minimum.accumulate(ranked[::-1])[::-1]
            adj = np.empty(size)
            adj[order] = np.minimum(1.0, ranked)
        out[row][valid] = adj
    return out.reshape(p.shape)


# ---------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------

def _finite(values):
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[~np.isnan(arr)]


def quantile_sketch(sorted_values, size):
    """Equal-mass sketch of a sorted sample: the whole sample when it has at most `size` points,
    else the order statistics at ranks floor((i + 0.5) n / size), i = 0..size-1 (actual data
    values, so ties and discrete values survive). Its ECDF is within 1/size of the sample's."""
    require_numpy()
    n = sorted_values.size
    if n <= size:
        return sorted_values.copy(), "exact"
    idx = np.floor((np.arange(size) + 0.5) * n / size).astype(np.int64)
    return sorted_values[idx], "quantiles"


def quantile_edges(sorted_values, bins):
    """Interior edges of `bins` equal-frequency bins of a sorted sample, duplicates removed."""
    require_numpy()
    n = sorted_values.size
    probs = np.arange(1, bins) / float(bins)
    idx = np.clip(np.ceil(probs * n).astype(np.int64) - 1, 0, n - 1)
    edges = np.unique(sorted_values[idx])
    # The top edge equal to the maximum would leave an empty last bin: drop it.
    return edges[edges < sorted_values[-1]]


def bin_counts(sorted_or_raw, edges):
    """Counts in the open-ended bins (-inf, e1], (e1, e2], ..., (ek, inf)."""
    require_numpy()
    edges = np.asarray(edges, dtype=np.float64)
    values = np.asarray(sorted_or_raw, dtype=np.float64)
    if values.size > 1 and values[0] <= values[-1] and np.all(values[:-1] <= values[1:]):
        positions = np.searchsorted(values, edges, side="right")
        bounds = np.concatenate(([0], positions, [values.size]))
        return np.diff(bounds)
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
