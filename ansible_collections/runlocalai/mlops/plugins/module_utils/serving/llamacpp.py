# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The llamacpp runtime: a GGUF model served by llama.cpp's own `llama-server`, run as a child
process of the service and reached over loopback.

The service stays the front (runtime.py): it listens on the instance's address and port, checks the
bearer token, keeps the request log, the metrics, the drift window, /health, /ready and /v1/models.
load() starts `llama-server` bound to 127.0.0.1 on a free ephemeral port, with the flags of
server_argv() and nothing else from its own defaults (memory is decided by the configuration: the
role's fit check adds up the same numbers), waits for its /health, has it generate one token, and
only then returns. The child's output goes to the service's stderr (journald), each line prefixed
`llama-server[<pid>]: `. It gets a random API key (environment LLAMA_API_KEY, not argv), so other
local users cannot bypass the service's token on the loopback port; the service sends that key.
The child dies with the service (PR_SET_PDEATHSIG, SIGKILL, on Linux), and when the child dies
after load(), the app is told (on_exit): it stops answering and the service exits non-zero, so
systemd restarts the unit. close() sends SIGTERM, then SIGKILL after 10 s.

Endpoints: POST /v1/chat/completions and POST /v1/completions (OpenAI-compatible, `stream` true or
false). A request is checked before it is forwarded (4xx naming `field`): a JSON object; chat needs
a non-empty `messages` list of {role, content}; completions a `prompt` string or list of strings;
`max_tokens` / `max_completion_tokens` / `n_predict` at most the configuration's `max_tokens` (a
request that names none of them gets `max_tokens` set to that bound: the only case where the body is
re-serialised). Otherwise the body goes to llama-server as received. llama-server's 4xx answers
pass through with their status, its 5xx become 502, no answer at all 503.

Streams (`stream: true`) are relayed as they arrive: each chunk read from llama-server is handed to
the HTTP layer at once (server.py writes it as one HTTP chunk and flushes). Nothing is parsed per
token: the relay keeps the last 64 KiB of the stream and reads usage, timings and finish_reason from
its final events when the stream ends (llama-server puts `timings` in the last event of every
stream, `usage` in the final event of a completions stream and, when the client asks for it with
`stream_options.include_usage`, of a chat stream; without `usage`, prompt tokens are timings'
cache_n + prompt_n and completion tokens its predicted_n).

The drift window gets one record per sampled request (drift/tables.py serving_record):
inputs {"prompt_tokens": n} and outputs {"completion_tokens", "latency_ms", "finish_reason"}. The
drift timer compares the reference profile's features, which are the reference's `inputs` unless
`features` are listed, so a shift in prompt lengths is what it detects by default; the outputs are
there for `features: [prompt_tokens, outputs.completion_tokens]` and the sequential checks.

Plain Python, standard library only (the package travels to serving hosts whole).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

from ..common.canonical import canonical_json
from ..common.files import file_sha256
from .messages import ServingError
from .runtime import Runtime

try:
    import ctypes
except ImportError:  # pragma: no cover - ctypes is in every CPython build we serve on
    ctypes = None

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")
# The request fields that bound the answer's length (llama-server takes all three as n_predict).
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "n_predict")
# Configuration keys /v1/models reports when the role wrote them (the GGUF metadata, llm/gguf.py).
INFO_KEYS = ("architecture", "quantization", "parameter_count", "context_length", "layers", "file_bytes", "has_chat_template")
OFFLOAD_RE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
LOOPBACK = "127.0.0.1"
UPSTREAM_TIMEOUT = 600.0   # seconds without a byte from llama-server before a request gives up
STOP_GRACE = 10.0          # SIGTERM, then SIGKILL after this many seconds
OUTPUT_LINES = 40          # lines of llama-server's output kept for error messages
TAIL_BYTES = 65536         # the end of a stream kept to read usage and timings from
READ_SIZE = 65536
PROBE_PROMPT = "Hello"
PR_SET_PDEATHSIG = 1


def server_argv(config, port):
    """The llama-server command line for an instance configuration: every flag always present, so
    llama-server's own defaults (trained context, automatic slots, an 8 GiB prompt cache, as many
    GPU layers as fit) never decide memory. Device cpu runs no layer on a GPU (--device none)."""
    cpu = config["device"] == "cpu"
    layers = 0 if cpu else config["gpu_layers"]
    argv = [config["llama_server"], "-m", config["model_path"], "--host", LOOPBACK, "--port", str(port),
            "--ctx-size", str(config["ctx_per_slot"] * config["parallel"]), "--parallel", str(config["parallel"]),
            "--kv-unified" if config["kv_unified"] else "--no-kv-unified",
            "--cache-type-k", config["cache_type_k"], "--cache-type-v", config["cache_type_v"],
            "--cache-ram", str(config["cache_ram_mib"]), "--threads", str(config["threads"]),
            "--n-gpu-layers", "all" if layers == -1 else str(layers),
            "--metrics", "--no-webui", "--alias", config["name"]]
    if cpu:
        argv += ["--device", "none"]
    return argv


def free_port():
    """A free loopback port (bound to port 0 and closed again; llama-server binds it right after)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def _prctl():
    """libc's prctl, looked up before any fork (the child only calls it), or None."""
    if ctypes is None or not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return function


def _die_with_parent(prctl, parent):
    """preexec_fn: SIGKILL the child when the thread that started it ends (PR_SET_PDEATHSIG)."""
    def setup():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return setup


def prompt_hash(value):
    """SHA-256 of the canonical JSON of `messages` (chat) or `prompt` (completions)."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_request(endpoint, payload, limit):
    """Check a generation request before it is forwarded: ServingError (4xx naming the field) or
    (prompt_sha256, stream, body_override): body_override is None (forward the body as received) or
    the body with `max_tokens` set to `limit` when the request names no length bound."""
    if not isinstance(payload, dict):
        raise ServingError(400, "the body must be a JSON object")
    if endpoint == "chat_completions":
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ServingError(422, "missing required field 'messages' (a non-empty list of {role, content})", "messages")
        for index, message in enumerate(messages):
            field = "messages[%d]" % index
            if not isinstance(message, dict):
                raise ServingError(422, "%s: must be an object {role, content}" % field, field)
            role = message.get("role")
            if not isinstance(role, str) or not role:
                raise ServingError(422, "%s.role: must be a non-empty string" % field, field + ".role")
            content = message.get("content")
            if not (isinstance(content, (str, list)) or content is None and role == "assistant" and message.get("tool_calls")):
                raise ServingError(422, "%s.content: must be a string or a list of content parts" % field, field + ".content")
        hashed = prompt_hash(messages)
    else:
        prompt = payload.get("prompt")
        if isinstance(prompt, list):
            if not prompt or not all(isinstance(p, str) for p in prompt):
                raise ServingError(422, "prompt: must be a string or a non-empty list of strings", "prompt")
        elif not isinstance(prompt, str):
            raise ServingError(422, "missing required field 'prompt' (a string or a list of strings)", "prompt")
        hashed = prompt_hash(prompt)
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise ServingError(422, "stream: must be true or false", "stream")
    named = False
    for key in TOKEN_FIELDS:
        if key not in payload:
            continue
        named = True
        value = payload[key]
        if not _is_int(value):
            raise ServingError(422, "%s: must be an integer, got %s" % (key, json.dumps(value)[:40]), key)
        if value < 0 or value > limit:
            raise ServingError(422, "%s: %d is more than this instance allows (at most %d tokens per answer)"
                               % (key, value, limit) if value > limit else
                               "%s: %d (no limit) is more than this instance allows (at most %d tokens per answer)" % (key, value, limit), key)
    override = None
    if not named:
        body = dict(payload)
        body["max_tokens"] = limit
        override = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashed, stream, override


def summarize(objects):
    """Token counts, finish reason and decode speed from llama-server's answer (one JSON object) or a
    stream's final events (last first): usage first, timings otherwise."""
    out = {"prompt_tokens": None, "completion_tokens": None, "finish_reason": None, "tokens_per_second": None,
           "predicted_ms": None, "predicted_per_token_ms": None}
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        usage = obj.get("usage")
        if isinstance(usage, dict) and out["prompt_tokens"] is None:
            if _is_int(usage.get("prompt_tokens")) and _is_int(usage.get("completion_tokens")):
                out["prompt_tokens"], out["completion_tokens"] = usage["prompt_tokens"], usage["completion_tokens"]
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason") and out["finish_reason"] is None:
                out["finish_reason"] = str(choice["finish_reason"])
    for obj in objects:
        timings = obj.get("timings") if isinstance(obj, dict) else None
        if not isinstance(timings, dict):
            continue
        if out["prompt_tokens"] is None and _is_int(timings.get("prompt_n")) and _is_int(timings.get("predicted_n")):
            out["prompt_tokens"] = timings["prompt_n"] + (timings.get("cache_n") if _is_int(timings.get("cache_n")) else 0)
            out["completion_tokens"] = timings["predicted_n"]
        for key, name in (("predicted_per_second", "tokens_per_second"), ("predicted_ms", "predicted_ms"),
                          ("predicted_per_token_ms", "predicted_per_token_ms")):
            value = timings.get(key)
            if out[name] is None and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = float(value)
        break
    return out


def stream_events(data, count=4):
    """The last `count` JSON events of an event stream's tail (last first; [DONE] and cut events skipped)."""
    events = []
    for line in reversed(data.split(b"\n")):
        if not line.startswith(b"data:"):
            continue
        text = line[5:].strip()
        if text == b"[DONE]":
            continue
        try:
            events.append(json.loads(text.decode("utf-8")))
        except ValueError:
            continue
        if len(events) >= count:
            break
    return events


def _error_message(data):
    """llama-server's error message from an error answer's body (JSON {"error": {"message"}} or text)."""
    try:
        parsed = json.loads(data.decode("utf-8"))
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except (ValueError, UnicodeDecodeError):
        pass
    return data[:300].decode("utf-8", "replace").strip() or "(no message)"


class UpstreamBroken(Exception):
    """llama-server's stream broke off: the HTTP layer closes the client connection without the last chunk."""


class Relay:
    """An event stream from llama-server, relayed chunk by chunk (an iterator of bytes for the HTTP
    layer). Each read returns what llama-server sent so far (one event, usually); the chunk goes to
    the client as it is. The last TAIL_BYTES are kept (a deque of the chunks, no copies) for the
    summary at the end. `on_done(relay)` is called once: at the end of the stream, when it breaks,
    or when the HTTP layer closes it early (the client went away; the upstream connection closes and
    llama-server stops generating)."""

    def __init__(self, conn, response, on_done):
        self.conn = conn
        self.response = response
        self.on_done = on_done
        self.first_at = None     # perf_counter of the first event (the first token)
        self.ended_at = None
        self.tail = collections.deque()
        self.tail_size = 0
        self.outcome = None      # "complete", "aborted" (client gone) or "broken" (upstream)
        self.error = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.outcome is not None:
            raise StopIteration
        try:
            chunk = self.response.read1(READ_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            self._finish("broken", "%s: %s" % (type(exc).__name__, exc))
            raise UpstreamBroken("llama-server's stream broke off: %s" % self.error)
        if not chunk:
            self._finish("complete")
            raise StopIteration
        if self.first_at is None and b"data:" in chunk:
            self.first_at = time.perf_counter()
        tail = self.tail
        tail.append(chunk)
        self.tail_size += len(chunk)
        while self.tail_size - len(tail[0]) >= TAIL_BYTES:
            self.tail_size -= len(tail.popleft())
        return chunk

    def close(self):
        if self.outcome is None:
            self._finish("aborted")

    def summary(self):
        return summarize(stream_events(b"".join(self.tail)))

    def _finish(self, outcome, error=None):
        self.outcome = outcome
        self.error = error
        self.ended_at = time.perf_counter()
        try:
            self.conn.close()
        finally:
            on_done, self.on_done = self.on_done, None
            if on_done is not None:
                on_done(self)


class Answer:
    """llama-server's answer to one request: status, content type and either `data` (the whole body)
    or `relay` (a stream); `summary` (summarize()) for a 200 answer."""

    def __init__(self, status, content_type, data=None, relay=None, summary=None):
        self.status = status
        self.content_type = content_type
        self.data = data
        self.relay = relay
        self.summary = summary


class LlamaServer:
    """One llama-server child process: started by a supervisor thread that lives as long as the child
    (PR_SET_PDEATHSIG follows the thread that forked, so it must not be a thread that ends sooner),
    reads its output line by line into our stderr and waits for its exit."""

    def __init__(self, argv, port, key, env=None, log=None):
        self.argv = argv
        self.port = port
        self.key = key
        self.env = env
        self.log = log or (lambda text: sys.stderr.write(text + "\n"))
        self.proc = None
        self.lines = collections.deque(maxlen=OUTPUT_LINES)
        self.offloaded = None      # (layers on the GPU, layers) from "offloaded N/M layers to GPU"
        self.started = threading.Event()
        self.exited = threading.Event()
        self.start_error = None
        self.returncode = None
        self.closing = False
        self.on_exit = None        # called with a message when the child exits and close() did not ask for it
        self.thread = None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def start(self):
        self.thread = threading.Thread(target=self._supervise, name="llama-server", daemon=True)
        self.thread.start()
        self.started.wait()
        if self.start_error is not None:
            raise RuntimeError("cannot start llama-server (%s): %s" % (self.argv[0], self.start_error))

    def _supervise(self):
        prctl = _prctl()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=self.env, close_fds=True,
                                         preexec_fn=_die_with_parent(prctl, os.getpid()) if prctl is not None else None)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self.start_error = exc
            self.exited.set()
            self.started.set()
            return
        self.started.set()
        prefix = "llama-server[%d]: " % self.proc.pid
        try:
            for raw in iter(self.proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.lines.append(line)
                if self.offloaded is None:
                    match = OFFLOAD_RE.search(line)
                    if match:
                        self.offloaded = (int(match.group(1)), int(match.group(2)))
                try:
                    sys.stderr.write(prefix + line + "\n")
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
        finally:
            self.proc.stdout.close()
            self.returncode = self.proc.wait()
            self.exited.set()
        if not self.closing and self.on_exit is not None:
            self.on_exit("llama-server (pid %d) exited with code %s; its last output:\n%s" % (self.proc.pid, self.returncode, self.output()))

    def output(self):
        return "\n".join(self.lines) or "(none)"

    def connection(self, timeout):
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def headers(self):
        return {"Authorization": "Bearer " + self.key, "Content-Type": "application/json"}

    def call(self, method, path, body=None, timeout=5.0):
        """One request to llama-server: (status, body bytes); OSError / HTTPException when it does not answer."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=self.headers())
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_ready(self, timeout, stopping=None):
        """Wait for /health 200, then have the model generate one token; raise (with the child's last
        output) when it exits, answers an error or takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if self.exited.is_set():
                raise RuntimeError("llama-server exited with code %s before it was ready; its last output:\n%s" % (self.returncode, self.output()))
            if stopping is not None and stopping.is_set():
                raise RuntimeError("the service is stopping")
            try:
                status, _data = self.call("GET", "/health", timeout=2.0)
            except (OSError, http.client.HTTPException):
                status = None
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("llama-server did not become healthy within %d s; its last output:\n%s" % (timeout, self.output()))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        probe = json.dumps({"prompt": PROBE_PROMPT, "n_predict": 1, "cache_prompt": False}).encode("utf-8")
        try:
            status, data = self.call("POST", "/completion", probe, timeout=max(deadline - time.monotonic(), 5.0))
        except (OSError, http.client.HTTPException) as exc:
            self.exited.wait(0.5)
            raise RuntimeError("llama-server did not answer a first completion (%s: %s); its last output:\n%s"
                               % (type(exc).__name__, exc, self.output()))
        if status != 200:
            raise RuntimeError("llama-server answered a first completion with %d: %s" % (status, _error_message(data)))

    def close(self):
        """SIGTERM, then SIGKILL after STOP_GRACE seconds; waits for the exit."""
        self.closing = True
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
            if not self.exited.wait(STOP_GRACE):
                try:
                    proc.kill()
                except OSError:
                    pass
        self.exited.wait(STOP_GRACE)


def loopback_server(config):
    """A LlamaServer (not started) for an instance configuration: server_argv() on a free loopback
    port, a random API key in its environment (LLAMA_API_KEY, not argv), and none of the caller's
    LLAMA_ARG_* variables (llama-server would take them as flags)."""
    port = free_port()
    key = secrets.token_hex(24)
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_"))
    env["LLAMA_API_KEY"] = key
    return LlamaServer(server_argv(config, port), port, key, env)


def verify_model(path, expected, marker):
    """Check the GGUF file's SHA-256 against the configuration's (once per file: a marker file keeps
    the verified path, size and mtime, so a restart of an unchanged file reads nothing)."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise RuntimeError("model_path %s: %s" % (path, exc.strerror or exc))
    stamp = {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected}
    try:
        with open(marker, "r", encoding="utf-8") as handle:
            if json.load(handle) == stamp:
                return
    except (OSError, ValueError):
        pass
    actual = file_sha256(path)
    if actual != expected:
        raise RuntimeError("model_path %s: SHA-256 %s, expected %s (model_sha256): not the registered file" % (path, actual, expected))
    try:
        with open(marker + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(stamp, handle)
        os.replace(marker + ".tmp", marker)
    except OSError:
        pass


class LlamaCppRuntime(Runtime):
    """A GGUF model served by llama.cpp's llama-server in a child process (module docstring)."""

    kind = "llamacpp"
    endpoints = {("POST", "/v1/chat/completions"): "chat_completions", ("POST", "/v1/completions"): "completions"}
    description = "an LLM instance (runtime llamacpp)"
    generation = True
    upstream_paths = {"chat_completions": "/v1/chat/completions", "completions": "/v1/completions"}

    def __init__(self, config):
        Runtime.__init__(self, config)
        self.child = None
        self.children = []          # started and not closed (one being loaded, the loaded one)
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    def load(self):
        config = self.config
        binary = config["llama_server"]
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise RuntimeError("llama_server %s: not an executable file" % binary)
        verify_model(config["model_path"], config["model_sha256"], os.path.join(config["state_dir"], "model-verified.json"))
        child = loopback_server(config)
        child.on_exit = lambda message: self._child_exited(child, message)
        with self.lock:
            if self.stopping.is_set():
                raise RuntimeError("the service is stopping")
            self.children.append(child)
        child.start()
        try:
            child.wait_ready(config["load_timeout_seconds"], self.stopping)
        except BaseException:
            self._close_child(child)
            raise
        with self.lock:
            died = child.exited.is_set()
            if not died:
                self.child = child  # from now on its exit is reported to the app (_child_exited)
        if died:
            self._close_child(child)
            raise RuntimeError("llama-server exited with code %s right after it was ready; its last output:\n%s" % (child.returncode, child.output()))
        return child

    def _child_exited(self, child, message):
        """The supervisor's call when a child exits without close(): the app hears of the loaded one."""
        with self.lock:
            loaded = child is self.child and not self.stopping.is_set()
        if loaded and self.on_exit is not None:
            self.on_exit(message)

    def _close_child(self, child):
        child.close()
        with self.lock:
            if child in self.children:
                self.children.remove(child)

    def close(self, model):
        """Stop every llama-server this runtime started (a load in progress gives up)."""
        self.stopping.set()
        with self.lock:
            children = list(self.children)
        for child in children:
            self._close_child(child)

    # -- what the app reports ---------------------------------------------------------------------
    def describe(self, model):
        config = self.config
        cpu = config["device"] == "cpu"
        offloaded = model.offloaded
        out = {"runtime": self.kind, "device": config["device"], "model_sha256": config["model_sha256"],
               "gpu_layers_offloaded": 0 if cpu else (offloaded[0] if offloaded else None),
               "ctx_size": config["ctx_per_slot"] * config["parallel"], "ctx_per_slot": config["ctx_per_slot"],
               "parallel": config["parallel"], "kv_unified": config["kv_unified"], "cache_type_k": config["cache_type_k"],
               "cache_type_v": config["cache_type_v"], "max_tokens": config["max_tokens"],
               "endpoints": ["%s %s" % key for key in sorted(self.endpoints, key=lambda k: k[1])]}
        for key in INFO_KEYS:
            if config.get(key) is not None:
                out[key] = config[key]
        if offloaded and "layers" not in out:
            out["layers"] = offloaded[1]
        return out

    def ready_info(self, model):
        return {"device": self.config["device"]}

    def models_extra(self, entry):
        # what OpenAI clients read (client.models.list()): the model is addressed by the instance's name
        return {"object": "list", "data": [{"id": entry["name"], "object": "model", "created": 0, "owned_by": "runlocalai"}]}

    def gauges(self, model, timeout=0.5):
        """llama-server's requests waiting for a slot and slots busy, read from its /metrics at scrape
        time (None when it does not answer in time)."""
        try:
            status, data = model.call("GET", "/metrics", timeout=timeout)
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return None
        found = {}
        for line in data.decode("utf-8", "replace").splitlines():
            name, _sep, value = line.partition(" ")
            if name in ("llamacpp:requests_deferred", "llamacpp:requests_processing"):
                try:
                    found[name] = float(value)
                except ValueError:
                    pass
        return {"waiting": found.get("llamacpp:requests_deferred"), "busy": found.get("llamacpp:requests_processing")}

    # -- requests -------------------------------------------------------------------------------------
    def check(self, endpoint, payload):
        return check_request(endpoint, payload, self.config["max_tokens"])

    def forward(self, model, endpoint, body, stream, on_done):
        """Send the request to llama-server: an Answer (a Relay for a 200 event stream, whose on_done
        is called when it ends). ServingError 503 when llama-server does not answer, 504 when it takes
        longer than UPSTREAM_TIMEOUT before its first byte, 502 for its 5xx answers."""
        try:
            conn = model.connection(UPSTREAM_TIMEOUT)
        except OSError as exc:
            raise ServingError(503, "llama-server (the model process) is not reachable: %s" % (exc.strerror or exc))
        try:
            conn.request("POST", self.upstream_paths[endpoint], body=body, headers=model.headers())
            response = conn.getresponse()
            content_type = response.getheader("Content-Type") or "application/json"
            if response.status == 200 and stream and content_type.startswith("text/event-stream"):
                return Answer(200, content_type, relay=Relay(conn, response, on_done))
            data = response.read()
        except socket.timeout:
            conn.close()
            raise ServingError(504, "llama-server did not answer within %d s" % UPSTREAM_TIMEOUT)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ServingError(503, "llama-server (the model process) did not answer: %s: %s" % (type(exc).__name__, exc))
        conn.close()
        if response.status >= 500:
            raise ServingError(502, "llama-server answered %d: %s" % (response.status, _error_message(data)))
        summary = None
        if response.status == 200:
            try:
                summary = summarize([json.loads(data.decode("utf-8"))])
            except (ValueError, UnicodeDecodeError):
                summary = summarize([])
        return Answer(response.status, content_type, data=data, summary=summary)

    def window_record(self, summary, latency_ms):
        """(inputs, outputs) of the drift window's record for one answered request."""
        return ({"prompt_tokens": summary["prompt_tokens"]},
                {"completion_tokens": summary["completion_tokens"], "latency_ms": latency_ms, "finish_reason": summary["finish_reason"]})
