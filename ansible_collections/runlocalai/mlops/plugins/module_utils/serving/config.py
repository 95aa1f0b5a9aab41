# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The instance configuration the model_server role writes (JSON), checked when the service starts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from .llamacpp import CACHE_TYPES, LlamaCppRuntime
from .pyfunc import PyfuncRuntime


CONFIG_FORMAT = "runlocalai.mlops/model-server-config"
# The runtimes the app knows, by the name the configuration's `runtime` gives (runtime.py says what one provides).
RUNTIMES = dict((runtime.kind, runtime) for runtime in (PyfuncRuntime, LlamaCppRuntime))
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

DEFAULTS = {
    "alias": None,
    "run_id": None,
    "listen_address": "127.0.0.1",
    "port": 8080,
    "threads": 2,
    "max_body_bytes": 1048576,
    "max_instances": 1000,
    "sample_rate": 0.1,
    "window_max_bytes": 67108864,
    "window_file_max_bytes": None,  # an eighth of window_max_bytes, at least 1 MiB
    "window_max_age_hours": 168,
    "audit_max_bytes": 16777216,
    "audit_backup_count": 5,
    "feedback_window": 500,
    "feedback_memory": 100000,
    "cache_keep": 2,
    "token_file": None,
    "device": "cpu",
    "runtime": "pyfunc",
    "load_retry_max_seconds": 60,
    # runtime llamacpp (llama.cpp's llama-server as a child process; llamacpp.py, docs/model_server.md):
    # `threads` is then llama-server's CPU thread count
    "model_path": None,       # the GGUF file (required)
    "model_sha256": None,     # its SHA-256 (required; checked before llama-server starts)
    "llama_server": None,     # the llama-server binary (required)
    "ctx_per_slot": 2048,     # context tokens per slot: --ctx-size is ctx_per_slot * parallel
    "parallel": 1,            # slots (requests generated at once)
    "kv_unified": False,      # one KV buffer shared by the slots
    "cache_type_k": "f16",
    "cache_type_v": "f16",
    "cache_ram_mib": 0,       # llama-server's prompt cache in RAM; 0: off
    "gpu_layers": -1,         # layers offloaded with device cuda (-1: all); device cpu runs 0
    "max_tokens": 1024,       # the largest max_tokens / n_predict a request may ask for (more: 422)
    "load_timeout_seconds": 600,  # llama-server must answer within this after it starts
}

# Keys only the llamacpp runtime reads (required ones have no default).
LLAMACPP_REQUIRED = ("model_path", "model_sha256", "llama_server")
SHA256_RE = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")


class ConfigError(Exception):
    pass


def load_config(path):
    """Read and check the instance configuration file (JSON written by the role)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError("config: cannot read %s: %s" % (path, exc))
    return make_config(raw, source=path)


def make_config(raw, source="config"):
    if not isinstance(raw, dict):
        raise ConfigError("%s: must hold a JSON object" % source)
    config = dict(DEFAULTS)
    config.update(raw)
    for key in ("name", "version", "model_uri", "state_dir", "log_dir"):
        if not config.get(key):
            raise ConfigError("%s: '%s' is required" % (source, key))
    config["version"] = str(config["version"])
    if not NAME_RE.match(config["name"]):
        raise ConfigError("%s: name %r: use letters, digits, '_', '.', '-' (it names files and units)" % (source, config["name"]))
    if config["window_file_max_bytes"] is None and isinstance(config["window_max_bytes"], int):
        config["window_file_max_bytes"] = max(config["window_max_bytes"] // 8, 1048576)
    for key in ("port", "threads", "max_body_bytes", "max_instances", "window_max_bytes", "window_file_max_bytes",
                "audit_max_bytes", "audit_backup_count", "feedback_window", "feedback_memory", "cache_keep",
                "window_max_age_hours", "load_retry_max_seconds"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "port" else 1):
            raise ConfigError("%s: %s must be a positive integer, got %r" % (source, key, value))
    rate = config["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ConfigError("%s: sample_rate must be a number in [0, 1], got %r" % (source, rate))
    if config["runtime"] not in RUNTIMES:
        raise ConfigError("%s: runtime must be one of %s, got %r" % (source, ", ".join(RUNTIMES), config["runtime"]))
    if config["device"] not in ("cpu", "cuda"):
        raise ConfigError("%s: device must be cpu or cuda, got %r" % (source, config["device"]))
    if config["runtime"] == "llamacpp":
        _check_llamacpp(config, source)
    config.setdefault("cache_dir", os.path.join(config["state_dir"], "cache"))
    config.setdefault("window_dir", os.path.join(config["state_dir"], "window"))
    config.setdefault("feedback_dir", os.path.join(config["state_dir"], "feedback"))
    config.setdefault("audit_path", os.path.join(config["log_dir"], "audit.jsonl"))
    return config


def _check_llamacpp(config, source):
    """The llamacpp runtime's keys (only checked, and the first three only required, for it)."""
    for key in LLAMACPP_REQUIRED:
        value = config.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError("%s: '%s' is required for runtime llamacpp (%s), got %r" % (source, key, {
                "model_path": "the GGUF file", "model_sha256": "the GGUF file's SHA-256",
                "llama_server": "the llama-server binary"}[key], value))
    if not SHA256_RE.match(config["model_sha256"]):
        raise ConfigError("%s: model_sha256 must be 64 hex digits (optionally after 'sha256:'), got %r" % (source, config["model_sha256"]))
    config["model_sha256"] = config["model_sha256"].lower().split(":")[-1]
    for key, low in (("ctx_per_slot", 16), ("parallel", 1), ("max_tokens", 1), ("load_timeout_seconds", 1),
                     ("cache_ram_mib", 0), ("gpu_layers", -1)):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError("%s: %s must be an integer >= %d, got %r" % (source, key, low, value))
    if not isinstance(config["kv_unified"], bool):
        raise ConfigError("%s: kv_unified must be true or false, got %r" % (source, config["kv_unified"]))
    for key in ("cache_type_k", "cache_type_v"):
        if config[key] not in CACHE_TYPES:
            raise ConfigError("%s: %s must be one of %s, got %r" % (source, key, ", ".join(CACHE_TYPES), config[key]))


def read_token(path):
    """The bearer token for /v1/*: the first line of a file (the role writes it 0640 root:group)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            token = handle.readline().strip()
    except OSError as exc:
        raise ConfigError("token_file: cannot read %s: %s" % (path, exc))
    if len(token) < 16:
        raise ConfigError("token_file: %s holds a token shorter than 16 characters" % path)
    return token
