# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The entry filters of audit_log_info (and of audit_log's deprecated state=query); their argument
    # spec is module_utils/audit/query.py.
    DOCUMENTATION = r"""
options:
  filters:
    description:
      - Entry filters (with M(runlocalai.mlops.audit_log), only for its deprecated O(ignore:state=query)).
      - Text filters match exactly, or as a glob when they contain C(*), C(?) or C([).
    type: dict
    default: {}
    suboptions:
      since:
        description: Earliest timestamp (ISO 8601, inclusive).
        type: str
      until:
        description: Latest timestamp (ISO 8601, inclusive).
        type: str
      event_type:
        description: Event type.
        type: str
      actor:
        description: Actor.
        type: str
      resource:
        description: Resource.
        type: str
      action:
        description: Action.
        type: str
      entry_id:
        description: Entry id.
        type: str
      limit:
        description: At most this many entries (oldest first).
        type: int
"""
