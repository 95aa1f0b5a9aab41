#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: audit_log
short_description: Tamper-evident, append-only audit log (SQLite hash chain)
version_added: "0.1.0"
description:
  - Appends entries to an append-only audit log kept in an SQLite database in WAL mode. Triggers refuse
    C(UPDATE) and C(DELETE); every entry stores the SHA-256 of its canonical JSON, which includes the previous
    entry's hash, so the entries form a hash chain.
  - O(state=verified) walks the chain and reports every modified, reordered or missing entry. Given an
    O(expected_head) kept elsewhere, it also detects a truncated tail or a chain rewritten with recomputed hashes.
  - O(state=query) filters entries by time, type, actor, resource and action, and can export them as JSON lines. It is
    deprecated; M(runlocalai.mlops.audit_log_info) reads the log, with the same options and return values.
  - Several processes may append at once; appends are serialised with C(BEGIN IMMEDIATE) and a busy timeout.
  - The entry format is a contract, documented in the collection's C(docs/governance.md).
  - Needs only the Python standard library on the target.
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description: Check mode reports what would be appended or exported and writes nothing.
    support: full
  diff_mode:
    description: Shows the head hash and entry count before and after, and the appended entry ids.
    support: full
extends_documentation_fragment:
  - runlocalai.mlops.audit_log_filters
options:
  path:
    description: Path of the SQLite audit log. Created on the first append (its directory must exist).
    type: path
    required: true
  state:
    description:
      - V(present) appends O(entries) atomically (all or nothing).
      - V(verified) checks the hash chain.
      - V(query) returns (and optionally exports) entries matching O(filters). Deprecated (to be removed in 2.0.0); use
        M(runlocalai.mlops.audit_log_info).
    type: str
    choices: [present, verified, query]
    default: present
  entries:
    description:
      - Entries to append with O(state=present). An entry id already stored with identical content is left
        alone (not changed); the same id with different content fails and nothing of the batch is written.
    type: list
    elements: dict
    suboptions:
      entry_id:
        description: Unique id of the entry (the idempotence key), e.g. a deployment id.
        type: str
        required: true
      event_type:
        description: Kind of event, e.g. C(model_promotion), C(model_rollback), C(validation).
        type: str
        required: true
      actor:
        description: Who caused the event.
        type: str
        required: true
      resource:
        description: What the event is about, e.g. C(model:churn/3).
        type: str
        required: true
      action:
        description: What happened, e.g. C(alias production 2 -> 3).
        type: str
        required: true
      details:
        description: Free-form details (JSON-serialisable). Fields named in O(hash_fields) are stored as keyed hashes.
        type: dict
        default: {}
      timestamp:
        description:
          - ISO 8601 time with a zone (e.g. C(2026-11-27T10:00:00Z)). Defaults to the time of the append.
          - When given, it is part of the content compared for idempotence.
        type: str
  hash_fields:
    description:
      - Detail fields stored as HMAC-SHA256 of their canonical JSON under a per-log secret key, never raw. Use
        dots for nested fields (C(request.client_ip)). Deterministic, so re-appending identical content stays
        idempotent; not reversible with a dictionary of common values without the key.
    type: list
    elements: str
    default: []
  key_path:
    description: File holding the HMAC key (created with mode 0600 on first use). Defaults to O(path) plus C(.key).
    type: path
  expected_head:
    description:
      - With O(state=verified), a head hash recorded earlier and kept elsewhere. The chain must contain it;
        if it does not, the newest entries were truncated or the chain was rewritten.
    type: str
  fail_on_invalid:
    description: With O(state=verified), fail the task when the chain is not valid.
    type: bool
    default: false
  export_path:
    description: With O(state=query), write the matching entries to this file as JSON lines (atomically; unchanged content is not rewritten).
    type: path
  mode:
    description: File mode of the log (its WAL files follow it). The key file is always 0600.
    type: raw
    default: '0640'
  owner:
    description: Owner of the log and key files.
    type: str
  group:
    description: Group of the log file.
    type: str
  busy_timeout:
    description: Seconds to wait for another process's append to finish.
    type: float
    default: 30
notes:
  - The key file must be kept with the log (and backed up with it); without it, entries with hashed fields can no
    longer be compared for idempotence. It is not needed to verify the chain.
  - Record the returned RV(head) somewhere the log's host cannot rewrite (the controller, a ticket, another host)
    and pass it as O(expected_head) when verifying.
"""

EXAMPLES = r"""
- name: Record a promotion
  runlocalai.mlops.audit_log:
    path: /var/lib/mlops/audit.db
    owner: mlops
    group: mlops
    entries:
      - entry_id: "deploy-{{ deployment_id }}"
        event_type: model_promotion
        actor: "{{ lookup('env', 'USER') }}"
        resource: "model:churn"
        action: "alias production 2 -> 3"
        details:
          version: "3"
          previous_version: "2"
          requester_email: alice@example.com
    hash_fields: [requester_email]
  register: audit

- name: Verify the chain against the head recorded after the last change
  runlocalai.mlops.audit_log:
    path: /var/lib/mlops/audit.db
    state: verified
    expected_head: "{{ audit.head }}"
    fail_on_invalid: true

- name: Export this month's promotions as JSON lines (state=query is deprecated, see audit_log_info)
  runlocalai.mlops.audit_log_info:
    path: /var/lib/mlops/audit.db
    filters:
      event_type: model_promotion
      since: "2026-11-01T00:00:00Z"
    export_path: /tmp/promotions.jsonl
"""

RETURN = r"""
appended:
  description: Ids of the entries appended (or that would be, in check mode).
  returned: state=present
  type: list
  elements: str
  sample: [deploy-42]
unchanged:
  description: Ids already stored with identical content.
  returned: state=present
  type: list
  elements: str
  sample: []
head:
  description: Hash of the newest entry after the task (64 hex digits; 64 zeros for an empty log). Null in check mode when entries would be appended.
  returned: state=present or state=verified
  type: str
  sample: 275da57a638b9fc6d52061cf0f92617f3b80906deba152167beec6ea39bac589
head_seq:
  description: Sequence number of the newest entry.
  returned: state=present or state=verified
  type: int
  sample: 42
valid:
  description: Whether the chain verified without any broken entry.
  returned: state=verified
  type: bool
  sample: true
entries_checked:
  description: Number of entries walked.
  returned: state=verified
  type: int
  sample: 16000
head_entry_id:
  description: Id of the newest entry.
  returned: state=verified
  type: str
  sample: deploy-42
expected_head_seq:
  description: Sequence number of the entry whose hash is O(expected_head), if found.
  returned: state=verified
  type: int
  sample: 40
broken:
  description:
    - Broken entries in chain order (at most 1000), each with C(seq), C(entry_id) (null for a missing entry) and C(reason).
    - Reasons start with C(modified), C(reordered), C(missing) or C(expected_head).
  returned: state=verified
  type: list
  elements: dict
  sample: [{seq: 7, entry_id: deploy-7, reason: "modified: stored hash does not match the entry's content"}]
broken_count:
  description: Number of broken entries (may exceed the length of RV(broken)).
  returned: state=verified
  type: int
  sample: 1
first_broken:
  description: The first item of RV(broken), or null.
  returned: state=verified
  type: dict
  sample: {seq: 7, entry_id: deploy-7, reason: "modified: stored hash does not match the entry's content"}
entries:
  description: Matching entries with C(seq), C(entry_id), C(timestamp), C(event_type), C(actor), C(resource), C(action), C(details), C(prev_hash), C(hash).
  returned: state=query
  type: list
  elements: dict
  sample: []
count:
  description: Entries in the log (state=present) or matching entries (state=query).
  returned: state=present or state=query
  type: int
  sample: 1
export_path:
  description: Where the JSON lines were written.
  returned: state=query and export_path given
  type: str
  sample: /tmp/promotions.jsonl
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.chain import (
    AuditConflict,
    AuditError,
    AuditLog,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.query import (
    file_mode,
    query_argument_spec,
    query_result,
    set_attributes,
    verification,
    verify_argument_spec,
)


def _set_attributes(module, path, mode, changed, owner=True, group=True):
    return set_attributes(module, path, mode, changed, owner=module.params["owner"] if owner else None,
                          group=module.params["group"] if group else None)


def run_present(module, log):
    params = module.params
    if not params["entries"]:
        module.fail_json(msg="entries: a non-empty list of entries is required for state=present")
    entries = []
    for raw in params["entries"]:
        entry = dict((k, v) for k, v in raw.items() if v is not None)
        entries.append(entry)
    mode = file_mode(params["mode"])
    existed = log.exists()
    before = log.head() if existed else {"seq": 0, "hash": None}
    try:
        result = log.append(entries, hash_fields=params["hash_fields"], check=module.check_mode, mode=mode)
    except AuditConflict as exc:
        module.fail_json(msg=str(exc), conflicts=exc.conflicts)
    changed = bool(result["appended"])
    if not module.check_mode or existed:
        if os.path.exists(log.path):
            changed = _set_attributes(module, log.path, mode, changed)
        if os.path.exists(log.key_path):
            changed = _set_attributes(module, log.key_path, 0o600, changed, group=False)
    out = dict(changed=changed, appended=result["appended"], unchanged=result["unchanged"],
               head=result["head"], head_seq=result["head_seq"], count=result["count"])
    if module._diff:
        out["diff"] = {
            "before": {"path": log.path, "head": before["hash"], "entries": before["seq"]},
            "after": {"path": log.path, "head": result["head"], "entries": result["head_seq"] if not module.check_mode else
                      before["seq"] + len(result["appended"]), "appended": result["appended"]},
        }
    module.exit_json(**out)


def run_verified(module, log):
    result, failure = verification(log, module.params["expected_head"], module.params["fail_on_invalid"])
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(changed=False, **result)


def main():
    entry_spec = dict(
        entry_id=dict(type="str", required=True),
        event_type=dict(type="str", required=True),
        actor=dict(type="str", required=True),
        resource=dict(type="str", required=True),
        action=dict(type="str", required=True),
        details=dict(type="dict", default={}),
        timestamp=dict(type="str"),
    )
    argument_spec = query_argument_spec()
    argument_spec.update(verify_argument_spec())
    argument_spec.update(
        state=dict(type="str", choices=["present", "verified", "query"], default="present"),
        entries=dict(type="list", elements="dict", options=entry_spec),
        hash_fields=dict(type="list", elements="str", default=[], no_log=False),
        key_path=dict(type="path", no_log=False),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["entries"])],
        supports_check_mode=True,
    )
    try:
        log = AuditLog(module.params["path"], key_path=module.params["key_path"], busy_timeout=module.params["busy_timeout"])
        state = module.params["state"]
        if state == "present":
            run_present(module, log)
        elif state == "verified":
            run_verified(module, log)
        else:
            module.deprecate("audit_log state=query is deprecated: read the log with runlocalai.mlops.audit_log_info "
                             "(same options, without state)", version="2.0.0", collection_name="runlocalai.mlops")
            module.exit_json(**query_result(module, log))
    except AuditError as exc:
        module.fail_json(msg=str(exc))
    except (OSError, IOError) as exc:
        module.fail_json(msg="path: %s: %s" % (module.params["path"], exc))


if __name__ == "__main__":
    main()
