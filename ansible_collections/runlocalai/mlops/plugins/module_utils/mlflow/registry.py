# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""MLflow model registry over its REST API: auth, clear errors, aliases, tags,
approvals, the promotion gate and rollback.

Plain Python (imports nothing from Ansible). Needs ``requests``; callers check
HAS_REQUESTS. Uses aliases and tags only, never the deprecated stages. Tag
names are a contract documented in docs/governance.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity test
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

API = "/api/2.0/mlflow/"

# Tags on a model version
TAG_OWNER = "governance.owner"
TAG_RISK = "governance.risk_level"
TAG_DATA_HASH = "governance.training_data_hash"
TAG_APPROVALS = "governance.approvals"
TAG_PROMOTED = "governance.promoted.%s"      # JSON: by, previous_version, forced
TAG_FORCED = "governance.forced.%s"          # JSON: by, reason, missing
TAG_VALIDATION_PASSED = "validation.passed"  # "true" / "false"
TAG_VALIDATION_REPORT = "validation.report"  # JSON report
TAG_VALIDATION_FINGERPRINT = "validation.fingerprint"
# Tags on the registered model
TAG_ALIAS_PREVIOUS = "governance.alias.%s.previous"
TAG_ALIAS_ROLLED_BACK_FROM = "governance.alias.%s.rolled_back_from"

METADATA_TAGS = {"owner": TAG_OWNER, "risk_level": TAG_RISK, "training_data_hash": TAG_DATA_HASH}
ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class RegistryError(Exception):
    """A registry failure with a message fit for an operator."""


class NotFound(RegistryError):
    pass


def compact_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# The connection options both registry modules take (documented once in the
# doc fragment runlocalai.mlops.mlflow_connection).
CONNECTION_ENV = {"tracking_uri": "MLFLOW_TRACKING_URI", "username": "MLFLOW_TRACKING_USERNAME",
                  "password": "MLFLOW_TRACKING_PASSWORD", "token": "MLFLOW_TRACKING_TOKEN"}
CONNECTION_MUTUALLY_EXCLUSIVE = [("token", "username"), ("token", "password")]


def connection_argument_spec(env_fallback):
    """The modules' argument spec for the connection; env_fallback is Ansible's (passed in, not imported)."""
    spec = dict((name, dict(type="str", fallback=(env_fallback, [env]))) for name, env in CONNECTION_ENV.items())
    spec["password"]["no_log"] = True
    spec["token"]["no_log"] = True
    spec.update(validate_certs=dict(type="bool", default=True), ca_path=dict(type="path"), timeout=dict(type="int", default=30))
    return spec


def client_from_params(params):
    if not params.get("tracking_uri"):
        raise RegistryError("tracking_uri: required (or set MLFLOW_TRACKING_URI)")
    return RegistryClient(params["tracking_uri"], username=params["username"], password=params["password"], token=params["token"],
                          validate_certs=params["validate_certs"], ca_path=params["ca_path"], timeout=params["timeout"])


def check_connection(tracking_uri, username=None, password=None, token=None):
    """The tracking server's base URL, after checking the connection settings (RegistryError names the bad one)."""
    if not tracking_uri or not re.match(r"^https?://", tracking_uri):
        raise RegistryError("tracking_uri: %r is not an http(s) URL of an MLflow tracking server" % (tracking_uri,))
    if token and (username or password):
        raise RegistryError("token: give either token or username/password, not both")
    if bool(username) != bool(password):
        raise RegistryError("username and password: give both or neither")
    return tracking_uri.rstrip("/")


class RegistryClient:
    def __init__(self, tracking_uri, username=None, password=None, token=None, validate_certs=True, ca_path=None, timeout=30):
        if not HAS_REQUESTS:
            raise RegistryError("the Python library requests is required")
        self.base = check_connection(tracking_uri, username, password, token)
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = "Bearer %s" % token
        elif username:
            self.session.auth = (username, password)
        # Passed with every request: a session-level setting loses to REQUESTS_CA_BUNDLE
        # in the environment (requests merges environment settings over the session's).
        self.verify = ca_path if (validate_certs and ca_path) else bool(validate_certs)
        self.timeout = timeout

    # -- transport ---------------------------------------------------------
    def call(self, method, endpoint, params=None, body=None):
        url = self.base + API + endpoint
        try:
            response = self.session.request(method, url, params=params, json=body, timeout=self.timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise RegistryError("tracking_uri: TLS verification failed for %s (set ca_path, or validate_certs: false): %s" % (self.base, exc))
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RegistryError("tracking_uri: cannot reach MLflow at %s: %s" % (self.base, exc.__class__.__name__))
        except requests.exceptions.RequestException as exc:
            raise RegistryError("tracking_uri: request to %s failed: %s" % (self.base, exc))
        if response.status_code == 401:
            raise RegistryError("MLflow at %s rejected the credentials (HTTP 401): check username/password or token" % self.base)
        if response.status_code == 403:
            raise RegistryError("MLflow at %s refused %s %s (HTTP 403): the user lacks permission" % (self.base, method, endpoint))
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = None
        if response.status_code >= 400 or data is None:
            code = (data or {}).get("error_code", "")
            message = (data or {}).get("message") or response.text[:300]
            if code == "RESOURCE_DOES_NOT_EXIST" or response.status_code == 404 and code:
                raise NotFound(message)
            raise RegistryError("MLflow API %s %s failed (HTTP %s %s): %s" % (method, endpoint, response.status_code, code, message))
        return data

    # -- registered models -------------------------------------------------
    def get_model(self, name):
        try:
            return self.call("GET", "registered-models/get", params={"name": name})["registered_model"]
        except NotFound:
            return None

    def create_model(self, name, description=None, tags=None):
        body = {"name": name, "tags": [{"key": k, "value": v} for k, v in sorted((tags or {}).items())]}
        if description:
            body["description"] = description
        return self.call("POST", "registered-models/create", body=body)["registered_model"]

    def update_model(self, name, description):
        self.call("PATCH", "registered-models/update", body={"name": name, "description": description})

    def set_model_tag(self, name, key, value):
        self.call("POST", "registered-models/set-tag", body={"name": name, "key": key, "value": value})

    def set_alias(self, name, alias, version):
        self.call("POST", "registered-models/alias", body={"name": name, "alias": alias, "version": str(version)})

    # -- versions ----------------------------------------------------------
    def get_version(self, name, version):
        try:
            return self.call("GET", "model-versions/get", params={"name": name, "version": str(version)})["model_version"]
        except NotFound:
            return None

    def search_versions(self, name):
        versions = []
        token = None
        while True:
            params = {"filter": "name='%s'" % name.replace("'", "\\'"), "max_results": 1000}
            if token:
                params["page_token"] = token
            data = self.call("GET", "model-versions/search", params=params)
            versions.extend(data.get("model_versions", []))
            token = data.get("next_page_token")
            if not token:
                return versions

    def create_version(self, name, source, run_id=None, model_id=None, description=None, tags=None):
        body = {"name": name, "source": source, "tags": [{"key": k, "value": v} for k, v in sorted((tags or {}).items())]}
        if run_id:
            body["run_id"] = run_id
        if model_id:
            body["model_id"] = model_id
        if description:
            body["description"] = description
        return self.call("POST", "model-versions/create", body=body)["model_version"]

    def update_version(self, name, version, description):
        self.call("PATCH", "model-versions/update", body={"name": name, "version": str(version), "description": description})

    def set_version_tag(self, name, version, key, value):
        self.call("POST", "model-versions/set-tag", body={"name": name, "version": str(version), "key": key, "value": value})

    # -- sources -----------------------------------------------------------
    def resolve_source(self, source, run_id=None):
        """Return (source, run_id, model_id) as MLflow 3 registers them.

        runs:/<run>/<path> becomes models:/<logged model id> of the logged model
        named <path> in that run (what mlflow.register_model does);
        models:/m-<id> keeps its id; other URIs are used as given.
        """
        match = re.match(r"^runs:/([^/]+)/(.+)$", source or "")
        if match:
            run, path = match.group(1), match.group(2).strip("/")
            try:
                info = self.call("GET", "runs/get", params={"run_id": run})["run"]["info"]
            except NotFound:
                raise RegistryError("source: run %s of %s not found on the tracking server" % (run, source))
            data = self.call("POST", "logged-models/search", body={
                "experiment_ids": [info["experiment_id"]], "filter": "name = '%s'" % path.replace("'", "\\'"), "max_results": 100})
            models = [m for m in data.get("models", []) if m.get("info", {}).get("source_run_id") == run]
            if not models:
                raise RegistryError("source: run %s has no logged model named %r (%s)" % (run, path, source))
            model_id = models[-1]["info"]["model_id"]
            return "models:/%s" % model_id, run, model_id
        match = re.match(r"^models:/(m-[0-9a-f]+)$", source or "")
        if match:
            try:
                info = self.call("GET", "logged-models/%s" % match.group(1))["model"]["info"]
            except NotFound:
                raise RegistryError("source: logged model %s not found" % match.group(1))
            return source, run_id or info.get("source_run_id"), match.group(1)
        return source, run_id, None


def tag_dict(entity):
    return dict((t["key"], t.get("value", "")) for t in (entity or {}).get("tags", []) or [])


def alias_dict(model):
    return dict((a["alias"], str(a["version"])) for a in (model or {}).get("aliases", []) or [])


def merge_approvals(existing_json, approvals):
    """Merge approvals ([{approver, comment}]) into the JSON object {approver: comment} stored in a tag."""
    try:
        merged = json.loads(existing_json) if existing_json else {}
        if not isinstance(merged, dict):
            merged = {}
    except ValueError:
        merged = {}
    for item in approvals or []:
        merged[item["approver"]] = item.get("comment") or "approved"
    return compact_json(merged) if merged else None


def promotion_gate(version_tags, alias, protected_aliases, required_approvers, required_metadata, require_validation):
    """Evaluate the promotion gate on a version's (prospective) tags.

    Returns dict(protected, passed, missing_approvers, missing_metadata,
    validation_passed, reasons).
    """
    protected = alias in (protected_aliases or [])
    result = {"protected": protected, "passed": True, "missing_approvers": [], "missing_metadata": [],
              "validation_passed": version_tags.get(TAG_VALIDATION_PASSED) == "true", "reasons": []}
    if not protected:
        return result
    if require_validation:
        if TAG_VALIDATION_PASSED not in version_tags:
            result["reasons"].append("no validation report on the version (tag %s)" % TAG_VALIDATION_PASSED)
        elif version_tags[TAG_VALIDATION_PASSED] != "true":
            result["reasons"].append("the validation report on the version did not pass")
    try:
        approved = json.loads(version_tags.get(TAG_APPROVALS) or "{}")
    except ValueError:
        approved = {}
    result["missing_approvers"] = [a for a in required_approvers or [] if a not in approved]
    if result["missing_approvers"]:
        result["reasons"].append("missing approvals from: %s" % ", ".join(result["missing_approvers"]))
    result["missing_metadata"] = [m for m in required_metadata or [] if not version_tags.get(METADATA_TAGS[m])]
    if result["missing_metadata"]:
        result["reasons"].append("missing governance metadata: %s" % ", ".join(result["missing_metadata"]))
    result["passed"] = not result["reasons"]
    return result


def version_number(version):
    text = str(version).strip()
    if not re.match(r"^[1-9][0-9]*$", text):
        raise RegistryError("version: %r is not a model version number" % (version,))
    return text


class GateRefused(RegistryError):
    def __init__(self, msg, gate):
        super(GateRefused, self).__init__(msg)
        self.gate = gate


def _record(value):
    return compact_json(value)


def ensure_model(client, spec, check=False):
    """Converge a registered model, optionally a version, its tags and an alias.

    spec keys: name, description, tags, source, run_id, version,
    version_description, version_tags, metadata (owner/risk_level/
    training_data_hash -> value), approvals, alias, protected_aliases,
    required_approvers, required_metadata, require_validation, force,
    force_reason, actor.

    Nothing is written unless every check passes (gate included). Returns
    dict(changed, version, previous_version, gate, before, after, actions).
    """
    name = spec["name"]
    model = client.get_model(name)
    alias = spec.get("alias")
    if alias and not ALIAS_RE.match(alias):
        raise RegistryError("alias: %r is not a valid alias (letters, digits, _ and -, not starting with a digit)" % alias)
    if alias and re.match(r"^v[0-9]+$", alias) or alias == "latest":
        raise RegistryError("alias: %r is reserved by MLflow" % alias)
    if alias and not (spec.get("version") or spec.get("source")):
        raise RegistryError("alias: moving alias %r needs version or source" % alias)
    model_tags = tag_dict(model)
    aliases = alias_dict(model)
    before = {"name": name, "exists": model is not None, "description": (model or {}).get("description", ""),
              "tags": {}, "version": None, "version_tags": {}, "version_description": "", "aliases": dict(aliases)}
    after = json.loads(json.dumps(before))
    after["exists"] = True
    actions = []

    if model is None:
        actions.append(("create_model", name))
    if spec.get("description") is not None and spec["description"] != before["description"]:
        after["description"] = spec["description"]
        if model is not None:
            actions.append(("update_model", spec["description"]))
    for key, value in sorted((spec.get("tags") or {}).items()):
        before["tags"][key] = model_tags.get(key)
        after["tags"][key] = str(value)
        if model_tags.get(key) != str(value):
            actions.append(("model_tag", key, str(value)))

    version = None
    version_entity = None
    if spec.get("version"):
        version = version_number(spec["version"])
        if model is None:
            raise NotFound("name: registered model %r not found (version %s was asked for)" % (name, version))
        version_entity = client.get_version(name, version)
        if version_entity is None:
            raise NotFound("version: registered model %r has no version %s" % (name, version))
    elif spec.get("source"):
        source, run_id, model_id = client.resolve_source(spec["source"], spec.get("run_id"))
        if model is not None:
            for candidate in client.search_versions(name):
                if candidate.get("source") == source and (not run_id or candidate.get("run_id") in (None, "", run_id)):
                    if version_entity is None or int(candidate["version"]) > int(version_entity["version"]):
                        version_entity = candidate
        if version_entity is not None:
            version = str(version_entity["version"])
        else:
            actions.append(("create_version", source, run_id, model_id))

    version_tags = tag_dict(version_entity)
    desired = {}
    for key, value in (spec.get("version_tags") or {}).items():
        desired[key] = str(value)
    for field, value in (spec.get("metadata") or {}).items():
        if value not in (None, ""):
            desired[METADATA_TAGS[field]] = str(value)
    if spec.get("approvals"):
        merged = merge_approvals(version_tags.get(TAG_APPROVALS), spec["approvals"])
        if merged:
            desired[TAG_APPROVALS] = merged
    prospective = dict(version_tags)
    prospective.update(desired)

    creating = any(a[0] == "create_version" for a in actions)
    if version is not None or creating:
        before["version"] = version
        after["version"] = version or "(new)"
        before["version_description"] = (version_entity or {}).get("description", "") or ""
        if spec.get("version_description") is not None and spec["version_description"] != before["version_description"]:
            after["version_description"] = spec["version_description"]
            if version_entity is not None:
                actions.append(("update_version", spec["version_description"]))
        for key, value in sorted(desired.items()):
            before["version_tags"][key] = version_tags.get(key)
            after["version_tags"][key] = value
            if version_tags.get(key) != value:
                actions.append(("version_tag", key, value))

    gate = None
    previous_version = None
    if alias:
        current = aliases.get(alias)
        gate = promotion_gate(prospective, alias, spec.get("protected_aliases"), spec.get("required_approvers"),
                              spec.get("required_metadata"), spec.get("require_validation", True))
        if current is None or current != version:
            if not gate["passed"]:
                if not spec.get("force"):
                    raise GateRefused("promotion of %s version %s to protected alias %r refused: %s (force: true overrides, and is recorded)" % (
                        name, version or "(new)", alias, "; ".join(gate["reasons"])), gate)
                forced = {"by": spec.get("actor"), "reason": spec.get("force_reason") or "", "missing": gate["reasons"]}
                actions.append(("version_tag", TAG_FORCED % alias, _record(forced)))
                after["version_tags"][TAG_FORCED % alias] = _record(forced)
            previous_version = current
            promoted = {"by": spec.get("actor"), "previous_version": current, "forced": bool(spec.get("force") and not gate["passed"])}
            actions.append(("version_tag", TAG_PROMOTED % alias, _record(promoted)))
            after["version_tags"][TAG_PROMOTED % alias] = _record(promoted)
            if current is not None:
                actions.append(("model_tag", TAG_ALIAS_PREVIOUS % alias, current))
                before["tags"][TAG_ALIAS_PREVIOUS % alias] = model_tags.get(TAG_ALIAS_PREVIOUS % alias)
                after["tags"][TAG_ALIAS_PREVIOUS % alias] = current
            actions.append(("set_alias", alias))
            after["aliases"][alias] = version or "(new)"
        else:
            previous_version = model_tags.get(TAG_ALIAS_PREVIOUS % alias)

    changed = bool(actions)
    if changed and not check:
        version = _apply(client, name, spec, actions, version)
        if "set_alias" in (a[0] for a in actions):
            after["aliases"][alias] = version
        after["version"] = version
    names = [a[0] if a[0] in ("create_model", "create_version", "set_alias") else "%s %s" % (a[0], a[1]) for a in actions]
    return {"changed": changed, "name": name, "version": version, "alias": alias, "previous_version": previous_version,
            "gate": gate, "before": before, "after": after, "actions": names}


def _apply(client, name, spec, actions, version):
    for action in actions:
        kind = action[0]
        if kind == "create_model":
            client.create_model(name, spec.get("description"))
        elif kind == "update_model":
            client.update_model(name, action[1])
        elif kind == "model_tag":
            client.set_model_tag(name, action[1], action[2])
        elif kind == "create_version":
            created = client.create_version(name, action[1], run_id=action[2], model_id=action[3],
                                            description=spec.get("version_description"))
            version = str(created["version"])
        elif kind == "update_version":
            client.update_version(name, version, action[1])
        elif kind == "version_tag":
            client.set_version_tag(name, version, action[1], action[2])
        elif kind == "set_alias":
            client.set_alias(name, spec["alias"], version)
    return version


def rollback(client, name, alias, actor=None, check=False):
    """Point alias back at the version recorded in governance.alias.<alias>.previous."""
    if not alias:
        raise RegistryError("alias: required for state=rolled_back")
    model = client.get_model(name)
    if model is None:
        raise NotFound("name: registered model %r not found" % name)
    tags = tag_dict(model)
    aliases = alias_dict(model)
    previous = tags.get(TAG_ALIAS_PREVIOUS % alias)
    if not previous:
        raise RegistryError("alias: no previous version recorded for alias %r of model %r (tag %s); nothing to roll back to" % (
            alias, name, TAG_ALIAS_PREVIOUS % alias))
    if client.get_version(name, previous) is None:
        raise NotFound("version: version %s, recorded as the previous %r version of %r, no longer exists" % (previous, alias, name))
    current = aliases.get(alias)
    result = {"changed": False, "name": name, "alias": alias, "version": previous, "previous_version": current,
              "before": {"aliases": dict(aliases)}, "after": {"aliases": dict(aliases)}}
    if current == previous:
        return result
    result["changed"] = True
    result["after"]["aliases"][alias] = previous
    if not check:
        client.set_alias(name, alias, previous)
        if current is not None:
            client.set_model_tag(name, TAG_ALIAS_ROLLED_BACK_FROM % alias, current)
        client.set_version_tag(name, previous, TAG_PROMOTED % alias, _record({"by": actor, "previous_version": current, "rollback": True}))
    return result
