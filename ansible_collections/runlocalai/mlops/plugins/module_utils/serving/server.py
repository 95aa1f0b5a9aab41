# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model service over HTTP: the standard library's threading HTTP server in front of the app,
and the command line (python -m <package>.serving --config FILE).

Plain Python (imports nothing from Ansible; siblings by relative imports only), so the model_server
role installs this package (with common/ and drift/) on serving hosts and runs it with

    python -m runlocalai_mlops.serving --config /etc/runlocalai-model/<name>.json

Needs mlflow (and what the model needs, e.g. scikit-learn), numpy and pandas at run time for the
pyfunc runtime; they are imported when the model loads, so the package imports with the standard
library alone. The llamacpp runtime needs only the llama-server binary.

Answers leave in one write (status line, headers and body), except streamed ones (the app returns a
StreamBody for them): those are written with chunked transfer encoding, one HTTP chunk per piece the
model process sent, each flushed at once (Connection: close and no length for an HTTP/1.0 client).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import signal
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..common.canonical import canonical_json
from .app import APP_NAME, ModelServer
from .messages import utc_now_text
from .config import ConfigError, load_config, read_token


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = APP_NAME
    sys_version = ""
    timeout = 60
    # Buffered writes: the status line, headers and body leave in one send when the handler flushes
    # after each request (separate small writes of headers and body meet Nagle's algorithm and the
    # client's delayed ACK on keep-alive connections: about 40 ms per answer); no Nagle delay either.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *args):  # the audit log records requests
        pass

    def handle_expect_100(self):
        answer = BaseHTTPRequestHandler.handle_expect_100(self)
        self.wfile.flush()  # writes are buffered: the client waits for this interim answer before the body
        return answer

    def _serve(self):
        app = self.server.app
        body = b""
        if self.command == "POST":
            length = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding"):
                return self._refuse(411, "send a Content-Length (chunked bodies are not accepted)")
            try:
                length = int(length)
            except (TypeError, ValueError):
                return self._refuse(411, "a Content-Length header is required")
            if length < 0 or length > app.config["max_body_bytes"]:
                return self._refuse(413, "the body has %d bytes; the limit is %d" % (length, app.config["max_body_bytes"]))
            body = self.rfile.read(length)
        headers = dict((k.lower(), v) for k, v in self.headers.items())
        status, out_headers, data = app.handle(self.command, self.path, headers, body)
        if isinstance(data, bytes):
            self._send(status, out_headers, data)
        else:
            self._send_stream(status, out_headers, data)
        return None

    def _refuse(self, status, message):
        app = self.server.app
        request_id = uuid.uuid4().hex
        data = (canonical_json({"error": message, "request_id": request_id}) + "\n").encode("utf-8")
        path = self.path.split("?", 1)[0]
        endpoint = app.endpoints.get((self.command, path), "other")
        app.metrics.request(endpoint, status, 0.0)
        if path.startswith("/v1/"):  # refused before the body was read: no input hash
            app.audit.write({"ts": utc_now_text(app.clock()), "model": app.name, "version": app.version, "request_id": request_id,
                             "method": self.command, "endpoint": endpoint, "status": status, "latency_ms": 0.0, "input_sha256": None})
        self.close_connection = True
        self._send(status, [("Content-Type", "application/json"), ("X-Request-ID", request_id), ("Connection", "close")], data)

    def _send(self, status, headers, data):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, status, headers, body):
        """A streamed answer: each piece goes out as it comes (one chunk, flushed: the first one with
        the headers, in one send). If the model process's stream breaks off, the connection is closed
        without the last chunk, so the client sees an incomplete answer, not a complete short one."""
        chunked = self.request_version != "HTTP/1.0"
        write = self.wfile.write
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            for chunk in body:
                if not chunk:
                    continue
                write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
            if chunked:
                write(b"0\r\n\r\n")
        except Exception as exc:  # pylint: disable=broad-except
            # the client went away (OSError) or the stream broke off: no last chunk, close the connection
            self.close_connection = True
            if not isinstance(exc, OSError):
                sys.stderr.write("stream: %s: %s\n" % (type(exc).__name__, exc))
        finally:
            body.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
         b"Content-Length: 51\r\n\r\n" + b'{"error":"too many open connections; retry later"}\n')


class HTTPServer(ThreadingHTTPServer):
    """http.server's threading server (one thread per connection), hardened: at most `max_connections`
    connections are served at once (each holds a thread, idle keep-alive ones included, for up to
    _Handler.timeout seconds between reads); one over the limit gets a 503 with Retry-After and is
    closed at once, without a thread, so slow or idle clients cannot make the process start threads
    without bound. The standard library already bounds the request line (65536 bytes: 414), header
    lines (65536: 431) and their number (100: 431); bodies are bounded by max_body_bytes (413) and
    need a Content-Length (411)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    max_connections = 256

    def __init__(self, address, app):
        self.app = app
        self.connection_slots = threading.BoundedSemaphore(self.max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        ThreadingHTTPServer.__init__(self, address, _Handler)

    def process_request(self, request, client_address):
        if not self.connection_slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            ThreadingHTTPServer.process_request(self, request, client_address)
        except BaseException:
            self.connection_slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            ThreadingHTTPServer.process_request_thread(self, request, client_address)
        finally:
            self.connection_slots.release()


def make_http_server(app, address=None, port=None):
    return HTTPServer((address or app.config["listen_address"], app.config["port"] if port is None else port), app)


def serve(config, log=None):
    """Run the service until SIGTERM/SIGINT: listen first (/health answers, /ready says 503), then load."""
    log = log or (lambda text: sys.stderr.write(text + "\n"))
    app = ModelServer(config)
    httpd = make_http_server(app)
    log("%s: serving %s version %s on %s:%d" % (APP_NAME, app.name, app.version, config["listen_address"], httpd.server_address[1]))

    def shutdown():
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    def stop(_signum, _frame):
        app.stopping.set()
        shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app.on_fatal = shutdown  # the model process died after loading: exit non-zero (systemd restarts the unit)
    loader = threading.Thread(target=app.load_forever, kwargs={"log": log}, daemon=True)
    loader.start()
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        app.close()
    if app.exit_code:
        log("%s: exiting with code %d: %s" % (APP_NAME, app.exit_code, app.load_error))
    return app.exit_code


def main(argv=None):
    parser = argparse.ArgumentParser(prog="model_serving", description="Serve one registered MLflow model version (runlocalai.mlops).")
    parser.add_argument("--config", required=True, help="instance configuration (JSON written by the model_server role)")
    parser.add_argument("--check-config", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if config.get("token_file"):
            read_token(config["token_file"])
    except ConfigError as exc:
        sys.stderr.write("model_serving: error: %s\n" % exc)
        return 2
    if args.check_config:
        sys.stdout.write(canonical_json({"name": config["name"], "version": config["version"], "ok": True}) + "\n")
        return 0
    return serve(config)


if __name__ == "__main__":
    raise SystemExit(main())
