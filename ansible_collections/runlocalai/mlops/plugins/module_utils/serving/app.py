# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model serving app of the model_server role: one registered model version over HTTP.

Plain Python (imports nothing from Ansible; siblings by relative imports only), so the role installs
this very file on serving hosts as part of a small package and runs it with

    python -m runlocalai_mlops.serving --config /etc/runlocalai-model/<name>.json

Endpoints (docs/model_server.md): GET /health, GET /ready, GET /v1/models, POST /v1/predict,
POST /v1/feedback, GET /metrics. One process; requests are handled by threads (at most `threads`
predictions run at once), so metrics, the feedback accuracy and the drift window are exact without
any cross-process aggregation.

Needs mlflow (and what the model needs, e.g. scikit-learn), numpy and pandas at run time; they are
imported when the model loads, so this file imports with the standard library alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import collections
import datetime
import hashlib
import hmac
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid

from ..common.canonical import canonical_json
from ..drift.tables import format_serving_record, serving_record

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

APP_NAME = "runlocalai-model"
CONFIG_FORMAT = "runlocalai.mlops/model-server-config"
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
ENDPOINTS = {
    ("GET", "/health"): "health",
    ("GET", "/ready"): "ready",
    ("GET", "/v1/models"): "models",
    ("POST", "/v1/predict"): "predict",
    ("POST", "/v1/feedback"): "feedback",
    ("GET", "/metrics"): "metrics",
}

DEFAULTS = {
    "alias": None,
    "run_id": None,
    "listen_address": "127.0.0.1",
    "port": 8080,
    "threads": 4,
    "max_body_bytes": 1048576,
    "max_instances": 1000,
    "sample_rate": 0.1,
    "window_max_bytes": 67108864,
    "window_file_max_bytes": 8388608,
    "window_max_age_hours": 168,
    "audit_max_bytes": 16777216,
    "audit_backup_count": 5,
    "feedback_window": 500,
    "feedback_memory": 100000,
    "cache_keep": 2,
    "token_file": None,
    "device": "cpu",
    "load_retry_max_seconds": 60,
}


class ServingError(Exception):
    """A request the app refuses: HTTP status, message, and the field it names (if any)."""

    def __init__(self, status, message, field=None):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.field = field


class ConfigError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

def load_config(path):
    """Read and check the instance configuration file (JSON written by the role)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError("config: cannot read %s: %s" % (path, exc))
    return make_config(raw, source=path)


def make_config(raw, source="config"):
    if not isinstance(raw, dict):
        raise ConfigError("%s: must hold a JSON object" % source)
    config = dict(DEFAULTS)
    config.update(raw)
    for key in ("name", "version", "model_uri", "state_dir", "log_dir"):
        if not config.get(key):
            raise ConfigError("%s: '%s' is required" % (source, key))
    config["version"] = str(config["version"])
    if not NAME_RE.match(config["name"]):
        raise ConfigError("%s: name %r: use letters, digits, '_', '.', '-' (it names files and units)" % (source, config["name"]))
    for key in ("port", "threads", "max_body_bytes", "max_instances", "window_max_bytes", "window_file_max_bytes",
                "audit_max_bytes", "audit_backup_count", "feedback_window", "feedback_memory", "cache_keep",
                "window_max_age_hours", "load_retry_max_seconds"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "port" else 1):
            raise ConfigError("%s: %s must be a positive integer, got %r" % (source, key, value))
    rate = config["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ConfigError("%s: sample_rate must be a number in [0, 1], got %r" % (source, rate))
    if config["device"] not in ("cpu", "cuda"):
        raise ConfigError("%s: device must be cpu or cuda, got %r" % (source, config["device"]))
    config.setdefault("cache_dir", os.path.join(config["state_dir"], "cache"))
    config.setdefault("window_dir", os.path.join(config["state_dir"], "window"))
    config.setdefault("feedback_dir", os.path.join(config["state_dir"], "feedback"))
    config.setdefault("audit_path", os.path.join(config["log_dir"], "audit.jsonl"))
    return config


def read_token(path):
    """The bearer token for /v1/*: the first line of a file (the role writes it 0640 root:group)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            token = handle.readline().strip()
    except OSError as exc:
        raise ConfigError("token_file: cannot read %s: %s" % (path, exc))
    if len(token) < 16:
        raise ConfigError("token_file: %s holds a token shorter than 16 characters" % path)
    return token


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def utc_now_text(now=None):
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-27T10:00:00.123Z."""
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def input_hash(body, parsed=None):
    """SHA-256 of the canonical input: the canonical JSON (sorted keys, compact, UTF-8) of the parsed
    body, or of the raw bytes when the body is not JSON. The same input in any key order or spacing
    gives the same hash."""
    if parsed is not None:
        data = canonical_json(parsed).encode("utf-8")
    else:
        data = body or b""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _finite_float(text):
    # 1e999 parses to inf: refused like the NaN/Infinity constants, before anything hashes the input.
    value = float(text)
    if math.isinf(value):
        raise ValueError("number %s is out of range" % text)
    return value


def parse_json_body(body):
    if not body:
        raise ServingError(400, "the request body is empty; send a JSON object")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ServingError(400, "the request body is not valid JSON: %s" % exc)


def to_python(value):
    """numpy scalars and arrays -> plain Python (JSON-serialisable)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return value


def class_key(value):
    """Canonical text of a class label (1, 1.0 and "1" are the same class)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------------
# metrics (Prometheus text format 0.0.4; one process, so plain locked counters are exact)
# ---------------------------------------------------------------------------------------------

def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(names, values, extra=None):
    pairs = list(zip(names, values)) + (extra or [])
    if not pairs:
        return ""
    return "{" + ",".join('%s="%s"' % (k, _escape_label(v)) for k, v in pairs) + "}"


def _number(value):
    if value == math.inf:
        return "+Inf"
    return repr(value)


class Metric:
    def __init__(self, name, kind, doc, labelnames, buckets=None):
        self.name = name
        self.kind = kind
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(buckets or ())
        self.values = collections.OrderedDict()

    def render(self):
        lines = ["# HELP %s %s" % (self.name, self.doc), "# TYPE %s %s" % (self.name, self.kind)]
        for labels, value in self.values.items():
            if self.kind == "histogram":
                counts, total, count = value
                running = 0
                for bound, hits in zip(self.buckets + (math.inf,), counts):
                    running += hits
                    lines.append("%s_bucket%s %s" % (self.name, _labels_text(self.labelnames, labels, [("le", _number(float(bound)))]),
                                                     running))
                lines.append("%s_sum%s %s" % (self.name, _labels_text(self.labelnames, labels), _number(float(total))))
                lines.append("%s_count%s %d" % (self.name, _labels_text(self.labelnames, labels), count))
            else:
                lines.append("%s%s %s" % (self.name, _labels_text(self.labelnames, labels), _number(float(value))))
        return "\n".join(lines) + "\n"


class Metrics:
    """The contract metrics of the model server (names and labels: docs/model_server.md)."""

    def __init__(self, model, version, run_id, alias):
        self.lock = threading.Lock()
        self.model = model
        self.version = version
        base = ("model", "version")
        self.requests = Metric("mlops_model_requests_total", "counter", "HTTP requests by endpoint and status code.",
                               base + ("endpoint", "status"))
        self.duration = Metric("mlops_model_request_duration_seconds", "histogram", "Request latency in seconds.",
                               base + ("endpoint",), LATENCY_BUCKETS)
        self.confidence = Metric("mlops_model_prediction_confidence", "histogram",
                                 "Confidence (largest class probability) of each prediction.", base, CONFIDENCE_BUCKETS)
        self.predictions = Metric("mlops_model_predictions_total", "counter", "Predictions by predicted class.", base + ("class",))
        self.info = Metric("mlops_model_info", "gauge", "The served model version (always 1).", ("model", "version", "run_id", "alias"))
        self.ready = Metric("mlops_model_ready", "gauge", "1 when the model is loaded and requests are served.", base)
        self.feedback = Metric("mlops_model_feedback_total", "counter", "Labelled predictions received on /v1/feedback.", base)
        self.accuracy = Metric("mlops_model_feedback_accuracy", "gauge", "Accuracy over the last N labelled predictions.", base)
        self.all = (self.requests, self.duration, self.confidence, self.predictions, self.info, self.ready, self.feedback, self.accuracy)
        self.info.values[(model, version, run_id or "", alias or "")] = 1
        self.ready.values[(model, version)] = 0
        self.feedback.values[(model, version)] = 0

    def _observe(self, metric, labels, value):
        slot = metric.values.get(labels)
        if slot is None:
            slot = metric.values[labels] = [[0] * (len(metric.buckets) + 1), 0.0, 0]
        counts = slot[0]
        for i, bound in enumerate(metric.buckets):
            if value <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        slot[1] += value
        slot[2] += 1

    def request(self, endpoint, status, seconds):
        with self.lock:
            key = (self.model, self.version, endpoint, str(status))
            self.requests.values[key] = self.requests.values.get(key, 0) + 1
            self._observe(self.duration, (self.model, self.version, endpoint), seconds)

    def predicted(self, classes, confidences):
        with self.lock:
            for label in classes:
                key = (self.model, self.version, label)
                self.predictions.values[key] = self.predictions.values.get(key, 0) + 1
            for value in confidences:
                self._observe(self.confidence, (self.model, self.version), value)

    def set_ready(self, ready):
        with self.lock:
            self.ready.values[(self.model, self.version)] = 1 if ready else 0

    def feedback_received(self, count, accuracy):
        with self.lock:
            key = (self.model, self.version)
            self.feedback.values[key] = self.feedback.values.get(key, 0) + count
            if accuracy is not None:
                self.accuracy.values[key] = accuracy

    def render(self):
        with self.lock:
            return "".join(m.render() for m in self.all)


# ---------------------------------------------------------------------------------------------
# on-disk records: audit log, drift window, feedback
# ---------------------------------------------------------------------------------------------

class AuditLog:
    """JSON lines, one per /v1 request, rotated by size (audit.jsonl, audit.jsonl.1, ... audit.jsonl.N;
    the oldest is dropped). Holds hashes of inputs, never the inputs."""

    def __init__(self, path, max_bytes, backup_count):
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.lock = threading.Lock()
        self.handle = open(path, "a", encoding="utf-8")
        self.size = self.handle.tell()

    def _rotate(self):
        self.handle.close()
        for index in range(self.backup_count - 1, 0, -1):
            older = "%s.%d" % (self.path, index)
            if os.path.exists(older):
                os.replace(older, "%s.%d" % (self.path, index + 1))
        os.replace(self.path, self.path + ".1")
        self.handle = open(self.path, "a", encoding="utf-8")
        self.size = 0

    def write(self, entry):
        line = canonical_json(entry) + "\n"
        size = len(line.encode("utf-8"))
        with self.lock:
            if self.handle is None:
                return
            if self.size and self.size + size > self.max_bytes:
                self._rotate()
            self.handle.write(line)
            self.handle.flush()
            self.size += size

    def close(self):
        with self.lock:
            if self.handle is not None:
                self.handle.close()
                self.handle = None


class JsonlWindow:
    """A size-bounded rolling window of JSON-lines files in one directory (the serving-window format of
    docs/drift.md for the drift window; the feedback format for labels).

    Files are named <prefix>-YYYYMMDDHH-NNN.jsonl (UTC hour, sequence), so name order is time order; a
    file is closed at the hour or at `file_max_bytes`. After each new file, the oldest files are removed
    while the directory holds more than `max_bytes` or a file is older than `max_age_hours`.
    Each record is one write of one complete line, flushed, so a reader sees whole lines (a line being
    written at the very end is skipped by drift_io)."""

    def __init__(self, directory, prefix, max_bytes, file_max_bytes, max_age_hours):
        self.directory = directory
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.file_max_bytes = min(file_max_bytes, max_bytes)
        self.max_age = max_age_hours * 3600
        self.lock = threading.Lock()
        self.handle = None
        self.hour = None
        self.size = 0
        self.re = re.compile(r"^%s-(\d{10})-(\d{3,})\.jsonl$" % re.escape(prefix))

    def files(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(n for n in names if self.re.match(n))

    def _open(self, hour):
        seq = 0
        for name in self.files():
            match = self.re.match(name)
            if match.group(1) == hour:
                seq = max(seq, int(match.group(2)) + 1)
        path = os.path.join(self.directory, "%s-%s-%03d.jsonl" % (self.prefix, hour, seq))
        self.handle = open(path, "a", encoding="utf-8")
        self.hour = hour
        self.size = 0
        self._prune(keep=os.path.basename(path))

    def _prune(self, keep):
        now = time.time()
        entries = []
        for name in self.files():
            path = os.path.join(self.directory, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            entries.append((name, path, stat.st_size, stat.st_mtime))
        total = sum(e[2] for e in entries)
        for name, path, size, mtime in entries:
            if name == keep:
                continue
            if total > self.max_bytes or now - mtime > self.max_age:
                try:
                    os.unlink(path)
                    total -= size
                except OSError:
                    pass

    def write_lines(self, lines, now=None):
        data = "".join(lines)
        if not data:
            return
        hour = time.strftime("%Y%m%d%H", time.gmtime(time.time() if now is None else now))
        with self.lock:
            if self.handle is None or hour != self.hour or self.size + len(data) > self.file_max_bytes and self.size > 0:
                self.close_locked()
                self._open(hour)
            self.handle.write(data)
            self.handle.flush()
            self.size += len(data.encode("utf-8"))

    def close_locked(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def close(self):
        with self.lock:
            self.close_locked()


class FeedbackTracker:
    """Recent predictions by request id, and the accuracy over the last `window` labelled ones.
    A later label for the same prediction replaces the earlier one."""

    def __init__(self, window, memory):
        self.lock = threading.Lock()
        self.window = window
        self.memory = memory
        self.predictions = collections.OrderedDict()   # request_id -> [class keys]
        self.labelled = collections.OrderedDict()      # (request_id, instance) -> correct (bool)

    def remember(self, request_id, predictions):
        with self.lock:
            self.predictions[request_id] = [class_key(p) for p in predictions]
            while len(self.predictions) > self.memory:
                self.predictions.popitem(last=False)

    def label(self, request_id, items):
        """items: list of (instance, label). Returns (count, accuracy)."""
        with self.lock:
            predicted = self.predictions.get(request_id)
            if predicted is None:
                raise ServingError(404, "request_id %r: no recent prediction with this id (unknown, too old, or made "
                                        "before the service restarted)" % request_id, "request_id")
            for instance, _label in items:
                if not 0 <= instance < len(predicted):
                    raise ServingError(422, "instance: %d is out of range; request %r scored %d instance(s)"
                                       % (instance, request_id, len(predicted)), "instance")
            for instance, label in items:
                key = (request_id, instance)
                self.labelled.pop(key, None)
                self.labelled[key] = predicted[instance] == class_key(label)
                while len(self.labelled) > self.window:
                    self.labelled.popitem(last=False)
            correct = sum(1 for v in self.labelled.values() if v)
            return len(items), correct / float(len(self.labelled))


# ---------------------------------------------------------------------------------------------
# input schema
# ---------------------------------------------------------------------------------------------

NUMERIC_TYPES = ("integer", "long", "float", "double")
DTYPES = {"integer": "int32", "long": "int64", "float": "float32", "double": "float64", "boolean": "bool"}


class InputSchema:
    """The model signature's column schema: names, types and which are required."""

    def __init__(self, columns):
        self.columns = columns                    # list of (name, type, required)
        self.by_name = dict((c[0], c) for c in columns)

    @classmethod
    def from_mlflow(cls, schema):
        if schema is None:
            return None
        try:
            if not schema.has_input_names():
                return None
        except AttributeError:
            return None
        columns = []
        for spec in schema.inputs:
            kind = getattr(spec, "type", None)
            kind = getattr(kind, "name", str(kind))
            columns.append((spec.name, kind, bool(getattr(spec, "required", True))))
        return cls(columns)

    def describe(self):
        return [{"name": n, "type": t, "required": r} for n, t, r in self.columns]


def _type_error(field, index, kind, value):
    shown = json.dumps(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return ServingError(422, "field %r (instance %d): expected %s, got %s %s" % (field, index, kind, type(value).__name__, shown), field)


def check_value(field, index, kind, value):
    """A JSON scalar checked (and normalised) against a signature column type."""
    if kind in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(field, index, kind, value)
        if kind in ("integer", "long"):
            if isinstance(value, float):
                if not value.is_integer():
                    raise _type_error(field, index, kind, value)
                value = int(value)
            if kind == "integer" and not -2 ** 31 <= value < 2 ** 31:
                raise ServingError(422, "field %r (instance %d): %d does not fit a 32-bit integer" % (field, index, value), field)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(field, index, kind, value)
        return value
    if kind in ("string", "datetime", "binary"):
        if not isinstance(value, str):
            raise _type_error(field, index, kind, value)
        return value
    if isinstance(value, (dict, list)):
        raise _type_error(field, index, "a scalar", value)
    return value


def parse_instances(payload, max_instances):
    """The instances of a predict request as a list of dicts. Accepted bodies:
    {"records": [{...}, ...]} / {"dataframe_records": [...]} (rows), {"columns": {"f": [...], ...}}
    (columns), {"dataframe_split": {"columns": [...], "data": [[...], ...]}} (MLflow's split form)."""
    if not isinstance(payload, dict):
        raise ServingError(400, "the body must be a JSON object with 'records', 'columns', 'dataframe_records' or 'dataframe_split'")
    keys = [k for k in ("records", "dataframe_records", "columns", "dataframe_split") if k in payload]
    if len(keys) != 1:
        raise ServingError(400, "give exactly one of 'records', 'columns', 'dataframe_records', 'dataframe_split' (got %s)"
                           % (", ".join(sorted(payload)) or "none"))
    key = keys[0]
    value = payload[key]
    if key in ("records", "dataframe_records"):
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise ServingError(400, "%s: must be a list of objects (one per instance)" % key, key)
        records = value
    elif key == "columns":
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise ServingError(400, "columns: must be an object of field name -> list of values", key)
        lengths = set(len(v) for v in value.values())
        if len(lengths) > 1:
            raise ServingError(400, "columns: the lists have different lengths (%s)" % ", ".join(
                "%s: %d" % (k, len(v)) for k, v in sorted(value.items())), key)
        count = lengths.pop() if lengths else 0
        names = list(value)
        records = [dict((n, value[n][i]) for n in names) for i in range(count)]
    else:
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) or not isinstance(value.get("data"), list):
            raise ServingError(400, "dataframe_split: must be an object with 'columns' (list) and 'data' (list of rows)", key)
        names = value["columns"]
        records = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(names):
                raise ServingError(400, "dataframe_split.data[%d]: must be a list of %d values" % (i, len(names)), key)
            records.append(dict(zip(names, row)))
    if not records:
        raise ServingError(400, "%s: no instances to score" % key, key)
    if len(records) > max_instances:
        raise ServingError(413, "%s: %d instances in one request; the limit is %d" % (key, len(records), max_instances), key)
    return records


def validate_records(records, schema):
    """Check every instance against the schema: a missing required field, an unknown field, a null in a
    required field or a value of the wrong type is a 422 naming the field. Returns column -> values."""
    if schema is None:
        names = []
        for record in records:
            for name in record:
                if name not in names:
                    names.append(name)
        columns = dict((n, []) for n in names)
        for index, record in enumerate(records):
            for name in names:
                columns[name].append(check_value(name, index, None, record.get(name)))
        return names, columns
    names = [c[0] for c in schema.columns]
    columns = dict((n, []) for n in names)
    for index, record in enumerate(records):
        for field in record:
            if field not in schema.by_name:
                raise ServingError(422, "field %r (instance %d) is not in the model's input schema (it has: %s)"
                                   % (field, index, ", ".join(names)), field)
        for name, kind, required in schema.columns:
            value = record.get(name)
            if value is None:
                if required:
                    what = "missing required field" if name not in record else "null in required field"
                    raise ServingError(422, "%s %r (instance %d)" % (what, name, index), name)
                columns[name].append(None)
            else:
                columns[name].append(check_value(name, index, kind, value))
    return names, columns


def build_frame(names, columns, schema):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import pandas as pd  # pylint: disable=import-outside-toplevel
    data = collections.OrderedDict()
    for name in names:
        values = columns[name]
        kind = schema.by_name[name][1] if schema is not None else None
        dtype = DTYPES.get(kind)
        if dtype and None not in values:
            data[name] = np.asarray(values, dtype=dtype)
        elif kind in ("float", "double") or (kind in ("integer", "long") and None in values):
            data[name] = np.asarray([np.nan if v is None else v for v in values], dtype="float64")
        else:
            data[name] = pd.Series(values, dtype="object")
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------------------------
# model loading
# ---------------------------------------------------------------------------------------------

class _FileLock:
    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def fetch_model(model_uri, cache_dir, version, keep=2, downloader=None):
    """The local directory of the model: `model_uri` itself when it is a local directory, otherwise a
    download (with the process's MLFLOW_TRACKING_* credentials) cached in <cache_dir>/<version>.
    A version already in the cache is not downloaded again; older versions beyond `keep` are removed."""
    if os.path.isdir(model_uri):
        return model_uri
    target = os.path.join(cache_dir, str(version))
    marker = os.path.join(target, ".complete")
    if os.path.exists(marker):
        with open(marker, "r", encoding="utf-8") as handle:
            return os.path.join(target, handle.read().strip())
    if not os.path.isdir(cache_dir):
        os.makedirs(cache_dir, 0o750)
    with _FileLock(os.path.join(cache_dir, ".lock")):
        if os.path.exists(marker):
            with open(marker, "r", encoding="utf-8") as handle:
                return os.path.join(target, handle.read().strip())
        if os.path.exists(target):
            shutil.rmtree(target)
        staging = tempfile.mkdtemp(prefix=".download-", dir=cache_dir)
        try:
            if downloader is None:
                import mlflow.artifacts  # pylint: disable=import-outside-toplevel
                local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=staging)
            else:
                local = downloader(model_uri, staging)
            relative = os.path.relpath(local, staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(relative + "\n")
    prune_cache(cache_dir, keep, current=str(version))
    return os.path.join(target, relative)


def prune_cache(cache_dir, keep, current):
    versions = []
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        versions.append((os.stat(path).st_mtime, name))
    versions.sort(reverse=True)
    others = [name for _mtime, name in versions if name != current]
    for name in others[max(keep - 1, 0):]:
        shutil.rmtree(os.path.join(cache_dir, name), ignore_errors=True)


class LoadedModel:
    """A pyfunc model plus what the server needs from it: the input schema, and the classifier behind
    it (predict_proba and classes) when the flavour exposes one."""

    def __init__(self, path):
        import mlflow.pyfunc  # pylint: disable=import-outside-toplevel
        self.path = path
        self.pyfunc = mlflow.pyfunc.load_model(path)
        metadata = self.pyfunc.metadata
        self.schema = InputSchema.from_mlflow(metadata.get_input_schema())
        self.run_id = getattr(metadata, "run_id", None)
        raw = None
        impl = getattr(self.pyfunc, "_model_impl", None)
        for candidate in (getattr(impl, "sklearn_model", None), getattr(impl, "model", None)):
            if candidate is not None:
                raw = candidate
                break
        if raw is None:
            try:
                raw = self.pyfunc.get_raw_model()
            except Exception:  # pylint: disable=broad-except
                raw = None
        self.classifier = raw if (hasattr(raw, "predict_proba") and hasattr(raw, "classes_")) else None
        self.classes = to_python(self.classifier.classes_) if self.classifier is not None else None
        self.fast = None
        try:
            self.fast = SklearnFastPath.build(self, impl, raw)
        except Exception:  # pylint: disable=broad-except
            self.fast = None  # any doubt: the pyfunc path

    def predict_columns(self, names, columns):
        """Predict validated columns (validate_records' output): the fast path when the model has one,
        otherwise a DataFrame through the pyfunc model. Same results either way."""
        if self.fast is not None:
            result = self.fast.predict(names, columns)
            if result is not None:
                return result
        return self.predict(build_frame(names, columns, self.schema))

    def predict(self, frame):
        predictions = self.pyfunc.predict(frame)
        if hasattr(predictions, "to_dict") and hasattr(predictions, "columns"):
            predictions = predictions.to_dict(orient="records")
        else:
            predictions = to_python(predictions)
        probabilities = None
        if self.classifier is not None:
            probabilities = to_python(self.classifier.predict_proba(frame))
        return predictions, probabilities


class SklearnFastPath:
    """The pyfunc model's own prediction, without the per-request pandas work, for the common case:
    an MLflow scikit-learn model (pyfunc predict_fn `predict`) whose signature has only required
    `double` columns, the same names the estimator was fitted with, in the same order.

    For such a model, pyfunc `predict(frame)` is: schema enforcement (which changes nothing in a frame
    of float64 columns in schema order, as build_frame makes it), then `sklearn_model.predict(frame)`,
    whose first step turns the frame into the float64 array of its columns. This path builds that
    array directly (same values, same memory layout as pandas' column block) and runs the same
    estimator methods on it; for a Pipeline, the transforms run once and the final step's `predict`
    and `predict_proba` both use the result, exactly as `Pipeline.predict` / `predict_proba` would
    each compute it. It is only used after a self-check at load time: predictions and probabilities
    of both paths on a synthetic batch and a single row must be bit-for-bit equal, or the model keeps
    the pyfunc path."""

    FEATURE_NAMES_WARNING = r"X does not have valid feature names, but \w+ was fitted with feature names"

    def __init__(self, names, transforms, final, classifier):
        import numpy  # pylint: disable=import-outside-toplevel
        import sklearn  # pylint: disable=import-outside-toplevel
        self.np = numpy
        self.sklearn = sklearn
        self.names = names
        self.transforms = transforms
        self.final = final
        self.classifier = classifier

    @classmethod
    def build(cls, loaded, impl, raw):
        """The fast path for a LoadedModel, or None when it does not apply or its results differ."""
        pyfunc = loaded.pyfunc
        schema = loaded.schema
        if raw is None or impl is None or schema is None or getattr(impl, "sklearn_model", None) is not raw:
            return None
        if not type(impl).__module__.startswith("mlflow.sklearn") or type(impl).__name__ != "_SklearnModelWrapper":
            return None
        predict_fn = getattr(pyfunc, "_predict_fn", None)
        if getattr(predict_fn, "__func__", None) is not type(impl).predict or getattr(predict_fn, "__self__", None) is not impl:
            return None
        metadata = pyfunc.metadata
        try:
            if metadata._is_signature_from_type_hint() or metadata.get_params_schema() is not None:  # pylint: disable=protected-access
                return None
        except AttributeError:
            return None
        if not schema.columns or any(kind != "double" or not required for _name, kind, required in schema.columns):
            return None
        names = [c[0] for c in schema.columns]
        steps = getattr(raw, "steps", None)
        if steps is not None:
            if type(raw).__name__ != "Pipeline" or not type(raw).__module__.startswith("sklearn."):
                return None
            transforms = [step for _name, step in steps[:-1] if step is not None and step != "passthrough"]
            final = steps[-1][1]
            if any(not hasattr(step, "transform") for step in transforms) or not hasattr(final, "predict"):
                return None
        else:
            transforms, final = [], raw
        first = transforms[0] if transforms else final
        fitted = getattr(first, "feature_names_in_", None)
        if fitted is not None and [str(n) for n in fitted] != names:
            return None
        classifier = final if loaded.classifier is not None else None
        if loaded.classifier is not None and not hasattr(final, "predict_proba"):
            return None
        import warnings  # pylint: disable=import-outside-toplevel
        if fitted is not None:
            # the array has no column names; they were checked above, once, instead of per request
            warnings.filterwarnings("ignore", message=cls.FEATURE_NAMES_WARNING, category=UserWarning, module=r"sklearn\.")
        fast = cls(names, transforms, final, classifier)
        return fast if fast.self_check(loaded) else None

    def self_check(self, loaded):
        """Both paths on synthetic inputs (a batch of 9 rows and one row): bit-for-bit equal results."""
        count = len(self.names)
        rows = [[0.0] * count, [1.0] * count, [-1.0] * count, [float(i) for i in range(count)],
                [float(count - i) * 0.5 for i in range(count)], [1e3 * (-1) ** i for i in range(count)],
                [0.1 * i * (-1) ** i for i in range(count)], [1e-3] * count, [123.456] * count]
        for batch in (rows, rows[3:4]):
            columns = dict((name, [row[i] for row in batch]) for i, name in enumerate(self.names))
            fast = self.predict(self.names, columns)
            slow = loaded.predict(build_frame(self.names, columns, loaded.schema))
            if fast is None or fast != slow or any(type(a) is not type(b) for a, b in zip(fast[0], slow[0])):
                return False
        return True

    def predict(self, names, columns):
        """(predictions, probabilities) as LoadedModel.predict gives them for the same columns; None when
        an input or intermediate value is not finite (the caller then takes the pyfunc path, which
        refuses such data exactly as before)."""
        finite = self.np.isfinite
        data = self.np.array([columns[name] for name in names], dtype=self.np.float64).T  # like pandas' 2-D block
        if not finite(data).all():
            return None
        # scikit-learn's own finiteness checks are skipped (a third of its per-call time on one row):
        # every array it gets here is checked above and below instead, with the same outcome
        with self.sklearn.config_context(assume_finite=True):
            for step in self.transforms:
                data = step.transform(data)
                if not isinstance(data, self.np.ndarray) or data.dtype.kind != "f" or not finite(data).all():
                    return None
            predictions = to_python(self.final.predict(data))
            probabilities = to_python(self.final.predict_proba(data)) if self.classifier is not None else None
        return predictions, probabilities


# ---------------------------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------------------------

class ModelServer:
    """Request handling, independent of the HTTP layer: handle() takes method, path, headers and body
    and returns (status, headers, body bytes)."""

    def __init__(self, config, loader=None, rng=None, clock=None):
        self.config = config
        self.name = config["name"]
        self.version = config["version"]
        self.metrics = Metrics(self.name, self.version, config.get("run_id"), config.get("alias"))
        self.loader = loader or (lambda: LoadedModel(fetch_model(config["model_uri"], config["cache_dir"], self.version,
                                                                 config["cache_keep"])))
        self.model = None
        self.loaded_at = None
        self.load_error = None
        self.token = read_token(config["token_file"]) if config.get("token_file") else None
        self.slots = threading.BoundedSemaphore(config["threads"])
        self.rng = rng or random.Random()
        self.clock = clock or time.time
        for key in ("window_dir", "feedback_dir", "log_dir"):
            if not os.path.isdir(config[key]):
                os.makedirs(config[key], 0o750)
        self.audit = AuditLog(config["audit_path"], config["audit_max_bytes"], config["audit_backup_count"])
        self.window = JsonlWindow(config["window_dir"], "window", config["window_max_bytes"], config["window_file_max_bytes"],
                                  config["window_max_age_hours"])
        self.feedback_log = JsonlWindow(config["feedback_dir"], "feedback", config["window_max_bytes"], config["window_file_max_bytes"],
                                        config["window_max_age_hours"])
        self.feedback = FeedbackTracker(config["feedback_window"], config["feedback_memory"])
        self.stopping = threading.Event()

    # -- loading --------------------------------------------------------------------------------
    def load(self):
        """Load the model once (raises on failure)."""
        model = self.loader()
        self.model = model
        self.loaded_at = utc_now_text(self.clock())
        self.load_error = None
        self.metrics.set_ready(True)
        return model

    def try_load(self, log=None):
        """One load attempt: True when the model is loaded; a failure is kept for /ready and logged."""
        try:
            self.load()
        except Exception as exc:  # pylint: disable=broad-except
            self.load_error = "%s: %s" % (type(exc).__name__, exc)
            if log:
                log("loading model %s version %s failed: %s" % (self.name, self.version, self.load_error))
            return False
        if log:
            log("model %s version %s loaded" % (self.name, self.version))
        return True

    def load_forever(self, log=None, first_delay=2):
        """Retry loading with exponential backoff (capped at load_retry_max_seconds) until it works or
        the server stops (run in a thread)."""
        delay = first_delay
        while not self.stopping.is_set() and not self.try_load(log):
            self.stopping.wait(delay)
            delay = min(delay * 2, self.config["load_retry_max_seconds"])

    def close(self):
        self.stopping.set()
        self.audit.close()
        self.window.close()
        self.feedback_log.close()

    # -- dispatch -----------------------------------------------------------------------------------
    def handle(self, method, path, headers, body):
        started = time.perf_counter()
        path = path.split("?", 1)[0]
        request_id = headers.get("x-request-id") or ""
        if not REQUEST_ID_RE.match(request_id):
            request_id = uuid.uuid4().hex
        endpoint = ENDPOINTS.get((method, path))
        parsed = None
        instances = None
        try:
            if endpoint is None:
                if any(p == path for _m, p in ENDPOINTS):
                    raise ServingError(405, "method %s is not allowed on %s" % (method, path))
                raise ServingError(404, "no such endpoint: %s" % path)
            if path.startswith("/v1/") and self.token is not None:
                self._authorize(headers)
            if method == "POST":
                parsed = parse_json_body(body)
            status, payload, content_type = getattr(self, "_" + endpoint)(request_id, parsed)
            if endpoint == "predict":
                instances = len(payload["predictions"])
        except ServingError as exc:
            status, content_type = exc.status, "application/json"
            payload = {"error": exc.message, "request_id": request_id}
            if exc.field is not None:
                payload["field"] = exc.field
        except Exception as exc:  # pylint: disable=broad-except
            status, content_type = 500, "application/json"
            payload = {"error": "internal error: %s" % type(exc).__name__, "request_id": request_id}
            sys.stderr.write("request %s: %s: %s\n" % (request_id, type(exc).__name__, exc))
        if isinstance(payload, dict):
            data = (canonical_json(payload) + "\n").encode("utf-8")
        else:
            data = payload.encode("utf-8")
        elapsed = time.perf_counter() - started
        label = endpoint or "other"
        self.metrics.request(label, status, elapsed)
        if path.startswith("/v1/"):
            entry = {"ts": utc_now_text(self.clock()), "model": self.name, "version": self.version, "request_id": request_id,
                     "method": method, "endpoint": label, "status": status, "latency_ms": round(elapsed * 1000.0, 3),
                     "input_sha256": input_hash(body, parsed) if method == "POST" else None}
            if instances is not None:
                entry["instances"] = instances
            self.audit.write(entry)
        out_headers = [("Content-Type", content_type), ("X-Request-ID", request_id)]
        if status == 401:
            out_headers.append(("WWW-Authenticate", 'Bearer realm="%s"' % APP_NAME))
        return status, out_headers, data

    def _authorize(self, headers):
        given = headers.get("authorization") or ""
        scheme, _sep, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"), self.token.encode("utf-8")):
            raise ServingError(401, "a valid bearer token is required for /v1/*")

    # -- endpoints (each returns status, payload, content type) ------------------------------------
    def _health(self, request_id, _parsed):
        return 200, {"status": "alive", "request_id": request_id}, "application/json"

    def _ready(self, request_id, _parsed):
        if self.model is None:
            payload = {"ready": False, "status": "error" if self.load_error else "loading", "request_id": request_id}
            if self.load_error:
                payload["error"] = self.load_error
            return 503, payload, "application/json"
        return 200, {"ready": True, "status": "ready", "model": self.name, "version": self.version, "request_id": request_id}, \
            "application/json"

    def _models(self, request_id, _parsed):
        entry = {"name": self.name, "version": self.version, "run_id": self.config.get("run_id"), "alias": self.config.get("alias"),
                 "model_uri": self.config["model_uri"], "ready": self.model is not None, "loaded_at": self.loaded_at}
        if self.model is not None:
            entry["run_id"] = entry["run_id"] or self.model.run_id
            entry["input_schema"] = self.model.schema.describe() if self.model.schema is not None else None
            entry["classes"] = self.model.classes
        return 200, {"models": [entry], "request_id": request_id}, "application/json"

    def _metrics(self, _request_id, _parsed):
        return 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"

    def _predict(self, request_id, parsed):
        model = self.model
        if model is None:
            raise ServingError(503, "the model is not loaded yet")
        records = parse_instances(parsed, self.config["max_instances"])
        names, columns = validate_records(records, model.schema)
        with self.slots:
            predictions, probabilities = model.predict_columns(names, columns)
        payload = {"request_id": request_id, "model": self.name, "version": self.version, "predictions": predictions}
        confidences = None
        if probabilities is not None:
            confidences = [max(row) for row in probabilities]
            payload["classes"] = model.classes
            payload["probabilities"] = probabilities
            payload["confidence"] = confidences
            self.metrics.predicted([class_key(p) for p in predictions], confidences)
            self.feedback.remember(request_id, predictions)
        elif all(not isinstance(p, (dict, list)) for p in predictions):
            self.feedback.remember(request_id, predictions)
        self._capture(request_id, records, predictions, confidences)
        return 200, payload, "application/json"

    def _capture(self, request_id, records, predictions, confidences):
        rate = self.config["sample_rate"]
        if rate <= 0 or (rate < 1 and self.rng.random() >= rate):
            return
        ts = utc_now_text(self.clock())
        lines = []
        for index, record in enumerate(records):
            outputs = {"prediction": predictions[index] if not isinstance(predictions[index], (dict, list)) else None}
            if confidences is not None:
                outputs["confidence"] = confidences[index]
            item = serving_record(record, outputs, ts=ts, request_id=request_id, model=self.name, model_version=self.version)
            if len(records) > 1:
                item["instance"] = index
            lines.append(format_serving_record(item))
        self.window.write_lines(lines, now=self.clock())

    def _feedback(self, request_id, parsed):
        if not isinstance(parsed, dict):
            raise ServingError(400, "the body must be a JSON object with request_id and label (or labels)")
        target = parsed.get("request_id")
        if isinstance(target, (int, float)) and not isinstance(target, bool):
            target = class_key(target)
        if not isinstance(target, str) or not target:
            raise ServingError(422, "missing required field 'request_id' (the X-Request-ID of the prediction)", "request_id")
        if "labels" in parsed:
            labels = parsed["labels"]
            if not isinstance(labels, list) or not labels:
                raise ServingError(422, "labels: must be a non-empty list (one label per instance, null to skip)", "labels")
            items = [(i, v) for i, v in enumerate(labels) if v is not None]
        elif "label" in parsed:
            instance = parsed.get("instance", 0)
            if isinstance(instance, bool) or not isinstance(instance, int):
                raise ServingError(422, "instance: must be an integer", "instance")
            if parsed["label"] is None or isinstance(parsed["label"], (dict, list)):
                raise ServingError(422, "label: must be a scalar (the true class)", "label")
            items = [(instance, parsed["label"])]
        else:
            raise ServingError(422, "missing required field 'label' (or 'labels')", "label")
        count, accuracy = self.feedback.label(target, items)
        self.metrics.feedback_received(count, accuracy)
        ts = utc_now_text(self.clock())
        lines = []
        for instance, label in items:
            line = {"request_id": target, "label": label, "ts": ts}
            if "labels" in parsed or "instance" in parsed:
                line["instance"] = instance
            lines.append(canonical_json(line) + "\n")
        self.feedback_log.write_lines(lines, now=self.clock())
        return 200, {"request_id": request_id, "accepted": count, "accuracy": accuracy}, "application/json"


# ---------------------------------------------------------------------------------------------
# HTTP layer (standard library)
# ---------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = APP_NAME
    sys_version = ""
    timeout = 60
    # Buffered writes: the status line, headers and body leave in one send when the handler flushes
    # after each request (separate small writes of headers and body meet Nagle's algorithm and the
    # client's delayed ACK on keep-alive connections: about 40 ms per answer); no Nagle delay either.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *args):  # the audit log records requests
        pass

    def handle_expect_100(self):
        answer = BaseHTTPRequestHandler.handle_expect_100(self)
        self.wfile.flush()  # writes are buffered: the client waits for this interim answer before the body
        return answer

    def _serve(self):
        app = self.server.app
        body = b""
        if self.command == "POST":
            length = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding"):
                return self._refuse(411, "send a Content-Length (chunked bodies are not accepted)")
            try:
                length = int(length)
            except (TypeError, ValueError):
                return self._refuse(411, "a Content-Length header is required")
            if length < 0 or length > app.config["max_body_bytes"]:
                return self._refuse(413, "the body has %d bytes; the limit is %d" % (length, app.config["max_body_bytes"]))
            body = self.rfile.read(length)
        headers = dict((k.lower(), v) for k, v in self.headers.items())
        status, out_headers, data = app.handle(self.command, self.path, headers, body)
        self._send(status, out_headers, data)
        return None

    def _refuse(self, status, message):
        app = self.server.app
        request_id = uuid.uuid4().hex
        data = (canonical_json({"error": message, "request_id": request_id}) + "\n").encode("utf-8")
        path = self.path.split("?", 1)[0]
        endpoint = ENDPOINTS.get((self.command, path), "other")
        app.metrics.request(endpoint, status, 0.0)
        if path.startswith("/v1/"):  # refused before the body was read: no input hash
            app.audit.write({"ts": utc_now_text(app.clock()), "model": app.name, "version": app.version, "request_id": request_id,
                             "method": self.command, "endpoint": endpoint, "status": status, "latency_ms": 0.0, "input_sha256": None})
        self.close_connection = True
        self._send(status, [("Content-Type", "application/json"), ("X-Request-ID", request_id), ("Connection", "close")], data)

    def _send(self, status, headers, data):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app):
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        ThreadingHTTPServer.__init__(self, address, _Handler)


def make_http_server(app, address=None, port=None):
    return HTTPServer((address or app.config["listen_address"], app.config["port"] if port is None else port), app)


def serve(config, log=None):
    """Run the service until SIGTERM/SIGINT: listen first (/health answers, /ready says 503), then load."""
    log = log or (lambda text: sys.stderr.write(text + "\n"))
    app = ModelServer(config)
    httpd = make_http_server(app)
    log("%s: serving %s version %s on %s:%d" % (APP_NAME, app.name, app.version, config["listen_address"], httpd.server_address[1]))

    def stop(_signum, _frame):
        app.stopping.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loader = threading.Thread(target=app.load_forever, kwargs={"log": log}, daemon=True)
    loader.start()
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        app.close()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="model_serving", description="Serve one registered MLflow model version (runlocalai.mlops).")
    parser.add_argument("--config", required=True, help="instance configuration (JSON written by the model_server role)")
    parser.add_argument("--check-config", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if config.get("token_file"):
            read_token(config["token_file"])
    except ConfigError as exc:
        sys.stderr.write("model_serving: error: %s\n" % exc)
        return 2
    if args.check_config:
        sys.stdout.write(canonical_json({"name": config["name"], "version": config["version"], "ok": True}) + "\n")
        return 0
    return serve(config)


if __name__ == "__main__":
    raise SystemExit(main())
