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

import math

from .drift_stats import DriftInputError, require_numpy, require_scipy

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

try:
    from scipy import special as sp_special
except ImportError:  # pragma: no cover
    sp_special = None

DETECTORS = ("page_hinkley", "cusum")
DIRECTIONS = ("up", "down", "both")


def accuracy_decay(reference_accuracy, reference_rows, correct, rows, max_drop=0.05, alpha=0.05):
    """Has accuracy dropped? One-sided pooled two-proportion z-test of H1: current < reference.

    Decays when the drop is at least max_drop and significant (p < alpha): both, so that neither a
    tiny significant drop in a huge window nor a large noisy drop in a tiny one raises an alarm.
    """
    require_scipy()
    if not 0.0 <= reference_accuracy <= 1.0:
        raise DriftInputError("reference_accuracy: must be in [0, 1], got %r" % reference_accuracy)
    if reference_rows <= 0:
        raise DriftInputError("reference_rows: must be a positive integer, got %r" % reference_rows)
    if rows <= 0:
        raise DriftInputError("current: no labelled rows to compute accuracy")
    current = float(correct) / rows
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
        "z": float(z), "p_value": p, "n_reference": int(reference_rows), "n_current": int(rows),
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
