# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A small client of the Prefect 3 server's REST API (standard library only: the modules run it with
the host's system Python, the drift-alert receiver with its own), and the deployment spec that
training_pipelines entries become, compared field by field with what the server holds."""

from __future__ import absolute_import, division, print_function

import base64
import http.client
import json
import ssl
import time
from urllib.parse import quote, urlsplit

from ..common.errors import MlopsError

FLOW_NAME = "training-pipeline"
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
# The server answers 503 when its database is busy (SQLite's lock, for one): the call did nothing, try again.
RETRY_STATUS = (502, 503, 504)
RETRY_DELAYS = (1, 2, 4, 8)


class PrefectError(MlopsError):
    """The server refused or could not be reached; the message names the call."""


class PrefectClient(object):
    def __init__(self, api_url, auth_string=None, ca_path=None, timeout=30):
        if not api_url or not api_url.startswith(("http://", "https://")):
            raise PrefectError("api_url: expected http(s)://HOST:PORT/api, got %r" % (api_url,))
        self.api_url = api_url.rstrip("/")
        self.parts = urlsplit(self.api_url)
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth_string:
            self.headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode("utf-8")).decode("ascii")
        self.context = ssl.create_default_context(cafile=ca_path) if self.api_url.startswith("https://") else None

    def call(self, method, path, body=None, missing_ok=False, sleep=time.sleep):
        for delay in RETRY_DELAYS:
            status, text = self._send(method, path, body)
            if status not in RETRY_STATUS:
                break
            sleep(delay)
        else:
            status, text = self._send(method, path, body)
        if status == 404 and missing_ok:
            return None
        if status == 401:
            raise PrefectError("%s %s: 401 unauthorized: the auth string is wrong" % (method, path))
        if status >= 300:
            raise PrefectError("%s %s: HTTP %s: %s" % (method, path, status, text[:500]))
        return json.loads(text) if text else None

    def _send(self, method, path, body):
        data = json.dumps(body).encode("utf-8") if body is not None else None
        if self.parts.scheme == "https":
            connection = http.client.HTTPSConnection(self.parts.hostname, self.parts.port or 443, timeout=self.timeout, context=self.context)
        else:
            connection = http.client.HTTPConnection(self.parts.hostname, self.parts.port or 80, timeout=self.timeout)
        try:
            connection.request(method, self.parts.path + path, body=data, headers=self.headers)
            response = connection.getresponse()
            status, text = response.status, response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            raise PrefectError("%s %s: cannot reach %s: %s" % (method, path, self.api_url, exc))
        finally:
            connection.close()
        return status, text

    def flow_id(self, name=FLOW_NAME, create=True):
        found = self.call("GET", "/flows/name/%s" % quote(name, safe=""), missing_ok=True)
        if found is None and create:
            found = self.call("POST", "/flows/", {"name": name})
        return found["id"] if found else None

    def work_pool(self, name):
        return self.call("GET", "/work_pools/%s" % quote(name, safe=""), missing_ok=True)

    def deployment(self, name, flow_name=FLOW_NAME):
        return self.call("GET", "/deployments/name/%s/%s" % (quote(flow_name, safe=""), quote(name, safe="")), missing_ok=True)

    def upsert_deployment(self, body):
        """POST /deployments/ creates or replaces the deployment of that flow and name (schedules included)."""
        return self.call("POST", "/deployments/", body)

    def delete_deployment(self, deployment_id):
        self.call("DELETE", "/deployments/%s" % deployment_id, missing_ok=True)

    def create_flow_run(self, deployment_id, parameters=None, tags=None, idempotency_key=None):
        body = {"parameters": parameters or {}, "tags": list(tags or [])}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self.call("POST", "/deployments/%s/create_flow_run" % deployment_id, body)

    def flow_run(self, run_id):
        return self.call("GET", "/flow_runs/%s" % run_id)

    def wait(self, run_id, timeout, poll=2.0, clock=time.time, sleep=time.sleep, pool_grace=60):
        """The flow run once it is in a final state; PrefectError when `timeout` seconds pass first, or
        when the run is still waiting for a worker after `pool_grace` seconds and its work pool has no
        worker polling it (status NOT_READY) or is paused: such a run would wait for nothing."""
        start = clock()
        deadline = start + timeout
        while True:
            run = self.flow_run(run_id)
            state = (run.get("state") or {}).get("type")
            if state in FINAL_STATES:
                return run
            if state == "SCHEDULED" and clock() - start >= pool_grace and run.get("work_pool_name"):
                pool = self.work_pool(run["work_pool_name"]) or {}
                if pool.get("status") in ("NOT_READY", "PAUSED"):
                    raise PrefectError("flow run %s waits for a worker, but work pool %r is %s: no worker polls it"
                                       " (is prefect-worker running on a training host?)" % (
                                           run_id, run["work_pool_name"], pool["status"]))
            if clock() >= deadline:
                raise PrefectError("flow run %s is still %s after %ss (is a worker polling the work pool %r?)" % (
                    run_id, (run.get("state") or {}).get("type"), timeout, run.get("work_pool_name")))
            sleep(poll)


# -- deployments --------------------------------------------------------------
def deployment_body(flow_id, spec):
    """The POST /deployments/ body of one deployment spec: name, work_pool, entrypoint, code_dir,
    parameters, schedule (cron or ""), timezone, concurrency_limit, tags, description, paused."""
    schedules = []
    if spec.get("schedule"):
        schedules.append({"schedule": {"cron": spec["schedule"], "timezone": spec.get("timezone") or "UTC"}, "active": True})
    return {
        "name": spec["name"], "flow_id": flow_id, "work_pool_name": spec["work_pool"],
        "entrypoint": spec["entrypoint"],
        "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": spec["code_dir"]}}],
        "parameters": spec.get("parameters") or {}, "schedules": schedules,
        "concurrency_limit": spec.get("concurrency_limit"), "tags": sorted(spec.get("tags") or []),
        "description": spec.get("description") or None, "paused": bool(spec.get("paused")),
        "enforce_parameter_schema": False,
    }


def comparable(deployment):
    """The fields of a deployment (as the server returns it, or a deployment_body) that the spec decides."""
    if deployment is None:
        return None
    if "global_concurrency_limit" in deployment or "id" in deployment:
        limit = (deployment.get("global_concurrency_limit") or {}).get("limit")
        schedules = [{"cron": s["schedule"].get("cron"), "timezone": s["schedule"].get("timezone") or "UTC", "active": bool(s.get("active"))}
                     for s in deployment.get("schedules") or []]
    else:
        limit = deployment.get("concurrency_limit")
        schedules = [{"cron": s["schedule"]["cron"], "timezone": s["schedule"]["timezone"], "active": s["active"]}
                     for s in deployment.get("schedules") or []]
    return {
        "name": deployment["name"], "work_pool": deployment.get("work_pool_name"), "entrypoint": deployment.get("entrypoint"),
        "pull_steps": deployment.get("pull_steps") or [], "parameters": deployment.get("parameters") or {},
        "schedules": sorted(schedules, key=lambda s: json.dumps(s, sort_keys=True)), "concurrency_limit": limit,
        "tags": sorted(deployment.get("tags") or []), "description": deployment.get("description") or None,
        "paused": bool(deployment.get("paused")),
    }


def connection_spec(env_fallback):
    """The argument_spec of the Prefect connection (doc fragment prefect_connection)."""
    return dict(
        api_url=dict(type="str", fallback=(env_fallback, ["PREFECT_API_URL"])),
        auth_string=dict(type="str", no_log=True, fallback=(env_fallback, ["PREFECT_API_AUTH_STRING"])),
        ca_path=dict(type="path"),
        timeout=dict(type="int", default=30),
    )


def client_from_params(params):
    return PrefectClient(params["api_url"], params["auth_string"], params["ca_path"], params["timeout"])
