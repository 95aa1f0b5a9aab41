# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The instance configuration the model_server role writes (JSON), checked when the service starts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from .pyfunc import PyfuncRuntime


CONFIG_FORMAT = "runlocalai.mlops/model-server-config"
# The runtimes the app knows, by the name the configuration's `runtime` gives (runtime.py says what one provides).
RUNTIMES = dict((runtime.kind, runtime) for runtime in (PyfuncRuntime,))
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
}


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
    config.setdefault("cache_dir", os.path.join(config["state_dir"], "cache"))
    config.setdefault("window_dir", os.path.join(config["state_dir"], "window"))
    config.setdefault("feedback_dir", os.path.join(config["state_dir"], "feedback"))
    config.setdefault("audit_path", os.path.join(config["log_dir"], "audit.jsonl"))
    return config


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
