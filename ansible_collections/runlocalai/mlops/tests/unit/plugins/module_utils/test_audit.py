# -*- coding: utf-8 -*-
"""Tests for plugins/module_utils/audit.py: chain, idempotence, tamper proofs, concurrency."""

import hashlib
import hmac
import json
import multiprocessing
import os
import sqlite3
import stat

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.audit import chain as audit
from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.chain import (
    GENESIS_HASH,
    AuditConflict,
    AuditError,
    AuditLog,
)


def make_entry(i, **extra):
    entry = {
        "entry_id": "e%d" % i,
        "event_type": "model_promotion",
        "actor": "alice",
        "resource": "model:churn",
        "action": "alias production %d -> %d" % (i, i + 1),
        "details": {"version": str(i + 1), "n": i},
    }
    entry.update(extra)
    return entry


@pytest.fixture
def log(tmp_path):
    return AuditLog(str(tmp_path / "audit.db"))


@pytest.fixture
def filled(log):
    log.append([make_entry(i) for i in range(1, 11)])
    return log


def tamper(path, sql, args=()):
    """What an attacker with the sqlite3 shell does: drop the triggers, then edit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute(sql, args)
    conn.close()


def rows(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, entry_id, timestamp, event_type, actor, resource, action, details, prev_hash, hash "
                            "FROM audit_log ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_record_text_is_canonical_json():
    details = {"z": [1, 2.5, None], "a": {"é": "ü\"\n"}}
    details_json = audit.canonical_json(details)
    record = {"entry_id": "x", "timestamp": "2026-11-27T00:00:00.000000Z", "event_type": "t", "actor": "a\u00e9",
              "resource": "r", "action": "act", "details": details, "prev_hash": GENESIS_HASH}
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = audit.record_text("x", "2026-11-27T00:00:00.000000Z", "t", "a\u00e9", "r", "act", details_json, GENESIS_HASH)
    assert text == expected
    assert audit.entry_hash("x", "2026-11-27T00:00:00.000000Z", "t", "a\u00e9", "r", "act", details_json, GENESIS_HASH) == \
        hashlib.sha256(expected.encode("utf-8")).hexdigest()


def test_append_builds_chain_and_independent_verifier_agrees(filled):
    stored = rows(filled.path)
    assert [r[0] for r in stored] == list(range(1, 11))
    prev = GENESIS_HASH
    for seq, eid, ts, et, actor, res, action, details, prev_hash, digest in stored:
        record = {"entry_id": eid, "timestamp": ts, "event_type": et, "actor": actor, "resource": res,
                  "action": action, "details": json.loads(details), "prev_hash": prev}
        assert prev_hash == prev
        assert digest == hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":"),
                                                   ensure_ascii=False).encode("utf-8")).hexdigest()
        prev = digest
    result = filled.verify(expected_head=prev)
    assert result["valid"] is True
    assert result["entries_checked"] == 10
    assert result["head"] == prev
    assert result["head_entry_id"] == "e10"
    assert result["expected_head_seq"] == 10
    assert result["broken"] == []


def test_file_modes(filled, tmp_path):
    assert stat.S_IMODE(os.stat(filled.path).st_mode) == 0o640
    filled.append([make_entry(11, details={"email": "a@example.com"})], hash_fields=["email"])
    assert stat.S_IMODE(os.stat(filled.path + ".key").st_mode) == 0o600


def test_idempotent_append_and_conflict_writes_nothing(filled):
    head = filled.verify()["head"]
    again = filled.append([make_entry(3), make_entry(4)])
    assert again["appended"] == []
    assert again["unchanged"] == ["e3", "e4"]
    assert again["head"] == head
    with pytest.raises(AuditConflict) as exc:
        filled.append([make_entry(11), make_entry(5, actor="mallory")])
    assert "e5" in str(exc.value) and "actor" in str(exc.value)
    assert exc.value.conflicts == [{"entry_id": "e5", "fields": ["actor"]}]
    # e11 came in the same batch: it was not written either.
    assert len(rows(filled.path)) == 10
    assert filled.query(entry_id="e11") == []


def test_explicit_timestamp_is_part_of_content(log):
    log.append([make_entry(1, timestamp="2026-11-27T10:00:00+01:00")])
    assert log.query()[0]["timestamp"] == "2026-11-27T09:00:00.000000Z"
    assert log.append([make_entry(1, timestamp="2026-11-27T09:00:00Z")])["unchanged"] == ["e1"]
    assert log.append([make_entry(1)])["unchanged"] == ["e1"]
    with pytest.raises(AuditConflict) as exc:
        log.append([make_entry(1, timestamp="2026-11-27T09:00:01Z")])
    assert exc.value.conflicts[0]["fields"] == ["timestamp"]


def test_batch_duplicate_ids(log):
    assert log.append([make_entry(1), make_entry(1)])["appended"] == ["e1"]
    with pytest.raises(AuditConflict):
        log.append([make_entry(2), make_entry(2, action="other")])
    assert [e["entry_id"] for e in log.query()] == ["e1"]


def test_hash_fields_are_keyed_and_idempotent(log):
    entry = make_entry(1, details={"email": "alice@example.com", "req": {"ip": "10.0.0.1", "port": 22}, "keep": "x"})
    log.append([entry], hash_fields=["email", "req.ip", "absent.field"])
    stored = log.query()[0]["details"]
    with open(log.key_path) as handle:
        key = bytes.fromhex(handle.read().strip())
    expected = "hmac-sha256:" + hmac.new(key, json.dumps("alice@example.com").encode(), hashlib.sha256).hexdigest()
    assert stored["email"] == expected
    assert stored["req"]["ip"].startswith("hmac-sha256:") and stored["req"]["port"] == 22
    assert stored["keep"] == "x"
    assert "alice@example.com" not in open(log.path, "rb").read().decode("latin-1")
    # A plain SHA-256 of the value (what a dictionary attack would try) is not what is stored.
    assert hashlib.sha256(b'"alice@example.com"').hexdigest() not in stored["email"]
    assert log.append([entry], hash_fields=["email", "req.ip", "absent.field"])["unchanged"] == ["e1"]
    with pytest.raises(AuditConflict):
        log.append([entry], hash_fields=["email"])  # req.ip would now be stored raw: different content


def test_triggers_refuse_update_and_delete(filled):
    conn = sqlite3.connect(filled.path)
    with pytest.raises(sqlite3.DatabaseError, match="UPDATE refused"):
        conn.execute("UPDATE audit_log SET actor='mallory' WHERE seq=3")
    with pytest.raises(sqlite3.DatabaseError, match="DELETE refused"):
        conn.execute("DELETE FROM audit_log WHERE seq=3")
    conn.close()
    assert filled.verify()["valid"] is True


def test_journal_mode_is_wal(filled):
    conn = sqlite3.connect(filled.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_edited_row_is_reported_by_id(filled):
    head = filled.verify()["head"]
    tamper(filled.path, "UPDATE audit_log SET actor='mallory' WHERE entry_id='e4'")
    result = filled.verify(expected_head=head)
    assert result["valid"] is False
    assert result["broken"] == [{"seq": 4, "entry_id": "e4", "reason": "modified: stored hash does not match the entry's content"}]
    assert result["first_broken"]["entry_id"] == "e4"
    assert result["entries_checked"] == 10


def test_rewritten_chain_with_recomputed_hashes_caught_by_expected_head(filled):
    head = filled.verify()["head"]
    conn = sqlite3.connect(filled.path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor='mallory' WHERE seq=6")
    prev = conn.execute("SELECT hash FROM audit_log WHERE seq=5").fetchone()[0]
    for seq, eid, ts, et, actor, res, action, details in conn.execute(
            "SELECT seq, entry_id, timestamp, event_type, actor, resource, action, details FROM audit_log WHERE seq>=6 ORDER BY seq").fetchall():
        digest = audit.entry_hash(eid, ts, et, actor, res, action, details, prev)
        conn.execute("UPDATE audit_log SET prev_hash=?, hash=? WHERE seq=?", (prev, digest, seq))
        prev = digest
    conn.close()
    without = filled.verify()
    assert without["valid"] is True  # a consistent rewrite: only the head kept elsewhere reveals it
    result = filled.verify(expected_head=head)
    assert result["valid"] is False
    assert result["head"] != head
    assert len(result["broken"]) == 1
    assert result["broken"][0]["entry_id"] == "e10"
    assert result["broken"][0]["reason"].startswith("expected_head %s is not in the chain" % head)


def test_single_row_rewritten_with_recomputed_hash_is_reported(filled):
    conn = sqlite3.connect(filled.path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    row = conn.execute("SELECT entry_id, timestamp, event_type, resource, action, details, prev_hash FROM audit_log WHERE seq=3").fetchone()
    digest = audit.entry_hash(row[0], row[1], row[2], "mallory", row[3], row[4], row[5], row[6])
    conn.execute("UPDATE audit_log SET actor='mallory', hash=? WHERE seq=3", (digest,))
    conn.close()
    result = filled.verify()
    assert [(b["seq"], b["entry_id"]) for b in result["broken"]] == [(3, "e3")]
    assert result["broken"][0]["reason"].startswith("modified: rewritten with a recomputed hash")


def test_deleted_middle_row_is_reported(filled):
    tamper(filled.path, "DELETE FROM audit_log WHERE seq=5")
    result = filled.verify()
    assert result["valid"] is False
    assert result["entries_checked"] == 9
    assert [(b["seq"], b["entry_id"]) for b in result["broken"]] == [(5, None)]
    assert result["broken"][0]["reason"].startswith("missing: entry deleted (the chain skips from seq 4 to 6)")


def test_truncated_tail_is_reported_with_expected_head(filled):
    head = filled.verify()["head"]
    tamper(filled.path, "DELETE FROM audit_log WHERE seq>=9")
    # The attacker also resets SQLite's sequence counter: only expected_head can tell.
    conn = sqlite3.connect(filled.path, isolation_level=None)
    conn.execute("UPDATE sqlite_sequence SET seq=8 WHERE name='audit_log'")
    conn.close()
    assert filled.verify()["valid"] is True
    result = filled.verify(expected_head=head)
    assert result["valid"] is False
    assert result["head_entry_id"] == "e8"
    assert [(b["seq"], b["entry_id"]) for b in result["broken"]] == [(8, "e8")]
    assert "newest entries truncated" in result["broken"][0]["reason"]


def test_truncated_tail_leaves_sequence_trace(filled):
    tamper(filled.path, "DELETE FROM audit_log WHERE seq>=9")
    result = filled.verify()
    assert [(b["seq"], b["entry_id"]) for b in result["broken"]] == [(9, None), (10, None)]
    assert result["broken"][0]["reason"] == "missing: newest entries truncated (the log allocated seq up to 10)"


def test_reordered_rows_are_reported(filled):
    conn = sqlite3.connect(filled.path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET seq=-1 WHERE seq=6")
    conn.execute("UPDATE audit_log SET seq=6 WHERE seq=7")
    conn.execute("UPDATE audit_log SET seq=7 WHERE seq=-1")
    conn.close()
    result = filled.verify()
    assert result["valid"] is False
    reported = dict((b["entry_id"], b["reason"]) for b in result["broken"])
    assert set(reported) == {"e6", "e7", "e8"}
    assert reported["e7"] == "reordered: its recorded predecessor is entry e6 at seq 7, not the entry before it"
    assert reported["e6"] == "reordered: its recorded predecessor is entry e5 at seq 5, not the entry before it"
    assert all(r.startswith("reordered") for r in reported.values())


def test_expected_head_of_older_entry_is_valid(filled):
    old_head = filled.query(entry_id="e7")[0]["hash"]
    result = filled.verify(expected_head=old_head)
    assert result["valid"] is True
    assert result["expected_head_seq"] == 7


def test_query_filters_and_jsonl(log):
    log.append([
        make_entry(1, timestamp="2026-11-01T00:00:00Z"),
        make_entry(2, timestamp="2026-11-10T00:00:00Z", actor="bob", event_type="model_rollback"),
        make_entry(3, timestamp="2026-11-20T00:00:00Z", resource="model:fraud"),
    ])
    assert [e["entry_id"] for e in log.query(since="2026-11-05T00:00:00Z")] == ["e2", "e3"]
    assert [e["entry_id"] for e in log.query(until="2026-11-10T00:00:00Z")] == ["e1", "e2"]
    assert [e["entry_id"] for e in log.query(actor="bob")] == ["e2"]
    assert [e["entry_id"] for e in log.query(event_type="model_rollback")] == ["e2"]
    assert [e["entry_id"] for e in log.query(resource="model:f*")] == ["e3"]
    assert [e["entry_id"] for e in log.query(limit=1)] == ["e1"]
    lines = audit.to_jsonl(log.query(actor="alice")).splitlines()
    assert [json.loads(line)["entry_id"] for line in lines] == ["e1", "e3"]
    assert json.loads(lines[0])["details"] == {"n": 1, "version": "2"}


@pytest.mark.parametrize("bad,message", [
    ({"entry_id": "x"}, "entries[0].event_type: required"),
    (dict(make_entry(1), actor=""), "entries[0].actor: required, must be a non-empty string"),
    (dict(make_entry(1), details=[1]), "entries[0].details: must be a dict"),
    (dict(make_entry(1), details={"x": float("nan")}), "entries[0].details: value is not JSON-serialisable"),
    (dict(make_entry(1), timestamp="yesterday"), "entries[0].timestamp: 'yesterday' is not an ISO 8601 time"),
    (dict(make_entry(1), timestamp="2026-11-27T10:00:00"), "entries[0].timestamp: '2026-11-27T10:00:00' has no time zone"),
    (dict(make_entry(1), colour="red"), "entries[0]: unknown field(s) colour"),
])
def test_bad_entries_write_nothing(log, bad, message):
    with pytest.raises(AuditError) as exc:
        log.append([bad])
    assert str(exc.value).startswith(message)
    assert not os.path.exists(log.path)


def test_bad_expected_head_and_missing_log(log, filled):
    with pytest.raises(AuditError, match="expected_head: 'abc' is not a SHA-256 hex digest"):
        filled.verify(expected_head="abc")
    with pytest.raises(AuditError, match="path: audit log .* does not exist"):
        AuditLog(filled.path + ".nope").verify()


def test_not_an_audit_log(tmp_path):
    path = str(tmp_path / "other.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(AuditError, match="without an audit_log table"):
        AuditLog(path).verify()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(AuditError, match="is not a"):
        AuditLog(str(junk)).append([make_entry(1)])


def test_check_mode_writes_nothing(log, filled):
    fresh = AuditLog(log.path + ".fresh")
    result = fresh.append([make_entry(1)], hash_fields=["version"], check=True)
    assert result["appended"] == ["e1"]
    assert not os.path.exists(fresh.path) and not os.path.exists(fresh.key_path)
    before = rows(filled.path)
    result = filled.append([make_entry(5), make_entry(11)], check=True)
    assert result["appended"] == ["e11"] and result["unchanged"] == ["e5"]
    assert rows(filled.path) == before


def _append_many(args):
    path, worker, count = args
    log = AuditLog(path)
    for i in range(count):
        log.append([{"entry_id": "w%d-%d" % (worker, i), "event_type": "load", "actor": "worker%d" % worker,
                     "resource": "test", "action": "append", "details": {"i": i}}])
    return count


def _concurrent(path, processes, per_process):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        done = pool.map(_append_many, [(path, w, per_process) for w in range(processes)])
    return sum(done)


def test_concurrent_appends_lose_nothing(tmp_path):
    """8 processes x 250 appends (the full 8 x 2,000 proof: RUNLOCALAI_FULL_PROOF=1 or benchmarks/audit)."""
    per_process = 2000 if os.environ.get("RUNLOCALAI_FULL_PROOF") else 250
    path = str(tmp_path / "concurrent.db")
    assert _concurrent(path, 8, per_process) == 8 * per_process
    result = AuditLog(path).verify()
    assert result["valid"] is True
    assert result["entries_checked"] == 8 * per_process
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(DISTINCT entry_id), min(seq), max(seq) FROM audit_log").fetchone() == \
        (8 * per_process, 1, 8 * per_process)
    per_worker = dict(conn.execute("SELECT actor, count(*) FROM audit_log GROUP BY actor").fetchall())
    conn.close()
    assert per_worker == dict(("worker%d" % w, per_process) for w in range(8))


# -- verify(): chunked fast path (_fast_walk) and its fallback to the exact walk (_walk) --------------

def walks(log, expected_head=None, chunk=None):
    """(fast result or None, exact result) on one snapshot."""
    conn = sqlite3.connect("file:%s?mode=ro" % log.path, uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        return audit._fast_walk(conn, expected_head, chunk), audit._walk(conn, expected_head)
    finally:
        conn.close()


@pytest.mark.parametrize("chunk", [1, 3, 5, 10, 2000])
def test_fast_path_agrees_with_exact_walk(filled, chunk):
    stored = rows(filled.path)
    for expected in (None, GENESIS_HASH, stored[6][9], stored[-1][9]):
        fast, exact = walks(filled, expected, chunk)
        assert fast is not None, (chunk, expected)
        assert fast == exact
    assert walks(filled, stored[6][9], chunk)[0]["expected_head_seq"] == 7
    # An expected head that is not in the chain: the fast path steps aside, the exact walk reports it.
    fast, exact = walks(filled, "f" * 64, chunk)
    assert fast is None and exact["valid"] is False


def test_fast_path_on_empty_log_defers_to_exact_walk(log):
    log.append([make_entry(1)])
    tamper(log.path, "DELETE FROM audit_log")
    result = log.verify()
    assert result["entries_checked"] == 0
    assert [(b["seq"], b["reason"]) for b in result["broken"]] == [
        (1, "missing: newest entries truncated (the log allocated seq up to 1)")]


@pytest.mark.parametrize("seqs", [(5,), (6,), (5, 6), (1,), (10,)])
def test_tampered_row_at_chunk_boundary_is_reported_by_id(filled, monkeypatch, seqs):
    monkeypatch.setattr(audit, "FAST_CHUNK", 5)  # chunks: seq 1-5, 6-10
    head = filled.verify()["head"]
    tamper(filled.path, "UPDATE audit_log SET resource='model:other' WHERE seq IN (%s)" % ",".join("?" * len(seqs)), seqs)
    result = filled.verify(expected_head=head)
    assert result["valid"] is False
    assert result["entries_checked"] == 10
    assert [(b["seq"], b["entry_id"], b["reason"]) for b in result["broken"]] == [
        (s, "e%d" % s, "modified: stored hash does not match the entry's content") for s in seqs]


def test_reordered_rows_across_chunk_boundary_are_reported(filled, monkeypatch):
    monkeypatch.setattr(audit, "FAST_CHUNK", 5)
    conn = sqlite3.connect(filled.path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET seq=-1 WHERE seq=5")
    conn.execute("UPDATE audit_log SET seq=5 WHERE seq=6")
    conn.execute("UPDATE audit_log SET seq=6 WHERE seq=-1")
    conn.close()
    reported = dict((b["entry_id"], b["reason"]) for b in filled.verify()["broken"])
    assert set(reported) == {"e5", "e6", "e7"} and all(r.startswith("reordered") for r in reported.values())


def test_deleted_row_at_chunk_boundary_is_reported(filled, monkeypatch):
    monkeypatch.setattr(audit, "FAST_CHUNK", 5)
    tamper(filled.path, "DELETE FROM audit_log WHERE seq=6")
    result = filled.verify()
    assert [(b["seq"], b["entry_id"]) for b in result["broken"]] == [(6, None)]
    assert result["entries_checked"] == 9


def test_fields_that_need_json_escapes_are_verified_exactly(log):
    log.append([
        make_entry(1, actor='quote " inside'),
        make_entry(2, action="back\\slash"),
        make_entry(3, resource="new\nline and \x1f unit separator"),
        make_entry(4, actor="Jos\u00e9 \u00fcber \u2603", details={"note": "tab\t \x1f \"q\" \\"}),
        make_entry(5),
    ])
    fast, exact = walks(log)
    assert fast is None  # entries 1-3 need JSON escapes: the exact walk checks them
    assert exact["valid"] is True and exact["entries_checked"] == 5
    assert log.verify() == exact
    # Non-ASCII text alone needs no escape: the fast path takes it and agrees.
    only_utf8 = AuditLog(log.path + ".utf8")
    only_utf8.append([make_entry(1, actor="Jos\u00e9 \u2603"), make_entry(2, details={"w": "\u00fc"})])
    fast, exact = walks(only_utf8)
    assert fast is not None and fast == exact


@pytest.mark.parametrize("original, look_alike", [
    ('x"y', 'x\\"y'),         # hashed as "x\"y"; the edit is the text x\"y
    ("a\\b", "a\\\\b"),      # hashed as "a\\b"; the edit is the text a\\b (two backslashes)
    ("a\nb", "a\\nb"),        # hashed as "a\nb"; the edit is backslash + n instead of a newline
    ("a\x01b", "a\\u0001b"),  # hashed as "a\u0001b"; the edit is that escape as plain text
])
def test_escaped_text_edited_to_its_unescaped_look_alike_is_reported(log, original, look_alike):
    """The edited text, quoted naively, reads exactly like the canonical JSON of the original:
    verify must still see that the stored hash does not cover it."""
    log.append([make_entry(1), make_entry(2, action=original), make_entry(3)])
    assert log.verify()["valid"] is True
    assert audit.canonical_json(original) == '"%s"' % look_alike
    tamper(log.path, "UPDATE audit_log SET action=? WHERE seq=2", (look_alike,))
    result = log.verify()
    assert [(b["entry_id"], b["reason"]) for b in result["broken"]] == [
        ("e2", "modified: stored hash does not match the entry's content")]


@pytest.mark.parametrize("column", ["actor", "details", "hash", "prev_hash"])
def test_value_stored_as_blob_with_same_bytes_is_reported(filled, column):
    tamper(filled.path, "UPDATE audit_log SET %s=CAST(%s AS BLOB) WHERE seq=4" % (column, column))
    fast, exact = walks(filled)
    assert fast is None
    assert exact["valid"] is False
    assert "e4" in [b["entry_id"] for b in exact["broken"]]
    assert filled.verify() == exact


def test_empty_field_in_a_one_entry_chunk_is_reported(filled, monkeypatch):
    monkeypatch.setattr(audit, "FAST_CHUNK", 3)  # the last chunk holds seq 10 alone
    tamper(filled.path, "UPDATE audit_log SET actor='' WHERE seq=10")
    result = filled.verify()
    assert [(b["entry_id"], b["reason"]) for b in result["broken"]] == [
        ("e10", "modified: stored hash does not match the entry's content")]
