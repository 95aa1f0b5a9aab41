"""The smoke_test role against real services on this machine (connection local, localhost in the
mlflow, monitoring and serving groups): the real model serving app (module_utils/serving/)
with a real pyfunc model, the MLflow test server (basic auth), and a small stand-in for the
Prometheus / Alertmanager HTTP API (neither is installed on the controller). The role must pass
when all is healthy and fail naming host, service, URL and what was wrong."""

import base64
import json
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from ansible_collections.runlocalai.mlops.plugins.module_utils import serving as ms  # noqa: E402
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: E402,F401 pylint: disable=unused-import
    ADMIN_PASSWORD, mlflow_server)

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["f%d" % i for i in range(8)]
TOKEN = "smoke-test-token-0123456789"
PLAY = [{"name": "Smoke test", "hosts": "all", "gather_facts": False,
         "roles": [{"role": "runlocalai.mlops.smoke_test"}]},
        {"name": "Results", "hosts": "all", "gather_facts": False, "tasks": [
            {"name": "Show the results", "ansible.builtin.debug": {
                "msg": "RESULTS {{ smoke_test_results | to_json | b64encode }} PASSED {{ smoke_test_passed }}"}}]}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.iloc[:, :8].copy()
    features.columns = FEATURES
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, data.target)
    path = str(tmp_path_factory.mktemp("smoke-model") / "model")
    mlflow.sklearn.save_model(pipe, path, signature=infer_signature(features, pipe.predict(features)),
                              pip_requirements=["scikit-learn==%s" % sklearn.__version__], serialization_format="cloudpickle")
    return path, [dict((k, float(v)) for k, v in row.items()) for row in features.iloc[:3].to_dict(orient="records")]


class ModelService:
    """The real serving app over HTTP on an ephemeral loopback port."""

    def __init__(self, tmp, name, version, model_uri, token=None):
        config = {"name": name, "version": version, "model_uri": model_uri, "port": 0, "sample_rate": 0.0,
                  "state_dir": str(tmp / name / "state"), "log_dir": str(tmp / name / "log")}
        if token:
            token_file = tmp / (name + ".token")
            token_file.write_text(token + "\n")
            config["token_file"] = str(token_file)
        self.app = ms.ModelServer(ms.make_config(config), rng=random.Random(1))
        self.httpd = ms.make_http_server(self.app, "127.0.0.1", 0)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()


class PrometheusAPI:
    """Answers /-/ready and /api/v1/targets the way Prometheus (and /-/ready the way Alertmanager) does."""

    def __init__(self):
        self.targets = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if self.path == "/-/ready":
                    body, kind = b"Prometheus Server is Ready.\n", "text/plain"
                elif self.path.startswith("/api/v1/targets"):
                    body = json.dumps({"status": "success", "data": {"activeTargets": api.targets, "droppedTargets": []}}).encode()
                    kind = "application/json"
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def target(job, url, health="up", error="", **labels):
    return {"labels": dict(labels, job=job), "scrapeUrl": url, "health": health, "lastError": error}


@pytest.fixture(scope="module")
def services(model_dir, tmp_path_factory):
    path, rows = model_dir
    tmp = tmp_path_factory.mktemp("smoke-services")
    healthy = ModelService(tmp, "bc", "3", path, token=TOKEN)
    healthy.app.load()
    broken = ModelService(tmp, "broken", "7", str(tmp / "no-such-model"))
    broken.app.try_load()  # fails: /ready answers 503 with the load error
    prometheus, alertmanager = PrometheusAPI(), PrometheusAPI()
    yield {"bc": healthy, "broken": broken, "prometheus": prometheus, "alertmanager": alertmanager, "rows": rows}
    for service in (healthy, broken, prometheus, alertmanager):
        service.stop()


@pytest.fixture
def smoke(services, mlflow_server, run_playbook):
    services["prometheus"].targets = [target("node", "http://127.0.0.1:9100/metrics"),
                                      target("model_server", "http://127.0.0.1:%d/metrics" % services["bc"].port)]

    def run(extra=None, check=False):
        host = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "mlflow_server_listen_address": "127.0.0.1", "mlflow_server_port": mlflow_server.port,
            "mlflow_server_admin_password": ADMIN_PASSWORD,
            "monitoring_prometheus_port": services["prometheus"].port,
            "monitoring_alertmanager_port": services["alertmanager"].port,
            "model_server_models": [{"name": "bc", "version": 3, "port": services["bc"].port}],
            "model_server_api_token": TOKEN,
            "smoke_test_expected_versions": {"bc": "3"},
            "smoke_test_inputs": {"bc": {"records": services["rows"]}},
            "smoke_test_ready_retries": 1, "smoke_test_ready_delay": 1, "smoke_test_timeout": 90,
            "smoke_test_targets_retries": 1, "smoke_test_targets_delay": 1,
        }
        inventory = {"all": {"children": {g: {"hosts": {"localhost": host if g == "mlflow" else None}}
                                          for g in ("mlflow", "monitoring", "serving")}}}
        result = run_playbook(PLAY, extra_vars=extra or {}, check=check, inventory=inventory)
        result.results = None
        for line in result.stdout.splitlines():
            if "RESULTS " in line:
                result.results = json.loads(base64.b64decode(line.split("RESULTS ", 1)[1].split()[0]))
        return result

    return run


def by_url(results):
    return dict((r["url"].rsplit(":", 1)[-1].split("/", 1)[-1] if r["service"].startswith("model") else r["service"], r)
                for r in results)


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_healthy_stack_passes(smoke, services, mlflow_server, check):
    result = smoke(check=check)
    assert result.returncode == 0, result.output[-3000:]
    assert "changed=0" in result.stdout and "PASSED True" in result.stdout
    assert TOKEN not in result.output and ADMIN_PASSWORD not in result.output
    port = services["bc"].port
    assert [(r["service"], r["url"], r["ok"]) for r in result.results] == [
        ("model bc", "http://127.0.0.1:%d/ready" % port, True),
        ("model bc", "http://127.0.0.1:%d/v1/models" % port, True),
        ("model bc", "http://127.0.0.1:%d/v1/predict" % port, True),
        ("mlflow", "%s/health" % mlflow_server.url, True),
        ("mlflow registry", "%s/api/2.0/mlflow/registered-models/search" % mlflow_server.url, True),
        ("prometheus", "http://127.0.0.1:%d/-/ready" % services["prometheus"].port, True),
        ("alertmanager", "http://127.0.0.1:%d/-/ready" % services["alertmanager"].port, True),
        ("prometheus targets", "http://127.0.0.1:%d/api/v1/targets" % services["prometheus"].port, True)]
    details = [r["detail"] for r in result.results]
    assert details[:3] == ["ready, version 3", "reports version 3, expected 3", "3 predictions for 3 rows sent"]
    assert details[3] == "HTTP 200" and details[4] == "HTTP 200 (as admin)" and details[7] == "2 of 2 targets up"
    assert all(r["host"] == "localhost" for r in result.results)


def test_every_failure_is_named_with_host_service_and_url(smoke, services, mlflow_server):
    services["prometheus"].targets.append(target("node", "http://10.0.0.9:9100/metrics", "down", "connection refused"))
    bc, broken = services["bc"].port, services["broken"].port
    result = smoke({
        "smoke_test_models": [{"name": "bc", "port": bc}, {"name": "broken", "port": broken}],
        "smoke_test_expected_versions": {"bc": "4"},                                        # it serves 3
        "smoke_test_inputs": {"bc": {"records": [dict(services["rows"][0], f3="not a number")]}},  # 422
        "mlflow_server_admin_password": "wrong-password-123",                               # 401
    })
    assert result.returncode != 0
    flat = result.flat
    assert "smoke test failed on localhost: " in flat, result.output[-3000:]
    for text in [
        "mlflow registry at %s/api/2.0/mlflow/registered-models/search: HTTP 401" % mlflow_server.url,
        "(as admin)",
        "prometheus targets at http://127.0.0.1:%d/api/v1/targets: 2 of 3 targets up, not up: job node "
        "http://10.0.0.9:9100/metrics (down: connection refused)" % services["prometheus"].port,
        "model broken at http://127.0.0.1:%d/ready: HTTP 503: " % broken,
        "no-such-model",
        "model bc at http://127.0.0.1:%d/v1/models: reports version 3, expected 4" % bc,
        "model bc at http://127.0.0.1:%d/v1/predict: HTTP 422: field 'f3'" % bc,
    ]:
        assert text in flat, (text, flat[flat.find("smoke test failed"):][:2500])
    assert "wrong-password-123" not in result.output and TOKEN not in result.output


def test_a_wrong_token_is_refused_by_the_service(smoke, services):
    result = smoke({"model_server_api_token": "not-the-token-0123456789"})
    assert result.returncode != 0
    assert "model bc at http://127.0.0.1:%d/v1/models: HTTP 401: a valid bearer token is required" % services["bc"].port \
        in result.flat, result.output[-3000:]


def test_undeployed_entries_are_skipped_and_report_only_mode(smoke, services, tmp_path):
    config_dir = tmp_path / "model-config"
    config_dir.mkdir()
    # Prometheus scrapes every declared entry: the undeployed one's target is down by design.
    services["prometheus"].targets.append(target("model_server", "http://127.0.0.1:1/metrics", "down", "connection refused",
                                                 instance="localhost", model_service="next"))
    models = [{"name": "bc", "version": 3, "port": services["bc"].port}, {"name": "next", "alias": "production", "port": 1}]
    extra = {"model_server_models": models, "model_server_allow_missing_model": True,
             "model_server_config_dir": str(config_dir)}
    (config_dir / "bc.json").write_text("{}")
    result = smoke(extra)
    assert result.returncode == 0, result.output[-3000:]
    skipped = [r for r in result.results if r["service"] == "model next"]
    assert [(r["ok"], r["url"]) for r in skipped] == [(True, "http://127.0.0.1:1/ready")]
    assert skipped[0]["detail"].startswith("skipped: not deployed yet (no %s/next.json" % config_dir)
    targets = [r for r in result.results if r["service"] == "prometheus targets"]
    assert [(r["ok"], r["detail"]) for r in targets] == [
        (True, "2 of 2 targets up (1 of model services not deployed yet left out)")]
    # Once its configuration exists the entry is probed (nothing listens on port 1): reported, not failed.
    (config_dir / "next.json").write_text("{}")
    result = smoke(dict(extra, smoke_test_fail_on_error=False))
    assert result.returncode == 0 and "PASSED False" in result.stdout, result.output[-3000:]
    failed = [r for r in result.results if not r["ok"]]
    assert [(r["service"], r["url"]) for r in failed] == [
        ("model next", "http://127.0.0.1:1/ready"),
        ("prometheus targets", "http://127.0.0.1:%d/api/v1/targets" % services["prometheus"].port)]
    assert failed[0]["detail"].startswith("no answer: ")
    assert failed[1]["detail"] == ("2 of 3 targets up, not up: job model_server http://127.0.0.1:1/metrics "
                                   "(down: connection refused)")
