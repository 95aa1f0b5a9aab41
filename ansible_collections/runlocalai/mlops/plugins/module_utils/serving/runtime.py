# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What every serving runtime provides to the app (app.ModelServer).

A runtime is chosen by the instance configuration's `runtime` (config.RUNTIMES) and built from that
configuration alone: the role writes one JSON file per model_server_models entry, so an entry's
settings reach the runtime under the same names. The app owns everything that is the same for every
runtime: HTTP, authentication, the request log (one record per /v1 request, input hashed, never
stored), metrics of requests, readiness (/ready reports loading / error / ready around load()),
the drift window and feedback files. A runtime owns what depends on the kind of model:

- load(): fetch and load the model; raise on failure (the app keeps the error for /ready and
  retries with backoff);
- describe(model): what /v1/models says of the loaded model beyond name and version;
- prepare(model, payload, max_instances): check a request body, outside the prediction slots:
  (records, batch) where records are the instances as dicts (they go to the drift window) and batch
  is what predict takes; refusals raise messages.ServingError (4xx) naming the field;
- predict(model, batch): a Prediction;
- outputs(prediction, index): the outputs of one instance in the drift window's record
  (drift/tables.py serving_record: the serving-window contract the drift timer reads).

Besides, each runtime names the /v1 endpoints it serves (`endpoints`: (method, path) -> endpoint
label; the app answers /health, /ready, /v1/models and /metrics for every runtime, and a request
for another runtime's endpoint gets a 404 that says which kind of instance this is and what it
serves), what /ready adds (ready_info), what /v1/models adds at its top level (models_extra), and
close(model), called when the service stops. A runtime that runs the model in a child process
calls `on_exit(message)` (set by the app) when that process dies after load() returned: the app
then stops answering and the service exits non-zero, for systemd to restart it.

The default endpoints are the prediction ones (POST /v1/predict, POST /v1/feedback), which the
pyfunc runtime serves with the app's predict and feedback handlers; the llamacpp runtime
(llamacpp.py) serves OpenAI-compatible generation instead.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class Prediction:
    """One request's result: predictions (one per instance), and for classifiers the classes, the
    class probabilities and each instance's confidence (its highest probability)."""

    def __init__(self, predictions, probabilities=None, classes=None):
        self.predictions = predictions
        self.probabilities = probabilities
        self.classes = classes
        self.confidences = [max(row) for row in probabilities] if probabilities is not None else None

    def payload(self):
        out = {"predictions": self.predictions}
        if self.probabilities is not None:
            out.update(classes=self.classes, probabilities=self.probabilities, confidence=self.confidences)
        return out

    def scalar(self, index):
        value = self.predictions[index]
        return None if isinstance(value, (dict, list)) else value


class Runtime:
    kind = None
    # The /v1 endpoints this runtime serves: (method, path) -> endpoint label (the app's handler
    # _<label>, and the `endpoint` label of metrics and the request log).
    endpoints = {("POST", "/v1/predict"): "predict", ("POST", "/v1/feedback"): "feedback"}
    # What kind of instance this is, for the 404 a request for another runtime's endpoint gets.
    description = "a prediction (MLflow pyfunc) instance"
    # True for an LLM runtime: it provides check(endpoint, payload), forward(model, endpoint, body,
    # stream, on_done), gauges(model) and window_record(summary, latency_ms) (see llamacpp.py).
    generation = False

    def __init__(self, config):
        self.config = config
        self.on_exit = None  # set by the app: called with a message when a child process dies after load()

    def ready_info(self, model):
        """What /ready adds for a loaded model (nothing by default)."""
        return {}

    def models_extra(self, entry):
        """What /v1/models adds at the top level of its answer, beside `models` (nothing by default)."""
        return {}

    def close(self, model):
        """Release what load() started (nothing by default; the model is garbage)."""

    def load(self):
        raise NotImplementedError

    def describe(self, model):
        raise NotImplementedError

    def prepare(self, model, payload, max_instances):
        raise NotImplementedError

    def predict(self, model, batch):
        raise NotImplementedError

    def outputs(self, prediction, index):
        out = {"prediction": prediction.scalar(index)}
        if prediction.confidences is not None:
            out["confidence"] = prediction.confidences[index]
        return out
