# -*- coding: utf-8 -*-
"""module_utils/mlflow/artifacts.py: fetching a large run artifact into the content-addressed cache.

ArtifactServer below stands in for MLflow's artifact proxy (``GET /get-artifact?path=...&run_uuid=...``,
served with Flask's send_file: Range -> 206, a start past the end -> 416), on loopback in a thread, and
can cut the connection after N bytes of its first answers. benchmarks/llm/resume_fetch.py and the
module's tests use it too. That a real MLflow server's proxy answers Range with 206 is checked by
``benchmarks/llm/resume_fetch.py --real-mlflow`` (too slow for the unit tests on a loaded 2-core machine:
the basic-auth app of the shared test server checks a scrypt hash on every request).
"""

import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow import artifacts
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.artifacts import ArtifactError, fetch_to_cache

RUN = "6f2e1c0a9b8d4e7f"
PATH = "model/SmolLM2.gguf"
MIB = 1 << 20
UNAUTHENTICATED = (b"You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html"
                   b"#authenticating-to-mlflow on how to authenticate.")


def generated(size, seed=b"runlocalai"):
    """size bytes that do not repeat in 1 MiB chunks (a wrong offset changes the hash)."""
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest() * 64
        counter += 1
    return bytes(out[:size])


class ArtifactServer:
    """MLflow's artifact proxy, as far as a download sees it.

    content: bytes, or the path of a file to serve. cut_after / cuts: the first ``cuts`` answers end (FIN,
    not RST) after cut_after bytes of their body. honour_range=False answers 200 to every request (a server
    or proxy without Range support). username/password or token: required credentials (else 401 as
    MLflow's basic-auth app words it); status: answer this status to every request; tls: HTTPS with a
    self-signed certificate for 127.0.0.1 (``ca_path``). ``requests`` records each request (method, params,
    range, authorization), ``answers`` each status sent.
    """

    def __init__(self, content, artifact_path=PATH, run_id=RUN, cut_after=None, cuts=0, honour_range=True, username=None,
                 password=None, token=None, status=None, tls=False):
        self.content = content
        self.size = len(content) if isinstance(content, bytes) else os.path.getsize(content)
        self.artifact_path, self.run_id = artifact_path, run_id
        self.cut_after, self.cuts_left, self.honour_range, self.status = cut_after, cuts, honour_range, status
        self.authorization = None
        if token:
            self.authorization = "Bearer " + token
        elif username:
            self.authorization = "Basic " + base64.b64encode(("%s:%s" % (username, password)).encode()).decode()
        self.requests, self.answers = [], []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.tls_dir = self.ca_path = None
        if tls:
            self.tls_dir = tempfile.mkdtemp(prefix="artifact-server-tls-")
            self.ca_path, key = os.path.join(self.tls_dir, "cert.pem"), os.path.join(self.tls_dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", self.ca_path], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_path, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.tls_dir:
            shutil.rmtree(self.tls_dir, ignore_errors=True)

    def ranges(self):
        return [r["range"] for r in self.requests]

    def read(self, start, count):
        if isinstance(self.content, bytes):
            return self.content[start:start + count]
        with open(self.content, "rb") as handle:
            handle.seek(start)
            return handle.read(count)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body=b"", headers=()):
                server.answers.append(status)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlsplit(self.path)
                params = dict((k, v[0]) for k, v in parse_qs(url.query).items())
                with server.lock:
                    server.requests.append({"method": "GET", "path": url.path, "params": params, "range": self.headers.get("Range"),
                                            "authorization": self.headers.get("Authorization")})
                    cut = server.cuts_left > 0 and server.cut_after is not None
                    if cut:
                        server.cuts_left -= 1
                if server.authorization and self.headers.get("Authorization") != server.authorization:
                    return self.answer(401, UNAUTHENTICATED)
                if server.status:
                    return self.answer(server.status, b"Permission denied" if server.status == 403 else b"boom")
                if url.path != "/get-artifact" or params.get("path") != server.artifact_path or params.get("run_uuid") != server.run_id:
                    body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such file or directory: '%s'"
                                       % params.get("path")}).encode()
                    return self.answer(404, body, [("Content-Type", "application/json")])
                start, end, status = 0, server.size - 1, 200
                wanted = self.headers.get("Range")
                if wanted and server.honour_range:
                    first, last = (wanted.split("=", 1)[1].split("-", 1) + [""])[:2]
                    start = int(first)
                    if start >= server.size:
                        return self.answer(416, headers=[("Content-Range", "bytes */%d" % server.size)])
                    end = min(int(last), server.size - 1) if last else server.size - 1
                    status = 206
                length = end - start + 1
                server.answers.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, server.size))
                self.end_headers()
                budget = server.cut_after if cut else length
                sent = 0
                try:
                    while sent < min(length, budget):
                        block = server.read(start + sent, min(MIB, min(length, budget) - sent))
                        self.wfile.write(block)
                        sent += len(block)
                    if cut:
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler


@pytest.fixture
def content():
    return generated(5 * MIB + 12345)


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return str(path)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def fetch(server, data, cache_dir, **extra):
    args = dict(tracking_uri=server.url, run_id=RUN, artifact_path=PATH, sha256=sha(data), cache_dir=cache_dir, retry_delay=0)
    args.update(extra)
    return fetch_to_cache(**args)


def listing(cache_dir):
    return sorted(name for name in os.listdir(cache_dir) if not name.startswith("."))


def test_fresh_download_lands_under_its_sha256(content, cache):
    with ArtifactServer(content) as server:
        result = fetch(server, content, cache, size=len(content), mode=0o640)
    final = os.path.join(cache, sha(content) + ".gguf")
    assert result["path"] == final and result["changed"] is True and result["download"] is True and result["cached"] is False
    assert result["downloaded_bytes"] == len(content) and result["resumed_from"] == 0 and result["size"] == len(content)
    assert result["removed"] == [] and result["attempts"] == 1 and result["disk"]["checked"] is True
    assert open(final, "rb").read() == content and listing(cache) == [os.path.basename(final)]
    assert os.stat(final).st_mode & 0o777 == 0o640
    assert server.ranges() == [None]
    assert server.requests[0]["params"] == {"path": PATH, "run_uuid": RUN}


def test_cut_connection_resumes_from_the_kept_offset(content, cache):
    cut = 1536 * 1024 + 7
    with ArtifactServer(content, cut_after=cut, cuts=2) as server:
        result = fetch(server, content, cache)
    assert server.ranges() == [None, "bytes=%d-" % cut, "bytes=%d-" % (2 * cut)]
    assert server.answers == [200, 206, 206]
    assert result["resumes"] == [cut, 2 * cut] and result["resumed_from"] == cut and result["attempts"] == 3
    assert result["downloaded_bytes"] == len(content)
    assert open(result["path"], "rb").read() == content and listing(cache) == [os.path.basename(result["path"])]


def test_too_many_cuts_keep_the_part_for_the_next_run(content, cache):
    cut = MIB
    with ArtifactServer(content, cut_after=cut, cuts=3) as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, retries=2)
        part = os.path.join(cache, sha(content) + ".gguf.part")
        assert os.path.getsize(part) == 3 * cut
        assert str(failed.value).startswith("the download of artifact %s of run %s from %s was cut 3 times "
                                            "(last: connection cut after %d of %d bytes of the answer); %d bytes (3.0 MiB) are kept "
                                            "in %s and the next run resumes from there"
                                            % (PATH, RUN, server.url, cut, len(content) - 2 * cut, 3 * cut, part))
        # The next run: the server is fine again, the part is continued.
        result = fetch(server, content, cache)
    assert server.ranges()[-1] == "bytes=%d-" % (3 * cut)
    assert result["resumed_from"] == 3 * cut and result["downloaded_bytes"] == len(content) - 3 * cut
    assert open(result["path"], "rb").read() == content and not os.path.exists(part)


def test_part_of_an_earlier_run_is_rehashed_and_continued(content, cache):
    part = os.path.join(cache, sha(content) + ".gguf.part")
    with open(part, "wb") as handle:
        handle.write(content[:MIB])
    with ArtifactServer(content) as server:
        result = fetch(server, content, cache, size=len(content))
    assert server.ranges() == ["bytes=%d-" % MIB] and server.answers == [206]
    assert result["resumed_from"] == MIB and result["downloaded_bytes"] == len(content) - MIB
    assert result["disk"]["remaining_bytes"] == len(content) - MIB
    assert open(result["path"], "rb").read() == content


def test_server_without_range_support_starts_over(content, cache):
    part = os.path.join(cache, sha(content) + ".gguf.part")
    with open(part, "wb") as handle:
        handle.write(b"x" * MIB)  # not even a prefix: would fail the hash if appended to
    with ArtifactServer(content, honour_range=False) as server:
        result = fetch(server, content, cache)
    assert server.ranges() == ["bytes=%d-" % MIB] and server.answers == [200]
    assert result["resumed_from"] == 0 and result["restarts"] == 1 and result["downloaded_bytes"] == len(content)
    assert open(result["path"], "rb").read() == content


def test_416_with_a_complete_part_finishes_without_a_body(content, cache):
    part = os.path.join(cache, sha(content) + ".gguf.part")
    with open(part, "wb") as handle:
        handle.write(content)
    with ArtifactServer(content) as server:
        result = fetch(server, content, cache)
    assert server.answers == [416] and result["downloaded_bytes"] == 0 and result["changed"] is True
    assert open(result["path"], "rb").read() == content and not os.path.exists(part)


def test_416_with_a_part_longer_than_the_artifact_starts_over(content, cache):
    part = os.path.join(cache, sha(content) + ".gguf.part")
    with open(part, "wb") as handle:
        handle.write(content + b"trailing")
    with ArtifactServer(content) as server:
        result = fetch(server, content, cache)
    assert server.answers == [416, 200] and server.ranges() == ["bytes=%d-" % (len(content) + 8), None]
    assert open(result["path"], "rb").read() == content


def test_wrong_sha256_leaves_nothing(content, cache):
    wrong = "0" * 64
    with ArtifactServer(content, cut_after=MIB, cuts=1) as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, sha256=wrong)
    assert str(failed.value) == ("sha256: artifact %s of run %s from %s has SHA-256 %s, expected %s (%d bytes); the download "
                                 "was deleted, nothing is cached" % (PATH, RUN, server.url, sha(content), wrong, len(content)))
    assert listing(cache) == []


def test_not_enough_disk_space_writes_nothing(content, cache, monkeypatch):
    class Small:
        f_bavail, f_frsize = 16, 4096  # 64 KiB free
    seen = []
    monkeypatch.setattr(artifacts.os, "statvfs", lambda path: seen.append(path) or Small())
    with ArtifactServer(content) as server:
        with pytest.raises(ArtifactError) as known:  # size given: refused before any request
            fetch(server, content, cache, size=len(content))
        assert server.requests == []
        with pytest.raises(ArtifactError) as learnt:  # size from the answer's Content-Length: refused before a byte is written
            fetch(server, content, cache)
        assert len(server.requests) == 1
    needed = (len(content) + artifacts.DISK_MARGIN) / float(MIB)
    for failed in (known, learnt):
        assert str(failed.value) == ("cache_dir: not enough free space in %s for the download: %.1f MiB needed (5.0 MiB still to "
                                     "fetch plus a margin of 64.0 MiB), 0.1 MiB free; nothing was written" % (cache, needed))
    assert listing(cache) == [] and seen[0] == os.path.abspath(cache)


def test_cached_file_makes_no_request(content, cache):
    final = os.path.join(cache, sha(content) + ".gguf")
    with open(final, "wb") as handle:
        handle.write(content)
    os.utime(final, (1000, 1000))
    with ArtifactServer(content) as server:
        result = fetch(server, content, cache, size=len(content), verify_existing=True)
        assert server.requests == []
    assert result["changed"] is False and result["cached"] is True and result["download"] is False
    assert result["downloaded_bytes"] == 0 and result["size"] == len(content)
    assert os.stat(final).st_mtime > 1000  # used again: the newest for pruning


def test_damaged_cached_file_is_fetched_again(content, cache):
    final = os.path.join(cache, sha(content) + ".gguf")
    with open(final, "wb") as handle:
        handle.write(b"y" * len(content))
    with ArtifactServer(content) as server:
        trusted = fetch(server, content, cache)  # same size, not verified: trusted
        assert server.requests == [] and trusted["cached"] is True
        result = fetch(server, content, cache, verify_existing=True)
        assert len(server.requests) == 1
    assert result["replaced"] == "the cached file's SHA-256 is %s" % sha(b"y" * len(content))
    assert result["changed"] is True and open(final, "rb").read() == content
    with open(final, "ab") as handle:
        handle.write(b"z")
    with ArtifactServer(content) as server:
        resized = fetch(server, content, cache, size=len(content))
    assert resized["replaced"] == "the cached file has %d bytes, size says %d" % (len(content) + 1, len(content))
    assert open(final, "rb").read() == content


def test_wrong_size_keeps_a_good_cached_file(content, cache):
    final = os.path.join(cache, sha(content) + ".gguf")
    with open(final, "wb") as handle:
        handle.write(content)
    with ArtifactServer(content) as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, size=len(content) + 1)
    assert str(failed.value) == ("size: the tracking server at %s has artifact %s of run %s with %d bytes, size says %d; nothing was "
                                 "written" % (server.url, PATH, RUN, len(content), len(content) + 1))
    assert open(final, "rb").read() == content and listing(cache) == [os.path.basename(final)]


def test_tls_with_ca_path_or_without_verification(content, cache):
    with ArtifactServer(content, tls=True, token="tok-1") as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, token="tok-1")
        assert server.requests == []
        verified = fetch(server, content, cache, token="tok-1", ca_path=server.ca_path, keep=0)
        os.unlink(verified["path"])
        unverified = fetch(server, content, cache, token="tok-1", validate_certs=False)
    assert str(failed.value).startswith("tracking_uri: TLS verification failed for %s (set ca_path, or validate_certs: false): "
                                        % server.url)
    assert verified["changed"] is True and unverified["changed"] is True and open(unverified["path"], "rb").read() == content
    with pytest.raises(InputError) as failed:
        fetch(server, content, cache, ca_path=os.path.join(cache, "none.pem"))
    assert str(failed.value).startswith("ca_path: cannot load %s: " % os.path.join(cache, "none.pem"))


def test_keep_and_protect(content, cache):
    old = []
    for age, name in enumerate("abcd"):
        path = os.path.join(cache, name * 64 + ".gguf")
        with open(path, "wb") as handle:
            handle.write(name.encode())
        os.utime(path, (10000 - age * 100, 10000 - age * 100))  # a newest ... d oldest
        old.append(path)
    stale = os.path.join(cache, "e" * 64 + ".gguf.part")
    open(stale, "wb").close()
    other = os.path.join(cache, "notes.txt")
    open(other, "wb").close()
    with ArtifactServer(content) as server:
        planned = fetch(server, content, cache, keep=3, protect=["D" * 64], check_mode=True)
        result = fetch(server, content, cache, keep=3, protect=["D" * 64])
    # kept: the new file, the protected d, the newest other (a); removed, oldest first: c, b and the stale part
    assert result["removed"] == [old[2], old[1], stale] and planned["removed"] == result["removed"]
    assert listing(cache) == sorted(["a" * 64 + ".gguf", "d" * 64 + ".gguf", sha(content) + ".gguf", "notes.txt"])
    with ArtifactServer(content) as server:
        again = fetch(server, content, cache, keep=3, protect=["d" * 64])
        everything = fetch(server, content, cache, keep=0)
        one = fetch(server, content, cache, keep=1)
    assert again["changed"] is False and again["removed"] == [] and everything["removed"] == []
    assert one["changed"] is True and sorted(one["removed"]) == sorted([old[0], old[3]])
    assert listing(cache) == sorted([sha(content) + ".gguf", "notes.txt"])


def test_check_mode_probes_one_byte_and_writes_nothing(content, cache, tmp_path):
    part = os.path.join(cache, sha(content) + ".gguf.part")
    with open(part, "wb") as handle:
        handle.write(content[:MIB])
    with ArtifactServer(content) as server:
        result = fetch(server, content, cache, check_mode=True)
        missing_dir = fetch(server, content, str(tmp_path / "not-yet"), check_mode=True)
    assert server.ranges() == ["bytes=0-0", "bytes=0-0"]
    assert result["changed"] is True and result["download"] is True and result["downloaded_bytes"] == 0
    assert result["size"] == len(content) and result["resumed_from"] == MIB
    assert result["disk"]["remaining_bytes"] == len(content) - MIB and result["disk"]["checked"] is True
    assert listing(cache) == [os.path.basename(part)] and not os.path.exists(os.path.join(cache, artifacts.LOCK_NAME))
    assert missing_dir["download"] is True and not os.path.exists(str(tmp_path / "not-yet"))
    with pytest.raises(ArtifactError) as failed:
        with ArtifactServer(content) as server:
            fetch(server, content, cache, check_mode=True, size=len(content) + 1)
    assert "has artifact %s of run %s with %d bytes, size says %d" % (PATH, RUN, len(content), len(content) + 1) in str(failed.value)


def test_credentials_and_refusals(content, cache):
    with ArtifactServer(content, username="reader", password="s3cret-pw") as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, username="reader", password="wrong-pw-1")
        assert fetch(server, content, cache, username="reader", password="s3cret-pw")["changed"] is True
        assert server.requests[-1]["authorization"] == "Basic " + base64.b64encode(b"reader:s3cret-pw").decode()
    assert str(failed.value) == ("the tracking server at %s did not accept the credentials of user 'reader' (HTTP 401) reading "
                                 "artifact %s of run %s: check username and password" % (server.url, PATH, RUN))
    assert "wrong-pw-1" not in str(failed.value)
    with ArtifactServer(content, token="tok-1") as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, token="tok-2", sha256="1" * 64)
        assert server.requests[-1]["authorization"] == "Bearer tok-2"
    assert "credentials of a client with a bearer token (HTTP 401)" in str(failed.value) and str(failed.value).endswith("check token")
    with ArtifactServer(content, status=403) as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, sha256="2" * 64)
    assert str(failed.value) == ("an anonymous client may not read artifact %s of run %s at %s (HTTP 403: Permission denied): give it "
                                 "READ on the run's experiment" % (PATH, RUN, server.url))
    with ArtifactServer(content) as server:
        with pytest.raises(ArtifactError) as failed:
            fetch(server, content, cache, artifact_path="model/other.gguf", sha256="3" * 64)
    assert str(failed.value) == ("the tracking server at %s has no artifact model/other.gguf of run %s (HTTP 404: No such file or "
                                 "directory: 'model/other.gguf'): check run_id and artifact_path" % (server.url, RUN))
    assert listing(cache) == [sha(content) + ".gguf"]


def test_unreachable_server_is_retried_then_named(content, cache):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    started = time.time()
    with pytest.raises(ArtifactError) as failed:
        fetch_to_cache("http://user:pw@127.0.0.1:%d/" % port, RUN, PATH, sha(content), cache, retries=2, retry_delay=0.01)
    assert time.time() - started < 10
    message = str(failed.value)
    assert message.startswith("could not reach the tracking server at http://127.0.0.1:%d to read artifact %s of run %s (3 tries): "
                              % (port, PATH, RUN)) and message.endswith("; nothing was kept")
    assert "Connection refused" in message and "pw" not in message


@pytest.mark.parametrize("kwargs, message", [
    (dict(sha256="abc"), "sha256: 'abc' is not a SHA-256 digest (64 hexadecimal characters)"),
    (dict(protect=["x"]), "protect: 'x' is not a SHA-256 digest (64 hexadecimal characters)"),
    (dict(artifact_path="../etc/passwd"), "artifact_path: '../etc/passwd' is not the relative path of a file among the run's artifacts, "
                                          "e.g. model/SmolLM2.gguf"),
    (dict(run_id="a b"), "run_id: 'a b' is not an MLflow run id"),
    (dict(tracking_uri="mlflow.internal"), "tracking_uri: 'mlflow.internal' is not an http(s) URL of an MLflow tracking server"),
    (dict(username="u"), "username and password: give both or neither"),
    (dict(keep=-1), "keep: -1 must be a whole number, 0 or more"),
    (dict(size=-5), "size: -5 is not a number of bytes"),
])
def test_bad_inputs_name_the_parameter(cache, kwargs, message):
    args = dict(tracking_uri="http://127.0.0.1:9", run_id=RUN, artifact_path=PATH, sha256="A" * 64, cache_dir=cache)
    args.update(kwargs)
    with pytest.raises(InputError) as failed:
        fetch_to_cache(**args)
    assert str(failed.value) == message
    with pytest.raises(InputError) as failed:
        fetch_to_cache("http://127.0.0.1:9", RUN, PATH, "a" * 64, os.path.join(cache, "missing"))
    assert str(failed.value) == "cache_dir: directory %s does not exist" % os.path.join(cache, "missing")


def test_cache_name_keeps_the_extension():
    digest = "a" * 64
    assert artifacts.cache_name(digest.upper(), "model/SmolLM2.gguf") == digest + ".gguf"
    assert artifacts.cache_name(digest, "weights") == digest
    assert artifacts.cache_name(digest, "model/x.tar.gz") == digest + ".gz"
