# -*- coding: utf-8 -*-
"""module_utils/training/trigger.py: Alertmanager's webhook payload -> one flow run per model, keyed so
that Alertmanager's repeats start nothing new; hostile input answered 4xx. The Prefect side is a
recording stand-in here; molecule/mlflow_sqlite sends the same payloads through nginx to the real
receiver and the real server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.training import trigger

TOKEN = "t" * 32
HEADERS = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}


def payload(status="firing", starts="2026-12-07T10:00:00Z", alertname="ModelDataDrift", model="breast-cancer", group="{}:{alertname=\"ModelDataDrift\"}"):
    return {"version": "4", "groupKey": group, "status": status,
            "alerts": [{"status": status, "startsAt": starts, "fingerprint": "f1",
                        "labels": {"alertname": alertname, "model": model, "model_version": "1", "feature": "mean_radius"}},
                       {"status": status, "startsAt": starts, "fingerprint": "f2",
                        "labels": {"alertname": alertname, "model": model, "model_version": "1", "feature": "worst_area"}}]}


class Client:
    def __init__(self, known=("breast-cancer",)):
        self.known, self.runs = known, {}

    def deployment(self, name):
        return {"id": "dep-" + name} if name in self.known else None

    def create_flow_run(self, deployment_id, parameters, tags, key):
        run = self.runs.setdefault(key, {"id": "run-%d" % len(self.runs), "deployment_id": deployment_id, "parameters": parameters, "tags": tags})
        return run


def call(client, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return trigger.handle(client, TOKEN, {"ModelDataDrift"}, HEADERS if headers is None else headers, data)


def test_a_firing_drift_alert_starts_one_run_per_model_and_repeats_start_nothing():
    client = Client()
    status, answer = call(client, payload())
    assert status == 202 and len(answer["started"]) == 1
    run = client.runs[answer["started"][0]["idempotency_key"]]
    assert run["deployment_id"] == "dep-breast-cancer" and run["tags"] == ["trigger:drift-alert"]
    cause = run["parameters"]["trigger"]
    assert cause["kind"] == "drift-alert" and cause["alerts"] == ["ModelDataDrift"] and cause["fingerprints"] == ["f1", "f2"]
    assert cause["versions"] == ["1"]
    status, again = call(client, payload())
    assert status == 202 and again["started"][0]["flow_run_id"] == answer["started"][0]["flow_run_id"]
    assert len(client.runs) == 1
    status, later = call(client, payload(starts="2026-12-08T10:00:00Z"))
    assert later["started"][0]["flow_run_id"] != answer["started"][0]["flow_run_id"]


def test_resolved_other_alerts_and_unknown_models_start_nothing():
    client = Client()
    assert call(client, payload(status="resolved"))[1] == {"started": [], "ignored": []}
    assert call(client, payload(alertname="HostCpuPressure"))[1] == {"started": [], "ignored": []}
    status, answer = call(client, payload(model="not-trained-here"))
    assert status == 202 and answer["ignored"][0]["model"] == "not-trained-here" and not client.runs


@pytest.mark.parametrize("headers,body,status,message", [
    ({"Content-Type": "application/json"}, payload(), 401, "bearer token"),
    ({"Authorization": "Bearer wrong", "Content-Type": "application/json"}, payload(), 401, "bearer token"),
    ({"Authorization": "Bearer " + TOKEN, "Content-Type": "text/plain"}, payload(), 415, "Content-Type"),
    (HEADERS, b"{not json", 400, "not valid JSON"),
    (HEADERS, b"\xff\xfe", 400, "not valid JSON"),
    (HEADERS, b"[" * 100000 + b"]" * 100000, 400, "not valid JSON"),
    (HEADERS, {"alerts": "x"}, 400, "Alertmanager webhook payload"),
    (HEADERS, {"alerts": []}, 400, "groupKey"),
    (HEADERS, {"groupKey": "g", "alerts": [1]}, 400, "labels"),
])
def test_hostile_input_gets_a_4xx_and_a_reason(headers, body, status, message):
    client = Client()
    got, answer = call(client, body, headers)
    assert got == status and message in answer["error"] and not client.runs
