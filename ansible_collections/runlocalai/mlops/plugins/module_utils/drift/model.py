# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Model drift: accuracy decay once labels arrive, and sequential change detectors (Page-Hinkley,
CUSUM) over a monitored series (confidence, error, latency ...).

Prediction and confidence *distribution* drift is an ordinary feature check (features
`outputs.prediction`, `outputs.confidence` of a serving window), done by drift_engine.
No Ansible imports (installed on serving hosts as well). Parameters are documented in docs/drift.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os

from .tables import (
    JSONL_SUFFIXES, WINDOW_SUFFIXES, Categories, _flatten, _suffix_in, canonical_category, iter_records, read_table, window_files,
)
from .options import ACCURACY_DEFAULTS, SEQUENTIAL_DEFAULTS, SEQUENTIAL_DIRECTIONS, SEQUENTIAL_METHODS, TIMER_PARTS, timer_part_settings
from .stats import DriftInputError, require_numpy, require_scipy

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

try:
    from scipy import special as sp_special
except ImportError:  # pragma: no cover
    sp_special = None

DETECTORS = SEQUENTIAL_METHODS
DIRECTIONS = SEQUENTIAL_DIRECTIONS


def accuracy_decay(reference_accuracy, reference_rows, correct, rows, max_drop=ACCURACY_DEFAULTS["max_drop"], alpha=ACCURACY_DEFAULTS["alpha"]):
    """Has accuracy dropped? One-sided pooled two-proportion z-test of H1: current < reference.

    Decays when the drop is at least max_drop and significant (p < alpha): both, so that neither a
    tiny significant drop in a huge window nor a large noisy drop in a tiny one raises an alarm.
    reference_rows None: the reference accuracy is taken as exact (one-sample z-test,
    variance p0 (1 - p0) / rows).
    """
    require_scipy()
    if not 0.0 <= reference_accuracy <= 1.0:
        raise DriftInputError("reference_accuracy: must be in [0, 1], got %r" % reference_accuracy)
    if reference_rows is not None and reference_rows <= 0:
        raise DriftInputError("reference_rows: must be a positive integer, got %r" % reference_rows)
    if rows <= 0:
        raise DriftInputError("current: no labelled rows to compute accuracy")
    current = float(correct) / rows
    if reference_rows is None:
        var = reference_accuracy * (1 - reference_accuracy) / float(rows)
    else:
        pooled = (reference_accuracy * reference_rows + correct) / float(reference_rows + rows)
        var = pooled * (1 - pooled) * (1.0 / reference_rows + 1.0 / rows)
    if var <= 0:
        z, p = 0.0, 1.0 if current >= reference_accuracy else 0.0
    else:
        z = (current - reference_accuracy) / math.sqrt(var)
        p = float(sp_special.ndtr(z))  # lower tail
    drop = reference_accuracy - current
    decayed = bool(drop >= max_drop and p < alpha)
    return {
        "reference_accuracy": float(reference_accuracy), "current_accuracy": current, "drop": drop,
        "z": float(z), "p_value": p, "n_reference": None if reference_rows is None else int(reference_rows), "n_current": int(rows),
        "max_drop": max_drop, "alpha": alpha, "decayed": decayed,
        "rule_detail": "accuracy %.4f -> %.4f (drop %.4f %s %.4f, one-sided p=%.3g %s alpha %s)" % (
            reference_accuracy, current, drop, ">=" if drop >= max_drop else "<", max_drop, p, "<" if p < alpha else ">=", alpha),
    }


def count_correct(predictions, labels):
    """(correct, labelled rows) from two equal-length sequences; rows with a missing label or
    prediction are skipped. Values are compared as canonical strings (1 == 1.0 == '1')."""
    if len(predictions) != len(labels):
        raise DriftInputError("predictions and labels have different lengths (%d, %d)" % (len(predictions), len(labels)))
    correct = rows = 0
    for pred, label in zip(predictions, labels):
        if pred is None or label is None:
            continue
        rows += 1
        correct += _canon(pred) == _canon(label)
    return correct, rows


def _canon(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return repr(float(value))
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def _lindley(steps):
    """S_t = max(0, S_{t-1} + steps_t), S_0 = 0, vectorised: S_t = C_t - min(0, min_{s<=t} C_s)."""
    c = np.cumsum(steps)
    return c - np.minimum(0.0, np.minimum.accumulate(c))


def _first_alarm(stat, threshold, start):
    above = np.flatnonzero(stat > threshold)
    above = above[above >= start]
    return int(above[0]) if above.size else None


def page_hinkley(series, delta=0.005, threshold=50.0, min_instances=30, direction="up"):
    """Page-Hinkley test for a change in the mean of a series.

    For an increase: m_t = sum_{i<=t} (x_i - mean_{1..i} - delta), PH_t = m_t - min_{s<=t} m_s;
    an alarm when PH_t > threshold (lambda) after at least min_instances values. delta is the
    magnitude of change tolerated, in the series' units. After an alarm the detector restarts.
    direction 'down' watches for a decrease, 'both' for either.
    Returns detected, first_alarm (0-based index), alarms, max_statistic.
    """
    return _sequential(series, direction, min_instances, lambda x, sign: _ph_stat(x, sign, delta), threshold,
                       {"detector": "page_hinkley", "delta": delta, "threshold": threshold})


def _ph_stat(x, sign, delta):
    running_mean = np.cumsum(x) / np.arange(1, x.size + 1)
    m = np.cumsum(sign * (x - running_mean) - delta)
    return m - np.minimum.accumulate(np.minimum(m, 0.0))


def cusum(series, target=None, sigma=None, k=0.5, h=5.0, min_instances=30, direction="both"):
    """Two-sided tabular CUSUM on the standardised series z = (x - target) / sigma.

    S+_t = max(0, S+_{t-1} + z_t - k), S-_t = max(0, S-_{t-1} - z_t - k); an alarm when either
    exceeds h. k (slack) is half the shift to detect, in standard deviations; h the decision
    interval (k=0.5, h=5 gives an in-control run length of about 465 and detects a 1 sd shift
    in about 10 values). target and sigma default to the mean and standard deviation of the
    first min_instances values. After an alarm the detector restarts.
    """
    require_numpy()
    x = _as_series(series)
    if target is None or sigma is None:
        if x.size < min_instances:
            raise DriftInputError("cusum: needs at least min_instances=%d values to estimate target and sigma" % min_instances)
        head = x[:min_instances]
        target = float(head.mean()) if target is None else target
        sigma = float(head.std(ddof=1)) if sigma is None else sigma
    if sigma <= 0:
        raise DriftInputError("cusum: sigma must be positive (the series is constant)")
    z = (x - target) / sigma
    out = _sequential(z, direction, min_instances, lambda v, sign: _lindley(sign * v - k), h,
                      {"detector": "cusum", "k": k, "h": h, "target": target, "sigma": sigma})
    return out


def _as_series(series):
    x = np.asarray(series, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    return x


def _sequential(series, direction, min_instances, stat_fn, threshold, info):
    require_numpy()
    if direction not in DIRECTIONS:
        raise DriftInputError("direction: must be one of %s, got %r" % (", ".join(DIRECTIONS), direction))
    x = _as_series(series)
    signs = {"up": (1.0,), "down": (-1.0,), "both": (1.0, -1.0)}[direction]
    alarms = []
    max_stat = 0.0
    start = 0
    while start < x.size:
        segment = x[start:]
        hits = []
        for sign in signs:
            stat = stat_fn(segment, sign)
            max_stat = max(max_stat, float(stat.max()) if stat.size else 0.0)
            hit = _first_alarm(stat, threshold, min_instances - 1)
            if hit is not None:
                hits.append(hit)
        if not hits:
            break
        alarm = start + min(hits)
        alarms.append(alarm)
        start = alarm + 1
    out = dict(info)
    out.update({"detected": bool(alarms), "first_alarm": alarms[0] if alarms else None, "alarms": alarms,
                "max_statistic": max_stat, "n": int(x.size), "direction": direction, "min_instances": min_instances})
    return out


# ---------------------------------------------------------------------------------------------
# Checks an operator runs (drift_check's sibling module model_drift_check and drift_cli model-check)
# ---------------------------------------------------------------------------------------------

DEFAULT_DIRECTION = {"page_hinkley": "up", "cusum": "both"}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spec(given, defaults, where):
    """given dict + defaults (None in given keeps a default); unknown keys fail naming them."""
    if not isinstance(given, dict):
        raise DriftInputError("%s: must be a mapping, got %r" % (where, given))
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise DriftInputError("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(unknown), ", ".join(sorted(defaults))))
    out = dict(defaults)
    out.update((k, v) for k, v in given.items() if v is not None)
    return out


def _number_param(spec, key, where, low=None, high=None, low_open=False, integer=False, optional=False):
    value = spec[key]
    if value is None and optional:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else _is_number(value)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bound = "" if low is None else (" > %s" % low if low_open else " >= %s" % low)
        bound += "" if high is None else " and <= %s" % high
        raise DriftInputError("%s.%s: must be %s%s, got %r" % (where, key, "an integer" if integer else "a number", bound, value))


def _column_list(column):
    """A table column -> list of Python scalars (None for missing)."""
    if isinstance(column, Categories):
        values = column.values
        return [values[c] if c >= 0 else None for c in column.codes.tolist()]
    return [None if math.isnan(v) else v for v in column.tolist()]


def read_fields(path, fields, what):
    """Columns `fields` of a serving-window directory, JSON-lines, CSV or Parquet file, as lists of
    Python scalars (None: missing). Serving records contribute inputs, `outputs.<name>`, `label`,
    `request_id` and `instance`. Returns (columns, rows, fields present in the source)."""
    require_numpy()
    if not path or not os.path.exists(path):
        raise DriftInputError("%s: no such file or directory: %s" % (what, path))
    lower = path.lower()
    if os.path.isdir(path) or lower.endswith(JSONL_SUFFIXES) or lower.endswith(".json"):
        paths = window_files(path, what) if os.path.isdir(path) else [path]
        columns = dict((f, []) for f in fields)
        seen = set()
        rows = 0
        for _path, _number, record in iter_records(paths, what):
            if record is None:
                continue
            flat, _inputs = _flatten(record)
            for name in fields:
                value = flat.get(name, record.get(name))
                if value is not None:
                    seen.add(name)
                columns[name].append(value)
            rows += 1
        if rows == 0:
            raise DriftInputError("%s: no rows in %s" % (what, path))
        return columns, rows, seen
    table = read_table(path, None, None, what=what)
    if table.rows == 0:
        raise DriftInputError("%s: no rows in %s" % (what, path))
    columns = {}
    for name in fields:
        columns[name] = _column_list(table.columns[name]) if name in table.columns else [None] * table.rows
    return columns, table.rows, set(f for f in fields if f in table.columns)


def _key(request_id, instance):
    """Join key of a prediction or a label. A missing instance is instance 0: the service writes
    `instance` only for batched requests, and a label may name instance 0 of a one-row request."""
    return canonical_category(request_id), canonical_category(0 if instance is None else instance)


def _has_records(path):
    """False for a path that is missing, or a directory without serving-window / feedback files yet."""
    if not path or not os.path.exists(path):
        return False
    if os.path.isdir(path):
        return any(_suffix_in(n, WINDOW_SUFFIXES) and not n.startswith(".") for n in os.listdir(path))
    return True


def _keep_version(cols, rows, model_version):
    """Row indexes of the records of model_version (all rows when it is None)."""
    if model_version is None:
        return list(range(rows))
    wanted = canonical_category(model_version)
    return [i for i in range(rows) if canonical_category(cols["model_version"][i]) == wanted]


def _join_feedback(spec, where, model_version=None, no_data_ok=False):
    """Predictions and labels of the accuracy check: inline lists, or a window joined with a feedback file.
    model_version: only the window's records of that version count. no_data_ok: a window without records
    (of that version) or a feedback path without files yet gives no labelled rows instead of an error."""
    info = {}
    if spec["predictions"] is not None or spec["labels"] is not None:
        if spec["current"] is not None:
            raise DriftInputError("%s: give either current or predictions and labels, not both" % where)
        for key in ("predictions", "labels"):
            if not isinstance(spec[key], (list, tuple)):
                raise DriftInputError("%s.%s: must be a list (with %s.%s of the same length)" % (
                    where, key, where, "labels" if key == "predictions" else "predictions"))
        if len(spec["predictions"]) != len(spec["labels"]):
            raise DriftInputError("%s: predictions and labels have different lengths (%d, %d)" % (
                where, len(spec["predictions"]), len(spec["labels"])))
        if not spec["predictions"]:
            raise DriftInputError("%s.predictions: the list is empty" % where)
        info.update(source="inline", rows=len(spec["predictions"]))
        return list(spec["predictions"]), list(spec["labels"]), info
    if spec["current"] is None:
        raise DriftInputError("%s: current (a serving window or data file) or predictions and labels is required" % where)
    pred_f, label_f, id_f = spec["prediction_field"], spec["label_field"], spec["id_field"]
    if no_data_ok and not _has_records(spec["current"]):
        info.update(source=spec["current"], rows=0, embedded_labels=0, no_data=True)
        return [], [], info
    cols, rows, present = read_fields(spec["current"], [pred_f, label_f, id_f, "instance", "model_version"], where + ".current")
    keep = _keep_version(cols, rows, model_version)
    if model_version is not None:
        cols = dict((name, [column[i] for i in keep]) for name, column in cols.items())
        info.update(model_version=str(model_version), other_versions=rows - len(keep))
        rows = len(keep)
        present = set(name for name, column in cols.items() if any(v is not None for v in column))
        if rows == 0 and no_data_ok:
            info.update(source=spec["current"], rows=0, embedded_labels=0, no_data=True)
            return [], [], info
        if rows == 0:
            raise DriftInputError("%s.current: no records of model version %s in %s" % (where, model_version, spec["current"]))
    if pred_f not in present:
        raise DriftInputError("%s.current: no '%s' values in %s (set %s.prediction_field)" % (where, pred_f, spec["current"], where))
    predictions = cols[pred_f]
    labels = list(cols[label_f])
    info.update(source=spec["current"], rows=rows, embedded_labels=sum(v is not None for v in labels))
    if spec["feedback"] is not None and no_data_ok and not _has_records(spec["feedback"]):
        info.update(feedback=spec["feedback"], feedback_rows=0, feedback_duplicates=0, joined=0, unjoinable=0, orphan_feedback=0)
        return predictions, labels, info
    if spec["feedback"] is None:
        if label_f not in present:
            raise DriftInputError("%s.current: no '%s' values in %s; give %s.feedback (labels joined by %s)" % (
                where, label_f, spec["current"], where, id_f))
        return predictions, labels, info
    if id_f not in present:
        raise DriftInputError("%s.current: no '%s' values in %s to join the feedback on (set %s.id_field)" % (where, id_f, spec["current"], where))
    feedback, duplicates, fb_rows = _read_feedback(spec["feedback"], id_f, label_f, where + ".feedback")
    window_keys = set()
    joined = unjoinable = 0
    for i in range(rows):
        if cols[id_f][i] is None:
            unjoinable += 1
            continue
        key = _key(cols[id_f][i], cols["instance"][i])
        window_keys.add(key)
        if key in feedback:
            labels[i] = feedback[key]
            joined += 1
    info.update(feedback=spec["feedback"], feedback_rows=fb_rows, feedback_duplicates=duplicates, joined=joined,
                unjoinable=unjoinable, orphan_feedback=sum(1 for k in feedback if k not in window_keys))
    return predictions, labels, info


def _read_feedback(path, id_f, label_f, what):
    """Feedback file or directory (JSON lines, or CSV/Parquet): request id (+ optional instance) -> label.
    A later line for the same request wins (corrections are appended)."""
    cols, rows, present = read_fields(path, [id_f, "instance", label_f], what)
    for name in (id_f, label_f):
        if name not in present:
            raise DriftInputError("%s: no '%s' values in %s" % (what, name, path))
    out = {}
    duplicates = 0
    for i in range(rows):
        if cols[id_f][i] is None:
            raise DriftInputError("%s: record %d of %s has no '%s'" % (what, i + 1, path, id_f))
        if cols[label_f][i] is None:
            continue
        key = _key(cols[id_f][i], cols["instance"][i])
        duplicates += key in out
        out[key] = cols[label_f][i]
    return out, duplicates, rows


def accuracy_params(given, where="accuracy"):
    """The accuracy check's settings: given + defaults, every value checked (no data read)."""
    spec = _spec(given, ACCURACY_DEFAULTS, where)
    if spec["reference_accuracy"] is None:
        raise DriftInputError("%s.reference_accuracy: required (accuracy of the model on its reference data, in [0, 1])" % where)
    _number_param(spec, "reference_accuracy", where, 0, 1)
    _number_param(spec, "reference_rows", where, 0, low_open=True, integer=True, optional=True)
    _number_param(spec, "max_drop", where, 0, 1)
    _number_param(spec, "alpha", where, 0, 1, low_open=True)
    _number_param(spec, "min_labels", where, 1, integer=True)
    for key in ("prediction_field", "label_field", "id_field"):
        if not isinstance(spec[key], str) or not spec[key]:
            raise DriftInputError("%s.%s: must be a non-empty string" % (where, key))
    return spec


def check_accuracy(given, where="accuracy", model_version=None, no_data_ok=False):
    """Accuracy decay of a labelled window against a reference accuracy (see accuracy_decay).
    model_version and no_data_ok: see _join_feedback."""
    spec = accuracy_params(given, where)
    predictions, labels, info = _join_feedback(spec, where, model_version, no_data_ok)
    correct, labelled = count_correct(predictions, labels)
    info.update(predictions=sum(p is not None for p in predictions), labelled=labelled)
    out = {"check": "accuracy", "kind": "accuracy", "labels": info, "threshold": spec["max_drop"], "alpha": spec["alpha"],
           "min_labels": spec["min_labels"], "reference_accuracy": float(spec["reference_accuracy"]),
           "n_reference": spec["reference_rows"], "n_current": labelled, "warnings": []}
    if labelled < spec["min_labels"]:
        out.update(drifted=False, decided=False, rule="insufficient_labels", statistic=None, p_value=None,
                   current_accuracy=float(correct) / labelled if labelled else None,
                   rule_detail="%d labelled predictions < min_labels %d: not decided" % (labelled, spec["min_labels"]))
        out["warnings"].append("%s: only %d labelled predictions (min_labels %d); accuracy not judged" % (where, labelled, spec["min_labels"]))
        return out
    decay = accuracy_decay(spec["reference_accuracy"], spec["reference_rows"], correct, labelled, spec["max_drop"], spec["alpha"])
    out.update(drifted=decay["decayed"], decided=True, rule="accuracy_decay", statistic=decay["z"], p_value=decay["p_value"],
               current_accuracy=decay["current_accuracy"], drop=decay["drop"], correct=int(correct),
               test="z_2prop" if spec["reference_rows"] else "z_1prop", rule_detail=decay["rule_detail"])
    return out


def _series_values(spec, where, model_version=None, no_data_ok=False):
    """The series (numpy array) and its source. model_version: only the records of that version of a
    serving window / JSON-lines file. no_data_ok: a window without records (of that version) or without
    the field gives an empty series instead of an error."""
    series = spec["series"]
    if isinstance(series, str) and series and (model_version is not None or no_data_ok) and spec["field"] is not None:
        lower = series.lower()
        if not _has_records(series):
            if no_data_ok:
                return np.zeros(0), series
        elif os.path.isdir(series) or lower.endswith(JSONL_SUFFIXES) or lower.endswith(".json"):
            return _window_series(spec, where, model_version, no_data_ok), series
    series = spec["series"]
    if isinstance(series, (list, tuple)):
        for i, value in enumerate(series):
            if value is not None and not _is_number(value):
                raise DriftInputError("%s.series[%d]: not a number: %r" % (where, i, value))
        values = [float("nan") if v is None else float(v) for v in series]
        return np.asarray(values, dtype=np.float64), "inline"
    if not isinstance(series, str) or not series:
        raise DriftInputError("%s.series: required, a list of numbers or a data file / serving-window directory" % where)
    field = spec["field"]
    what = where + ".series"
    if field is None:
        table = read_table(series, None, None, what=what)
        names = list(table.columns)
        if len(names) != 1:
            raise DriftInputError("%s.field: required when the series file has several columns (%s has: %s)" % (
                where, series, ", ".join(names)))
        field = names[0]
    if not isinstance(field, str):
        raise DriftInputError("%s.field: must be a column name, got %r" % (where, field))
    table = read_table(series, [field], {field: "numeric"}, what=what)
    column = table.columns[field]
    if isinstance(column, Categories):  # only missing values
        column = np.full(len(column), np.nan)
    if np.isinf(column).any():
        raise DriftInputError("feature '%s': infinite value in %s (row %d)" % (field, series, int(np.flatnonzero(np.isinf(column))[0]) + table.row_offset))
    return column, series


def _window_series(spec, where, model_version, no_data_ok):
    """The field of a serving window / JSON-lines file as floats (NaN: missing), filtered by model_version."""
    field = spec["field"]
    cols, rows, present = read_fields(spec["series"], [field, "model_version"], where + ".series")
    keep = _keep_version(cols, rows, model_version)
    values = []
    for i in keep:
        value = cols[field][i]
        if value is not None and not _is_number(value):
            raise DriftInputError("%s.series: record %d of %s: '%s' is not a number: %r" % (where, i + 1, spec["series"], field, value))
        if value is not None and math.isinf(value):
            raise DriftInputError("feature '%s': infinite value in %s (record %d)" % (field, spec["series"], i + 1))
        values.append(float("nan") if value is None else float(value))
    if not values and not no_data_ok:
        raise DriftInputError("%s.series: no records of model version %s in %s" % (where, model_version, spec["series"]))
    return np.asarray(values, dtype=np.float64)


def sequential_params(given, index=0, where=None):
    """A sequential detector's settings: given + defaults, every value checked (no data read).
    Returns (spec, direction, where)."""
    where = where or "sequential[%d]" % index
    spec = _spec(given, SEQUENTIAL_DEFAULTS, where)
    method = spec["method"]
    if method not in DETECTORS:
        raise DriftInputError("%s.method: must be one of %s, got %r" % (where, ", ".join(DETECTORS), method))
    direction = spec["direction"] or DEFAULT_DIRECTION[method]
    if direction not in DIRECTIONS:
        raise DriftInputError("%s.direction: must be one of %s, got %r" % (where, ", ".join(DIRECTIONS), direction))
    _number_param(spec, "min_instances", where, 1, integer=True)
    if method == "page_hinkley":
        _number_param(spec, "delta", where, 0)
        _number_param(spec, "threshold", where, 0, low_open=True)
    else:
        _number_param(spec, "k", where, 0)
        _number_param(spec, "h", where, 0, low_open=True)
        _number_param(spec, "target", where, optional=True)
        _number_param(spec, "sigma", where, 0, low_open=True, optional=True)
    return spec, direction, where


def check_sequential(given, index=0, where=None, model_version=None, no_data_ok=False):
    """One sequential detector (Page-Hinkley or CUSUM) over a monitored series.
    model_version and no_data_ok: see _series_values (no values at all is then not decided)."""
    spec, direction, where = sequential_params(given, index, where)
    method = spec["method"]
    values, source = _series_values(spec, where, model_version, no_data_ok)
    name = spec["name"] or "%s:%s" % (method, spec["field"] or index)
    present = int(np.count_nonzero(~np.isnan(values)))
    if present == 0 and not no_data_ok:
        raise DriftInputError("%s.series: no values in %s" % (where, source))
    out = {"check": name, "kind": "sequential", "method": method, "source": source, "field": spec["field"], "warnings": [],
           "rows": int(values.size), "n": present}
    if present < spec["min_instances"]:
        threshold = spec["threshold"] if method == "page_hinkley" else spec["h"]
        out.update(drifted=False, decided=False, rule="insufficient_values", statistic=None, threshold=threshold, alarms=[],
                   first_alarm=None, last_alarm=None, direction=direction, min_instances=spec["min_instances"],
                   rule_detail="%d values < min_instances %d: not decided" % (present, spec["min_instances"]))
        out["warnings"].append("%s (%s): only %d values (min_instances %d); no detection" % (where, name, present, spec["min_instances"]))
        return out
    if method == "page_hinkley":
        res = page_hinkley(values, delta=spec["delta"], threshold=spec["threshold"], min_instances=spec["min_instances"], direction=direction)
        threshold, params = spec["threshold"], "delta %s, threshold %s" % (spec["delta"], spec["threshold"])
    else:
        res = cusum(values, target=spec["target"], sigma=spec["sigma"], k=spec["k"], h=spec["h"],
                    min_instances=spec["min_instances"], direction=direction)
        threshold = spec["h"]
        params = "k %s, h %s, target %.6g, sigma %.6g" % (spec["k"], spec["h"], res["target"], res["sigma"])
    res = dict((k, float(v) if isinstance(v, float) or type(v).__module__ == "numpy" else v) for k, v in res.items())
    out.update(res)
    out.update(drifted=res["detected"], decided=True, rule=method, statistic=res["max_statistic"], threshold=threshold,
               last_alarm=res["alarms"][-1] if res["alarms"] else None)
    if res["detected"]:
        out["rule_detail"] = "%s (%s, %s): %d alarm(s), first at value %d of %d (statistic > %s)" % (
            method, params, direction, len(res["alarms"]), res["first_alarm"], present, threshold)
    else:
        out["rule_detail"] = "%s (%s, %s): no alarm in %d values (max statistic %.4g <= %s)" % (
            method, params, direction, present, res["max_statistic"], threshold)
    return out


def run_model_checks(accuracy=None, sequential=None, model_version=None, no_data_ok=False):
    """Accuracy decay and/or sequential detectors. Returns a JSON-ready result:
    drifted, failures (one line per drifted check), checks (name -> details), summary, warnings.
    model_version: only the serving-window records of that version count (a timer on a serving host,
    whose window keeps the records of earlier versions). no_data_ok: a window or feedback directory
    without records yet makes the checks undecided instead of failing."""
    require_numpy()
    if accuracy is None and not sequential:
        raise DriftInputError("accuracy or sequential: at least one check is required")
    if sequential is not None and not isinstance(sequential, (list, tuple)):
        sequential = [sequential]
    checks = []
    if model_version is not None:
        model_version = str(model_version)
    if accuracy is not None:
        checks.append(check_accuracy(accuracy, model_version=model_version, no_data_ok=no_data_ok))
    for i, item in enumerate(sequential or []):
        checks.append(check_sequential(item, i, model_version=model_version, no_data_ok=no_data_ok))
    by_name = {}
    for check in checks:
        if check["check"] in by_name:
            raise DriftInputError("sequential: check name '%s' is used twice (set name)" % check["check"])
        by_name[check["check"]] = check
    failures = ["%s: %s" % (c["check"], c["rule_detail"]) for c in checks if c["drifted"]]
    warnings = [w for c in checks for w in c["warnings"]]
    drifted = [c["check"] for c in checks if c["drifted"]]
    if drifted:
        summary = "model drift in %d of %d checks: %s" % (len(drifted), len(checks), "; ".join(failures))
    else:
        summary = "no model drift in %d checks (%d decided)" % (len(checks), sum(c["decided"] for c in checks))
    return {"drifted": bool(drifted), "drifted_checks": drifted, "n_checks": len(checks), "failures": failures,
            "checks": by_name, "summary": summary, "warnings": warnings}


# ---------------------------------------------------------------------------------------------
# The model_server role's model-check timer (drift_cli model-check --spec, filter model_check_spec)
# ---------------------------------------------------------------------------------------------

def reference_from_report(text):
    """(accuracy, rows, None) of a gate's validation report (the JSON of a model version's tag
    validation.report: metrics.accuracy on `rows` evaluation rows), or (None, None, why not)."""
    if text is None or text == "":
        return None, None, "the version has no validation report (tag validation.report, which the gate records: model_validation record=true)"
    try:
        report = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return None, None, "its validation report (tag validation.report) is not JSON"
    if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
        return None, None, "its validation report (tag validation.report) has no metrics"
    accuracy = report["metrics"].get("accuracy")
    if not _is_number(accuracy) or not 0.0 <= accuracy <= 1.0:
        task = report.get("task")
        return None, None, "its validation report has no accuracy in [0, 1]%s" % (" (task %s)" % task if task else "")
    rows = report.get("rows")
    rows = int(rows) if _is_number(rows) and rows >= 1 and float(rows).is_integer() else None
    return float(accuracy), rows, None


def timer_spec(options, window, feedback, reference_accuracy=None, reference_rows=None, no_reference="no reference accuracy"):
    """The --spec document of `drift_cli model-check` for a serving host's timer, from the timer's
    options (TIMER_PARTS: accuracy, page_hinkley, cusum; each a mapping of settings, true for the
    defaults, false to switch it off), every value checked as the checks themselves check it.
    The accuracy part needs reference_accuracy (else it is off, with no_reference as the reason).
    Returns {"spec": {"accuracy": ..., "sequential": [...]}, "checks": [names on], "off": {part: reason}}."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise DriftInputError("model_check: must be a mapping of parts (%s), got %r" % (", ".join(TIMER_PARTS), options))
    unknown = sorted(set(options) - set(TIMER_PARTS))
    if unknown:
        raise DriftInputError("model_check: unknown part(s) %s (allowed: %s)" % (", ".join(map(str, unknown)), ", ".join(TIMER_PARTS)))
    spec, checks, off = {}, [], {}
    for part in TIMER_PARTS:
        given = options.get(part, True)
        if given is False:
            off[part] = "switched off (model_check.%s: false)" % part
            continue
        settings = timer_part_settings(part, {} if given is True or given is None else given)
        where = "model_check.%s" % part
        if part == "accuracy":
            item = dict(settings, current=window, feedback=feedback, reference_accuracy=reference_accuracy,
                        reference_rows=reference_rows)
            if reference_accuracy is None:
                accuracy_params(dict(item, reference_accuracy=0.5), where)  # the settings are still checked
                off[part] = no_reference
                continue
            spec["accuracy"] = dict((k, v) for k, v in accuracy_params(item, where).items()
                                    if k not in ("predictions", "labels") and v is not None)
        else:
            item = dict(settings, name=part, method=part, series=window)
            checked, direction, _where = sequential_params(item, where=where)
            checked["direction"] = direction
            keep = set(TIMER_PARTS[part]["keys"]) | {"name", "method", "series", "direction", "min_instances"}
            spec.setdefault("sequential", []).append(dict((k, v) for k, v in checked.items() if k in keep and v is not None))
        checks.append(part)
    return {"spec": spec, "checks": checks, "off": off}
