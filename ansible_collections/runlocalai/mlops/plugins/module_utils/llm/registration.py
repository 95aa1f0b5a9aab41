# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Register a local GGUF file as a version of a registered model in MLflow, once per file content.

A run in an experiment holds the file (artifact ``model/<file name>``) and its metadata
(``model/llm.json``); the model version's source is that run's ``model`` directory and it carries
the metadata as llm.* tags (gguf.metadata_tags) and the file's place in the run as
llm.artifact_path, so a role reads the fit of a version from its tags without downloading the
file, and knows what to download. A version whose llm.sha256 tag is the file's SHA-256 is the
same file: nothing is registered again.

With a drift reference profile (written by drift_check's profile_path from a sample of the model's
expected usage: prompt_tokens, completion_tokens, ...), the run also holds
``drift/reference_profile.json``, where the model_server role's drift timer looks for it, and the
version carries its content hash (tag drift.reference_profile); a changed profile is uploaded again
to the version's run, the same file is not.

Talks to the MLflow REST API with the registry client (mlflow/registry.py, ``requests``); the
file goes to the tracking server's artifact proxy (``mlflow-artifacts:``, what ``mlflow server``
serves by default), streamed. A run whose artifacts live elsewhere (s3://, a shared path) is
written with the ``mlflow`` library when it is installed. Plain Python, no Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import re
import shutil
import tempfile
import time

from ..common.environ import scoped_environ
from ..common.errors import InputError, MissingDependencyError
from ..drift.profiles import load_profile
from ..mlflow.registry import ALIAS_RE, NotFound, RegistryError, alias_dict, tag_dict
from .gguf import TAG_PREFIX, metadata_tags

ARTIFACT_DIR = "model"
METADATA_FILE = "llm.json"
TAG_SHA256 = TAG_PREFIX + "sha256"
# Where the file is in the run's artifacts (model/<file name>): what a host downloads.
TAG_ARTIFACT_PATH = TAG_PREFIX + "artifact_path"
DEFAULT_EXPERIMENT = "llm-registrations"
# Where the drift timer of the model_server role reads the reference profile of a version's run.
PROFILE_ARTIFACT = "drift/reference_profile.json"
TAG_PROFILE = "drift.reference_profile"


def profile_hash(path):
    """The content hash of a drift reference profile file (InputError naming reference_profile)."""
    if path is None:
        return None
    try:
        return load_profile(path)["content_hash"]
    except InputError as exc:
        raise InputError("reference_profile: %s" % str(exc).replace("reference: ", "", 1))


def check_alias(alias):
    if alias is None:
        return
    if not ALIAS_RE.match(alias) or re.match(r"^v[0-9]+$", alias) or alias == "latest":
        raise InputError("alias: %r is not a valid alias (letters, digits, _ and -, not starting with a digit; not latest or vN)" % alias)


def find_version(client, name, sha256):
    """The newest version of registered model `name` whose llm.sha256 tag is sha256, or None."""
    found = None
    for candidate in client.search_versions(name):
        tags = tag_dict(candidate)
        if tags.get(TAG_SHA256) == sha256 and (found is None or int(candidate["version"]) > int(found["version"])):
            found = candidate
    return found


def _experiment_id(client, experiment_name, create):
    try:
        experiment = client.call("GET", "experiments/get-by-name", params={"experiment_name": experiment_name})["experiment"]
    except NotFound:
        experiment = None
    if experiment is not None:
        if experiment.get("lifecycle_stage") == "deleted":
            raise RegistryError("experiment_name: experiment %r is deleted; restore it or choose another name" % experiment_name)
        return experiment["experiment_id"]
    if not create:
        return None
    return client.call("POST", "experiments/create", body={"name": experiment_name})["experiment_id"]


def _proxied_path(artifact_uri):
    """The artifact proxy's path of an mlflow-artifacts: URI ('mlflow-artifacts:/1/abc/artifacts' ->
    '1/abc/artifacts'), or None for any other store."""
    match = re.match(r"^mlflow-artifacts:(?://[^/]*)?/(.*)$", artifact_uri or "")
    return match.group(1).strip("/") if match else None


def upload(client, run_id, artifact_uri, artifact_path, local_path):
    """Put local_path at artifact_path in the run's artifacts (artifact_uri), streamed, never read whole."""
    proxied = _proxied_path(artifact_uri)
    if proxied is None:
        _upload_with_mlflow(client, run_id, artifact_uri, artifact_path, local_path)
        return
    url = "%s/api/2.0/mlflow-artifacts/artifacts/%s/%s" % (client.base, proxied, artifact_path)
    try:
        with open(local_path, "rb") as handle:
            response = client.session.put(url, data=handle, timeout=client.timeout, verify=client.verify,
                                          headers={"Content-Type": "application/octet-stream"})
    except (IOError, OSError) as exc:
        raise InputError("path: cannot read %s: %s" % (local_path, getattr(exc, "strerror", None) or exc))
    except Exception as exc:  # pylint: disable=broad-except  # requests' errors; the message is what matters
        raise RegistryError("tracking_uri: uploading %s to %s failed: %s" % (artifact_path, client.base, exc.__class__.__name__))
    if response.status_code in (401, 403):
        raise RegistryError("MLflow at %s refused the upload of %s (HTTP %d): the user lacks permission" % (
            client.base, artifact_path, response.status_code))
    if response.status_code >= 400:
        raise RegistryError("MLflow at %s: uploading %s failed (HTTP %d): %s" % (
            client.base, artifact_path, response.status_code, response.text[:300]))


@contextlib.contextmanager
def _mlflow_environment(client):
    """The registry client's server and credentials as the mlflow library reads them, for the duration."""
    values = {"MLFLOW_TRACKING_URI": client.base, "MLFLOW_TRACKING_USERNAME": None, "MLFLOW_TRACKING_PASSWORD": None,
              "MLFLOW_TRACKING_TOKEN": None, "MLFLOW_TRACKING_INSECURE_TLS": None if client.verify else "true",
              "MLFLOW_TRACKING_SERVER_CERT_PATH": client.verify if isinstance(client.verify, str) else None}
    if client.session.auth:
        values["MLFLOW_TRACKING_USERNAME"], values["MLFLOW_TRACKING_PASSWORD"] = client.session.auth
    header = client.session.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        values["MLFLOW_TRACKING_TOKEN"] = header[len("Bearer "):]
    with scoped_environ(values):
        yield


def _upload_with_mlflow(client, run_id, artifact_uri, artifact_path, local_path):
    """A store the tracking server does not serve (s3://, a shared path): the mlflow library writes it."""
    try:
        from mlflow.tracking import MlflowClient  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MissingDependencyError("mlflow", "writing to the artifact store %s (not served by the tracking server)" % artifact_uri)
    directory = artifact_path.rpartition("/")[0]
    if os.path.basename(local_path) != artifact_path.rpartition("/")[2]:
        raise RegistryError("internal: %s would be stored as %s" % (local_path, artifact_path))
    with _mlflow_environment(client):
        try:
            MlflowClient(tracking_uri=client.base).log_artifact(run_id, local_path, directory or None)
        except Exception as exc:  # pylint: disable=broad-except  # mlflow raises many types
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RegistryError("uploading %s to %s failed: %s" % (artifact_path, artifact_uri, text))


def _upload_named(client, run_id, artifact_uri, artifact_path, local_path):
    """upload() of a file whose name differs from the artifact's (a copy under the right name)."""
    workdir = tempfile.mkdtemp(prefix="runlocalai-llm-")
    try:
        named = os.path.join(workdir, artifact_path.rpartition("/")[2])
        shutil.copyfile(local_path, named)
        upload(client, run_id, artifact_uri, artifact_path, named)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def register(client, spec, meta, check=False):
    """Register the GGUF file spec['path'] (metadata meta, read by gguf.read_metadata) as a version
    of spec['name'].

    spec: name, path, experiment_name, alias, description, tags (extra tags on the run and the
    version), reference_profile (a drift reference profile file, or None). Returns dict: changed, version, run_id, source, artifact_path, alias, actions,
    tags (the version's llm.* and extra tags). In check mode nothing is written and version and
    run_id are None when they would be created.
    """
    name = spec["name"]
    alias = spec.get("alias")
    check_alias(alias)
    extra = dict((str(k), str(v)) for k, v in (spec.get("tags") or {}).items())
    clash = sorted(k for k in extra if k.startswith(TAG_PREFIX))
    if clash:
        raise InputError("tags: %s use the prefix %s, which holds the file's own metadata" % (", ".join(clash), TAG_PREFIX))
    file_name = os.path.basename(spec["path"])
    artifact_path = "%s/%s" % (ARTIFACT_DIR, file_name)
    version_tags = dict(extra)
    version_tags.update(metadata_tags(meta))
    version_tags[TAG_ARTIFACT_PATH] = artifact_path
    profile = spec.get("reference_profile")
    digest = profile_hash(profile)
    if digest:
        version_tags[TAG_PROFILE] = digest
    result = {"changed": False, "name": name, "version": None, "run_id": None, "source": None, "artifact_path": artifact_path,
              "alias": alias, "actions": [], "tags": version_tags}

    model = client.get_model(name)
    existing = find_version(client, name, meta["sha256"]) if model is not None else None
    if existing is not None:
        version = str(existing["version"])
        result.update(version=version, run_id=existing.get("run_id") or None, source=existing.get("source"), tags=tag_dict(existing))
        if digest and result["tags"].get(TAG_PROFILE) != digest:
            if not result["run_id"]:
                raise RegistryError("reference_profile: version %s of %r has no run to hold the profile" % (version, name))
            result["actions"].append("log_artifact %s" % PROFILE_ARTIFACT)
            result["changed"] = True
            result["tags"][TAG_PROFILE] = digest
            if not check:
                info = client.call("GET", "runs/get", params={"run_id": result["run_id"]})["run"]["info"]
                _upload_named(client, result["run_id"], info["artifact_uri"], PROFILE_ARTIFACT, profile)
                client.set_version_tag(name, version, TAG_PROFILE, digest)
        if alias and alias_dict(model).get(alias) != version:
            result["actions"].append("set_alias")
            result["changed"] = True
            if not check:
                client.set_alias(name, alias, version)
        return result

    experiment_id = _experiment_id(client, spec.get("experiment_name") or DEFAULT_EXPERIMENT, create=False)
    actions = [] if experiment_id is not None else ["create_experiment"]
    actions += ["create_run", "log_artifact %s" % artifact_path, "log_artifact %s/%s" % (ARTIFACT_DIR, METADATA_FILE)]
    if digest:
        actions.append("log_artifact %s" % PROFILE_ARTIFACT)
    if model is None:
        actions.append("create_model")
    actions.append("create_version")
    if alias:
        actions.append("set_alias")
    result.update(changed=True, actions=actions)
    if check:
        return result

    if experiment_id is None:
        experiment_id = _experiment_id(client, spec.get("experiment_name") or DEFAULT_EXPERIMENT, create=True)
    now = int(time.time() * 1000)
    run_tags = dict(version_tags)
    run_tags["mlflow.runName"] = "register %s %s" % (name, file_name)
    run = client.call("POST", "runs/create", body={
        "experiment_id": experiment_id, "start_time": now, "run_name": run_tags["mlflow.runName"],
        "tags": [{"key": k, "value": v} for k, v in sorted(run_tags.items())]})["run"]
    run_id = run["info"]["run_id"]
    artifact_uri = run["info"]["artifact_uri"]
    try:
        upload(client, run_id, artifact_uri, artifact_path, spec["path"])
        workdir = tempfile.mkdtemp(prefix="runlocalai-llm-")
        try:
            meta_path = os.path.join(workdir, METADATA_FILE)
            with open(meta_path, "w") as handle:
                handle.write(json.dumps(meta, sort_keys=True, indent=1) + "\n")
            upload(client, run_id, artifact_uri, "%s/%s" % (ARTIFACT_DIR, METADATA_FILE), meta_path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if digest:
            _upload_named(client, run_id, artifact_uri, PROFILE_ARTIFACT, profile)
    except Exception:
        client.call("POST", "runs/update", body={"run_id": run_id, "status": "FAILED", "end_time": int(time.time() * 1000)})
        raise
    client.call("POST", "runs/update", body={"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)})
    if model is None:
        client.create_model(name)
    source = "%s/%s" % (artifact_uri.rstrip("/"), ARTIFACT_DIR)
    created = client.create_version(name, source, run_id=run_id, description=spec.get("description"), tags=version_tags)
    version = str(created["version"])
    if alias:
        client.set_alias(name, alias, version)
    result.update(version=version, run_id=run_id, source=source)
    return result
