#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mlflow_model
short_description: Registered models, versions, governance tags and aliases in an MLflow registry, with a promotion gate and rollback
version_added: "0.1.0"
description:
  - Ensures a registered model exists, optionally a version of it (from a run or artifact URI, or an existing version
    number), sets descriptions and tags, records governance metadata and approvals as tags, and moves an alias
    (C(production), C(staging), ...) to the version. Uses aliases and tags, never the deprecated stages.
  - Moving a protected alias (O(protected_aliases)) needs a passing validation report on the version (tags written by
    M(runlocalai.mlops.model_validation)), approvals from every approver in O(required_approvers) and the governance
    metadata in O(required_metadata), unless O(force=true), which is recorded on the version.
  - Before moving an alias it records the version it pointed at (registered model tag
    C(governance.alias.<alias>.previous)); O(state=rolled_back) points the alias back at that version.
  - Tag names are listed in the collection's C(docs/governance.md). Talks to the MLflow REST API with C(requests).
extends_documentation_fragment:
  - runlocalai.mlops.mlflow_connection
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - requests
attributes:
  check_mode:
    description: Reports what would change, gate included, and writes nothing.
    support: full
  diff_mode:
    description: Shows descriptions, managed tags and aliases (old and new version) before and after.
    support: full
options:
  name:
    description: Registered model name.
    type: str
    required: true
  state:
    description:
      - V(present) ensures model, version, tags and alias.
      - V(rolled_back) points O(alias) back at the version recorded before its last move.
    type: str
    choices: [present, rolled_back]
    default: present
  description:
    description: Description of the registered model.
    type: str
  tags:
    description: Tags on the registered model (other tags are left alone).
    type: dict
    default: {}
  source:
    description:
      - Model to register as a version, e.g. C(runs:/<run_id>/model), C(models:/m-<id>) or an artifact URI.
      - A version with the same source already in the registry is reused (idempotent).
    type: str
  run_id:
    description: Run the O(source) belongs to, when it is not a C(runs:/) URI.
    type: str
  version:
    description: An existing version number, instead of O(source).
    type: str
  version_description:
    description: Description of the version.
    type: str
  version_tags:
    description: Tags on the version (other tags are left alone).
    type: dict
    default: {}
  owner:
    description: Governance metadata, tag C(governance.owner) on the version.
    type: str
  risk_level:
    description: Governance metadata, tag C(governance.risk_level) on the version.
    type: str
    choices: [low, medium, high, critical]
  training_data_hash:
    description: Governance metadata, tag C(governance.training_data_hash) on the version.
    type: str
  approvals:
    description: Approvals to record on the version (merged into the tag C(governance.approvals)).
    type: list
    elements: dict
    default: []
    suboptions:
      approver:
        description: Who approved.
        type: str
        required: true
      comment:
        description: Their comment.
        type: str
  alias:
    description: Alias to point at the version (required for O(state=rolled_back)).
    type: str
  protected_aliases:
    description: Aliases guarded by the promotion gate.
    type: list
    elements: str
    default: [production]
  required_approvers:
    description: Approvers who must have approved a version before a protected alias moves to it.
    type: list
    elements: str
    default: []
  required_metadata:
    description: Governance metadata a version must carry before a protected alias moves to it.
    type: list
    elements: str
    choices: [owner, risk_level, training_data_hash]
    default: []
  require_validation:
    description: Require a passing validation report (tag C(validation.passed=true)) for protected aliases.
    type: bool
    default: true
  force:
    description: Move a protected alias even though the gate fails. Recorded on the version as C(governance.forced.<alias>).
    type: bool
    default: false
  force_reason:
    description: Why the gate was overridden (recorded with O(force)).
    type: str
  actor:
    description: Who makes the change (recorded in tags and the returned audit entry). Defaults to O(username) or E(USER).
    type: str
notes:
  - Anyone with write permission on the model in MLflow can set tags; approvals recorded here are as trustworthy as
    those permissions. Keep the audit trail with M(runlocalai.mlops.audit_log) (see RV(audit_entry)).
"""

EXAMPLES = r"""
- name: Register the trained model and record its governance metadata
  runlocalai.mlops.mlflow_model:
    tracking_uri: https://mlflow.internal:5000
    username: ci
    password: "{{ vault_mlflow_password }}"
    name: churn
    source: "runs:/{{ run_id }}/model"
    owner: data-science
    risk_level: high
    training_data_hash: "{{ data_sha256 }}"
    alias: staging
  register: registered

- name: Promote to production (needs a passing validation report and both approvals)
  runlocalai.mlops.mlflow_model:
    tracking_uri: https://mlflow.internal:5000
    username: ci
    password: "{{ vault_mlflow_password }}"
    name: churn
    version: "{{ registered.version }}"
    approvals:
      - approver: alice
        comment: "CHG-1234"
    required_approvers: [alice, bob]
    required_metadata: [owner, risk_level]
    alias: production
  register: promotion

- name: Roll production back to the version before
  runlocalai.mlops.mlflow_model:
    tracking_uri: https://mlflow.internal:5000
    username: ci
    password: "{{ vault_mlflow_password }}"
    name: churn
    alias: production
    state: rolled_back
"""

RETURN = r"""
name:
  description: Registered model name.
  returned: always
  type: str
  sample: churn
version:
  description: The version the task worked on (for rollback, the version the alias now points at). C((new)) in check mode when it would be created.
  returned: when a version or alias is involved
  type: str
  sample: "3"
alias:
  description: The alias handled.
  returned: always
  type: str
  sample: production
previous_version:
  description: Version the alias pointed at before this task (null if it did not exist).
  returned: always
  type: str
  sample: "2"
gate:
  description: Promotion gate result, with C(protected), C(passed), C(missing_approvers), C(missing_metadata), C(validation_passed) and C(reasons).
  returned: when O(alias) is given with O(state=present)
  type: dict
  sample: {protected: true, passed: false, missing_approvers: [bob], missing_metadata: [], validation_passed: true,
           reasons: ["missing approvals from: bob"]}
actions:
  description: The registry calls made (or that would be made in check mode).
  returned: always
  type: list
  elements: str
  sample: [version_tag governance.approvals, set_alias]
audit_entry:
  description: An entry for M(runlocalai.mlops.audit_log) describing the change (null when nothing changed).
  returned: always
  type: dict
  sample: {event_type: model_promotion, actor: ci, resource: "model:churn", action: "alias production 2 -> 3", details: {}}
"""

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    GateRefused,
    CONNECTION_MUTUALLY_EXCLUSIVE,
    client_from_params,
    connection_argument_spec,
    RegistryError,
    ensure_model,
    rollback,
)


def audit_entry(result, state, actor):
    if not result["changed"]:
        return None
    alias = result.get("alias")
    if state == "rolled_back":
        action = "alias %s %s -> %s (rollback)" % (alias, result["previous_version"], result["version"])
        event = "model_rollback"
    elif alias and result["after"]["aliases"].get(alias) != result["before"]["aliases"].get(alias):
        action = "alias %s %s -> %s" % (alias, result["before"]["aliases"].get(alias), result["after"]["aliases"].get(alias))
        event = "model_promotion"
    else:
        action = "update " + ", ".join(result["actions"])
        event = "model_registry_update"
    details = {"version": result.get("version"), "previous_version": result.get("previous_version"), "actions": result["actions"]}
    if result.get("gate"):
        details["gate"] = result["gate"]
    return {"event_type": event, "actor": actor, "resource": "model:%s" % result["name"], "action": action, "details": details}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            connection_argument_spec(env_fallback),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "rolled_back"], default="present"),
            description=dict(type="str"),
            tags=dict(type="dict", default={}),
            source=dict(type="str"),
            run_id=dict(type="str"),
            version=dict(type="str"),
            version_description=dict(type="str"),
            version_tags=dict(type="dict", default={}),
            owner=dict(type="str"),
            risk_level=dict(type="str", choices=["low", "medium", "high", "critical"]),
            training_data_hash=dict(type="str", no_log=False),
            approvals=dict(type="list", elements="dict", default=[], options=dict(
                approver=dict(type="str", required=True),
                comment=dict(type="str"),
            )),
            alias=dict(type="str"),
            protected_aliases=dict(type="list", elements="str", default=["production"]),
            required_approvers=dict(type="list", elements="str", default=[]),
            required_metadata=dict(type="list", elements="str", default=[], choices=["owner", "risk_level", "training_data_hash"]),
            require_validation=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            force_reason=dict(type="str"),
            actor=dict(type="str"),
        ),
        mutually_exclusive=[("source", "version")] + CONNECTION_MUTUALLY_EXCLUSIVE,
        required_if=[("state", "rolled_back", ["alias"])],
        supports_check_mode=True,
    )
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_IMPORT_ERROR))
    p = module.params
    actor = p["actor"] or p["username"] or os.environ.get("USER") or "ansible"
    try:
        client = client_from_params(p)
        if p["state"] == "rolled_back":
            result = rollback(client, p["name"], p["alias"], actor=actor, check=module.check_mode)
            result.setdefault("actions", ["set_alias"] if result["changed"] else [])
        else:
            keys = ("name", "description", "tags", "source", "run_id", "version", "version_description", "version_tags", "approvals",
                    "alias", "protected_aliases", "required_approvers", "required_metadata", "require_validation", "force", "force_reason")
            spec = dict((k, p[k]) for k in keys)
            spec["metadata"] = dict((k, p[k]) for k in ("owner", "risk_level", "training_data_hash"))
            spec["actor"] = actor
            result = ensure_model(client, spec, check=module.check_mode)
    except GateRefused as exc:
        module.fail_json(msg=str(exc), gate=exc.gate)
    except RegistryError as exc:
        module.fail_json(msg=str(exc))
    out = dict(changed=result["changed"], name=result["name"], version=result.get("version"), alias=result.get("alias"),
               previous_version=result.get("previous_version"), actions=result["actions"],
               audit_entry=audit_entry(result, p["state"], actor))
    if result.get("gate") is not None:
        out["gate"] = result["gate"]
    if module._diff:
        out["diff"] = {"before": result["before"], "after": result["after"]}
    module.exit_json(**out)


if __name__ == "__main__":
    main()
