# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rendering of drift results: JSON report, self-contained HTML report, Prometheus textfile.

Content is a pure function of the result (no wall-clock time), so an unchanged check rewrites
nothing. The Prometheus metric names are a contract owned here (docs/drift.md). No Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ..common.errors import MissingDependencyError
from .stats import DriftInputError

REPORT_FORMAT = "runlocalai.mlops/drift-report"
REPORT_VERSION = 1

# name -> help text. Every metric is a gauge.
METRICS = (
    ("mlops_drift_detected", "1 when at least one feature drifted in the last drift check, else 0."),
    ("mlops_drift_share", "Share of the checked features that drifted, in [0, 1]."),
    ("mlops_drift_features", "Number of features checked."),
    ("mlops_drift_features_drifted", "Number of features that drifted."),
    ("mlops_drift_window_rows", "Rows in the reference and in the current window (label window)."),
    ("mlops_feature_drifted", "1 when the feature drifted, else 0."),
    ("mlops_feature_drift_score", "The feature's drift distance (label metric: wasserstein_norm, js_distance, psi, tvd or ks_statistic)."),
    ("mlops_feature_drift_threshold", "Threshold of mlops_feature_drift_score for the same feature and metric."),
    ("mlops_feature_drift_p_value", "Multiple-testing-corrected p-value of the feature's distribution test (label test)."),
    ("mlops_feature_psi", "Population stability index of the feature (reference quantile bins plus a missing bin)."),
    ("mlops_feature_missing_share", "Share of missing values of the feature (label window: reference or current)."),
)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# Model drift (model_drift_check / drift_cli model-check). Every metric is a gauge.
MODEL_REPORT_FORMAT = "runlocalai.mlops/model-drift-report"
MODEL_METRICS = (
    ("mlops_model_drift_detected", "1 when at least one model drift check (accuracy decay, sequential detector) fired, else 0."),
    ("mlops_model_drift_checks", "Number of model drift checks run."),
    ("mlops_model_check_drifted", "1 when the check fired, else 0 (label check)."),
    ("mlops_model_check_decided", "1 when the check had enough data to decide, else 0 (label check)."),
    ("mlops_model_check_statistic", "The check's statistic: z of the accuracy test, max Page-Hinkley / CUSUM statistic (label check, metric)."),
    ("mlops_model_check_threshold", "The check's threshold: max_drop for accuracy, lambda (threshold) or h for detectors (label check, metric)."),
    ("mlops_model_accuracy", "Accuracy of the reference and of the labelled current window (label window)."),
    ("mlops_model_accuracy_labelled", "Labelled predictions in the current window."),
    ("mlops_model_sequential_alarms", "Alarms of a sequential detector over the monitored series (label check)."),
)
MODEL_RESERVED_LABELS = ("check", "metric", "window")


def report_document(result, report_format=REPORT_FORMAT):
    """The JSON report: the public result under a versioned envelope."""
    return {"format": report_format, "format_version": REPORT_VERSION, "result": result}


def render_json(result, report_format=REPORT_FORMAT):
    return json.dumps(report_document(result, report_format), sort_keys=True, indent=2, allow_nan=False) + "\n"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def validate_labels(labels, reserved=("feature", "metric", "test", "window")):
    labels = labels or {}
    if not isinstance(labels, dict):
        raise DriftInputError("prometheus_labels: must be a mapping of label name to value")
    for name in labels:
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise DriftInputError("prometheus_labels: %r is not a valid Prometheus label name" % (name,))
        if name in reserved:
            raise DriftInputError("prometheus_labels: label name '%s' is reserved by the drift metrics" % name)
    return dict((k, str(v)) for k, v in labels.items())


def render_prometheus(result, labels=None):
    """Prometheus text exposition for node-exporter's textfile collector."""
    base = validate_labels(labels)

    def series(name, value, **extra):
        merged = dict(base)
        merged.update(extra)
        text = ",".join('%s="%s"' % (k, _escape(merged[k])) for k in sorted(merged))
        return "%s{%s} %s" % (name, text, _number(value)) if text else "%s %s" % (name, _number(value))

    rows = dict((name, []) for name, _help in METRICS)
    rows["mlops_drift_detected"].append(series("mlops_drift_detected", result["drifted"]))
    rows["mlops_drift_share"].append(series("mlops_drift_share", result["drifted_share"]))
    rows["mlops_drift_features"].append(series("mlops_drift_features", result["n_features"]))
    rows["mlops_drift_features_drifted"].append(series("mlops_drift_features_drifted", len(result["drifted_features"])))
    rows["mlops_drift_window_rows"].append(series("mlops_drift_window_rows", result["reference"]["rows"], window="reference"))
    rows["mlops_drift_window_rows"].append(series("mlops_drift_window_rows", result["current"]["rows"], window="current"))
    for name in sorted(result["features"]):
        feat = result["features"][name]
        rows["mlops_feature_drifted"].append(series("mlops_feature_drifted", feat["drifted"], feature=name))
        rows["mlops_feature_drift_score"].append(series("mlops_feature_drift_score", feat.get("distance"), feature=name,
                                                        metric=feat.get("distance_metric", "")))
        rows["mlops_feature_drift_threshold"].append(series("mlops_feature_drift_threshold", feat.get("distance_threshold"), feature=name,
                                                            metric=feat.get("distance_metric", "")))
        rows["mlops_feature_drift_p_value"].append(series("mlops_feature_drift_p_value", feat.get("p_value"), feature=name, test=feat.get("test", "")))
        rows["mlops_feature_psi"].append(series("mlops_feature_psi", feat.get("psi"), feature=name))
        rows["mlops_feature_missing_share"].append(series("mlops_feature_missing_share", feat.get("missing_share_reference"), feature=name,
                                                          window="reference"))
        rows["mlops_feature_missing_share"].append(series("mlops_feature_missing_share", feat.get("missing_share_current"), feature=name,
                                                          window="current"))
    lines = []
    for name, help_text in METRICS:
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s gauge" % name)
        lines.extend(rows[name])
    return "\n".join(lines) + "\n"


def model_series(result):
    """The samples of a model drift result (model_drift.run_model_checks): metric name -> list of
    (labels, value), in the order of MODEL_METRICS. Values: numbers, booleans or None (NaN)."""
    rows = dict((name, []) for name, _help in MODEL_METRICS)
    rows["mlops_model_drift_detected"].append(({}, result["drifted"]))
    rows["mlops_model_drift_checks"].append(({}, result["n_checks"]))
    for name in sorted(result["checks"]):
        check = result["checks"][name]
        metric = "z" if check["kind"] == "accuracy" else check["method"]
        rows["mlops_model_check_drifted"].append(({"check": name}, check["drifted"]))
        rows["mlops_model_check_decided"].append(({"check": name}, check["decided"]))
        rows["mlops_model_check_statistic"].append(({"check": name, "metric": metric}, check["statistic"]))
        rows["mlops_model_check_threshold"].append(({"check": name, "metric": metric}, check["threshold"]))
        if check["kind"] == "accuracy":
            rows["mlops_model_accuracy"].append(({"window": "reference"}, check["reference_accuracy"]))
            rows["mlops_model_accuracy"].append(({"window": "current"}, check["current_accuracy"]))
            rows["mlops_model_accuracy_labelled"].append(({}, check["n_current"]))
        else:
            rows["mlops_model_sequential_alarms"].append(({"check": name}, len(check["alarms"])))
    return rows


def render_model_prometheus(result, labels=None):
    """Prometheus text exposition of a model drift result (model_drift.run_model_checks), written with
    prometheus_client (its own registry; every metric a gauge, `labels` on every sample)."""
    base = validate_labels(labels, MODEL_RESERVED_LABELS)
    try:
        from prometheus_client import CollectorRegistry, Gauge, generate_latest  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MissingDependencyError("prometheus_client")
    registry = CollectorRegistry(auto_describe=True)
    help_texts = dict(MODEL_METRICS)
    for name, samples in model_series(result).items():
        extra = sorted(set(k for sample_labels, _value in samples for k in sample_labels))
        if not samples and not base:
            continue  # a gauge without labels would show a 0 it was never set to
        gauge = Gauge(name, help_texts[name], sorted(base) + extra, registry=registry)
        for sample_labels, value in samples:
            merged = dict(base)
            merged.update((k, str(v)) for k, v in sample_labels.items())
            child = gauge.labels(**dict((k, merged.get(k, "")) for k in sorted(base) + extra)) if (base or extra) else gauge
            child.set(float("nan") if value is None else float(value))
    return generate_latest(registry).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

def _html_escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


_W, _H, _PAD = 360, 170, 30
_REF_COLOR, _CUR_COLOR = "#1f77b4", "#d62728"


def _svg_ecdf(plot):
    xs = plot["reference"] + plot["current"]
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0

    def px(x):
        return _PAD + (x - lo) / span * (_W - 2 * _PAD)

    def py(p):
        return _H - _PAD + p * (2 * _PAD - _H)

    parts = []
    for values, color in ((plot["reference"], _REF_COLOR), (plot["current"], _CUR_COLOR)):
        points = " ".join("%.1f,%.1f" % (px(x), py(p)) for x, p in zip(values, plot["probs"]))
        parts.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (color, points))
    axis = ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>' % (_PAD, _H - _PAD, _W - _PAD, _H - _PAD)
            + '<text x="%d" y="%d" font-size="10">%s</text>' % (_PAD, _H - 10, _html_escape("%.4g" % lo))
            + '<text x="%d" y="%d" font-size="10" text-anchor="end">%s</text>' % (_W - _PAD, _H - 10, _html_escape("%.4g" % hi))
            + '<text x="4" y="%d" font-size="10">ECDF</text>' % (_PAD - 12))
    return '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">%s%s</svg>' % (_W, _H, axis, "".join(parts))


def _svg_bars(plot):
    cats = plot["categories"]
    top = max(plot["reference"] + plot["current"] + [1e-9])
    slot = (_W - 2 * _PAD) / float(max(len(cats), 1))
    bar_width = slot * 0.4
    parts = []
    for i, cat in enumerate(cats):
        x0 = _PAD + i * slot
        for j, (share, color) in enumerate(((plot["reference"][i], _REF_COLOR), (plot["current"][i], _CUR_COLOR))):
            height = share / top * (_H - 2 * _PAD)
            parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.4f</title></rect>'
                         % (x0 + j * bar_width, _H - _PAD - height, bar_width, height, color, _html_escape(cat), share))
        parts.append('<text x="%.1f" y="%d" font-size="9" text-anchor="middle">%s</text>' % (x0 + bar_width, _H - _PAD + 12, _html_escape(str(cat)[:8])))
    return '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">%s</svg>' % (_W, _H, "".join(parts))


def render_html(result, title="Drift report"):
    """A self-contained HTML page (inline CSS and SVG, no scripts, no external assets)."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>%s</title>' % _html_escape(title),
           "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;"
           "font-size:13px}.drift{background:#fdd}.ok{background:#dfd}.feat{display:inline-block;vertical-align:top;margin:8px;"
           "border:1px solid #ddd;padding:6px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px}</style></head><body>",
           "<h1>%s</h1>" % _html_escape(title),
           '<p class="%s"><b>%s</b></p>' % ("drift" if result["drifted"] else "ok", _html_escape(result["summary"])),
           "<p>Reference profile %s (%d rows); current window %s (%d rows). Correction: %s, alpha %s.</p>" % (
               _html_escape(result["reference"]["content_hash"]), result["reference"]["rows"], _html_escape(result["current"]["source"]),
               result["current"]["rows"], _html_escape(result["settings"]["correction"]), result["settings"]["alpha"]),
           '<p class="legend"><span style="background:%s"></span>reference <span style="background:%s"></span>current</p>' % (_REF_COLOR, _CUR_COLOR),
           "<table><tr><th>feature</th><th>type</th><th>drifted</th><th>rule</th><th>test</th><th>statistic</th><th>p-value (corrected)</th>"
           "<th>distance</th><th>threshold</th><th>PSI (noise)</th><th>missing ref / cur</th><th>n ref / cur</th></tr>"]
    for name in sorted(result["features"]):
        f = result["features"][name]
        out.append('<tr class="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.4g</td><td>%.4g</td><td>%s %.4g</td>'
                   "<td>%.4g</td><td>%.4g (%.2g)</td><td>%.3f / %.3f</td><td>%d / %d</td></tr>" % (
                       "drift" if f["drifted"] else "ok", _html_escape(name), f["type"], "yes" if f["drifted"] else "no",
                       _html_escape(f["rule_detail"]), f["test"], f["statistic"], f["p_value"], f["distance_metric"], f["distance"],
                       f["threshold"], f["psi"], f["psi_noise"], f["missing_share_reference"], f["missing_share_current"],
                       f["n_reference"], f["n_current"]))
    out.append("</table><h2>Distributions</h2>")
    for name in sorted(result["features"]):
        plot = result["features"][name].get("_plot")
        if not plot:
            continue
        svg = _svg_ecdf(plot) if plot["kind"] == "ecdf" else _svg_bars(plot)
        out.append('<div class="feat"><b>%s</b><br>%s</div>' % (_html_escape(name), svg))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
