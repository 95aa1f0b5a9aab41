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

    def __init__(self, config):
        self.config = config

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
