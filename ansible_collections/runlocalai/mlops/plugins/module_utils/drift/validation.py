# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Data validation: schema, null rates, ranges, allowed values, row counts, duplicate keys, and
optionally a drift check against a reference profile (through drift_engine, not a copy of it).

No Ansible imports. Every failed check is one entry of `failures`:
{check, column, message, observed, expected}.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .engine import check_drift, make_options, normalize_features, read_reference
from .tables import Categories, canonical_category, numeric_share, read_table
from .stats import DriftInputError, require_numpy

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

COLUMN_KEYS = ("type", "required", "max_null_rate", "min", "max", "allowed_values")
COLUMN_TYPES = ("numeric", "categorical", "any")


def _failure(check, column, message, observed=None, expected=None):
    return {"check": check, "column": column, "message": message, "observed": observed, "expected": expected}


def normalize_spec(columns):
    """columns: name -> dict of COLUMN_KEYS. Raises DriftInputError naming the column and key."""
    columns = columns or {}
    if not isinstance(columns, dict):
        raise DriftInputError("columns: must be a mapping of column name to checks")
    out = {}
    for name, rules in columns.items():
        rules = dict(rules or {})
        unknown = sorted(set(rules) - set(COLUMN_KEYS))
        if unknown:
            raise DriftInputError("columns.%s: unknown key(s) %s (allowed: %s)" % (name, ", ".join(unknown), ", ".join(COLUMN_KEYS)))
        kind = rules.get("type") or "any"
        if kind not in COLUMN_TYPES:
            raise DriftInputError("columns.%s.type: must be one of %s, got %r" % (name, ", ".join(COLUMN_TYPES), kind))
        rate = rules.get("max_null_rate")
        if rate is not None and not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
            raise DriftInputError("columns.%s.max_null_rate: must be a number in [0, 1], got %r" % (name, rate))
        for key in ("min", "max"):
            if rules.get(key) is not None and not isinstance(rules[key], (int, float)):
                raise DriftInputError("columns.%s.%s: must be a number, got %r" % (name, key, rules[key]))
        allowed = rules.get("allowed_values")
        if allowed is not None and not isinstance(allowed, (list, tuple)):
            raise DriftInputError("columns.%s.allowed_values: must be a list" % name)
        rules["type"] = kind
        rules["required"] = rules.get("required", True) is not False
        out[name] = rules
    return out


def _null_count(column):
    if isinstance(column, Categories):
        return column.missing
    return int(np.count_nonzero(np.isnan(column)))


def _as_numeric(column):
    """float64 array, or None when some non-missing value is not a number."""
    if not isinstance(column, Categories):
        return column
    if numeric_share(column) < 1.0:
        return None
    table = np.array([float(v) for v in column.values] + [np.nan])
    return table[column.codes]


def _first_non_number(column):
    for i, value in enumerate(column.values):
        try:
            float(value)
        except ValueError:
            return value, int(np.flatnonzero(column.codes == i)[0])
    return None, None


def validate_table(table, columns=None, min_rows=None, max_rows=None, unique_keys=None, allow_extra_columns=True):
    """Run the checks on a Table; returns {passed, failures, rows, checks}."""
    require_numpy()
    spec = normalize_spec(columns)
    failures = []
    checks = 0
    rows = table.rows
    for bound, check, bad in ((min_rows, "min_rows", lambda b: rows < b), (max_rows, "max_rows", lambda b: rows > b)):
        if bound is not None:
            checks += 1
            if bad(bound):
                failures.append(_failure(check, None, "%d rows, expected %s %d" % (rows, "at least" if check == "min_rows" else "at most", bound),
                                         rows, bound))
    available = set(table.columns)
    for name, rules in spec.items():
        checks += 1
        if name not in available:
            if rules["required"]:
                failures.append(_failure("required_column", name, "column '%s' is missing from %s" % (name, table.source), None, name))
            continue
        column = table.columns[name]
        nulls = _null_count(column)
        if rules.get("max_null_rate") is not None:
            checks += 1
            rate = nulls / float(rows) if rows else 0.0
            if rate > rules["max_null_rate"]:
                failures.append(_failure("null_rate", name, "column '%s': null rate %.4f above %s" % (name, rate, rules["max_null_rate"]),
                                         rate, rules["max_null_rate"]))
        numeric = None
        if rules["type"] == "numeric" or rules.get("min") is not None or rules.get("max") is not None:
            numeric = _as_numeric(column)
            if rules["type"] == "numeric":
                checks += 1
            if numeric is None:
                value, row = _first_non_number(column)
                failures.append(_failure("type", name, "column '%s': non-numeric value %r (row %d of %s)" % (name, value, row + table.row_offset, table.source),
                                         value, "numeric"))
        if numeric is not None:
            present = numeric[~np.isnan(numeric)]
            for key, bad, word in (("min", lambda b: present < b, "below"), ("max", lambda b: present > b, "above")):
                if rules.get(key) is None:
                    continue
                checks += 1
                count = int(np.count_nonzero(bad(rules[key])))
                if count:
                    extreme = float(present.min() if key == "min" else present.max())
                    failures.append(_failure(key, name, "column '%s': %d values %s %s %s (%s %r)" % (
                        name, count, word, key, rules[key], "lowest" if key == "min" else "highest", extreme), extreme, rules[key]))
        if rules.get("allowed_values") is not None:
            checks += 1
            allowed = set(canonical_category(v) for v in rules["allowed_values"])
            if isinstance(column, Categories):
                counts = column.counts()
                if column.numeric_labels:
                    counts = dict((canonical_category(float(k)), c) for k, c in counts.items())
            else:
                values, numbers = np.unique(column[~np.isnan(column)], return_counts=True)
                counts = dict((canonical_category(float(v)), int(c)) for v, c in zip(values, numbers))
            bad = sorted(k for k in counts if k not in allowed)
            if bad:
                failures.append(_failure("allowed_values", name, "column '%s': %d values not allowed: %s" % (
                    name, sum(counts[k] for k in bad), ", ".join(repr(b) for b in bad[:10])), bad[:10], sorted(allowed)))
    if unique_keys:
        checks += 1
        missing = [k for k in unique_keys if k not in available]
        if missing:
            failures.append(_failure("duplicate_keys", ",".join(unique_keys), "key column(s) %s missing from %s" % (", ".join(missing), table.source),
                                     None, list(unique_keys)))
        elif rows:
            codes = []
            for key in unique_keys:
                column = table.columns[key]
                if isinstance(column, Categories):
                    codes.append(column.codes.astype(np.int64))
                else:
                    codes.append(np.unique(np.nan_to_num(column, nan=np.inf), return_inverse=True)[1].astype(np.int64))
            stacked = np.stack(codes, axis=1)
            _uniq, first, counts = np.unique(stacked, axis=0, return_index=True, return_counts=True)
            dup_rows = int((counts[counts > 1] - 1).sum())
            if dup_rows:
                example = int(first[np.argmax(counts > 1)])
                failures.append(_failure("duplicate_keys", ",".join(unique_keys), "%d rows repeat a key of (%s); first repeated key at row %d" % (
                    dup_rows, ", ".join(unique_keys), example + table.row_offset), dup_rows, 0))
    if not allow_extra_columns and spec:
        checks += 1
        extra = [c for c in table.input_columns if c not in spec]
        if extra:
            failures.append(_failure("extra_columns", None, "columns not in the schema: %s" % ", ".join(extra), extra, sorted(spec)))
    return {"passed": not failures, "failures": failures, "rows": rows, "checks": checks}


def validate(path, columns=None, min_rows=None, max_rows=None, unique_keys=None, allow_extra_columns=True, drift=None):
    """Read `path` (any drift_io format) and validate it; `drift` (optional dict: reference,
    features, and drift options) adds a drift check whose drifted features become failures."""
    table = read_table(path, None, None, what="data")
    result = validate_table(table, columns, min_rows, max_rows, unique_keys, allow_extra_columns)
    if drift:
        drift = dict(drift)
        reference = drift.pop("reference", None)
        if not reference:
            raise DriftInputError("drift.reference: required (a reference profile or data file)")
        specs = normalize_features(drift.pop("features", None))
        options = make_options(**dict((k, v) for k, v in drift.items() if v is not None))
        if specs is None:
            options["extra_columns"] = "ignore"
        profile, _built = read_reference(reference, specs, options)
        try:
            drift_result = check_drift(profile, table, specs, options)
        except DriftInputError as exc:  # e.g. a non-numeric value: a failed check, not a crash
            result["failures"].append(_failure("drift", None, "drift check not possible: %s" % exc))
            result["passed"] = False
            return result
        result["checks"] += drift_result["n_features"]
        for name in drift_result["drifted_features"]:
            feat = drift_result["features"][name]
            result["failures"].append(_failure("drift", name, "column '%s' drifted: %s" % (name, feat["rule_detail"]),
                                               feat["distance"] if feat["rule"] == "distance" else feat["p_value"], feat["threshold"]))
        result["drift"] = drift_result
        result["passed"] = not result["failures"]
    return result
