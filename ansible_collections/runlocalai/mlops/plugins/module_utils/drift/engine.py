# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Drift engine: feature typing, test selection, multiple-testing correction and decision rules.

One copy of the logic for the drift_check and data_validation modules and for the command-line
entry point (drift_cli) that serving hosts run from a systemd timer. No Ansible imports; the
other drift files are reached by relative imports only. docs/drift.md documents the rules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
from concurrent.futures import ThreadPoolExecutor

from .stats import (
    DriftInputError, adjust_pvalues, bin_counts, chi2_contingency_2xk, compare_numeric,
    SHARE_DISTANCES, cvm_pvalue, ks_pvalue, psi_noise, require_scipy, share_distances, two_proportion_ztest,
)
from .options import CATEGORICAL_DISTANCES, NUMERIC_DISTANCES, make_options
from .tables import Categories, categories_from_numeric, canonical_category, numeric_from_categories, numeric_share, read_table
from .profiles import (
    categorical_profile, load_profile, looks_like_profile, make_profile, numeric_profile, sketch_array,
)

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

FEATURE_TYPES = ("numeric", "categorical")


def normalize_features(features):
    """features parameter -> list of (name, type or None). Accepts names or dicts {name, type}."""
    if features is None:
        return None
    if not isinstance(features, (list, tuple)):
        raise DriftInputError("features: must be a list of names or of dicts with name and type")
    specs = []
    seen = set()
    for i, item in enumerate(features):
        if isinstance(item, str):
            name, kind = item, None
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"name", "type"})
            if unknown:
                raise DriftInputError("features[%d]: unknown key(s) %s (allowed: name, type)" % (i, ", ".join(unknown)))
            name, kind = item.get("name"), item.get("type")
            if kind is not None and kind not in FEATURE_TYPES:
                raise DriftInputError("features[%d] ('%s'): type must be numeric or categorical, got %r" % (i, name, kind))
        else:
            raise DriftInputError("features[%d]: must be a name or a dict with name and type, got %r" % (i, item))
        if not isinstance(name, str) or not name:
            raise DriftInputError("features[%d]: name must be a non-empty string" % i)
        if name in seen:
            raise DriftInputError("features: '%s' is listed twice" % name)
        seen.add(name)
        specs.append((name, kind))
    if not specs:
        raise DriftInputError("features: the list is empty")
    return specs


# ---------------------------------------------------------------------------------------------
# Typing
# ---------------------------------------------------------------------------------------------

def _check_finite(name, values, source, row_offset):
    bad = np.isinf(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DriftInputError("feature '%s': infinite value in %s (row %d)" % (name, source, row + row_offset))


def type_reference_column(name, column, declared, options, table):
    """Decide a reference column's type and convert it: returns (type, column, type_source)."""
    source = table.source
    if declared == "numeric":
        if isinstance(column, Categories):
            column = numeric_from_categories(column, name, source, table.row_offset)
        return "numeric", column, "declared"
    if declared == "categorical":
        if not isinstance(column, Categories):
            column = categories_from_numeric(column)
        return "categorical", column, "declared"
    if isinstance(column, Categories):
        if column.values and len(column) - column.missing > 0 and numeric_share(column) >= 0.95:
            # Mostly numbers: the odd non-number is bad data, not a category (message names it).
            column = numeric_from_categories(column, name, source, table.row_offset)
        else:
            return "categorical", column, "inferred"
    present = column[~np.isnan(column)]
    if present.size:
        distinct = np.unique(present)
        if distinct.size <= options["categorical_max_distinct"] and np.all(np.mod(distinct, 1) == 0):
            return "categorical", categories_from_numeric(column), "inferred"
    return "numeric", column, "inferred"


def _validate_reference_feature(name, kind, column, table, options):
    rows = table.rows
    if kind == "numeric":
        _check_finite(name, column, table.source, table.row_offset)
        present = column[~np.isnan(column)]
        if present.size == 0:
            raise DriftInputError("feature '%s': all %d values are missing in the reference %s" % (name, rows, table.source))
        if present.min() == present.max():
            raise DriftInputError("feature '%s': constant in the reference %s (every value is %r); drop it or declare it categorical"
                                  % (name, table.source, float(present[0])))
    else:
        if len(column) - column.missing == 0:
            raise DriftInputError("feature '%s': all %d values are missing in the reference %s" % (name, rows, table.source))
        if len(column.values) > options["max_categories"]:
            raise DriftInputError("feature '%s': %d distinct values in the reference %s (max_categories is %d); declare it numeric or drop it"
                                  % (name, len(column.values), table.source, options["max_categories"]))


def build_profile(table, specs, options):
    """Build a reference profile from a Table. specs: list of (name, type or None), or None for
    every input column of the table."""
    require_scipy()
    if table.rows == 0:
        raise DriftInputError("reference: no rows in %s" % table.source)
    if specs is None:
        specs = [(name, None) for name in table.input_columns]
    features = {}
    for name, declared in specs:
        if name not in table.columns:
            raise DriftInputError("reference: column '%s' not found in %s" % (name, table.source))
        kind, column, type_source = type_reference_column(name, table.columns[name], declared, options, table)
        _validate_reference_feature(name, kind, column, table, options)
        if kind == "numeric":
            entry = numeric_profile(column, options["sample_size"], options["psi_bins"])
        else:
            entry = categorical_profile(column)
        entry["type_source"] = type_source
        features[name] = entry
    settings = {"psi_bins": options["psi_bins"], "sample_size": options["sample_size"]}
    return make_profile(features, table.rows, settings)


def read_reference(path, specs, options):
    """A profile from `reference`: loaded when the file is a profile (recognised by content),
    else built from the data file. Returns (profile, built: bool)."""
    if not path or not os.path.exists(path):
        raise DriftInputError("reference: no such file or directory: %s" % path)
    if looks_like_profile(path):
        return load_profile(path), False
    names = None if specs is None else [name for name, _kind in specs]
    types = {} if specs is None else dict((n, k) for n, k in specs if k)
    table = read_table(path, names, types, what="reference")
    return build_profile(table, specs, options), True


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def _current_numeric(name, column, table):
    if isinstance(column, Categories):
        column = numeric_from_categories(column, name, table.source, table.row_offset)
    _check_finite(name, column, table.source, table.row_offset)
    return column


def _current_categories(column, numeric_labels):
    """Current column -> dict category -> count (canonical numbers when the reference used numbers)."""
    if not isinstance(column, Categories):
        return categories_from_numeric(column).counts(), int(np.count_nonzero(np.isnan(column)))
    counts = column.counts()
    if numeric_labels:
        merged = {}
        for key, count in counts.items():
            try:
                key = canonical_category(float(key))
            except ValueError:
                pass
            merged[key] = merged.get(key, 0) + count
        counts = merged
    return counts, column.missing


def _distance_threshold(options, kind):
    if kind == "numeric":
        metric = options["numeric_distance"]
        return metric, options["numeric_threshold"] or NUMERIC_DISTANCES[metric]
    metric = options["categorical_distance"]
    return metric, options["categorical_threshold"] or CATEGORICAL_DISTANCES[metric]


def _numeric_stats(name, ref, column, options, want_plot):
    """Everything about one numeric feature that does not need the other features' p-values."""
    rows = int(column.size)
    cur = np.sort(column)  # NaN (missing) sorts last
    m = rows - int(np.count_nonzero(np.isnan(cur)))
    cur = cur[:m]
    n = int(ref["count"])
    out = {"type": "numeric", "n_reference": n, "n_current": m, "rows_reference": int(ref["rows"]), "rows_current": rows,
           "missing_reference": int(ref["missing"]), "missing_current": rows - m}
    if m == 0:
        return out
    sketch = sketch_array(ref)
    cmp_ = compare_numeric(sketch, cur, n)
    edges = np.asarray(ref["bins"]["edges"], dtype=np.float64)
    ref_bins = list(ref["bins"]["counts"]) + [int(ref["missing"])]
    cur_bins = list(bin_counts(cur, edges)) + [rows - m]
    ref_share = np.asarray(ref_bins, dtype=np.float64) / ref["rows"]
    cur_share = np.asarray(cur_bins, dtype=np.float64) / rows
    used = int(np.count_nonzero((ref_share > 0) | (cur_share > 0)))
    noise, noise99 = psi_noise(used, ref["rows"], rows)
    std = float(ref["std"])
    out.update({
        "ks_statistic": cmp_["ks"],
        "ks_p_value_raw": ks_pvalue(cmp_["ks"], n, m),
        "cvm_statistic": cmp_["cvm"],
        "cvm_p_value_raw": cvm_pvalue(cmp_["cvm"], n, m),
        "wasserstein": cmp_["wasserstein"],
        "wasserstein_norm": cmp_["wasserstein"] / std,
        "psi_noise": noise,
        "psi_noise_p99": noise99,
        "psi_bins": used,
        "mean_reference": float(ref["mean"]),
        "mean_current": float(np.mean(cur)),
        "std_reference": std,
        "std_current": float(np.std(cur)),
    })
    out.update(share_distances(NUMERIC_DISTANCES, ref_share, cur_share, options))
    if want_plot:
        probs = (np.arange(101)) / 100.0
        idx_r = np.clip((probs * (sketch.size - 1)).round().astype(int), 0, sketch.size - 1)
        idx_c = np.clip((probs * (cur.size - 1)).round().astype(int), 0, cur.size - 1)
        out["_plot"] = {"kind": "ecdf", "probs": probs.tolist(), "reference": sketch[idx_r].tolist(), "current": cur[idx_c].tolist()}
    return out


def _categorical_stats(name, ref, column, options, want_plot):
    counts_cur, missing_cur = _current_categories(column, ref.get("numeric_labels", False))
    counts_ref = ref["categories"]
    rows = len(column)
    m = rows - missing_cur
    n = int(ref["count"])
    out = {"type": "categorical", "n_reference": n, "n_current": m, "rows_reference": int(ref["rows"]), "rows_current": rows,
           "missing_reference": int(ref["missing"]), "missing_current": missing_cur}
    if m == 0:
        return out
    ref_order = sorted(counts_ref, key=lambda k: (-counts_ref[k], k))
    novel = sorted((k for k in counts_cur if k not in counts_ref), key=lambda k: (-counts_cur[k], k))
    cats = ref_order + novel
    ref_vec = np.array([counts_ref.get(k, 0) for k in cats], dtype=np.float64)
    cur_vec = np.array([counts_cur.get(k, 0) for k in cats], dtype=np.float64)
    if len(cats) == 2:
        z, p = two_proportion_ztest(ref_vec[0], n, cur_vec[0], m)
        test, stat = "z_2prop", z
    else:
        stat, p, _dof = chi2_contingency_2xk(ref_vec, cur_vec)
        test = "chi2"
    # Binned distances include a missing-value bin, as for numeric features.
    ref_share = np.append(ref_vec, ref["missing"]) / ref["rows"]
    cur_share = np.append(cur_vec, missing_cur) / rows
    used = int(np.count_nonzero((ref_share > 0) | (cur_share > 0)))
    noise, noise99 = psi_noise(used, ref["rows"], rows)
    expected_small = 0
    if test == "chi2":
        col = ref_vec + cur_vec
        expected_small = int(np.count_nonzero(np.minimum(col * n / (n + m), col * m / (n + m)) < 5))
    out.update({
        "categorical_test": test,
        "categorical_statistic": float(stat),
        "categorical_p_value_raw": float(p),
        "psi_noise": noise,
        "psi_noise_p99": noise99,
        "psi_bins": used,
        "categories_reference": len(counts_ref),
        "categories_current": len(counts_cur),
        "novel_categories": dict((k, counts_cur[k] / float(m)) for k in novel[:50]),
        "novel_categories_total": len(novel),
        "vanished_categories": [k for k in ref_order if counts_cur.get(k, 0) == 0][:50],
        "_expected_below_5": expected_small,
    })
    out.update(share_distances(CATEGORICAL_DISTANCES, ref_share, cur_share, options))
    if want_plot:
        top = cats[:20]
        out["_plot"] = {"kind": "bars", "categories": top,
                        "reference": [counts_ref.get(k, 0) / float(n) for k in top],
                        "current": [counts_cur.get(k, 0) / float(m) for k in top]}
    return out


def _fmt(value):
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return "%.3g" % value
    return "%.4f" % value


def check_drift(profile, table, specs, options, want_plot=False):
    """Compare a current Table with a reference profile. Returns the result dict (docs/drift.md)."""
    require_scipy()
    if table.rows == 0:
        raise DriftInputError("current: no rows in %s" % table.source)
    features = profile["features"]
    if specs is None:
        names = sorted(features)
        if options["extra_columns"] == "fail":
            extra = [c for c in table.input_columns if c not in features]
            if extra:
                raise DriftInputError("current: column%s %s in %s not in the reference (list `features` or set extra_columns=ignore)"
                                      % ("s" if len(extra) > 1 else "", ", ".join("'%s'" % c for c in extra), table.source))
    else:
        names = []
        for name, declared in specs:
            if name not in features:
                raise DriftInputError("features: '%s' is not in the reference profile (it has: %s)" % (name, ", ".join(sorted(features))))
            if declared and declared != features[name]["type"]:
                raise DriftInputError("features: '%s' is declared %s but the reference profile has it %s" % (name, declared, features[name]["type"]))
            names.append(name)
    missing_cols = [n for n in names if n not in table.columns]
    if missing_cols:
        plural = "s" if len(missing_cols) > 1 else ""
        raise DriftInputError("current: column%s %s not found in %s" % (plural, ", ".join("'%s'" % c for c in missing_cols), table.source))
    prepared = []
    for name in names:
        ref = features[name]
        column = table.columns[name]
        if ref["type"] == "numeric":
            column = _current_numeric(name, column, table)
            present = int(np.count_nonzero(~np.isnan(column)))
        else:
            present = len(column) - column.missing if isinstance(column, Categories) else int(np.count_nonzero(~np.isnan(column)))
        if present == 0:
            raise DriftInputError("feature '%s': all %d values are missing in the current window %s" % (name, table.rows, table.source))
        prepared.append((name, ref, column))

    def work(item):
        name, ref, column = item
        if ref["type"] == "numeric":
            return _numeric_stats(name, ref, column, options, want_plot)
        return _categorical_stats(name, ref, column, options, want_plot)

    if options["threads"] > 1 and len(prepared) > 1:
        with ThreadPoolExecutor(max_workers=options["threads"]) as pool:
            stats = list(pool.map(work, prepared))
    else:
        stats = [work(item) for item in prepared]
    return _decide(names, stats, profile, table, options)


_DISTANCE_KEYS = {"wasserstein": "wasserstein_norm", "ks": "ks_statistic"}  # the others: stats.SHARE_DISTANCES


def _decide(names, stats, profile, table, options):
    alpha = options["alpha"]
    correction = options["correction"]
    # The family of p-values: one distribution test per feature, plus a missing-share test for
    # each feature with missing values on either side.
    raw = []
    for st in stats:
        if st["type"] == "numeric":
            st["test"] = options["numeric_test"]
            st["statistic"] = st["%s_statistic" % options["numeric_test"]]
            st["p_value_raw"] = st["%s_p_value_raw" % options["numeric_test"]]
        else:
            st["test"] = st.pop("categorical_test")
            st["statistic"] = st.pop("categorical_statistic")
            st["p_value_raw"] = st.pop("categorical_p_value_raw")
        raw.append(st["p_value_raw"])
        ref_miss, cur_miss = st["missing_reference"], st["missing_current"]
        st["missing_share_reference"] = ref_miss / float(st["rows_reference"])
        st["missing_share_current"] = cur_miss / float(st["rows_current"])
        if ref_miss or cur_miss:
            _z, p_miss = two_proportion_ztest(ref_miss, st["rows_reference"], cur_miss, st["rows_current"])
        else:
            p_miss = float("nan")
        st["missing_p_value_raw"] = None if math.isnan(p_miss) else p_miss
        raw.append(p_miss)
    adjusted = adjust_pvalues(raw, correction)
    warnings = []
    results = {}
    drifted_names = []
    for i, (name, st) in enumerate(zip(names, stats)):
        p_adj = float(adjusted[2 * i])
        miss_adj = adjusted[2 * i + 1]
        st["p_value"] = p_adj
        st["missing_p_value"] = None if math.isnan(miss_adj) else float(miss_adj)
        metric, dist_threshold = _distance_threshold(options, st["type"])
        key = _DISTANCE_KEYS[metric] if metric in _DISTANCE_KEYS else SHARE_DISTANCES[metric][0]
        distance = st[key]
        st["distance_metric"] = key
        st["distance"] = distance
        st["distance_threshold"] = dist_threshold
        n_min = min(st["n_reference"], st["n_current"])
        regime = options["decision"]
        if regime == "auto":
            regime = "p_value" if n_min <= options["large_sample_rows"] else "distance"
        feature_warnings = []
        if n_min < options["min_rows"]:
            feature_warnings.append("feature '%s': only %d %s values; the %s test needs at least %d for a reliable result"
                                    % (name, n_min, "current" if st["n_current"] <= st["n_reference"] else "reference",
                                       st["test"], options["min_rows"]))
        below5 = st.pop("_expected_below_5", 0)
        if below5:
            feature_warnings.append("feature '%s': %d categories have expected counts below 5; the chi-square p-value is approximate" % (name, below5))
        fired = []
        details = []
        novel = dict((k, v) for k, v in st.get("novel_categories", {}).items() if v >= options["novel_category_min_share"])
        if novel:
            top = max(novel, key=lambda k: (novel[k], k))
            fired.append(("novel_category", options["novel_category_min_share"]))
            details.append("novel category %r takes %s of the current window (>= %s)" % (top, _fmt(novel[top]), _fmt(options["novel_category_min_share"])))
        change = st["missing_share_current"] - st["missing_share_reference"]
        st["missing_share_change"] = change
        if abs(change) >= options["missing_share_threshold"] and st["missing_p_value"] is not None and st["missing_p_value"] < alpha:
            fired.append(("missing_share", options["missing_share_threshold"]))
            details.append("missing share %s -> %s (change %s >= %s, p=%s)" % (
                _fmt(st["missing_share_reference"]), _fmt(st["missing_share_current"]), _fmt(change),
                _fmt(options["missing_share_threshold"]), _fmt(st["missing_p_value"])))
        if regime == "p_value":
            if p_adj < alpha:
                fired.append(("p_value", alpha))
            dist_detail = "%s p=%s (%s) %s alpha %s" % (st["test"], _fmt(p_adj), "corrected: " + correction if correction != "none" else "uncorrected",
                                                        "<" if p_adj < alpha else ">=", _fmt(alpha))
        else:
            if distance >= dist_threshold:
                fired.append(("distance", dist_threshold))
            dist_detail = "%s %s %s %s (large samples: decided by distance, not p-value)" % (
                st["distance_metric"], _fmt(distance), ">=" if distance >= dist_threshold else "<", _fmt(dist_threshold))
        if not fired or fired[-1][0] in ("p_value", "distance"):
            details.append(dist_detail)
        st["drifted"] = bool(fired)
        st["rule"] = fired[0][0] if fired else regime
        st["threshold"] = fired[0][1] if fired else (alpha if regime == "p_value" else dist_threshold)
        st["rules_fired"] = [rule for rule, _t in fired]
        st["rule_detail"] = "; ".join(details) if fired else dist_detail
        st["alpha"] = alpha
        st["warnings"] = feature_warnings
        warnings.extend(feature_warnings)
        if st["drifted"]:
            drifted_names.append(name)
        results[name] = dict(sorted(st.items()))
        results[name]["type_source"] = profile["features"][name].get("type_source", "profile")
    count = len(names)
    result = {
        "drifted": bool(drifted_names),
        "drifted_share": len(drifted_names) / float(count),
        "drifted_features": drifted_names,
        "n_features": count,
        "features": results,
        "warnings": warnings,
        "settings": dict((k, options[k]) for k in sorted(options) if k != "threads"),
        "reference": {"content_hash": profile["content_hash"], "rows": profile["rows"]},
        "current": {"source": table.source, "rows": table.rows, "files": len(table.files), "skipped_lines": table.skipped_lines},
    }
    result["summary"] = summarize(result)
    return result


def summarize(result):
    if not result["drifted"]:
        return "no drift in %d feature%s" % (result["n_features"], "" if result["n_features"] == 1 else "s")
    parts = ["%s (%s)" % (name, result["features"][name]["rule_detail"]) for name in result["drifted_features"]]
    return "drift in %d of %d features: %s" % (len(parts), result["n_features"], "; ".join(parts))


def public_result(result):
    """The result without internal plotting data (what reports and module returns carry)."""
    out = dict(result)
    out["features"] = dict((name, dict((k, v) for k, v in feat.items() if not k.startswith("_"))) for name, feat in result["features"].items())
    return out


def current_columns(profile, specs, table_columns=None):
    """Names and types to read from the current window for a profile (and optional specs)."""
    features = profile["features"]
    names = sorted(features) if specs is None else [n for n, _k in specs]
    return names, dict((n, features[n]["type"]) for n in names if n in features)


def run(reference, current, features=None, options=None, want_plot=False):
    """The whole check: reference (profile or data file) + current (file or serving-window
    directory). Returns (result or None when current is None, profile, built)."""
    options = options or make_options()
    specs = normalize_features(features)
    profile, built = read_reference(reference, specs, options)
    if current is None:
        return None, profile, built
    if not os.path.exists(current):
        raise DriftInputError("current: no such file or directory: %s" % current)
    names, types = current_columns(profile, specs)
    unknown = [n for n in names if n not in profile["features"]]
    if unknown:
        raise DriftInputError("features: '%s' is not in the reference profile (it has: %s)" % (unknown[0], ", ".join(sorted(profile["features"]))))
    table = read_table(current, names, types, what="current")
    return check_drift(profile, table, specs, options, want_plot), profile, built
