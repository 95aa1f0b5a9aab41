# -*- coding: utf-8 -*-
"""Tests for the audit_log module (through the shared run_module fixture)."""

import json
import os
import sqlite3
import stat

from ansible_collections.runlocalai.mlops.plugins.modules import audit_log


def entry(i, **extra):
    value = {"entry_id": "d%d" % i, "event_type": "model_promotion", "actor": "ci", "resource": "model:churn",
             "action": "alias production %d -> %d" % (i, i + 1), "details": {"version": str(i + 1)}}
    value.update(extra)
    return value


def test_present_then_idempotent(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    first = run_module(audit_log, {"path": path, "entries": [entry(1), entry(2)]}, diff=True)
    assert first["failed"] is False and first["changed"] is True
    assert first["appended"] == ["d1", "d2"] and first["count"] == 2 and first["head_seq"] == 2
    assert first["diff"]["before"]["entries"] == 0 and first["diff"]["after"]["entries"] == 2
    assert first["diff"]["after"]["head"] == first["head"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    second = run_module(audit_log, {"path": path, "entries": [entry(1), entry(2)]})
    assert second["changed"] is False and second["unchanged"] == ["d1", "d2"] and second["head"] == first["head"]


def test_check_mode_and_diff(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    result = run_module(audit_log, {"path": path, "entries": [entry(1)]}, check_mode=True, diff=True)
    assert result["changed"] is True and result["appended"] == ["d1"]
    assert not os.path.exists(path)
    run_module(audit_log, {"path": path, "entries": [entry(1)]})
    result = run_module(audit_log, {"path": path, "entries": [entry(1), entry(2)]}, check_mode=True, diff=True)
    assert result["changed"] is True and result["appended"] == ["d2"]
    assert result["diff"]["before"]["entries"] == 1 and result["diff"]["after"]["entries"] == 2
    assert result["diff"]["after"]["appended"] == ["d2"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 1
    conn.close()


def test_conflict_fails_and_writes_nothing(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    run_module(audit_log, {"path": path, "entries": [entry(1)]})
    result = run_module(audit_log, {"path": path, "entries": [entry(2), entry(1, actor="mallory")]})
    assert result["failed"] is True
    assert result["msg"].startswith("entries: entry_id d1 already stored with different content (d1: actor)")
    assert result["conflicts"] == [{"entry_id": "d1", "fields": ["actor"]}]
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT entry_id FROM audit_log")] == ["d1"]
    conn.close()


def test_verified_with_expected_head_and_tamper(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    head = run_module(audit_log, {"path": path, "entries": [entry(i) for i in range(1, 6)]})["head"]
    ok = run_module(audit_log, {"path": path, "state": "verified", "expected_head": head})
    assert ok["valid"] is True and ok["entries_checked"] == 5 and ok["head"] == head and ok["changed"] is False
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET details='{\"version\":\"9\"}' WHERE entry_id='d2'")
    conn.close()
    bad = run_module(audit_log, {"path": path, "state": "verified", "expected_head": head})
    assert bad["failed"] is False and bad["valid"] is False
    assert bad["broken"] == [{"seq": 2, "entry_id": "d2", "reason": "modified: stored hash does not match the entry's content"}]
    failing = run_module(audit_log, {"path": path, "state": "verified", "fail_on_invalid": True})
    assert failing["failed"] is True
    assert failing["msg"].endswith("failed verification: 1 broken entry, first at seq 2 (d2): modified: stored hash does not match the entry's content")


def test_query_export_jsonl_idempotent(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    export = str(tmp_path / "out.jsonl")
    run_module(audit_log, {"path": path, "entries": [entry(1), entry(2, actor="bob")]})
    args = {"path": path, "state": "query", "filters": {"actor": "bob"}, "export_path": export}
    checked = run_module(audit_log, args, check_mode=True)
    assert checked["changed"] is True and not os.path.exists(export)
    first = run_module(audit_log, args)
    assert first["changed"] is True and first["count"] == 1 and first["entries"][0]["entry_id"] == "d2"
    with open(export) as handle:
        lines = [json.loads(line) for line in handle]
    assert [line["entry_id"] for line in lines] == ["d2"]
    assert lines[0]["hash"] == first["entries"][0]["hash"]
    assert run_module(audit_log, args)["changed"] is False


def test_hash_fields_and_key_mode(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    args = {"path": path, "entries": [entry(1, details={"email": "a@example.com"})], "hash_fields": ["email"]}
    assert run_module(audit_log, args)["changed"] is True
    assert stat.S_IMODE(os.stat(path + ".key").st_mode) == 0o600
    stored = run_module(audit_log, {"path": path, "state": "query"})["entries"][0]["details"]["email"]
    assert stored.startswith("hmac-sha256:") and len(stored) == len("hmac-sha256:") + 64
    assert run_module(audit_log, args)["changed"] is False


def test_bad_inputs(run_module, tmp_path):
    path = str(tmp_path / "audit.db")
    cases = [
        ({"path": path}, "state is present but all of the following are missing: entries"),
        ({"path": path, "entries": []}, "entries: a non-empty list of entries is required for state=present"),
        ({"path": path, "entries": [{"entry_id": "x"}]}, "missing required arguments"),
        ({"path": path, "entries": [entry(1, timestamp="soon")]}, "entries[0].timestamp: 'soon' is not an ISO 8601 time"),
        ({"path": str(tmp_path / "no" / "audit.db"), "entries": [entry(1)]}, "path: directory"),
        ({"path": path, "entries": [entry(1)], "mode": "rw-r"}, "mode: 'rw-r' is not an octal file mode"),
        ({"path": path, "state": "verified"}, "path: audit log %s does not exist" % path),
        ({"path": path, "state": "query", "filters": {"since": "last week"}}, "filters.since: 'last week' is not an ISO 8601 time"),
        ({"path": path, "state": "query"}, "path: audit log %s does not exist" % path),
    ]
    for args, message in cases:
        result = run_module(audit_log, args)
        assert result["failed"] is True, args
        assert message in result["msg"], (args, result["msg"])
    assert not os.path.exists(path)
    run_module(audit_log, {"path": path, "entries": [entry(1)]})
    result = run_module(audit_log, {"path": path, "state": "verified", "expected_head": "abc"})
    assert result["msg"] == "expected_head: 'abc' is not a SHA-256 hex digest (64 hex digits)"
    result = run_module(audit_log, {"path": path, "state": "query", "filters": {"since": "last week"}})
    assert result["msg"].startswith("filters.since: 'last week' is not an ISO 8601 time")


def test_state_query_still_works_and_is_deprecated(run_module, tmp_path, monkeypatch):
    from ansible.module_utils import basic

    deprecations = []
    monkeypatch.setattr(basic.AnsibleModule, "deprecate", lambda self, msg, version=None, date=None, collection_name=None, **kw:
                        deprecations.append({"msg": msg, "version": version, "collection_name": collection_name}))
    path = str(tmp_path / "audit.db")
    run_module(audit_log, {"path": path, "entries": [entry(1), entry(2)]})
    assert deprecations == []
    result = run_module(audit_log, {"path": path, "state": "query", "filters": {"entry_id": "d2"}})
    assert result["failed"] is False and result["count"] == 1 and result["entries"][0]["entry_id"] == "d2"
    assert len(deprecations) == 1
    assert "runlocalai.mlops.audit_log_info" in deprecations[0]["msg"]
    assert deprecations[0]["version"] == "2.0.0" and deprecations[0]["collection_name"] == "runlocalai.mlops"
    run_module(audit_log, {"path": path, "state": "verified"})
    assert len(deprecations) == 1
