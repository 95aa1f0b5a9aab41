# -*- coding: utf-8 -*-
"""Drift engine: decision rules, false-positive control, power on injected shifts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

import numpy as np
import pytest
from scipy import stats

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import engine as de
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as dio
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.stats import DriftInputError

CATS = ("a", "b", "c", "d")
CAT_P = [0.4, 0.3, 0.2, 0.1]


def table(columns, source="mem"):
    rows = len(next(iter(columns.values())))
    cols = {}
    for name, values in columns.items():
        if isinstance(values, dio.Categories) or (isinstance(values, np.ndarray) and values.dtype.kind == "f"):
            cols[name] = values
        else:
            cols[name] = dio.categories_from_values(list(values))
    return dio.Table(cols, rows, source, list(columns))


def cat_table(codes, labels=CATS):
    return dio.Categories(list(labels), np.asarray(codes, dtype=np.int32))


def check(ref_cols, cur_cols, features=None, **options):
    opts = de.make_options(**options)
    specs = de.normalize_features(features)
    profile = de.build_profile(table(ref_cols), specs, opts)
    return de.check_drift(profile, table(cur_cols), specs, opts)


def test_false_positive_rate_over_500_no_drift_trials():
    """Share of no-drift trials with any of 6 features flagged <= alpha + 3 standard errors."""
    # 400 rows a side keeps scipy's Kolmogorov distribution on its fast (Pelz-Good) branch.
    trials, n, m, alpha = 500, 400, 400, 0.05
    rng = np.random.default_rng(20261127)
    # All data drawn up front, vectorised: trials x rows x features.
    ref_num = rng.normal(size=(trials, n, 4))
    cur_num = rng.normal(size=(trials, m, 4))
    ref_cat = rng.choice(4, size=(trials, n), p=CAT_P)
    cur_cat = rng.choice(4, size=(trials, m), p=CAT_P)
    ref_bin = (rng.random((trials, n)) < 0.3).astype(np.int32)
    cur_bin = (rng.random((trials, m)) < 0.3).astype(np.int32)
    opts = de.make_options(alpha=alpha, threads=1)
    flagged = 0
    for t in range(trials):
        ref = dict(("x%d" % j, ref_num[t, :, j]) for j in range(4))
        ref["c"] = cat_table(ref_cat[t])
        ref["b"] = cat_table(ref_bin[t], ["no", "yes"])
        cur = dict(("x%d" % j, cur_num[t, :, j]) for j in range(4))
        cur["c"] = cat_table(cur_cat[t])
        cur["b"] = cat_table(cur_bin[t], ["no", "yes"])
        profile = de.build_profile(dio.Table(ref, n, "ref", list(ref)), None, opts)
        result = de.check_drift(profile, dio.Table(cur, m, "cur", list(cur)), None, opts)
        assert result["features"]["x0"]["rule"] == "p_value"
        assert result["features"]["b"]["test"] == "z_2prop"
        flagged += result["drifted"]
    share = flagged / float(trials)
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    assert share <= bound, "false-positive share %.3f above %.3f" % (share, bound)


def test_without_correction_false_positives_exceed_alpha():
    """The correction matters: uncorrected, 6 features at alpha 0.05 flag far more than 5% of trials."""
    rng = np.random.default_rng(1)
    flagged = 0
    for _trial in range(100):
        ref = dict(("x%d" % j, rng.normal(size=400)) for j in range(6))
        cur = dict(("x%d" % j, rng.normal(size=400)) for j in range(6))
        flagged += check(ref, cur, correction="none", threads=1)["drifted"]
    assert flagged / 100.0 > 0.12


def test_tiny_mean_shift_at_one_million_rows_is_not_flagged():
    rng = np.random.default_rng(2)
    ref = {"x": rng.normal(size=1000000)}
    cur = {"x": rng.normal(0.01, 1.0, size=1000000)}
    result = check(ref, cur)
    feat = result["features"]["x"]
    assert feat["p_value"] < 1e-6  # the test sees it ...
    assert feat["rule"] == "distance"  # ... but large samples are judged by distance
    assert feat["distance_metric"] == "wasserstein_norm"
    assert feat["distance"] == pytest.approx(0.01, abs=0.003)
    assert not feat["drifted"] and not result["drifted"]


def _shift_cases():
    rng = np.random.default_rng(3)
    base = rng.normal(size=2000)
    tail = rng.normal(size=2000)
    tail[:200] += 6.0
    return {
        "mean": rng.normal(0.4, 1.0, 2000),
        "scale": rng.normal(0.0, 1.6, 2000),
        "tail": tail,
        "none": base,
    }


@pytest.mark.parametrize("rows", [800, 20000])
@pytest.mark.parametrize("kind", ["mean", "scale", "tail"])
def test_injected_numeric_shifts_are_found(kind, rows):
    rng = np.random.default_rng(4)
    ref = rng.normal(size=rows)
    cur = rng.normal(size=rows)
    if kind == "mean":
        cur = cur + 0.4
    elif kind == "scale":
        cur = cur * 1.6
    else:
        cur[: rows // 10] += 6.0
    result = check({"x": ref, "y": rng.normal(size=rows)}, {"x": cur, "y": rng.normal(size=rows)})
    assert result["drifted_features"] == ["x"]
    assert result["features"]["x"]["rule"] == ("p_value" if rows <= 1000 else "distance")
    assert result["drifted_share"] == 0.5


def test_category_mix_shift_is_found_small_and_large():
    rng = np.random.default_rng(5)
    for rows, expected_rule in ((500, "p_value"), (50000, "distance")):
        ref = {"c": cat_table(rng.choice(4, rows, p=CAT_P))}
        cur = {"c": cat_table(rng.choice(4, rows, p=[0.15, 0.3, 0.25, 0.3]))}
        feat = check(ref, cur)["features"]["c"]
        assert feat["drifted"] and feat["rule"] == expected_rule and feat["test"] == "chi2"
        # JS and TVD as computed independently from the shares
        r = np.bincount(ref["c"].codes, minlength=4) / rows
        c = np.bincount(cur["c"].codes, minlength=4) / rows
        assert feat["tvd"] == pytest.approx(0.5 * np.abs(r - c).sum())
        m = (r + c) / 2
        js = math.sqrt(0.5 * np.sum(r * np.log2(r / m)) + 0.5 * np.sum(c * np.log2(c / m)))
        assert feat["js_distance"] == pytest.approx(js)


def test_null_share_is_drift_even_when_values_look_the_same():
    rng = np.random.default_rng(6)
    ref = rng.normal(size=5000)
    cur = rng.normal(size=5000)
    cur[rng.random(5000) < 0.3] = np.nan
    feat = check({"x": ref}, {"x": cur})["features"]["x"]
    assert feat["drifted"]
    assert feat["rules_fired"] == ["missing_share"]
    assert feat["rule"] == "missing_share"
    assert feat["missing_share_current"] == pytest.approx(0.3, abs=0.02)
    assert feat["wasserstein_norm"] < 0.1  # the non-missing values did not move


def test_null_share_on_categorical_feature():
    rng = np.random.default_rng(7)
    cur_codes = rng.choice(4, 3000, p=CAT_P)
    cur_codes[:600] = -1
    feat = check({"c": cat_table(rng.choice(4, 3000, p=CAT_P))}, {"c": cat_table(cur_codes)})["features"]["c"]
    assert feat["drifted"] and "missing_share" in feat["rules_fired"]
    assert feat["missing_share_current"] == pytest.approx(0.2)


def test_novel_category_above_min_share_is_drift_and_reported():
    rng = np.random.default_rng(8)
    ref_codes = rng.choice(4, 5000, p=CAT_P)
    cur_codes = rng.choice(5, 5000, p=[0.38, 0.29, 0.19, 0.1, 0.04])  # 'e' never in the reference
    ref = {"c": cat_table(ref_codes)}
    cur = {"c": cat_table(cur_codes, list(CATS) + ["e"])}
    feat = check(ref, cur)["features"]["c"]
    assert feat["drifted"] and feat["rule"] == "novel_category"
    assert set(feat["novel_categories"]) == {"e"}
    assert feat["novel_categories"]["e"] == pytest.approx(np.mean(cur_codes == 4))
    # below the minimum share it is reported but not drift by itself
    feat = check(ref, cur, novel_category_min_share=0.2, decision="distance")["features"]["c"]
    assert "e" in feat["novel_categories"] and "novel_category" not in feat["rules_fired"]


def test_vanished_category_is_reported():
    rng = np.random.default_rng(9)
    feat = check({"c": cat_table(rng.choice(4, 2000, p=CAT_P))}, {"c": cat_table(rng.choice(3, 2000, p=[0.45, 0.33, 0.22]))})["features"]["c"]
    assert feat["vanished_categories"] == ["d"]
    assert feat["drifted"]


def test_psi_in_engine_matches_reference_deciles_with_missing_bin():
    rng = np.random.default_rng(10)
    ref = rng.normal(size=10000)
    cur = rng.normal(0.3, 1.0, size=4000)
    cur[:400] = np.nan
    feat = check({"x": ref}, {"x": cur})["features"]["x"]
    edges = np.quantile(ref, np.arange(1, 10) / 10.0, method="inverted_cdf")
    r = np.append(np.bincount(np.searchsorted(edges, ref, side="left"), minlength=10) / 10000.0, 0.0)
    valid = cur[~np.isnan(cur)]
    c = np.append(np.bincount(np.searchsorted(edges, valid, side="left"), minlength=10) / 4000.0, 0.1)
    r_clip, c_clip = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    assert feat["psi"] == pytest.approx(np.sum((c_clip - r_clip) * np.log(c_clip / r_clip)))
    assert feat["psi_noise"] == pytest.approx(10 * (1 / 10000.0 + 1 / 4000.0))
    assert feat["ks_statistic"] == pytest.approx(stats.ks_2samp(ref, valid).statistic)


def test_type_inference_and_override():
    rng = np.random.default_rng(11)
    cols = {
        "num": rng.normal(size=400),
        "small_int": rng.integers(0, 5, 400).astype(float),
        "text": list(rng.choice(["x", "y"], 400)),
    }
    result = check(cols, cols)
    types = dict((k, (v["type"], v["type_source"])) for k, v in result["features"].items())
    assert types == {"num": ("numeric", "inferred"), "small_int": ("categorical", "inferred"), "text": ("categorical", "inferred")}
    result = check(cols, cols, features=[{"name": "small_int", "type": "numeric"}, "num"])
    assert result["features"]["small_int"]["type"] == "numeric"
    assert result["features"]["small_int"]["type_source"] == "declared"


def test_small_sample_warning():
    rng = np.random.default_rng(12)
    result = check({"x": rng.normal(size=500)}, {"x": rng.normal(size=12)})
    assert any("only 12 current values" in w for w in result["warnings"])


def test_decision_override_and_distance_choice():
    rng = np.random.default_rng(13)
    ref, cur = {"x": rng.normal(size=600)}, {"x": rng.normal(0.5, 1, size=600)}
    feat = check(ref, cur, decision="distance", numeric_distance="psi")["features"]["x"]
    assert feat["rule"] == "distance" and feat["distance_metric"] == "psi" and feat["distance_threshold"] == 0.2
    feat = check(ref, cur, numeric_test="cvm")["features"]["x"]
    assert feat["test"] == "cvm" and feat["statistic"] == feat["cvm_statistic"]


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 1.5}, "alpha"),
    ({"correction": "holm"}, "correction"),
    ({"psi_bins": 1}, "psi_bins"),
    ({"numeric_threshold": -1}, "numeric_threshold"),
])
def test_bad_options_name_the_option(kwargs, match):
    with pytest.raises(DriftInputError, match=match):
        de.make_options(**kwargs)


@pytest.mark.parametrize("features,match", [
    ("x", "features: must be a list"),
    ([{"name": "x", "type": "text"}], "type must be numeric or categorical"),
    (["x", "x"], "listed twice"),
    ([{"nam": "x"}], "unknown key"),
    ([], "empty"),
])
def test_bad_feature_lists(features, match):
    with pytest.raises(DriftInputError, match=match):
        de.normalize_features(features)


def test_constant_and_all_missing_reference_columns_are_bad_input():
    rng = np.random.default_rng(14)
    with pytest.raises(DriftInputError, match="feature 'k': constant in the reference"):
        check({"k": np.full(100, 3.5), "x": rng.normal(size=100)}, {"k": np.full(100, 3.5), "x": rng.normal(size=100)})
    with pytest.raises(DriftInputError, match="feature 'n': all 100 values are missing in the reference"):
        check({"n": np.full(100, np.nan)}, {"n": rng.normal(size=100)})


def test_all_missing_current_column_and_empty_window_are_bad_input():
    rng = np.random.default_rng(15)
    with pytest.raises(DriftInputError, match="feature 'x': all 50 values are missing in the current window"):
        check({"x": rng.normal(size=100)}, {"x": np.full(50, np.nan)})
    opts = de.make_options()
    profile = de.build_profile(table({"x": rng.normal(size=100)}), None, opts)
    with pytest.raises(DriftInputError, match="current: no rows"):
        de.check_drift(profile, dio.Table({"x": np.empty(0)}, 0, "empty.csv", ["x"]), None, opts)


def test_infinite_value_is_bad_input():
    rng = np.random.default_rng(16)
    cur = rng.normal(size=100)
    cur[7] = np.inf
    with pytest.raises(DriftInputError, match="feature 'x': infinite value"):
        check({"x": rng.normal(size=100)}, {"x": cur})
