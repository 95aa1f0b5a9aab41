#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mlflow_model_info
short_description: Read a registered model from an MLflow registry, resolve an alias or version, download a run artifact
version_added: "0.2.0"
description:
  - Looks up a registered model in an MLflow registry (its aliases and tags) and, with O(alias) or O(version), a model
    version (the version an alias points at, or the one given) with its run, source, status and tags. Reads only.
  - Tells a model, alias or version that does not exist (RV(state=missing)) from refused credentials, a permission error, an
    unreachable server and any other error; each fails the task with a message that names the model and what is wrong,
    except RV(state=missing) with O(missing_ok=true).
  - MLflow's basic-auth app answers HTTP 403 for a registered model that does not exist (it cannot resolve that model's
    permission). After a 403 the module searches the registry by name; when the search does not show the model, it counts as
    missing, otherwise as a permission error.
  - With O(artifact_path) and O(dest) it downloads an artifact of the resolved version's run (for example the drift reference
    profile C(drift/reference_profile.json)) to O(dest), atomically, and only when its content differs.
  - Needs no third-party Python library on the target (it uses Ansible's own HTTP client), so it runs on managed hosts, e.g.
    with the CA file that lives there.
extends_documentation_fragment:
  - runlocalai.mlops.mlflow_connection
  - ansible.builtin.files
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description: Reads as usual; with O(dest), reports whether the file would change and writes nothing.
    support: full
  diff_mode:
    description: With O(dest), shows the SHA-256 digest and size of the file before and after.
    support: full
options:
  name:
    description: Registered model name.
    type: str
    required: true
  alias:
    description:
      - Alias to resolve to a version, e.g. C(production).
      - Mutually exclusive with O(version). With neither, only the registered model is read.
    type: str
  version:
    description: A version number to read, instead of O(alias).
    type: str
  missing_ok:
    description:
      - Return RV(state=missing) without failing when the registered model, the alias or the version does not exist, so the
        caller can decide (e.g. skip the entry until it is deployed). Other states fail the task either way.
    type: bool
    default: false
  artifact_path:
    description:
      - Path of an artifact of the resolved version's run to download to O(dest), e.g. C(drift/reference_profile.json).
      - Needs O(alias) or O(version). An artifact (or run) the server does not have returns RV(artifact_found=false) and
        leaves O(dest) alone; it does not fail the task.
      - Relative to the run's artifacts, or with O(artifact_source=model_version) to the model version's own files.
    type: str
  artifact_source:
    description:
      - Where O(artifact_path) is read. V(run) - the artifacts of the version's run (C(GET /get-artifact)).
        V(model_version) - the files of the model version itself (C(GET /model-versions/get-artifact)), e.g. its
        C(MLmodel), C(requirements.txt), C(python_env.yaml), C(conda.yaml). MLflow 3 keeps a logged model's files apart
        from its run's artifacts, so only V(model_version) finds them.
    type: str
    choices: [run, model_version]
    default: run
  dest:
    description:
      - File to write the artifact to (its directory must exist). Written atomically, only when the content differs.
      - In check mode, a directory that does not exist yet is taken as one an earlier task would create (the file would be
        written).
      - O(owner), O(group), O(mode) and the other file attributes apply to it.
    type: path
  setting_names:
    description:
      - How failure messages name the settings they point to, for a caller that sets them under other names (a role's
        variables), e.g. V(model_server_tracking_username) for O(username).
    type: dict
    default: {}
    suboptions:
      tracking_uri:
        description: Name of the setting of O(tracking_uri).
        type: str
        default: tracking_uri
      username:
        description: Name of the setting of O(username).
        type: str
        default: username
      password:
        description: Name of the setting of O(password).
        type: str
        default: password
      token:
        description: Name of the setting of O(token).
        type: str
        default: token
      missing_ok:
        description: Name of the setting of O(missing_ok).
        type: str
        default: missing_ok
notes:
  - Answers are judged as HTTP 200 with the version = V(found); 404, MLflow's 400 C(Registered model alias ... not found.) or a
    403 for a model a search by name does not show = V(missing); 401 = V(unauthenticated); 403 for a model the search shows =
    V(forbidden); no HTTP answer (DNS, connection refused, TLS verification) = V(unreachable); anything else = V(error).
seealso:
  - module: runlocalai.mlops.mlflow_model
"""

EXAMPLES = r"""
- name: Resolve the production alias of churn
  runlocalai.mlops.mlflow_model_info:
    tracking_uri: https://mlflow.internal
    username: model-reader
    password: "{{ vault_model_reader_password }}"
    ca_path: /etc/runlocalai-model/tracking-ca.pem
    name: churn
    alias: production
  register: churn

- name: Show the version and its run
  ansible.builtin.debug:
    msg: "churn@production is v{{ churn.version.version }} from run {{ churn.version.run_id }}"

- name: Look a model up that may not be registered yet (state missing does not fail)
  runlocalai.mlops.mlflow_model_info:
    name: churn
    alias: production
    missing_ok: true
  register: lookup

- name: Download the reference profile of version 3's training run
  runlocalai.mlops.mlflow_model_info:
    name: churn
    version: "3"
    artifact_path: drift/reference_profile.json
    dest: /var/lib/runlocalai-model/churn/drift/reference_profile.json
    owner: root
    group: runlocalai-model
    mode: "0640"
  register: profile

- name: Download the requirements.txt MLflow wrote with version 3 (a file of the model, not of its run)
  runlocalai.mlops.mlflow_model_info:
    name: churn
    version: "3"
    artifact_path: requirements.txt
    artifact_source: model_version
    dest: /tmp/churn-v3/requirements.txt
  register: requirements
"""

RETURN = r"""
name:
  description: Registered model name.
  returned: always
  type: str
  sample: churn
state:
  description: V(found), V(missing), V(unauthenticated), V(forbidden), V(unreachable) or V(error).
  returned: always
  type: str
  sample: found
msg:
  description: For a state other than V(found), what is wrong, naming the model and the tracking server; else a summary.
  returned: always
  type: str
  sample: >-
    registered model 'churn' has no alias 'production' at https://mlflow.internal (HTTP 400: Registered model alias
    production not found). Register it (or set the alias) first, or set missing_ok: true to skip the entry until it is
    deployed
what:
  description: For a missing model, what is missing, completing "registered model 'NAME' ...".
  returned: always
  type: str
  sample: has no alias 'production'
status:
  description: HTTP status of the answer that decided the state (-1 when no HTTP answer came).
  returned: always
  type: int
  sample: 200
detail:
  description: The registry's message (or the connection error) of that answer, at most about 300 characters.
  returned: always
  type: str
  sample: Registered model alias production not found
version:
  description:
    - The model version (null when not found, or when neither O(alias) nor O(version) was given), as MLflow returns it, with
      C(tags) as a dict and C(run_id) an empty string when the version has no run.
  returned: always
  type: dict
  sample: {name: churn, version: "3", run_id: 6f2e1c, source: "models:/m-1a2b", status: READY, description: "",
           tags: {"validation.passed": "true"}, aliases: [production]}
aliases:
  description: Aliases of the registered model (alias -> version).
  returned: always
  type: dict
  sample: {production: "3", staging: "4"}
model_tags:
  description: Tags of the registered model.
  returned: always
  type: dict
  sample: {"governance.alias.production.previous": "2"}
artifact_found:
  description:
    - Whether the run (or with O(artifact_source=model_version) the model version) has the artifact O(artifact_path)
      (false also when the version has no run, with O(artifact_source=run)).
  returned: when O(artifact_path) is given and the model version was found
  type: bool
  sample: true
artifact_sha256:
  description: SHA-256 of the artifact's content.
  returned: when the artifact was found
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
dest:
  description: Where the artifact was (or would be) written.
  returned: when the artifact was found
  type: str
  sample: /var/lib/runlocalai-model/churn/drift/reference_profile.json
"""

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
from urllib.parse import urlencode

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.lookup import (
    SETTING_NAMES,
    RegistryReader,
    digest,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import (
    CONNECTION_MUTUALLY_EXCLUSIVE,
    RegistryError,
    connection_argument_spec,
    version_number,
)


def open_url_transport(validate_certs=True, ca_path=None, timeout=30):
    """The lookup transport on Ansible's open_url (no requests on the target); error texts as fetch_url gives them."""

    def transport(method, url, params=None, body=None, headers=None):
        if params:
            url = "%s?%s" % (url, urlencode(params))
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            response = open_url(url, data=data, headers=headers, method=method, validate_certs=validate_certs,
                                ca_path=ca_path, timeout=timeout, use_netrc=False, http_agent="runlocalai.mlops.mlflow_model_info")
            try:
                return response.getcode(), response.read(), None
            finally:
                response.close()
        except urllib.error.HTTPError as exc:
            try:
                content = exc.read() if exc.fp is not None else b""
            except Exception:  # pylint: disable=broad-except
                content = b""
            return exc.code, content, to_native(exc)
        except UrlConnectionError as exc:  # TLS validation, proxy
            return -1, b"", to_native(exc)
        except urllib.error.URLError as exc:
            return int(getattr(exc, "code", -1) or -1), b"", "Request failed: %s" % to_native(exc)
        except http.client.BadStatusLine as exc:
            return -1, b"", "Connection failure: connection was closed before a valid response was received: %s" % to_native(exc.line)
        except OSError as exc:
            return -1, b"", "Connection failure: %s" % to_native(exc)
        except Exception as exc:  # pylint: disable=broad-except
            return -1, b"", "An unknown error occurred: %s" % to_native(exc)

    return transport


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def fail(module, result, msg):
    module.fail_json(**dict(result, msg=msg))


def check_dest(module, result):
    """dest must be a file path in an existing directory (checked before anything is read). In check
    mode a missing directory is one an earlier task of the same run would have created."""
    dest = module.params["dest"]
    if os.path.isdir(dest):
        fail(module, result, "dest: %s is a directory, expected a file path" % dest)
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory) and not module.check_mode:
        fail(module, result, "dest: directory %s does not exist" % directory)
    return directory


def download(module, reader, result):
    """Download artifact_path of the found version's run to dest, only when the content differs."""
    params = module.params
    dest, path = params["dest"], params["artifact_path"]
    directory = check_dest(module, result)
    version = result["version"]
    run_id = version.get("run_id") or ""
    result["artifact_found"] = False
    if params["artifact_source"] == "model_version":
        answer, found = reader.model_version_artifact(result["name"], version["version"], path)
    elif not run_id:
        return result
    else:
        answer, found = reader.artifact(run_id, path)
    if not found:
        if answer.status == 404:
            return result
        fail(module, result, reader.artifact_failure(answer, result["name"], version["version"],
                                                     run_id if params["artifact_source"] == "run" else None, path))
    content = answer.body
    before = _read(dest)
    result.update(artifact_found=True, artifact_sha256=hashlib.sha256(content).hexdigest(), dest=dest)
    changed = before != content
    if changed and not module.check_mode:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        except OSError as exc:
            os.unlink(tmp)
            fail(module, result, "dest: cannot write %s: %s" % (dest, exc))
        module.atomic_move(tmp, dest)
    if os.path.exists(dest):
        changed = module.set_fs_attributes_if_different(module.load_file_common_arguments(params, path=dest), changed)
    result["changed"] = changed
    if module._diff:
        result["diff"] = {"before_header": dest, "after_header": dest, "before": digest(before), "after": digest(content)}
    return result


def main():
    names_spec = dict((key, dict(type="str", default=value)) for key, value in SETTING_NAMES.items())
    names_spec["password"]["no_log"] = False
    names_spec["token"]["no_log"] = False
    module = AnsibleModule(
        argument_spec=dict(
            connection_argument_spec(env_fallback),
            name=dict(type="str", required=True),
            alias=dict(type="str"),
            version=dict(type="str"),
            missing_ok=dict(type="bool", default=False),
            artifact_path=dict(type="str"),
            artifact_source=dict(type="str", choices=["run", "model_version"], default="run"),
            dest=dict(type="path"),
            setting_names=dict(type="dict", default={}, options=names_spec, apply_defaults=True),
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE + [("alias", "version")],
        required_together=[("artifact_path", "dest")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "name": p["name"], "state": "error", "what": "", "status": -1, "detail": "",
              "version": None, "aliases": {}, "model_tags": {}}
    if p["artifact_path"]:
        if p["alias"] is None and p["version"] is None:
            fail(module, result, "artifact_path: needs alias or version (the artifact is read from that version's run)")
        check_dest(module, result)
    try:
        version = version_number(p["version"]) if p["version"] is not None else None
        reader = RegistryReader(p["tracking_uri"], open_url_transport(p["validate_certs"], p["ca_path"], p["timeout"]),
                                username=p["username"], password=p["password"], token=p["token"])
        result.update(reader.lookup(p["name"], alias=p["alias"], version=version, names=p["setting_names"]))
    except RegistryError as exc:
        fail(module, result, str(exc))
    if result["state"] != "found":
        if result["state"] == "missing" and p["missing_ok"]:
            module.exit_json(**result)
        module.fail_json(**result)
    if p["artifact_path"]:
        download(module, reader, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
