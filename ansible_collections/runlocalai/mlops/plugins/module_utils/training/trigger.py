# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Triggers of the training pipeline that Prefect's open-source server has no route for.

serve     an HTTP receiver for Alertmanager's webhook (a unit of the prefect_server role, on loopback
          behind the role's nginx TLS site): a firing alert named in `alerts` with a `model` label
          becomes a flow run of that model's deployment, with the alert recorded as the trigger.
          Duplicates are dropped by the alert's group key: the run's idempotency key is made of the
          group key, the model and the firing episode's start, so Alertmanager's repeats (every
          repeat_interval, or after a restart) return the run the first notification started.
new-data  one flow run for a data file that appeared or changed (the prefect_worker role's path
          unit), keyed by the file's sha256: the same data twice starts one run.

Standard library only: it runs with the server's or the worker's Python and this package."""

from __future__ import absolute_import, division, print_function

import argparse
import hashlib
import hmac
import json
import os
import sys

from ..common.files import file_sha256
from .prefect_api import PrefectClient, PrefectError

MAX_BODY = 1024 * 1024


class Rejected(Exception):
    def __init__(self, status, message):
        super(Rejected, self).__init__(message)
        self.status = status


def alert_runs(payload, alerts):
    """(model, parameters, idempotency key) for each model with firing alerts of a name in `alerts`.
    Raises Rejected(400) for a payload that is not Alertmanager's webhook format."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise Rejected(400, "not an Alertmanager webhook payload: expected an object with an 'alerts' list")
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise Rejected(400, "not an Alertmanager webhook payload: 'groupKey' missing")
    firing = {}
    for alert in payload["alerts"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise Rejected(400, "every alert needs a 'labels' object")
        labels = alert["labels"]
        if alert.get("status") != "firing" or labels.get("alertname") not in alerts or not labels.get("model"):
            continue
        firing.setdefault(str(labels["model"]), []).append(alert)
    out = []
    for model, found in sorted(firing.items()):
        started = min(str(a.get("startsAt") or "") for a in found)
        names = sorted(set(a["labels"]["alertname"] for a in found))
        key = "alert:" + hashlib.sha256(("%s\n%s\n%s" % (group_key, model, started)).encode("utf-8")).hexdigest()
        trigger = {"kind": "drift-alert", "alerts": names, "group_key": group_key, "starts_at": started,
                   "fingerprints": sorted(str(a.get("fingerprint") or "") for a in found),
                   "versions": sorted(set(str(a["labels"].get("model_version") or a["labels"].get("version") or "") for a in found) - {""})}
        out.append((model, {"trigger": trigger}, key))
    return out


def handle(client, token, alerts, headers, body):
    """One webhook call: (status, answer dict). Never raises for bad input."""
    given = headers.get("Authorization") or ""
    if not token or not hmac.compare_digest(given.encode("utf-8"), ("Bearer " + token).encode("utf-8")):
        return 401, {"error": "a bearer token is required (Authorization: Bearer ...)"}
    if (headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
        return 415, {"error": "Content-Type must be application/json"}
    try:
        payload = json.loads(body.decode("utf-8"))
        runs = alert_runs(payload, alerts)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 400, {"error": "the body is not valid JSON"}
    except Rejected as exc:
        return exc.status, {"error": str(exc)}
    started, ignored = [], []
    for model, parameters, key in runs:
        try:
            deployment = client.deployment(model)
            if deployment is None:
                ignored.append({"model": model, "reason": "no training pipeline deployed for this model"})
                continue
            run = client.create_flow_run(deployment["id"], parameters, ["trigger:drift-alert"], key)
        except PrefectError as exc:
            return 502, {"error": "the orchestrator refused: %s" % exc, "started": started}
        started.append({"model": model, "flow_run_id": run["id"], "idempotency_key": key})
    return 202, {"started": started, "ignored": ignored}


def serve(args):
    try:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - Python 2
        raise SystemExit("Python 3 is required")
    token = os.environ.get("RUNLOCALAI_TRIGGER_TOKEN", "")
    if len(token) < 24:
        raise SystemExit("RUNLOCALAI_TRIGGER_TOKEN: required, 24 characters or more")
    client = PrefectClient(args.api_url, os.environ.get("PREFECT_API_AUTH_STRING"), timeout=15)
    alerts = set(args.alert)

    class Handler(BaseHTTPRequestHandler):
        server_version = "runlocalai-trigger"
        sys_version = ""
        timeout = 10  # a client that announces more than it sends is cut off

        def _answer(self, status, answer):
            data = (json.dumps(answer, sort_keys=True) + "\n").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path == "/health":
                self._answer(200, {"status": "ok"})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            if self.path != args.path:
                self._answer(404, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._answer(411, {"error": "Content-Length is required"})
                return
            if length < 0 or length > MAX_BODY:
                self._answer(413, {"error": "the body is larger than %d bytes" % MAX_BODY})
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self._answer(400, {"error": "the body is shorter than its Content-Length"})
                return
            self._answer(*handle(client, token, alerts, self.headers, body))

        def log_message(self, fmt, *values):  # one line per call, no body, no token
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % values))

    ThreadingHTTPServer((args.listen, args.port), Handler).serve_forever()


def new_data(args):
    """One run for the data file at args.path, keyed by its content."""
    if not os.path.isfile(args.path):
        sys.stdout.write("new-data: %s is not there (yet): nothing to do\n" % args.path)
        return 0
    digest = file_sha256(args.path)
    client = PrefectClient(args.api_url, os.environ.get("PREFECT_API_AUTH_STRING"), args.ca_path)
    deployment = client.deployment(args.model)
    if deployment is None:
        raise SystemExit("new-data: no deployment %r on %s (run playbooks/train.yml)" % (args.model, args.api_url))
    trigger = {"kind": "new-data", "path": args.path, "sha256": digest}
    run = client.create_flow_run(deployment["id"], {"trigger": trigger}, ["trigger:new-data"], "new-data:%s:%s" % (args.model, digest))
    sys.stdout.write(json.dumps({"model": args.model, "flow_run_id": run["id"], "sha256": digest}) + "\n")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="runlocalai_mlops.training.trigger", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="the Alertmanager webhook receiver")
    srv.add_argument("--listen", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=4280)
    srv.add_argument("--path", default="/hooks/alertmanager")
    srv.add_argument("--api-url", required=True)
    srv.add_argument("--alert", action="append", required=True, help="an alert name that starts the pipeline (repeatable)")
    new = sub.add_parser("new-data", help="one run for a data file that appeared or changed")
    new.add_argument("--model", required=True)
    new.add_argument("--path", required=True)
    new.add_argument("--api-url", required=True)
    new.add_argument("--ca-path")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return serve(args) if args.command == "serve" else new_data(args)
    except PrefectError as exc:
        raise SystemExit("%s: %s" % (args.command, exc))


if __name__ == "__main__":
    raise SystemExit(main())
