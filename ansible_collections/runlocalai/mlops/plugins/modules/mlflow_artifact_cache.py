#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mlflow_artifact_cache
short_description: Fetch a large artifact of an MLflow run into a content-addressed cache on the host
version_added: "0.2.0"
description:
  - Fetches the file O(artifact_path) of the MLflow run O(run_id) (a multi-GB GGUF model is normal) through the tracking
    server's artifact proxy (C(GET /get-artifact)) into O(cache_dir), named after its SHA-256 O(sha256) plus the artifact's
    extension, e.g. C(/var/cache/runlocalai-model/9f86...0a08.gguf). The model_server role's LLM instances load it from there.
  - A cached file of the right size (and, with O(verify_existing=true), the right SHA-256) is used as it is; nothing is
    downloaded and the task reports no change. A rollback to one of the last O(keep) versions downloads nothing.
  - Streams to C(<file>.part) in 1 MiB chunks, hashing on the way. A partial download (left by an interrupted run or a cut
    connection) is resumed with an HTTP Range request; a cut connection is retried O(retries) times, then the task fails
    saying how many bytes are kept for the next run.
  - Checks the free space of O(cache_dir) against the bytes still to fetch (plus 64 MiB) before writing anything, and
    fails, naming O(cache_dir) with the needed and free MiB, when it is short.
  - The SHA-256 is checked after the last byte; on a mismatch the partial file is deleted and nothing is cached.
    Otherwise the file is synced to disk and renamed into place atomically.
  - Keeps at most O(keep) cached files (the newest, by modification time; a file used again counts as new), never the
    file of this task nor one listed in O(protect); partial downloads of other files are removed too.
  - Needs no third-party Python library on the target (Python's own urllib); one task at a time writes to a cache
    directory (a lock file in it), a second waits.
extends_documentation_fragment:
  - runlocalai.mlops.mlflow_connection
  - ansible.builtin.files
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description:
      - Reports whether a download would happen (RV(download)) and which cached files would be removed, and checks the free
        space; asks the server for the artifact's first byte only (to learn its size and check access). Writes nothing.
    support: full
  diff_mode:
    description: The file is binary; nothing is shown.
    support: none
options:
  run_id:
    description: The MLflow run whose artifact to fetch.
    type: str
    required: true
  artifact_path:
    description: Path of the file among the run's artifacts, e.g. C(model/SmolLM2-135M-Instruct-Q8_0.gguf).
    type: str
    required: true
  sha256:
    description:
      - SHA-256 of the artifact (64 hexadecimal characters), e.g. from a tag of the model version. It names the cached file
        and the download is checked against it.
    type: str
    required: true
  size:
    description:
      - Size of the artifact in bytes, when known. A cached file of another size is fetched again; a server that reports
        another size fails the task before anything is written. The free-space check can then be made before any request.
    type: int
  cache_dir:
    description:
      - The cache directory; it must exist (in check mode, a directory that does not exist yet is taken as one an earlier task
        would create).
    type: path
    required: true
  keep:
    description:
      - How many cached files to keep at most (the newest, including this one and those in O(protect)). V(0) keeps every file.
    type: int
    default: 3
  protect:
    description:
      - SHA-256 digests of cached files never to remove, e.g. the models of the host's other instances that share O(cache_dir).
    type: list
    elements: str
    default: []
  retries:
    description: How many times to retry (and resume) after a cut connection or an unreachable server, with growing pauses.
    type: int
    default: 3
  verify_existing:
    description:
      - Also check the SHA-256 of a file already in the cache (reads the whole file); a file that does not match is fetched
        again. Without it, the name and the size are trusted (files get their name only after the check).
    type: bool
    default: false
  mode:
    description:
      - Permissions of the cached file, as for M(ansible.builtin.file) (the partial file is C(0600) until it is complete).
    type: raw
    default: "0640"
notes:
  - The download is a C(GET {tracking_uri}/get-artifact?path=...&run_uuid=...) with O(username)/O(password) (basic auth) or
    O(token) (bearer); MLflow serves it with Range support (HTTP 206). The Authorization header is not sent along a redirect.
  - The cached file's name does not hold the model's name; keep the path in the model's configuration or let the role read
    RV(path).
seealso:
  - module: runlocalai.mlops.mlflow_model_info
"""

EXAMPLES = r"""
- name: Fetch the GGUF file of the production version into the model cache
  runlocalai.mlops.mlflow_artifact_cache:
    tracking_uri: https://mlflow.internal
    username: model-reader
    password: "{{ vault_model_reader_password }}"
    ca_path: /etc/runlocalai-model/tracking-ca.pem
    run_id: "{{ smollm.version.run_id }}"
    artifact_path: model/SmolLM2-135M-Instruct-Q8_0.gguf
    sha256: "{{ smollm.version.tags['model.sha256'] }}"
    size: "{{ smollm.version.tags['model.size'] | int }}"
    cache_dir: /var/cache/runlocalai-model
    owner: root
    group: runlocalai-model
    mode: "0640"
    protect: "{{ model_server_llm_instances | map(attribute='sha256') | list }}"
  register: gguf

- name: Point the instance at the cached file
  ansible.builtin.debug:
    msg: "llama-server --model {{ gguf.path }}"
"""

RETURN = r"""
path:
  description: The cached file, C(<cache_dir>/<sha256><extension>).
  returned: always
  type: str
  sample: /var/cache/runlocalai-model/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.gguf
sha256:
  description: The SHA-256 of the file (O(sha256) in lower case).
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
size:
  description: Size of the file in bytes (in check mode, as the server reports it; null when unknown).
  returned: always
  type: int
  sample: 145023296
cached:
  description: Whether the file was already in the cache (nothing was downloaded).
  returned: always
  type: bool
  sample: false
download:
  description: Whether the file was downloaded (in check mode, would be).
  returned: always
  type: bool
  sample: true
downloaded_bytes:
  description: Bytes received by this task (0 in check mode and for a cached file).
  returned: always
  type: int
  sample: 145023296
resumed_from:
  description:
    - The byte the first resumed request of this task started at (a partial file of an earlier run, or of a cut connection);
      0 when nothing was resumed. In check mode, the byte a download would resume from.
  returned: always
  type: int
  sample: 0
resumes:
  description: Every byte offset a request of this task resumed from, in order.
  returned: always
  type: list
  elements: int
  sample: [52428800]
attempts:
  description: Requests made for the download.
  returned: always
  type: int
  sample: 2
replaced:
  description: Why a file already in the cache was fetched again (null when it was not).
  returned: always
  type: str
  sample: the cached file has 52428800 bytes, size says 145023296
removed:
  description: Cached (and partial) files removed to keep at most O(keep); in check mode, those that would be.
  returned: always
  type: list
  elements: str
  sample: [/var/cache/runlocalai-model/2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.gguf]
disk:
  description:
    - The free-space check of O(cache_dir) (C(checked), C(free_bytes), C(needed_bytes), C(remaining_bytes)); C(checked) is
      false when no download was needed or the size was unknown.
  returned: always
  type: dict
  sample: {checked: true, free_bytes: 52613349376, needed_bytes: 212132160, remaining_bytes: 145023296}
msg:
  description: What was done.
  returned: always
  type: str
  sample: fetched artifact model/SmolLM2.gguf of run 6f2e1c from https://mlflow.internal to /var/cache/runlocalai-model/9f86...0a08.gguf
"""

import os
import re

from ansible.module_utils.basic import env_fallback

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.artifacts import fetch_to_cache
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import (
    CONNECTION_MUTUALLY_EXCLUSIVE,
    connection_argument_spec,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule


def octal_mode(mode):
    """The mode to give the file before its rename when it is numeric; a symbolic one is applied afterwards."""
    if isinstance(mode, int):
        return mode & 0o7777
    if isinstance(mode, str) and re.match(r"^0?[0-7]{3,4}$", mode.strip()):
        return int(mode.strip(), 8)
    return 0o600


def main():
    module = MlopsModule(
        dict(
            connection_argument_spec(env_fallback),
            run_id=dict(type="str", required=True),
            artifact_path=dict(type="str", required=True),
            sha256=dict(type="str", required=True),
            size=dict(type="int"),
            cache_dir=dict(type="path", required=True),
            keep=dict(type="int", default=3),
            protect=dict(type="list", elements="str", default=[]),
            retries=dict(type="int", default=3),
            verify_existing=dict(type="bool", default=False),
            mode=dict(type="raw", default="0640"),
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        add_file_common_args=True,
    )
    p = module.params
    with module.reporting_errors():
        result = fetch_to_cache(
            p["tracking_uri"], p["run_id"], p["artifact_path"], p["sha256"], p["cache_dir"], size=p["size"],
            username=p["username"], password=p["password"], token=p["token"], validate_certs=p["validate_certs"],
            ca_path=p["ca_path"], timeout=p["timeout"], keep=p["keep"], protect=p["protect"], retries=p["retries"],
            verify_existing=p["verify_existing"], check_mode=module.check_mode, mode=octal_mode(p["mode"]))
    if os.path.exists(result["path"]):
        file_args = module.load_file_common_arguments(p, path=result["path"])
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
