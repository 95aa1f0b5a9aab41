# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reading the audit log: entries matching filters, an optional JSON-lines export, and the chain's
verification. Used by audit_log_info and by audit_log's deprecated state=query (and state=verified).

Plain Python: imports nothing from Ansible. Where Ansible's file handling is wanted (atomic_move,
owner/group/mode), the caller passes its AnsibleModule in (``module``), as connection_argument_spec
takes env_fallback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ..common.errors import InputError
from ..common.files import plan_writes, write_plans
from .chain import DEFAULT_BUSY_TIMEOUT, AuditError, to_jsonl

# The entry filters (AuditLog.query's keyword arguments).
FILTER_SPEC = dict(
    since=dict(type="str"),
    until=dict(type="str"),
    event_type=dict(type="str"),
    actor=dict(type="str"),
    resource=dict(type="str"),
    action=dict(type="str"),
    entry_id=dict(type="str"),
    limit=dict(type="int"),
)


def query_argument_spec():
    """The options of a query: the log, the filters and the export file (with its attributes)."""
    return dict(
        path=dict(type="path", required=True),
        filters=dict(type="dict", default={}, options=dict((k, dict(v)) for k, v in FILTER_SPEC.items())),
        export_path=dict(type="path"),
        mode=dict(type="raw", default="0640"),
        owner=dict(type="str"),
        group=dict(type="str"),
        busy_timeout=dict(type="float", default=DEFAULT_BUSY_TIMEOUT),
    )


def verify_argument_spec():
    """The options of a verification of the chain."""
    return dict(
        expected_head=dict(type="str"),
        fail_on_invalid=dict(type="bool", default=False),
    )


def file_mode(mode):
    """An octal file mode given as text ('0640') or a number; AuditError naming the parameter."""
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise AuditError("mode: %r is not an octal file mode such as '0640'" % (mode,))


def set_attributes(module, path, mode, changed, owner=None, group=None):
    """Mode, owner and group of path through the AnsibleModule passed in; returns changed."""
    changed = module.set_mode_if_different(path, mode, changed)
    if owner:
        changed = module.set_owner_if_different(path, owner, changed)
    if group:
        changed = module.set_group_if_different(path, group, changed)
    return changed


def query(log, filters=None, export_path=None, check=False, mover=None):
    """Entries of log matching filters, and with export_path the JSON-lines file written when its
    content differs (never in check mode; mover(src, dest) as in common.files.write_plans).

    Returns dict(changed, entries, count) plus, with export_path, export_path and
    lines_before / lines_after (for --diff).
    """
    filters = dict((k, v) for k, v in (filters or {}).items() if v is not None)
    entries = log.query(**filters)
    out = dict(changed=False, entries=entries, count=len(entries))
    if export_path:
        try:
            plan = plan_writes([("export_path", export_path, to_jsonl(entries))])[0]
            if not check:
                write_plans([plan], mover=mover)
        except InputError as exc:
            raise AuditError(str(exc))
        out.update(changed=plan["changed"], export_path=export_path,
                   lines_before=plan["before"].count("\n") if plan["before"] is not None else 0,
                   lines_after=plan["content"].count("\n"))
    return out


def query_result(module, log):
    """The result of a query task (audit_log_info; audit_log state=query): entries, count and, with
    export_path, the file written atomically with its mode/owner/group and a --diff of line counts."""
    params = module.params
    mode = file_mode(params["mode"]) if params["export_path"] else None
    out = query(log, params["filters"], params["export_path"], check=module.check_mode, mover=module.atomic_move)
    before, after = out.pop("lines_before", None), out.pop("lines_after", None)
    export = out.get("export_path")
    if export:
        if not module.check_mode:
            out["changed"] = set_attributes(module, export, mode, out["changed"], params["owner"], params["group"])
        if module._diff:
            out["diff"] = {"before": {"path": export, "lines": before}, "after": {"path": export, "lines": after}}
    return out


def verification(log, expected_head=None, fail_on_invalid=False):
    """Walk the chain. Returns (result, failure): failure is the message to fail with when
    fail_on_invalid is set and the chain is not valid, else None."""
    result = log.verify(expected_head=expected_head)
    failure = None
    if fail_on_invalid and not result["valid"]:
        first = result["first_broken"]
        failure = "audit log %s failed verification: %d broken entr%s, first at seq %s (%s): %s" % (
            log.path, result["broken_count"], "y" if result["broken_count"] == 1 else "ies",
            first["seq"], first["entry_id"], first["reason"])
    return result, failure
