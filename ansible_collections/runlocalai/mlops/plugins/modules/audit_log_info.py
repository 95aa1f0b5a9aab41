#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: audit_log_info
short_description: Read the tamper-evident audit log (SQLite hash chain), export entries, verify the chain
version_added: "0.2.0"
description:
  - Returns the entries of an audit log written by M(runlocalai.mlops.audit_log) that match O(filters) (time, type, actor,
    resource, action, entry id), oldest first, and can export them to O(export_path) as JSON lines.
  - With O(verify=true) (or an O(expected_head)) it also walks the hash chain and reports every modified, reordered or
    missing entry, as M(runlocalai.mlops.audit_log) with O(runlocalai.mlops.audit_log#module:state=verified) does.
  - Replaces M(runlocalai.mlops.audit_log) O(runlocalai.mlops.audit_log#module:state=query) (deprecated), with the same
    options and return values.
  - The entry format is a contract, documented in the collection's C(docs/governance.md).
  - Needs only the Python standard library on the target.
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description: Reads as usual; with O(export_path), reports whether the file would change and writes nothing.
    support: full
  diff_mode:
    description: With O(export_path), shows the file's number of lines before and after.
    support: full
extends_documentation_fragment:
  - runlocalai.mlops.audit_log_filters
options:
  path:
    description: Path of the SQLite audit log. It must exist.
    type: path
    required: true
  export_path:
    description: Write the matching entries to this file as JSON lines (atomically; unchanged content is not rewritten).
    type: path
  mode:
    description: File mode of the O(export_path) file.
    type: raw
    default: '0640'
  owner:
    description: Owner of the O(export_path) file.
    type: str
  group:
    description: Group of the O(export_path) file.
    type: str
  verify:
    description: Also verify the hash chain (implied by O(expected_head)).
    type: bool
    default: false
  expected_head:
    description:
      - A head hash recorded earlier and kept elsewhere. The chain must contain it; if it does not, the newest entries were
        truncated or the chain was rewritten.
    type: str
  fail_on_invalid:
    description: When verifying, fail the task when the chain is not valid.
    type: bool
    default: false
  busy_timeout:
    description: Seconds to wait for another process's append to finish.
    type: float
    default: 30
notes:
  - Record the head returned by M(runlocalai.mlops.audit_log) somewhere the log's host cannot rewrite (the controller, a ticket,
    another host) and pass it as O(expected_head).
seealso:
  - module: runlocalai.mlops.audit_log
"""

EXAMPLES = r"""
- name: Export this month's promotions as JSON lines
  runlocalai.mlops.audit_log_info:
    path: /var/lib/mlops/audit.db
    filters:
      event_type: model_promotion
      since: "2026-11-01T00:00:00Z"
    export_path: /tmp/promotions.jsonl

- name: The entries about churn, once the chain is verified against the head recorded after the last change
  runlocalai.mlops.audit_log_info:
    path: /var/lib/mlops/audit.db
    filters:
      resource: "model:churn*"
    expected_head: "{{ audit.head }}"
    fail_on_invalid: true
  register: churn_audit
"""

RETURN = r"""
entries:
  description: Matching entries with C(seq), C(entry_id), C(timestamp), C(event_type), C(actor), C(resource), C(action), C(details), C(prev_hash), C(hash).
  returned: always
  type: list
  elements: dict
  sample: []
count:
  description: Number of matching entries.
  returned: always
  type: int
  sample: 1
export_path:
  description: Where the JSON lines were written.
  returned: when O(export_path) is given
  type: str
  sample: /tmp/promotions.jsonl
valid:
  description: Whether the chain verified without any broken entry.
  returned: when verifying
  type: bool
  sample: true
entries_checked:
  description: Number of entries walked.
  returned: when verifying
  type: int
  sample: 16000
head:
  description: Hash of the newest entry (64 hex digits; 64 zeros for an empty log).
  returned: when verifying
  type: str
  sample: 275da57a638b9fc6d52061cf0f92617f3b80906deba152167beec6ea39bac589
head_seq:
  description: Sequence number of the newest entry.
  returned: when verifying
  type: int
  sample: 42
head_entry_id:
  description: Id of the newest entry.
  returned: when verifying
  type: str
  sample: deploy-42
expected_head_seq:
  description: Sequence number of the entry whose hash is O(expected_head), if found.
  returned: when verifying
  type: int
  sample: 40
broken:
  description:
    - Broken entries in chain order (at most 1000), each with C(seq), C(entry_id) (null for a missing entry) and C(reason).
    - Reasons start with C(modified), C(reordered), C(missing) or C(expected_head).
  returned: when verifying
  type: list
  elements: dict
  sample: [{seq: 7, entry_id: deploy-7, reason: "modified: stored hash does not match the entry's content"}]
broken_count:
  description: Number of broken entries (may exceed the length of RV(broken)).
  returned: when verifying
  type: int
  sample: 1
first_broken:
  description: The first item of RV(broken), or null.
  returned: when verifying
  type: dict
  sample: {seq: 7, entry_id: deploy-7, reason: "modified: stored hash does not match the entry's content"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.chain import AuditError, AuditLog
from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.query import (
    query_argument_spec,
    query_result,
    verification,
    verify_argument_spec,
)


def main():
    argument_spec = query_argument_spec()
    argument_spec.update(verify_argument_spec())
    argument_spec.update(verify=dict(type="bool", default=False))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        log = AuditLog(params["path"], busy_timeout=params["busy_timeout"])
        verified = {}
        if params["verify"] or params["expected_head"] is not None:
            # First, so that a chain that fails writes no export.
            verified, failure = verification(log, params["expected_head"], params["fail_on_invalid"])
            if failure:
                module.fail_json(msg=failure, **verified)
        out = query_result(module, log)
        out.update(verified)
    except AuditError as exc:
        module.fail_json(msg=str(exc))
    except (OSError, IOError) as exc:
        module.fail_json(msg="path: %s: %s" % (params["path"], exc))
    module.exit_json(**out)


if __name__ == "__main__":
    main()
