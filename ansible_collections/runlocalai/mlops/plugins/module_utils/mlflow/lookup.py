# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Read-only registry lookups that judge the registry's answer: a registered model, the version an
alias points at (or a fixed version), its tags, and an artifact of the version's run.

Plain Python (imports nothing from Ansible). The HTTP requests go through a *transport*, a callable

    transport(method, url, params, body, headers) -> (status, body_bytes, error_text)

where ``status`` is the HTTP status, or a number below 100 (-1) when no HTTP answer came (DNS,
connection refused, TLS verification, timeout) and ``error_text`` then says why. The default
(requests_transport) uses ``requests``; the module mlflow_model_info passes one built on Ansible's
``open_url``, so lookups work on hosts whose Python has no ``requests``. Credentials are turned into
the ``Authorization`` header here, once, whatever the transport.

The states and messages are those the model_server role gave its registry lookups (docs/model_server.md,
"A model not in the registry yet"):

- ``found``: HTTP 200 with the version (or the registered model, when neither alias nor version is asked);
- ``missing``: HTTP 404, MLflow's 400 ``Registered model alias <alias> not found.``, or a 403 for a model that a
  search by name does not show (MLflow's basic-auth app answers 403 for a registered model that does not
  exist, since it cannot resolve that model's permission);
- ``unauthenticated`` (401), ``forbidden`` (403 for a model the search shows), ``unreachable`` (no HTTP
  answer) and ``error`` (anything else).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import re

from .registry import API, HAS_REQUESTS, RegistryError, alias_dict, check_connection, requests, tag_dict

STATES = ("found", "missing", "unauthenticated", "forbidden", "unreachable", "error")

# How failure messages name the settings they point to; a caller (a role) passes its own names
# (model_server_tracking_username, ...) so the operator reads the variable they actually set.
SETTING_NAMES = {"tracking_uri": "tracking_uri", "username": "username", "password": "password", "token": "token",
                 "missing_ok": "missing_ok"}

ARTIFACT_ENDPOINT = "/get-artifact"
# The files of a model version itself (MLflow 3 keeps a logged model's files apart from its run's).
MODEL_VERSION_ARTIFACT_ENDPOINT = "/model-versions/get-artifact"


# -- transports ------------------------------------------------------------------------------------
def _no_netrc(request):
    """requests' auth hook that leaves the request alone: with an auth given, requests does not
    replace the Authorization header built here by credentials from ~/.netrc."""
    return request


def requests_transport(validate_certs=True, ca_path=None, timeout=30):
    """The default transport, on requests (RegistryError when requests is missing)."""
    if not HAS_REQUESTS:
        raise RegistryError("the Python library requests is required (or pass a transport)")
    # Passed with every request: a session-level setting loses to REQUESTS_CA_BUNDLE.
    verify = ca_path if (validate_certs and ca_path) else bool(validate_certs)

    def transport(method, url, params=None, body=None, headers=None):
        try:
            response = requests.request(method, url, params=params, json=body, headers=headers, timeout=timeout,
                                        verify=verify, auth=_no_netrc)
        except requests.exceptions.SSLError as exc:
            return -1, b"", "TLS verification failed: %s" % exc
        except requests.exceptions.RequestException as exc:
            return -1, b"", "%s: %s" % (exc.__class__.__name__, exc)
        error = None if response.status_code < 400 else "HTTP Error %s: %s" % (response.status_code, response.reason)
        return response.status_code, response.content, error

    return transport


# -- answers ---------------------------------------------------------------------------------------
class Answer:
    """One HTTP answer: status (below 100: none came), the JSON body when it is an object, the body
    as text, and the transport's error text."""

    def __init__(self, status, body=b"", error=None):
        self.status = int(status) if status is not None else -1
        self.body = body or b""
        if isinstance(self.body, bytes):
            self.text = self.body.decode("utf-8", "replace")
        else:
            self.text, self.body = self.body, self.body.encode("utf-8")
        self.error = error or ""
        try:
            self.json = json.loads(self.text) if self.text.strip() else None
        except ValueError:
            self.json = None

    @classmethod
    def record(cls, status, data=None, text=None, error=None):
        """An answer from recorded parts (tests): data is the JSON body, text a non-JSON one."""
        body = json.dumps(data) if data is not None else (text or "")
        return cls(status, body.encode("utf-8"), error)

    @property
    def mapping(self):
        return self.json if isinstance(self.json, dict) else None

    @property
    def code(self):
        return str((self.mapping or {}).get("error_code", "") or "")

    @property
    def message(self):
        """What went wrong, in the registry's words: the JSON message, else the body, else the transport's error."""
        if self.mapping is not None:
            return str(self.mapping.get("message", "") or "")
        return self.text or self.error

    def __repr__(self):
        return "Answer(%r, %r)" % (self.status, self.text[:80])


def truncate(text, length=300, end="...", leeway=5):
    """Jinja's truncate filter (killwords=False) with Ansible's default leeway."""
    if len(text) <= length + leeway:
        return text
    return text[:length - len(end)].rsplit(" ", 1)[0] + end


def detail_of(answer):
    """The registry's message as the messages quote it: trimmed, at most about 300 characters,
    without a final full stop."""
    return re.sub(r"[.]$", "", truncate(str(answer.message).strip(), 300))


def client_label(username=None, token=None):
    """Who asked, for the messages: user 'NAME', or an anonymous client."""
    if username:
        return "user '%s'" % username
    if token:
        return "a client with a bearer token"
    return "an anonymous client"


def _seen_by(username=None, token=None):
    if username:
        return username
    if token:
        return "a client with a bearer token"
    return "an anonymous client"


def _version_of(answer):
    entity = (answer.mapping or {}).get("model_version") if answer is not None else None
    if isinstance(entity, dict) and entity.get("version") not in (None, ""):
        return entity
    return None


def _model_of(answer):
    entity = (answer.mapping or {}).get("registered_model") if answer is not None else None
    if isinstance(entity, dict) and entity.get("name"):
        return entity
    return None


def wanted_version(alias=None, version=None, alias_answer=None):
    """The version the details are read for: the alias's, else the one asked for ('?' if unknown)."""
    if alias is not None:
        entity = _version_of(alias_answer)
        return str(entity["version"]).strip() if entity else "?"
    return str(version).strip()


def search_filter(name):
    return "name='%s'" % name.replace("'", "\\'")


def hidden_by_search(name, search_answer):
    """After a 403: True when a search by name answered and does not show the model."""
    if search_answer is None or search_answer.status != 200:
        return False
    models = (search_answer.mapping or {}).get("registered_models") or []
    return name not in [m.get("name") for m in models if isinstance(m, dict)]


def judge(name, alias=None, version=None, alias_answer=None, details_answer=None, model_answer=None,
          search_answer=None, username=None, token=None):
    """Judge the registry's answers to one lookup.

    alias_answer: GET registered-models/alias (when an alias is asked); details_answer: GET
    model-versions/get (for a fixed version, or the alias's version once the alias answered 200);
    model_answer: GET registered-models/get (when neither alias nor version is asked);
    search_answer: GET registered-models/search by name (after a 403).

    Returns dict(state, what, status, detail, from_alias, want, answer): ``what`` completes
    "registered model 'NAME' ..." for a missing model; ``answer`` is the one that decided.
    """
    model_only = alias is None and version is None
    from_alias = alias is not None and (alias_answer is None or alias_answer.status != 200
                                        or details_answer is None and _version_of(alias_answer) is None)
    if model_only:
        answer = model_answer
    elif from_alias or details_answer is None:
        answer = alias_answer
    else:
        answer = details_answer
    if answer is None:
        answer = Answer(-1, b"", "no request was made")
    status = answer.status
    error = answer.message
    hidden = status == 403 and hidden_by_search(name, search_answer)
    found = status == 200 and (_model_of(answer) if model_only else _version_of(answer)) is not None
    if found:
        state = "found"
    elif status == 404 or hidden or (status == 400 and re.search("not found", error)):
        state = "missing"
    elif status == 401:
        state = "unauthenticated"
    elif status == 403:
        state = "forbidden"
    elif status < 100:
        state = "unreachable"
    else:
        state = "error"
    want = None if model_only else wanted_version(alias, version, alias_answer)
    if hidden:
        what = ("does not exist (the registry answers 403 for it, and a search by name does not show it to %s)"
                % _seen_by(username, token))
    elif model_only or (answer.code == "RESOURCE_DOES_NOT_EXIST" and re.search("Registered Model", error)):
        what = "does not exist"
    elif from_alias:
        what = "has no alias '%s'" % alias
    else:
        what = "has no version '%s'%s" % (want, (" (alias '%s' points at it)" % alias) if alias is not None else "")
    return {"state": state, "what": what, "status": status, "detail": detail_of(answer), "from_alias": from_alias,
            "want": want, "answer": answer}


def failure_message(judged, name, tracking_base, username=None, token=None, names=None):
    """The message for a state other than found (None for found), naming the model and what is wrong.

    names: how the settings are called where the operator sets them (SETTING_NAMES by default).
    """
    settings = dict(SETTING_NAMES)
    settings.update(dict((k, v) for k, v in (names or {}).items() if v))
    state = judged["state"]
    user = client_label(username, token)
    values = {"name": name, "base": tracking_base, "what": judged["what"], "status": judged["status"],
              "detail": judged["detail"], "user": user}
    values.update(settings)
    if state == "found":
        return None
    if state == "missing":
        return ("registered model '%(name)s' %(what)s at %(base)s (HTTP %(status)s: %(detail)s). Register it (or set the "
                "alias) first, or set %(missing_ok)s: true to skip the entry until it is deployed" % values)
    if state == "unauthenticated":
        check = settings["token"] if token and not username else "%s and %s" % (settings["username"], settings["password"])
        return ("the tracking server at %(base)s did not accept the credentials of %(user)s (HTTP 401) reading registered "
                "model '%(name)s': check " % values) + check
    if state == "forbidden":
        return ("%(user)s may not read registered model '%(name)s' at %(base)s (HTTP 403, and a search by name shows the "
                "model): give it READ on the model" % values)
    if state == "unreachable":
        return ("could not reach the tracking server at %(base)s (%(tracking_uri)s) to read registered model '%(name)s': "
                "%(detail)s" % values)
    return "the tracking server at %(base)s answered HTTP %(status)s reading registered model '%(name)s': %(detail)s" % values


def found_message(name, version=None, alias=None):
    if version is None:
        return "registered model '%s' found" % name
    return "registered model '%s' version %s%s" % (name, version["version"], (" (alias '%s')" % alias) if alias else "")


def version_details(entity):
    """A model version as the module returns it: MLflow's fields, tags as a dict, run_id '' when none."""
    if entity is None:
        return None
    out = dict(entity)
    out["version"] = str(entity["version"])
    out["tags"] = tag_dict(entity)
    out["aliases"] = list(entity.get("aliases") or [])
    for key in ("run_id", "source", "status", "description"):
        if out.get(key) is None:
            out[key] = ""
    return out


def digest(content):
    """The --diff text of a downloaded file: its SHA-256 and size (None: no file)."""
    if content is None:
        return ""
    return "sha256:%s (%d bytes)\n" % (hashlib.sha256(content).hexdigest(), len(content))


# -- the reader ------------------------------------------------------------------------------------
class RegistryReader:
    """Read-only registry requests through a transport; nothing raises for an HTTP answer."""

    def __init__(self, tracking_uri, transport=None, username=None, password=None, token=None,
                 validate_certs=True, ca_path=None, timeout=30):
        if not tracking_uri:
            raise RegistryError("tracking_uri: required (or set MLFLOW_TRACKING_URI)")
        self.base = check_connection(tracking_uri, username, password, token)
        self.username = username or None
        self.token = token or None
        self.transport = transport or requests_transport(validate_certs=validate_certs, ca_path=ca_path, timeout=timeout)
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer %s" % token
        elif username:
            pair = ("%s:%s" % (username, password)).encode("utf-8")
            self.headers["Authorization"] = "Basic %s" % base64.b64encode(pair).decode("ascii")

    def request(self, method, path, params=None, body=None):
        status, content, error = self.transport(method, self.base + path, params, body, dict(self.headers))
        return Answer(status, content, error)

    def get(self, endpoint, params):
        return self.request("GET", API + endpoint, params=params)

    # -- the lookup ----------------------------------------------------------------------------------
    def lookup(self, name, alias=None, version=None, names=None):
        """Resolve alias (or version) of registered model name, as the model_server role did.

        names: how failure messages call the settings (see SETTING_NAMES). Returns dict(name, state,
        what, status, detail, msg, version (details or None), aliases, model_tags); msg says what is
        wrong for a state other than found.
        """
        if not name:
            raise RegistryError("name: required")
        if alias is not None and version is not None:
            raise RegistryError("alias and version: give one or neither")
        alias_answer = details_answer = model_answer = search_answer = None
        if alias is not None:
            alias_answer = self.get("registered-models/alias", {"name": name, "alias": alias})
        if alias is None and version is None:
            model_answer = self.get("registered-models/get", {"name": name})
        elif alias is None or (alias_answer.status == 200 and _version_of(alias_answer) is not None):
            details_answer = self.get("model-versions/get", {"name": name, "version": wanted_version(alias, version, alias_answer)})
        judged = judge(name, alias, version, alias_answer, details_answer, model_answer, None, self.username, self.token)
        if judged["answer"].status == 403:
            search_answer = self.get("registered-models/search", {"filter": search_filter(name)})
            judged = judge(name, alias, version, alias_answer, details_answer, model_answer, search_answer,
                           self.username, self.token)
        entity = None
        if judged["state"] == "found" and (alias is not None or version is not None):
            entity = _version_of(details_answer)
            model_answer = self.get("registered-models/get", {"name": name})
            if model_answer.status != 200 or _model_of(model_answer) is None:
                # The version answered, the model did not (a race or a permission): judge that answer.
                search_answer = None
                if model_answer.status == 403:
                    search_answer = self.get("registered-models/search", {"filter": search_filter(name)})
                judged = judge(name, model_answer=model_answer, search_answer=search_answer, username=self.username,
                               token=self.token)
                entity = None
        model = _model_of(model_answer) if judged["state"] == "found" else None
        result = {"name": name, "state": judged["state"], "what": judged["what"] if judged["state"] != "found" else "",
                  "status": judged["status"],
                  "detail": judged["detail"], "version": version_details(entity) if model is not None else None,
                  "aliases": alias_dict(model), "model_tags": tag_dict(model)}
        result["msg"] = failure_message(judged, name, self.base, self.username, self.token, names) or found_message(
            name, result["version"], alias)
        return result

    def artifact(self, run_id, path):
        """An artifact of a run: (Answer, found). found is False on HTTP 404 (no such artifact or run);
        any other answer than 200 or 404 is for the caller to report (artifact_failure)."""
        answer = self.request("GET", ARTIFACT_ENDPOINT, params={"run_id": run_id, "path": path})
        return answer, answer.status == 200

    def model_version_artifact(self, name, version, path):
        """A file of a model version (MLmodel, requirements.txt, ...): (Answer, found), as artifact()."""
        answer = self.request("GET", MODEL_VERSION_ARTIFACT_ENDPOINT, params={"name": name, "version": version, "path": path})
        return answer, answer.status == 200

    def artifact_failure(self, answer, name, version, run_id, path):
        """run_id None: a file of the model version itself (model_version_artifact)."""
        what = ("artifact %s of run %s (registered model '%s' version %s)" % (path, run_id, name, version) if run_id is not None
                else "file %s of registered model '%s' version %s" % (path, name, version))
        if answer.status < 100:
            return "could not reach the tracking server at %s to read %s: %s" % (self.base, what, detail_of(answer))
        if answer.status == 401:
            return "the tracking server at %s did not accept the credentials of %s (HTTP 401) reading %s" % (
                self.base, client_label(self.username, self.token), what)
        return "the tracking server at %s answered HTTP %s reading %s: %s" % (self.base, answer.status, what, detail_of(answer))
