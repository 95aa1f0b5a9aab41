# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model service's request handling, independent of the HTTP layer (server.py) and of the
runtime that loads and runs the model (runtime.py; today pyfunc.py).

Endpoints (docs/model_server.md): GET /health, GET /ready, GET /v1/models, POST /v1/predict,
POST /v1/feedback, GET /metrics. One process; requests are handled by threads (at most `threads`
predictions run at once), so metrics, the feedback accuracy and the drift window are exact without
any cross-process aggregation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hmac
import os
import random
import sys
import threading
import time
import uuid

from ..common.canonical import canonical_json
from ..drift.tables import format_serving_record, serving_record
from .config import RUNTIMES, read_token
from .messages import REQUEST_ID_RE, ServingError, class_key, input_hash, parse_json_body, utc_now_text
from .metrics import Metrics
from .records import FeedbackTracker, JsonlWindow, RequestLog

APP_NAME = "runlocalai-model"
ENDPOINTS = {
    ("GET", "/health"): "health",
    ("GET", "/ready"): "ready",
    ("GET", "/v1/models"): "models",
    ("POST", "/v1/predict"): "predict",
    ("POST", "/v1/feedback"): "feedback",
    ("GET", "/metrics"): "metrics",
}


class ModelServer:
    """Request handling, independent of the HTTP layer: handle() takes method, path, headers and body
    and returns (status, headers, body bytes)."""

    def __init__(self, config, loader=None, rng=None, clock=None):
        self.config = config
        self.name = config["name"]
        self.version = config["version"]
        self.metrics = Metrics(self.name, self.version, config.get("run_id"), config.get("alias"))
        self.runtime = RUNTIMES[config["runtime"]](config)
        self.loader = loader or self.runtime.load
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
        self.audit = RequestLog(config["audit_path"], config["audit_max_bytes"], config["audit_backup_count"])
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
            described = self.runtime.describe(self.model)
            run_id = described.pop("run_id", None)
            entry["run_id"] = entry["run_id"] or run_id
            entry.update(described)
        return 200, {"models": [entry], "request_id": request_id}, "application/json"

    def _metrics(self, _request_id, _parsed):
        return 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"

    def _predict(self, request_id, parsed):
        model = self.model
        if model is None:
            raise ServingError(503, "the model is not loaded yet")
        records, batch = self.runtime.prepare(model, parsed, self.config["max_instances"])
        with self.slots:
            prediction = self.runtime.predict(model, batch)
        predictions, confidences = prediction.predictions, prediction.confidences
        payload = {"request_id": request_id, "model": self.name, "version": self.version}
        payload.update(prediction.payload())
        if confidences is not None:
            self.metrics.predicted([class_key(p) for p in predictions], confidences)
            self.feedback.remember(request_id, predictions)
        elif all(not isinstance(p, (dict, list)) for p in predictions):
            self.feedback.remember(request_id, predictions)
        self._capture(request_id, records, prediction)
        return 200, payload, "application/json"

    def _capture(self, request_id, records, prediction):
        rate = self.config["sample_rate"]
        if rate <= 0 or (rate < 1 and self.rng.random() >= rate):
            return
        ts = utc_now_text(self.clock())
        lines = []
        for index, record in enumerate(records):
            item = serving_record(record, self.runtime.outputs(prediction, index), ts=ts, request_id=request_id, model=self.name, model_version=self.version)
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
