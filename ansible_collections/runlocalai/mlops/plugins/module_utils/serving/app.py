# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model service's request handling, independent of the HTTP layer (server.py) and of the
runtime that loads and runs the model (runtime.py; pyfunc.py and llamacpp.py).

Endpoints (docs/model_server.md): GET /health, GET /ready, GET /v1/models, GET /metrics for every
runtime, plus the runtime's own (Runtime.endpoints): POST /v1/predict and POST /v1/feedback for
pyfunc, POST /v1/chat/completions and POST /v1/completions for llamacpp. One process; requests are
handled by threads (at most `threads` predictions run at once), so metrics, the feedback accuracy
and the drift window are exact without any cross-process aggregation.
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
# The endpoints of every instance; each runtime adds its own (Runtime.endpoints).
COMMON_ENDPOINTS = {
    ("GET", "/health"): "health",
    ("GET", "/ready"): "ready",
    ("GET", "/v1/models"): "models",
    ("GET", "/metrics"): "metrics",
}
# The endpoints of a pyfunc instance (kept for callers of the package's API).
ENDPOINTS = dict(COMMON_ENDPOINTS)
ENDPOINTS.update(RUNTIMES["pyfunc"].endpoints)
# The request log's fields of a generation request (LLM runtimes), null when not known.
LLM_LOG_FIELDS = ("prompt_sha256", "prompt_tokens", "completion_tokens", "finish_reason", "ttft_ms", "tokens_per_second", "stream")


class StreamBody:
    """A streamed answer for the HTTP layer: iterate for the chunks (bytes, each to be sent at once),
    then close() (always, also when the client went away). `on_close` runs once, after the stream
    ended or broke off: it writes the request log and the metrics."""

    def __init__(self, chunks, on_close):
        self.chunks = chunks
        self.on_close = on_close

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        try:
            self.chunks.close()
        finally:
            on_close, self.on_close = self.on_close, None
            if on_close is not None:
                on_close()


class ModelServer:
    """Request handling, independent of the HTTP layer: handle() takes method, path, headers and body
    and returns (status, headers, body bytes)."""

    def __init__(self, config, loader=None, rng=None, clock=None):
        self.config = config
        self.name = config["name"]
        self.version = config["version"]
        self.runtime = RUNTIMES[config["runtime"]](config)
        self.llm = self.runtime.generation  # an LLM runtime (llamacpp): the LLM metrics, log fields and window records
        self.metrics = Metrics(self.name, self.version, config.get("run_id"), config.get("alias"), llm=self.llm)
        if self.llm:
            self.metrics.gauge_source = self._gauges
        self.endpoints = dict(COMMON_ENDPOINTS)
        self.endpoints.update(self.runtime.endpoints)
        self.generation_labels = frozenset(self.runtime.endpoints.values()) if self.llm else frozenset()
        self.runtime.on_exit = self._runtime_exited
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
        self.exit_code = 0
        self.on_fatal = None  # set by serve(): stops the HTTP server when the model process dies

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

    def _runtime_exited(self, message):
        """The runtime's model process died after it was loaded: not ready any more, and the service
        exits non-zero (serve() returns exit_code) so that systemd restarts it."""
        sys.stderr.write("%s: %s\n" % (APP_NAME, message))
        self.model = None
        self.load_error = message.splitlines()[0]
        self.metrics.set_ready(False)
        self.exit_code = 1
        self.stopping.set()
        if self.on_fatal is not None:
            self.on_fatal()

    def close(self):
        self.stopping.set()
        self.runtime.close(self.model)
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
        endpoint = self.endpoints.get((method, path))
        parsed = None
        instances = None
        call = _Call(started, body)
        try:
            if endpoint is None:
                if any(p == path for _m, p in self.endpoints):
                    raise ServingError(405, "method %s is not allowed on %s" % (method, path))
                raise ServingError(404, self._no_endpoint(path))
            if self.llm and endpoint in self.generation_labels:
                call.llm = dict.fromkeys(LLM_LOG_FIELDS)  # logged (null) even when the request is refused
            if path.startswith("/v1/") and self.token is not None:
                self._authorize(headers)
            if method == "POST":
                parsed = parse_json_body(body)
            status, payload, content_type = getattr(self, "_" + endpoint)(request_id, parsed, call)
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
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        else:
            data = payload  # bytes as the runtime's model process sent them, or a stream (call.relay)
        label = endpoint or "other"
        out_headers = [("Content-Type", content_type), ("X-Request-ID", request_id)]
        if status == 401:
            out_headers.append(("WWW-Authenticate", 'Bearer realm="%s"' % APP_NAME))
        if call.relay is not None:
            out_headers += [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]  # no proxy in front may hold the stream back
            digest = input_hash(body, parsed)  # now: on this thread, from the canonical text parse_json_body made
            return status, out_headers, StreamBody(
                call.relay, lambda: self._record(call, label, status, method, path, request_id, digest, None, time.perf_counter() - started))
        elapsed = time.perf_counter() - started
        digest = input_hash(body, parsed) if method == "POST" and path.startswith("/v1/") else None
        self._record(call, label, status, method, path, request_id, digest, instances, elapsed)
        return status, out_headers, data

    def _record(self, call, label, status, method, path, request_id, digest, instances, elapsed):
        """The request's metrics and request-log entry (for a stream: when it has ended)."""
        if call.llm is not None:
            self._generated(call, elapsed, status, request_id)
        self.metrics.request(label, status, elapsed)
        if path.startswith("/v1/"):
            entry = {"ts": utc_now_text(self.clock()), "model": self.name, "version": self.version, "request_id": request_id,
                     "method": method, "endpoint": label, "status": status, "latency_ms": round(elapsed * 1000.0, 3),
                     "input_sha256": digest}
            if instances is not None:
                entry["instances"] = instances
            if call.llm is not None:
                for key in LLM_LOG_FIELDS:
                    entry[key] = call.llm.get(key)
                if call.llm.get("stream_end") is not None:
                    entry["stream_end"] = call.llm["stream_end"]
            self.audit.write(entry)

    def _no_endpoint(self, path):
        """The 404 message: another runtime's endpoint says what this instance serves instead."""
        for runtime in RUNTIMES.values():
            if runtime.kind != self.runtime.kind and any(p == path for _m, p in runtime.endpoints):
                return "%s is not served here: this is %s; it serves %s" % (
                    path, self.runtime.description, " and ".join("%s %s" % key for key in sorted(self.runtime.endpoints, key=lambda k: k[1])))
        return "no such endpoint: %s" % path

    def _authorize(self, headers):
        given = headers.get("authorization") or ""
        scheme, _sep, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"), self.token.encode("utf-8")):
            raise ServingError(401, "a valid bearer token is required for /v1/*")

    # -- endpoints (each returns status, payload, content type) ------------------------------------
    def _health(self, request_id, _parsed, _call):
        return 200, {"status": "alive", "request_id": request_id}, "application/json"

    def _ready(self, request_id, _parsed, _call):
        if self.model is None:
            payload = {"ready": False, "status": "error" if self.load_error else "loading", "request_id": request_id}
            if self.load_error:
                payload["error"] = self.load_error
            return 503, payload, "application/json"
        payload = {"ready": True, "status": "ready", "model": self.name, "version": self.version, "request_id": request_id}
        payload.update(self.runtime.ready_info(self.model))
        return 200, payload, "application/json"

    def _models(self, request_id, _parsed, _call):
        entry = {"name": self.name, "version": self.version, "run_id": self.config.get("run_id"), "alias": self.config.get("alias"),
                 "model_uri": self.config["model_uri"], "ready": self.model is not None, "loaded_at": self.loaded_at}
        if self.model is not None:
            described = self.runtime.describe(self.model)
            run_id = described.pop("run_id", None)
            entry["run_id"] = entry["run_id"] or run_id
            entry.update(described)
        payload = {"models": [entry], "request_id": request_id}
        payload.update(self.runtime.models_extra(entry))
        return 200, payload, "application/json"

    def _metrics(self, _request_id, _parsed, _call):
        return 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"

    def _predict(self, request_id, parsed, _call):
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

    def _feedback(self, request_id, parsed, _call):
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

    # -- generation (LLM runtimes: Runtime.endpoints chat_completions, completions) -------------------
    def _chat_completions(self, request_id, parsed, call):
        return self._generate("chat_completions", request_id, parsed, call)

    def _completions(self, request_id, parsed, call):
        return self._generate("completions", request_id, parsed, call)

    def _generate(self, endpoint, _request_id, parsed, call):
        """Check the request, forward it to the model process and answer with what it sends: the
        body as it is, or a stream relayed as it arrives (call.relay). The request log gets hashes
        and token counts (call.llm), never the prompt or the answer."""
        hashed, stream, override = self.runtime.check(endpoint, parsed)
        call.llm.update(prompt_sha256=hashed, stream=stream)
        model = self.model
        if model is None:
            raise ServingError(503, "the model is not loaded yet" + (" (%s)" % self.load_error if self.load_error else ""))
        answer = self.runtime.forward(model, endpoint, override if override is not None else call.body, stream, self._relay_done(call))
        if answer.relay is not None:
            call.relay = answer.relay
            return 200, b"", answer.content_type
        call.answer = answer
        return answer.status, answer.data, answer.content_type

    def _relay_done(self, call):
        def done(relay):
            call.answer = relay
        return done

    def _generated(self, call, elapsed, status, request_id):
        """The LLM metrics, log fields and drift-window record of a forwarded request (once it ended)."""
        answer = call.answer
        if answer is None or status != 200:
            return
        relay = call.relay
        summary = answer.summary() if relay is not None else answer.summary
        if summary is None:
            return
        ttft = None
        tps = summary["tokens_per_second"]
        if relay is not None:
            if relay.first_at is not None:
                ttft = relay.first_at - call.started
                if tps is None and summary["completion_tokens"] and relay.ended_at > relay.first_at and summary["completion_tokens"] > 1:
                    tps = (summary["completion_tokens"] - 1) / (relay.ended_at - relay.first_at)
            call.llm["stream_end"] = relay.outcome if relay.outcome != "complete" else None
        elif summary["predicted_ms"] is not None:
            # not streamed: the first token came when the rest of the generation had yet to run
            rest = summary["predicted_ms"] - (summary["predicted_per_token_ms"] or 0.0)
            ttft = max(elapsed - rest / 1000.0, 0.0)
        call.llm.update(prompt_tokens=summary["prompt_tokens"], completion_tokens=summary["completion_tokens"],
                        finish_reason=summary["finish_reason"], ttft_ms=round(ttft * 1000.0, 3) if ttft is not None else None,
                        tokens_per_second=round(tps, 3) if tps is not None else None)
        self.metrics.generated(summary["prompt_tokens"], summary["completion_tokens"], ttft, tps)
        if summary["prompt_tokens"] is not None:
            self._capture_generation(request_id, summary, round(elapsed * 1000.0, 3))

    def _capture_generation(self, request_id, summary, latency_ms):
        rate = self.config["sample_rate"]
        if rate <= 0 or (rate < 1 and self.rng.random() >= rate):
            return
        inputs, outputs = self.runtime.window_record(summary, latency_ms)
        item = serving_record(inputs, outputs, ts=utc_now_text(self.clock()), request_id=request_id, model=self.name, model_version=self.version)
        self.window.write_lines([format_serving_record(item)], now=self.clock())

    def _gauges(self):
        model = self.model
        return self.runtime.gauges(model) if model is not None else None


class _Call:
    """One request's context beside its parsed body: when it started, the raw body, and for
    generation requests the request-log fields (llm), the model process's answer and the relay."""

    __slots__ = ("started", "body", "llm", "answer", "relay")

    def __init__(self, started, body):
        self.started = started
        self.body = body
        self.llm = None
        self.answer = None
        self.relay = None
