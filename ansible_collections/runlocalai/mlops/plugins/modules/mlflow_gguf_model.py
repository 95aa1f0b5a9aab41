#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mlflow_gguf_model
short_description: Register a local GGUF model file (an LLM for llama.cpp) as a version of a registered model in MLflow
version_added: "0.2.0"
description:
  - Reads the header of the GGUF file O(path) (architecture, parameter count, quantization, context length, attention shape,
    chat template) and its SHA-256, and registers the file as a new version of the registered model O(name). When a version
    already carries the file's SHA-256 (tag C(llm.sha256)) nothing is registered again and that version is returned.
  - A new version is made of a run in O(experiment_name) that holds the file as the artifact C(model/<file name>) and its
    metadata as C(model/llm.json), and a model version whose source is that run's C(model) directory. The metadata is on the
    version (and the run) as C(llm.*) tags, so the fit of a version on a host can be judged from its tags alone
    (M(runlocalai.mlops.llm_fit_info)).
  - The metadata is read from the file, never typed in. Runs on the controller (or any host that has the file and reaches the
    tracking server). Talks to the MLflow REST API with C(requests); the file is streamed to the tracking server's artifact
    proxy (C(mlflow-artifacts:), what C(mlflow server) serves by default). A run whose artifacts live elsewhere (C(s3://), a
    shared path) is written with the C(mlflow) library, when it is installed.
extends_documentation_fragment:
  - runlocalai.mlops.mlflow_connection
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - requests
  - gguf
attributes:
  check_mode:
    description: Reads the file and the registry and reports what would be created (RV(actions)); creates nothing.
    support: full
  diff_mode:
    description: Not supported.
    support: none
options:
  name:
    description: Registered model name (created when missing).
    type: str
    required: true
  path:
    description: The GGUF file to register (on the host the task runs on).
    type: path
    required: true
  experiment_name:
    description: Experiment of the registration runs (created when missing).
    type: str
    default: llm-registrations
  alias:
    description:
      - Alias to point at the version, new or found, e.g. C(staging). Moving an alias that guards production goes through
        M(runlocalai.mlops.mlflow_model) and its promotion gate instead.
    type: str
  description:
    description: Description of a new model version.
    type: str
  tags:
    description:
      - Extra tags on a new version and its run. Names starting with C(llm.) are refused (they hold the file's metadata).
    type: dict
    default: {}
  reference_profile:
    description:
      - A drift reference profile of the model's expected usage (a JSON file written by
        M(runlocalai.mlops.drift_check) with O(runlocalai.mlops.drift_check#module:profile_path), from a sample of requests with
        columns such as C(prompt_tokens) and C(completion_tokens)). Stored in the run as C(drift/reference_profile.json), where
        the model_server role's drift timer reads it, and its content hash as the version's tag C(drift.reference_profile).
      - For a version found by its file, a profile whose hash differs from the tag is uploaded again (the tag follows).
    type: path
notes:
  - The SHA-256 of the file is computed on every run (it streams the whole file, about 1 to 2 seconds per GiB).
  - The tags written, one per metadata field, are C(llm.format) (V(gguf)), C(llm.architecture), C(llm.name), C(llm.file_name),
    C(llm.quantization), C(llm.parameter_count), C(llm.weights_bytes), C(llm.embedding_bytes), C(llm.output_bytes),
    C(llm.file_bytes), C(llm.context_length), C(llm.layers), C(llm.attention_heads), C(llm.kv_heads), C(llm.head_size),
    C(llm.value_head_size), C(llm.embedding_length), C(llm.feed_forward_length), C(llm.vocab_size), C(llm.has_chat_template),
    C(llm.sha256) and C(llm.gguf_version), and C(llm.artifact_path), where the file is in the run's artifacts
    (RV(artifact_path)).
seealso:
  - module: runlocalai.mlops.llm_fit_info
  - module: runlocalai.mlops.mlflow_model
  - module: runlocalai.mlops.mlflow_model_info
"""

EXAMPLES = r"""
- name: Register SmolLM2 and point staging at it
  runlocalai.mlops.mlflow_gguf_model:
    tracking_uri: https://mlflow.internal
    username: ci
    password: "{{ vault_mlflow_password }}"
    name: smollm2-135m-instruct
    path: /srv/models/SmolLM2-135M-Instruct.Q4_1.gguf
    alias: staging
    description: SmolLM2 135M instruct, Q4_1
    tags:
      source: https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct
  register: llm

- name: Build the reference profile of the expected usage (prompt and completion tokens per request)
  runlocalai.mlops.drift_check:
    reference: files/llm-usage.csv
    profile_path: /tmp/smollm2-usage-profile.json

- name: Register it with that profile, so its drift timer watches how it is used
  runlocalai.mlops.mlflow_gguf_model:
    name: smollm2-135m-instruct
    path: /srv/models/SmolLM2-135M-Instruct.Q4_1.gguf
    reference_profile: /tmp/smollm2-usage-profile.json

- name: Show what was registered
  ansible.builtin.debug:
    msg: >-
      {{ llm.metadata.name }} ({{ llm.metadata.quantization }}, {{ llm.metadata.parameter_count }} parameters)
      is version {{ llm.version }} from run {{ llm.run_id }}
"""

RETURN = r"""
name:
  description: Registered model name.
  returned: always
  type: str
  sample: smollm2-135m-instruct
version:
  description: The version of the file (found or created); null in check mode when it would be created.
  returned: always
  type: str
  sample: "3"
run_id:
  description: The run holding the file; null in check mode when it would be created.
  returned: always
  type: str
  sample: 6f2e1c0d9a8b4c7e8f0a1b2c3d4e5f60
source:
  description: The version's source, the run's C(model) artifact directory.
  returned: always
  type: str
  sample: mlflow-artifacts:/1/6f2e1c0d9a8b4c7e8f0a1b2c3d4e5f60/artifacts/model
artifact_path:
  description: Where the file is in the run's artifacts.
  returned: always
  type: str
  sample: model/SmolLM2-135M-Instruct.Q4_1.gguf
alias:
  description: The alias handled (null without O(alias)).
  returned: always
  type: str
  sample: staging
metadata:
  description: What the file's header says, and its SHA-256 (the C(llm.*) tags without the prefix).
  returned: always
  type: dict
  sample: {format: gguf, architecture: llama, name: SmolLM2 135M Instruct, file_name: SmolLM2-135M-Instruct.Q4_1.gguf,
           quantization: Q4_1, parameter_count: 134515008, weights_bytes: 96576768, embedding_bytes: 30081024, output_bytes: 0,
           file_bytes: 98362432, context_length: 8192, layers: 30, attention_heads: 9, kv_heads: 3, head_size: 64,
           value_head_size: 64, embedding_length: 576, feed_forward_length: 1536, vocab_size: 49152, has_chat_template: true,
           sha256: b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53, gguf_version: 3}
tags:
  description: The version's tags (for a version found, as the registry has them).
  returned: always
  type: dict
  sample: {"llm.architecture": llama, "llm.layers": "30", "llm.sha256": b179c952..., "llm.artifact_path": model/SmolLM2-135M-Instruct.Q4_1.gguf}
actions:
  description: The registry calls made (or that would be made in check mode).
  returned: always
  type: list
  elements: str
  sample: [create_run, "log_artifact model/SmolLM2-135M-Instruct.Q4_1.gguf", log_artifact model/llm.json, create_model, create_version]
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import (
    CONNECTION_MUTUALLY_EXCLUSIVE,
    RegistryError,
    client_from_params,
    connection_argument_spec,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError
from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import gguf
from ansible_collections.runlocalai.mlops.plugins.module_utils.llm.registration import DEFAULT_EXPERIMENT, check_alias, register


def main():
    module = MlopsModule(
        argument_spec=dict(
            connection_argument_spec(env_fallback),
            name=dict(type="str", required=True),
            path=dict(type="path", required=True),
            experiment_name=dict(type="str", default=DEFAULT_EXPERIMENT),
            alias=dict(type="str"),
            description=dict(type="str"),
            tags=dict(type="dict", default={}),
            reference_profile=dict(type="path"),
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        libraries=("requests",),
    )
    p = module.params
    result = {"changed": False, "name": p["name"], "version": None, "run_id": None, "source": None, "artifact_path": None,
              "alias": p["alias"], "metadata": {}, "tags": {}, "actions": []}
    with module.reporting_errors():
        try:
            check_alias(p["alias"])
            meta = gguf.read_metadata(p["path"])
        except InputError as exc:
            text = str(exc)
            module.fail_json(msg=text if text.startswith(("path:", "alias:")) else "path: %s" % text, **result)
        result["metadata"] = meta
        try:
            client = client_from_params(p)
            spec = dict((key, p[key]) for key in ("name", "path", "experiment_name", "alias", "description", "tags", "reference_profile"))
            result.update(register(client, spec, meta, check=module.check_mode))
        except RegistryError as exc:
            module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
