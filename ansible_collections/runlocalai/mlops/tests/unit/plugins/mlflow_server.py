# -*- coding: utf-8 -*-
"""A real MLflow tracking server (basic-auth app, sqlite backend) on loopback, for governance tests.

One server per test session: get_server() starts it on first use and an atexit
hook (plus the session fixture's finaliser) terminates it. Test modules import
the fixtures from here:

    from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import mlflow_server, trained  # noqa: F401
"""

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ADMIN = "admin"
ADMIN_PASSWORD = "governance-test-password-1"

_STATE = {}


def _free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Server:
    """auth_cache_ttl_seconds: as the mlflow_server role sets it (mlflow_server_auth_cache_ttl_seconds);
    without it every request costs a scrypt check, about 0.5 s of CPU (benchmarks/mlflow_auth, which
    starts one of each)."""

    def __init__(self, auth_cache_ttl_seconds=60):
        self.dir = tempfile.mkdtemp(prefix="mlflow-governance-")
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        ini = os.path.join(self.dir, "basic_auth.ini")
        with open(ini, "w") as handle:
            handle.write("[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s/auth.db\n"
                         "admin_username = %s\nadmin_password = %s\nauth_cache_ttl_seconds = %d\n"
                         % (self.dir, ADMIN, ADMIN_PASSWORD, auth_cache_ttl_seconds))
        # No job runner: MLflow 3 starts seven huey consumer processes for its GenAI jobs (about 250 MB
        # each) where their requirements are installed, as in this virtualenv; the role's hosts have none.
        env = dict(os.environ, MLFLOW_AUTH_CONFIG_PATH=ini, MLFLOW_FLASK_SERVER_SECRET_KEY="governance-tests-secret",
                   MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            env.pop(name, None)
        mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [mlflow, "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", "sqlite:///%s/mlflow.db" % self.dir,
             "--artifacts-destination", os.path.join(self.dir, "artifacts")],
            cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.time() + 120
        import requests
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited: %s" % open(os.path.join(self.dir, "server.log")).read()[-3000:])
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("mlflow server did not become healthy in 120 s")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)  # its own session: the server and its uvicorn worker only
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        if not self.log.closed:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def auth(self):
        return {"tracking_uri": self.url, "username": ADMIN, "password": ADMIN_PASSWORD}


def get_server():
    if "server" not in _STATE:
        _STATE["server"] = Server()
    return _STATE["server"]


@contextlib.contextmanager
def admin_credentials():
    """MLFLOW_TRACKING_USERNAME/PASSWORD set to the test server's admin for the block, then put back."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train_and_log(server):
    """Log two StandardScaler + LogisticRegression pipelines on breast-cancer data in one run.

    'model' is a good fit; 'weak' was trained on shuffled labels, so it scores clearly worse.
    Returns dict with run_id, the models' URIs and the evaluation frame.
    """
    import mlflow
    import mlflow.sklearn
    import numpy
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.iloc[:, :8].copy()
    features.columns = ["f%d" % i for i in range(8)]
    target = data.target
    train_x, test_x = features.iloc[::2], features.iloc[1::2]
    train_y, test_y = target.iloc[::2], target.iloc[1::2]
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train_x, train_y)
    shuffled = numpy.random.RandomState(0).permutation(train_y.values)
    weak = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train_x, shuffled)
    signature = infer_signature(train_x, good.predict(train_x))
    models = {}
    with admin_credentials():
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("governance-tests")
        with mlflow.start_run() as run:
            # Explicit requirements and signature: inferring them loads the model in a subprocess (slow).
            for name, pipe in (("model", good), ("weak", weak)):
                models[name] = mlflow.sklearn.log_model(
                    pipe, name=name, signature=signature, pip_requirements=["scikit-learn==%s" % sklearn.__version__],
                    serialization_format="cloudpickle")
    evaluation = test_x.copy()
    evaluation["label"] = test_y.values
    evaluation["group"] = ["a" if i % 3 else "b" for i in range(len(evaluation))]
    return {"run_id": run.info.run_id, "evaluation": evaluation,
            "good": {"runs_uri": "runs:/%s/model" % run.info.run_id, "model_uri": models["model"].model_uri,
                     "model_id": models["model"].model_id},
            "weak": {"runs_uri": "runs:/%s/weak" % run.info.run_id, "model_uri": models["weak"].model_uri,
                     "model_id": models["weak"].model_id}}


@pytest.fixture(scope="session")
def mlflow_server():
    server = get_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trained(mlflow_server):
    """The logged models of train_and_log(), once per session."""
    if "trained" not in _STATE:
        _STATE["trained"] = train_and_log(mlflow_server)
    return _STATE["trained"]


class Gateway:
    """A TLS reverse proxy with bearer-token auth in front of the real server.

    This is how a token-protected MLflow is usually deployed (the basic-auth app
    itself takes only passwords): the proxy checks `Authorization: Bearer TOKEN`
    and forwards to MLflow with the admin's basic auth. Its certificate is
    self-signed, so clients must be given `ca_path` (or switch verification off).
    """

    TOKEN = "gateway-test-token-1"

    def __init__(self, upstream):
        import base64
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import requests

        self.dir = tempfile.mkdtemp(prefix="mlflow-gateway-")
        self.ca_path = os.path.join(self.dir, "cert.pem")
        key = os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", self.ca_path],
                       check=True, capture_output=True)
        basic = "Basic " + base64.b64encode(("%s:%s" % (ADMIN, ADMIN_PASSWORD)).encode()).decode()
        token = self.TOKEN
        self.requests_seen = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                if self.headers.get("Authorization") != "Bearer " + token:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                gateway.requests_seen += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ("authorization", "host", "content-length"))
                headers["Authorization"] = basic
                answer = requests.request(self.command, upstream + self.path, data=body, headers=headers, timeout=60, stream=False)
                content = answer.content
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_path, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_gateway(mlflow_server):
    gateway = Gateway(mlflow_server.url)
    yield gateway
    gateway.stop()
