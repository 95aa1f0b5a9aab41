# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model service deployed by the model_server role (python -m <package>.serving --config FILE).

By concern: config (the instance configuration), messages (request/answer helpers), schema
(input validation), metrics, records (request log, drift window, feedback), runtime (what every
serving runtime provides), pyfunc (the MLflow pyfunc runtime) and llamacpp (GGUF models served by
llama.cpp's llama-server as a child process), app (request handling), server (HTTP and the
command line).

Standard library only at import time, no Ansible: this package travels to serving hosts whole,
with common/ and drift/. The names below are its public API.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .app import APP_NAME, COMMON_ENDPOINTS, ENDPOINTS, ModelServer, StreamBody  # noqa: F401
from .config import DEFAULTS, RUNTIMES, ConfigError, load_config, make_config, read_token  # noqa: F401
from .llamacpp import LlamaCppRuntime, LlamaServer, Relay, check_request, server_argv, summarize  # noqa: F401
from .messages import ServingError, class_key, input_hash, parse_json_body, to_python, utc_now_text  # noqa: F401
from .metrics import Metrics  # noqa: F401
from .pyfunc import LoadedModel, PyfuncRuntime, SklearnFastPath, SklearnFramePath, fetch_model, prune_cache  # noqa: F401
from .records import FeedbackTracker, JsonlWindow, RequestLog  # noqa: F401
from .runtime import Prediction, Runtime  # noqa: F401
from .schema import InputSchema, build_frame, check_value, parse_instances, validate_records  # noqa: F401
from .server import HTTPServer, main, make_http_server, serve  # noqa: F401
