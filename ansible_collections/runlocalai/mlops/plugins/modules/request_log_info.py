#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: request_log_info
short_description: Verify the hash chain of the model service's per-request logs
version_added: "0.2.0"
description:
  - Reads the request logs (C(audit.jsonl)) that the model service (role runlocalai.mlops.model_server) writes for every
    C(/v1) request, oldest first across rotation (C(audit.jsonl.N) ... C(audit.jsonl.1), C(audit.jsonl)), and checks
    every line's hash and its link to the line before.
  - Reports per log every edited line, every line removed or moved, lines that are not JSON, and lines a crash left
    unfinished (torn, which are not tampering). Files rotated away are not a problem; the oldest kept line's C(prev)
    is returned as RV(logs[].start).
  - The line format is a contract, documented in the collection's C(docs/governance.md).
  - Reads only; never changes anything. Needs only the Python standard library on the target (run it on the serving host).
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description: Verifies as usual; the logs are only read, in any mode.
    support: full
  diff_mode:
    description: The logs are only read; there is no difference to show.
    support: none
options:
  paths:
    description:
      - Request logs to verify, each the path of a log's current file (C(/var/log/runlocalai-model/NAME/audit.jsonl)) or a
        glob pattern naming several (C(/var/log/runlocalai-model/*/audit.jsonl)). A pattern matching nothing adds no log; a
        plain path must exist (or one of its rotated files).
    type: list
    elements: path
    required: true
  expected_head:
    description:
      - A head hash (RV(logs[].head)) recorded earlier and kept elsewhere, for a single log. The log must still contain
        it; if it does not, the newest lines were removed or the log was rewritten (or the line was rotated away since).
    type: str
  fail_on_problem:
    description:
      - Fail the task when a log is not RV(logs[].ok) (a problem other than C(torn)), naming the file, line and kind of the
        first problems.
    type: bool
    default: false
notes:
  - The service appends to the log while it is read; a line being written at that moment can show as C(torn).
seealso:
  - module: runlocalai.mlops.audit_log_info
"""

EXAMPLES = r"""
- name: Verify every instance's request log on a serving host
  runlocalai.mlops.request_log_info:
    paths:
      - /var/log/runlocalai-model/*/audit.jsonl
    fail_on_problem: true
  become: true

- name: Verify one log against the head recorded after the last check
  runlocalai.mlops.request_log_info:
    paths: [/var/log/runlocalai-model/churn/audit.jsonl]
    expected_head: "{{ recorded_head }}"
  become: true
  register: churn_requests
"""

RETURN = r"""
ok:
  description: Whether every log is RV(logs[].ok).
  returned: always
  type: bool
  sample: true
problem_count:
  description: Number of problems in all logs (torn lines included).
  returned: always
  type: int
  sample: 0
logs:
  description: One result per log, in the order of O(paths) (patterns expanded, sorted).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The log's current file.
      type: str
      sample: /var/log/runlocalai-model/churn/audit.jsonl
    files:
      description: The files read, oldest first.
      type: list
      elements: str
      sample: [/var/log/runlocalai-model/churn/audit.jsonl.1, /var/log/runlocalai-model/churn/audit.jsonl]
    ok:
      description: No line edited, removed, reordered or replaced (every problem, if any, is C(torn)).
      type: bool
      sample: true
    entries:
      description: Number of chained lines (requests) read.
      type: int
      sample: 1200
    unchained:
      description: Lines written before the chain existed (by an older service, without C(prev) and C(hash)); not checked.
      type: int
      sample: 0
    first_ts:
      description: C(ts) of the oldest chained line (null when there is none).
      type: str
      sample: "2026-11-27T10:00:00.123456Z"
    last_ts:
      description: C(ts) of the newest chained line (null when there is none).
      type: str
      sample: "2026-11-28T09:59:58.000001Z"
    head:
      description: Hash of the newest chained line, which the next line will name as its C(prev) (64 zeros when there is none).
      type: str
      sample: 9f2c4e0f4d6b1c3a5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d
    head_at:
      description: File and line of the newest chained line (null when there is none).
      type: dict
      sample: {file: /var/log/runlocalai-model/churn/audit.jsonl, line: 41}
    start:
      description:
        - C(prev) of the oldest kept chained line (null when there is none) - 64 zeros when the log is whole from its very first
          line, else the hash of a line in a file rotated away.
      type: str
      sample: "0000000000000000000000000000000000000000000000000000000000000000"
    expected_head_at:
      description: With O(expected_head), the file and line holding it (null when it is not a line of the log).
      type: dict
      sample: {file: /var/log/runlocalai-model/churn/audit.jsonl.1, line: 7}
    problems:
      description:
        - The problems in file order (at most 1000), each with C(file), C(line) (1-based), C(kind) and C(detail).
        - C(kind) is C(edited) (the stored hash does not match the line, or C(prev)/C(hash) are missing),
          C(removed_or_reordered) (the line's C(prev) is not the hash of the line before it, or O(expected_head) is
          gone), C(unparseable) (not a JSON object, and the chain breaks across it) or C(torn) (not a JSON object, but
          the chain links across it or it is the unfinished last line - a write a crash cut short, not tampering).
      type: list
      elements: dict
      sample: [{file: /var/log/runlocalai-model/churn/audit.jsonl, line: 7, kind: edited,
                detail: "the stored hash does not match the line's content (a field was edited)"}]
    problem_count:
      description: Number of problems (may exceed the length of RV(logs[].problems)).
      type: int
      sample: 0
"""

from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.requests import verify_request_logs
from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule


def main():
    module = MlopsModule(
        dict(
            paths=dict(type="list", elements="path", required=True),
            expected_head=dict(type="str"),
            fail_on_problem=dict(type="bool", default=False),
        ),
    )
    params = module.params
    with module.reporting_errors():
        result, failure = verify_request_logs(params["paths"], params["expected_head"], params["fail_on_problem"])
    if failure:
        module.fail_json(msg=failure, changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
