"""The HTTP layer alone, side by side (issue 19, point 5): the same ModelServer (app.py) and model behind
today's standard-library server (serving/server.py: http.server.ThreadingHTTPServer) and behind
gunicorn (already in every serving venv: a dependency of mlflow), one process, `gthread` worker with
N threads, through a small WSGI adapter that keeps the service's refusals (411 for chunked bodies,
413 over max_body_bytes before the body is read). See README.md next to this file.

    .venv/bin/python benchmarks/serving/http_layer.py [--threads 8] [--connections 8] [--duration 10] [--rounds 2]

Measures GET /health and POST /v1/predict (one row of the all-double `bc` model, the fast path) with
loadgen.py, alternating the order per round; prints a markdown table (req/s, p99, server CPU per request).
"""

import argparse
import json
import os
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
import run as bench  # noqa: E402

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 422: "Unprocessable Entity", 500: "Internal Server Error", 503: "Service Unavailable"}


def make_app(model_dir, state, threads):
    from runlocalai_mlops import serving as ms  # pylint: disable=import-error
    config = ms.make_config({"name": "bench-bc", "version": "1", "model_uri": model_dir, "state_dir": os.path.join(state, "state"),
                             "log_dir": os.path.join(state, "log"), "port": 0, "threads": threads})
    app = ms.ModelServer(config)
    app.load()
    return app


def wsgi_adapter(app):
    from runlocalai_mlops.common.canonical import canonical_json  # pylint: disable=import-error

    def refuse(start_response, status, message):
        data = (canonical_json({"error": message}) + "\n").encode("utf-8")
        start_response("%d %s" % (status, REASONS[status]), [("Content-Type", "application/json"), ("Connection", "close"),
                                                             ("Content-Length", str(len(data)))])
        return [data]

    def application(environ, start_response):
        method = environ["REQUEST_METHOD"]
        body = b""
        if method == "POST":
            if environ.get("HTTP_TRANSFER_ENCODING"):
                return refuse(start_response, 411, "send a Content-Length (chunked bodies are not accepted)")
            try:
                length = int(environ.get("CONTENT_LENGTH"))
            except (TypeError, ValueError):
                return refuse(start_response, 411, "a Content-Length header is required")
            if length < 0 or length > app.config["max_body_bytes"]:
                return refuse(start_response, 413, "the body has %d bytes; the limit is %d" % (length, app.config["max_body_bytes"]))
            body = environ["wsgi.input"].read(length)
        headers = dict((k[5:].replace("_", "-").lower(), v) for k, v in environ.items() if k.startswith("HTTP_"))
        status, out_headers, data = app.handle(method, environ.get("PATH_INFO", "/"), headers, body)
        start_response("%d %s" % (status, REASONS.get(status, "")), out_headers + [("Content-Length", str(len(data)))])
        return [data]

    return application


def serve_stdlib(port, model_dir, state, threads):
    from runlocalai_mlops import serving as ms  # pylint: disable=import-error
    httpd = ms.make_http_server(make_app(model_dir, state, threads), "127.0.0.1", port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    httpd.serve_forever()


def serve_gunicorn(port, model_dir, state, threads):
    from gunicorn.app.base import BaseApplication  # pylint: disable=import-error

    class Application(BaseApplication):  # pylint: disable=abstract-method
        def load_config(self):
            for key, value in {"bind": "127.0.0.1:%d" % port, "workers": 1, "worker_class": "gthread", "threads": threads,
                               "keepalive": 60, "timeout": 120, "accesslog": None, "errorlog": "-", "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):
            return wsgi_adapter(make_app(model_dir, state, threads))

    Application().run()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", nargs=4, metavar=("KIND", "PORT", "MODEL_DIR", "STATE"), help=argparse.SUPPRESS)
    parser.set_defaults(keep_latencies=False)
    args = parser.parse_args()
    if args.serve:
        kind, port, model_dir, state = args.serve
        return (serve_stdlib if kind == "stdlib" else serve_gunicorn)(int(port), model_dir, state, args.threads)
    import mlflow.sklearn
    from mlflow.models import infer_signature

    workdir = tempfile.mkdtemp(prefix="bench-http-")
    pipe, features, train = bench.build_model("bc")
    model_dir = os.path.join(workdir, "model")
    mlflow.sklearn.save_model(pipe, model_dir, signature=infer_signature(train, pipe.predict(train)))
    lib = os.path.join(workdir, "lib")
    bench.install_package(lib, bench.MODULE_UTILS)
    env = dict(os.environ, PYTHONPATH=lib + os.pathsep + HERE)
    servers = {}
    for kind in ("stdlib", "gunicorn"):
        port = bench.free_port()
        argv = [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), "--serve", kind, str(port), model_dir,
                os.path.join(workdir, kind)]
        servers[kind] = bench.Server(kind, argv, env, port, "/ready", workdir)
    records = bench.row_records(features)
    rows = []
    try:
        for server in servers.values():
            server.wait_ready()
        for round_no in range(1, args.rounds + 1):
            for endpoint in ("health", "predict"):
                order = list(servers.values()) if round_no % 2 else list(reversed(list(servers.values())))
                for server in order:
                    if endpoint == "health":
                        requests = [loadgen.build_request("GET", "127.0.0.1", server.port, "/health")]
                    else:
                        requests = [loadgen.build_request("POST", "127.0.0.1", server.port, "/v1/predict", b)
                                    for b in bench.bodies("ours", records)]
                    item = bench.measure("%s %s r%d" % (endpoint, server.kind, round_no), server.port, requests, args, server)
                    span = args.duration + args.warmup
                    rows.append({"round": round_no, "endpoint": endpoint, "server": server.kind, "rps": item["rps"],
                                 "p99_ms": item["p99_ms"], "errors": item["errors"], "cpu_share": item["server_cpu_share"],
                                 "cpu_ms": 1000.0 * item["server_cpu_s"] / (item["rps"] * span) if item["rps"] else None,
                                 "load": (item["load_before"], item["load_after"])})
    finally:
        for server in servers.values():
            server.stop()
    print("| round | endpoint | server | req/s | p99 ms | errors | server CPU | CPU ms/request | load 1m |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print("| %d | %s | %s | %.0f | %.2f | %d | %.2f | %.3f | %.2f, %.2f |" % (
            row["round"], row["endpoint"], row["server"], row["rps"], row["p99_ms"] or 0, row["errors"], row["cpu_share"],
            row["cpu_ms"] or 0, row["load"][0], row["load"][1]))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
