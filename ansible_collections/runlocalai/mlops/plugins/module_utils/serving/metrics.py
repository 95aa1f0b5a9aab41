# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The service's Prometheus metrics (text format 0.0.4; one process, so plain locked counters are exact)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import math
import threading


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKENS_PER_SECOND_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0)


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

    def __init__(self, model, version, run_id, alias, llm=False):
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
        self.gauge_source = None
        if llm:  # the LLM metrics, only on instances of an LLM runtime (llamacpp)
            self.prompt_tokens = Metric("mlops_model_llm_prompt_tokens_total", "counter", "Prompt tokens of answered generation requests.", base)
            self.completion_tokens = Metric("mlops_model_llm_completion_tokens_total", "counter", "Tokens generated for answered requests.", base)
            self.ttft = Metric("mlops_model_llm_time_to_first_token_seconds", "histogram",
                               "Time from a request's arrival to its first generated token.", base, TTFT_BUCKETS)
            self.tokens_per_second = Metric("mlops_model_llm_tokens_per_second", "histogram",
                                            "Decode speed of each answered request (generated tokens per second).", base, TOKENS_PER_SECOND_BUCKETS)
            self.waiting = Metric("mlops_model_llm_requests_waiting", "gauge", "Requests waiting for a free slot (read at scrape time).", base)
            self.busy = Metric("mlops_model_llm_slots_busy", "gauge", "Slots generating (read at scrape time).", base)
            self.all += (self.prompt_tokens, self.completion_tokens, self.ttft, self.tokens_per_second, self.waiting, self.busy)
            self.prompt_tokens.values[(model, version)] = 0
            self.completion_tokens.values[(model, version)] = 0
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

    def generated(self, prompt_tokens, completion_tokens, ttft_seconds, tokens_per_second):
        """One answered generation request (LLM metrics; None for what is not known)."""
        with self.lock:
            key = (self.model, self.version)
            if prompt_tokens is not None:
                self.prompt_tokens.values[key] += prompt_tokens
            if completion_tokens is not None:
                self.completion_tokens.values[key] += completion_tokens
            if ttft_seconds is not None:
                self._observe(self.ttft, key, ttft_seconds)
            if tokens_per_second is not None:
                self._observe(self.tokens_per_second, key, tokens_per_second)

    def render(self):
        source = self.gauge_source
        gauges = source() if source is not None else None  # outside the lock: it asks the model process
        with self.lock:
            if source is not None:
                key = (self.model, self.version)
                for metric, name in ((self.waiting, "waiting"), (self.busy, "busy")):
                    value = (gauges or {}).get(name)
                    if value is None:
                        metric.values.pop(key, None)
                    else:
                        metric.values[key] = value
            return "".join(m.render() for m in self.all)
