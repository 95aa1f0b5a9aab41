# -*- coding: utf-8 -*-
"""Tests for the audit_log_info module (through the shared run_module fixture)."""

import json
import os
import sqlite3
import stat

from ansible_collections.runlocalai.mlops.plugins.modules import audit_log, audit_log_info


def entry(i, **extra):
    value = {"entry_id": "d%d" % i, "event_type": "model_promotion", "actor": "ci", "resource": "model:churn",
             "action": "alias production %d -> %d" % (i, i + 1), "details": {"version": str(i + 1)}}
    value.update(extra)
    return value


def filled(run_module, tmp_path, entries):
    path = str(tmp_path / "audit.db")
    result = run_module(audit_log, {"path": path, "entries": entries})
    assert result["failed"] is False, result.get("msg")
    return path


def tamper(path, sql):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute(sql)
    conn.close()


def test_query_with_filters(run_module, tmp_path):
    path = filled(run_module, tmp_path, [
        entry(1, timestamp="2026-11-01T10:00:00Z"), entry(2, actor="bob", timestamp="2026-11-02T10:00:00Z"),
        entry(3, event_type="model_rollback", resource="model:other", timestamp="2026-11-03T10:00:00Z"),
        entry(4, actor="bob", timestamp="2026-11-04T10:00:00Z")])
    everything = run_module(audit_log_info, {"path": path})
    assert everything["failed"] is False and everything["changed"] is False
    assert everything["count"] == 4 and [e["seq"] for e in everything["entries"]] == [1, 2, 3, 4]
    assert set(everything["entries"][0]) == {"seq", "entry_id", "timestamp", "event_type", "actor", "resource", "action",
                                             "details", "prev_hash", "hash"}
    assert "valid" not in everything and "export_path" not in everything

    def ids(filters):
        result = run_module(audit_log_info, {"path": path, "filters": filters})
        assert result["failed"] is False, result.get("msg")
        assert result["count"] == len(result["entries"])
        return [e["entry_id"] for e in result["entries"]]

    assert ids({"actor": "bob"}) == ["d2", "d4"]
    assert ids({"event_type": "model_rollback"}) == ["d3"]
    assert ids({"resource": "model:ch*"}) == ["d1", "d2", "d4"]
    assert ids({"since": "2026-11-02T00:00:00Z", "until": "2026-11-03T12:00:00+00:00"}) == ["d2", "d3"]
    assert ids({"action": "alias production 1 -> 2"}) == ["d1"]
    assert ids({"entry_id": "d[34]"}) == ["d3", "d4"]
    assert ids({"actor": "bob", "limit": 1}) == ["d2"]
    assert ids({"actor": "nobody"}) == []


def test_query_matches_audit_log_state_query(run_module, tmp_path):
    path = filled(run_module, tmp_path, [entry(1), entry(2, actor="bob")])
    args = {"path": path, "filters": {"actor": "bob"}}
    info = run_module(audit_log_info, args)
    old = run_module(audit_log, dict(args, state="query"))
    assert info == old


def test_verify_with_expected_head_and_tamper(run_module, tmp_path):
    path = filled(run_module, tmp_path, [entry(i) for i in range(1, 6)])
    head = run_module(audit_log, {"path": path, "state": "verified"})["head"]
    ok = run_module(audit_log_info, {"path": path, "verify": True, "filters": {"entry_id": "d5"}})
    assert ok["failed"] is False and ok["changed"] is False
    assert ok["valid"] is True and ok["entries_checked"] == 5 and ok["head"] == head and ok["head_seq"] == 5
    assert ok["head_entry_id"] == "d5" and ok["broken"] == [] and ok["broken_count"] == 0 and ok["first_broken"] is None
    assert [e["entry_id"] for e in ok["entries"]] == ["d5"]
    # expected_head implies verify.
    implied = run_module(audit_log_info, {"path": path, "expected_head": head})
    assert implied["valid"] is True and implied["expected_head_seq"] == 5 and implied["count"] == 5
    tamper(path, "UPDATE audit_log SET details='{\"version\":\"9\"}' WHERE entry_id='d2'")
    bad = run_module(audit_log_info, {"path": path, "verify": True})
    assert bad["failed"] is False and bad["valid"] is False
    assert bad["broken"] == [{"seq": 2, "entry_id": "d2", "reason": "modified: stored hash does not match the entry's content"}]
    export = str(tmp_path / "out.jsonl")
    failing = run_module(audit_log_info, {"path": path, "verify": True, "fail_on_invalid": True, "export_path": export})
    assert failing["failed"] is True and failing["valid"] is False
    assert failing["msg"] == ("audit log %s failed verification: 1 broken entry, first at seq 2 (d2): modified: stored hash "
                              "does not match the entry's content" % path)
    assert not os.path.exists(export)  # a chain that fails verification exports nothing
    same = run_module(audit_log, {"path": path, "state": "verified", "expected_head": head})
    again = run_module(audit_log_info, {"path": path, "expected_head": head})
    for key in ("valid", "entries_checked", "head", "head_seq", "head_entry_id", "expected_head_seq", "broken", "broken_count",
                "first_broken"):
        assert again[key] == same[key], key


def test_export_check_mode_idempotence_and_mode(run_module, tmp_path):
    path = filled(run_module, tmp_path, [entry(1), entry(2, actor="bob"), entry(3, actor="bob")])
    export = str(tmp_path / "out.jsonl")
    args = {"path": path, "filters": {"actor": "bob"}, "export_path": export, "mode": "0600"}
    checked = run_module(audit_log_info, args, check_mode=True, diff=True)
    assert checked["failed"] is False and checked["changed"] is True and checked["count"] == 2
    assert checked["diff"] == {"before": {"path": export, "lines": 0}, "after": {"path": export, "lines": 2}}
    assert not os.path.exists(export)
    first = run_module(audit_log_info, args, diff=True)
    assert first["changed"] is True and first["export_path"] == export
    assert first["diff"]["after"]["lines"] == 2
    with open(export) as handle:
        lines = [json.loads(line) for line in handle]
    assert [line["entry_id"] for line in lines] == ["d2", "d3"]
    assert [line["hash"] for line in lines] == [e["hash"] for e in first["entries"]]
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o600
    second = run_module(audit_log_info, args)
    assert second["changed"] is False
    assert run_module(audit_log_info, args, check_mode=True)["changed"] is False
    # Another mode only: changed, content untouched.
    moded = run_module(audit_log_info, dict(args, mode="0644"))
    assert moded["changed"] is True and stat.S_IMODE(os.stat(export).st_mode) == 0o644
    # New matching entries: the export follows.
    run_module(audit_log, {"path": path, "entries": [entry(4, actor="bob")]})
    grown = run_module(audit_log_info, dict(args, mode="0644"), diff=True)
    assert grown["changed"] is True and grown["diff"]["before"]["lines"] == 2 and grown["diff"]["after"]["lines"] == 3


def test_read_only_and_bad_inputs(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    cases = [
        ({"path": path}, "path: audit log %s does not exist" % path),
        ({"path": path, "verify": True}, "path: audit log %s does not exist" % path),
        ({"path": path, "state": "query"}, "Unsupported parameters"),
        ({"path": path, "filters": {"since": "last week"}}, "filters.since: 'last week' is not an ISO 8601 time"),
    ]
    for args, message in cases:
        result = run_module(audit_log_info, args)
        assert result["failed"] is True, args
        assert message in result["msg"], (args, result["msg"])
    assert not os.path.exists(path)  # reading never creates the log
    filled(run_module, tmp_path, [entry(1)])
    before = os.stat(path).st_mtime_ns
    cases = [
        ({"path": path, "expected_head": "abc"}, "expected_head: 'abc' is not a SHA-256 hex digest (64 hex digits)"),
        ({"path": path, "filters": {"limit": 0}}, "filters.limit: must be a positive integer"),
        ({"path": path, "export_path": str(tmp_path / "no" / "out.jsonl")}, "export_path: directory %s does not exist" % (tmp_path / "no")),
        ({"path": path, "export_path": str(tmp_path)}, "export_path: %s is a directory" % tmp_path),
        ({"path": path, "export_path": str(tmp_path / "out.jsonl"), "mode": "rw-r"}, "mode: 'rw-r' is not an octal file mode"),
    ]
    for args, message in cases:
        result = run_module(audit_log_info, args)
        assert result["failed"] is True, args
        assert message in result["msg"], (args, result["msg"])
    assert not os.path.exists(str(tmp_path / "out.jsonl"))
    run_module(audit_log_info, {"path": path, "verify": True})
    assert os.stat(path).st_mtime_ns == before
