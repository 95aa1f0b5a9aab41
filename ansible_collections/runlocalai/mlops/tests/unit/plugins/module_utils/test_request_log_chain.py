# -*- coding: utf-8 -*-
"""The model service's request log as a hash chain: RequestLog (serving/records.py) writes it, verify_request_log
(audit/requests.py) checks it; the line format is common/chain.py (docs/governance.md)."""

import hashlib
import json
import os

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.audit import requests as verifier
from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.requests import (
    RequestLogError,
    expand_paths,
    log_files,
    verify_request_log,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.common.canonical import canonical_json
from ansible_collections.runlocalai.mlops.plugins.module_utils.common.chain import GENESIS_HASH, chained_line, hashed_bytes, record_hash
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.records import RequestLog


def entry(i, **extra):
    value = {"ts": "2026-11-27T10:00:%02d.000000Z" % (i % 60), "model": "bc", "version": "3", "request_id": "r%04d" % i,
             "method": "POST", "endpoint": "predict", "status": 200, "latency_ms": 1.25 + i, "input_sha256": "sha256:" + "ab" * 32,
             "instances": 1, "note": "caf\u00e9 \u2713"}
    value.update(extra)
    return value


LINE_BYTES = len(chained_line(entry(0), GENESIS_HASH)[0].encode("utf-8"))  # every entry(i < 10) is as long


def write(path, indices, max_bytes=1 << 20, backup_count=5):
    log = RequestLog(str(path), max_bytes, backup_count)
    heads = []
    try:
        for i in indices:
            log.write(entry(i))
            heads.append(log.head)
    finally:
        log.close()
    return heads


def lines(path):
    with open(str(path), "rb") as handle:
        return handle.read().decode("utf-8").splitlines(True)


def put(path, text_lines):
    with open(str(path), "wb") as handle:
        handle.write("".join(text_lines).encode("utf-8"))


def independent_hash(record):
    """The hash as docs/governance.md defines it, computed without the collection's code."""
    body = dict((k, v) for k, v in record.items() if k != "hash")
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tampered(tmp_path, change, count=5):
    """A log of count lines, changed by change(list of its lines) -> new list; its verification."""
    path = tmp_path / "audit.jsonl"
    write(path, range(count))
    put(path, change(lines(path)))
    return verify_request_log(str(path))


def kinds(result):
    return [(os.path.basename(p["file"]), p["line"], p["kind"]) for p in result["problems"]]


# --- writing ---------------------------------------------------------------------------------------------------

def test_each_line_carries_prev_and_hash_and_keeps_its_fields(tmp_path):
    path = tmp_path / "audit.jsonl"
    heads = write(path, range(4))
    records = [json.loads(line) for line in lines(path)]
    assert len(records) == 4
    prev = GENESIS_HASH
    for i, record in enumerate(records):
        assert dict((k, v) for k, v in record.items() if k not in ("prev", "hash")) == entry(i)
        assert record["prev"] == prev
        assert record["hash"] == independent_hash(record) == record_hash(record) == heads[i]
        prev = record["hash"]
    # The line is the canonical JSON of the record, hash included (keys sorted, UTF-8 kept); the hash covers
    # the line without its hash member.
    for line, record in zip(lines(path), records):
        assert line == canonical_json(record) + "\n"
        covered = canonical_json(dict((k, v) for k, v in record.items() if k != "hash")).encode("utf-8")
        assert hashed_bytes(line[:-1].encode("utf-8"), record["hash"]) == covered
    assert "caf\u00e9" in lines(path)[0]
    assert hashed_bytes(b'{"a":1}', records[0]["hash"]) is None
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["problems"] == [] and result["problem_count"] == 0
    assert result["entries"] == 4 and result["unchained"] == 0
    assert (result["first_ts"], result["last_ts"]) == (entry(0)["ts"], entry(3)["ts"])
    assert result["head"] == heads[-1] and result["head_at"] == {"file": str(path), "line": 4}
    assert result["start"] == GENESIS_HASH
    assert result["files"] == [str(path)]


def test_lines_as_written_are_verified_from_their_bytes(tmp_path, monkeypatch):
    """No re-encoding for a line as the service wrote it; only a reformatted line needs record_hash."""
    path = tmp_path / "audit.jsonl"
    write(path, range(3))

    def refuse(record):
        raise AssertionError("re-encoded %r" % record)

    monkeypatch.setattr(verifier, "record_hash", refuse)
    assert verify_request_log(str(path))["ok"] is True


def test_reserved_fields_of_an_entry_are_replaced_and_any_keys_make_a_canonical_line():
    line, digest = chained_line({"a": 1, "prev": "x", "hash": "y"}, GENESIS_HASH)
    record = json.loads(line)
    assert record == {"a": 1, "prev": GENESIS_HASH, "hash": digest}
    assert digest == independent_hash(record)
    for value in ({}, {"z": [1, {"b": None}]}, {"a": {"hash": "nested", "q": 1.5}, "hash_x": "\u2713", "h": "\""}):
        line, digest = chained_line(value, "ab" * 32)
        record = json.loads(line)
        assert line == canonical_json(record) + "\n" and record["prev"] == "ab" * 32 and digest == independent_hash(record)


def test_chain_goes_on_across_rotation_and_restart(tmp_path):
    path = tmp_path / "audit.jsonl"
    max_bytes = 2 * LINE_BYTES + 10  # two lines a file
    heads = write(path, range(0, 3), max_bytes, 2)
    # a restart: a new RequestLog on the same path continues from the head on disk
    heads += write(path, range(3, 6), max_bytes, 2)
    assert sorted(os.listdir(str(tmp_path))) == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert [len(lines(tmp_path / n)) for n in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl")] == [2, 2, 2]
    assert json.loads(lines(tmp_path / "audit.jsonl.1")[0])["prev"] == heads[1]  # across a rotation
    assert json.loads(lines(tmp_path / "audit.jsonl.1")[1])["prev"] == heads[2]  # across the restart
    assert json.loads(lines(path)[0])["prev"] == heads[3]
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["problems"] == []
    assert result["files"] == [str(tmp_path / "audit.jsonl.2"), str(tmp_path / "audit.jsonl.1"), str(path)]
    assert result["entries"] == 6 and result["head"] == heads[-1]
    assert result["start"] == GENESIS_HASH  # nothing rotated away yet
    # more writes: the oldest lines are dropped; the kept sequence still verifies, from a start that is not 64 zeros
    heads += write(path, range(6, 9), max_bytes, 2)
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["problems"] == [] and result["entries"] == 5  # lines 4-8
    assert result["start"] == heads[3] and result["start"] != GENESIS_HASH
    assert (result["first_ts"], result["last_ts"]) == (entry(4)["ts"], entry(8)["ts"])


def test_restart_after_a_rotation_with_an_empty_current_file_reads_the_head_from_dot_1(tmp_path):
    path = tmp_path / "audit.jsonl"
    heads = write(path, range(3))
    os.replace(str(path), str(path) + ".1")
    put(path, [])  # rotated, then stopped before the next line
    heads += write(path, [3])
    assert json.loads(lines(path)[0])["prev"] == heads[2]
    assert verify_request_log(str(path))["ok"] is True


def test_lines_of_an_older_service_come_before_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    put(path, [json.dumps(entry(i), sort_keys=True) + "\n" for i in range(2)])  # written before the chain existed
    write(path, [2, 3])
    records = [json.loads(line) for line in lines(path)]
    assert "prev" not in records[1] and records[2]["prev"] == GENESIS_HASH
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["unchained"] == 2 and result["entries"] == 2
    assert result["start"] == GENESIS_HASH and result["first_ts"] == entry(2)["ts"]


# --- tampering ---------------------------------------------------------------------------------------------------

def test_an_edited_field_is_edited_at_that_line(tmp_path):
    result = tampered(tmp_path, lambda text: text[:2] + [text[2].replace('"status":200', '"status":500')] + text[3:])
    assert result["ok"] is False
    assert kinds(result) == [("audit.jsonl", 3, "edited")]
    assert "does not match" in result["problems"][0]["detail"]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(tmp_path):
    def forge(text):
        forged = json.loads(text[2])
        return text[:2] + [chained_line(dict(forged, status=500), forged["prev"])[0]] + text[3:]

    result = tampered(tmp_path, forge)
    assert kinds(result) == [("audit.jsonl", 4, "removed_or_reordered")]
    assert "rewritten with a recomputed hash" in result["problems"][0]["detail"]


def test_a_removed_line_is_removed_or_reordered(tmp_path):
    result = tampered(tmp_path, lambda text: text[:2] + text[3:])
    assert result["ok"] is False
    assert kinds(result) == [("audit.jsonl", 3, "removed_or_reordered")]
    assert "line 2" in result["problems"][0]["detail"]


def test_swapped_lines_are_removed_or_reordered(tmp_path):
    result = tampered(tmp_path, lambda text: [text[0], text[2], text[1]] + text[3:])
    assert [k for _f, _l, k in kinds(result)] == ["removed_or_reordered"] * 3
    assert "reordered" in result["problems"][0]["detail"]


def test_a_removed_middle_file_is_removed_or_reordered(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, range(6), 2 * LINE_BYTES + 10, 2)
    os.unlink(str(path) + ".1")
    result = verify_request_log(str(path))
    assert kinds(result) == [("audit.jsonl", 1, "removed_or_reordered")]


def test_a_line_replaced_by_garbage_is_unparseable(tmp_path):
    result = tampered(tmp_path, lambda text: text[:1] + ["this is not json\n"] + text[2:], count=4)
    assert result["ok"] is False
    assert kinds(result) == [("audit.jsonl", 2, "unparseable")]


def test_a_line_stripped_of_its_chain_fields_is_edited(tmp_path):
    result = tampered(tmp_path, lambda text: text[:1] + [json.dumps(entry(1)) + "\n"] + text[2:], count=4)
    assert kinds(result) == [("audit.jsonl", 2, "edited")]


def test_a_reformatted_line_still_verifies(tmp_path):
    # other key order, spaces, non-ASCII escaped
    result = tampered(tmp_path, lambda text: text[:1] + [json.dumps(json.loads(text[1])) + "\n"] + text[2:], count=3)
    assert result["ok"] is True


# --- crashes and rotation ------------------------------------------------------------------------------------------

def test_a_torn_last_line_is_torn_and_the_next_write_chains_past_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    heads = write(path, range(3))
    whole = chained_line(entry(3), heads[-1])[0]
    with open(str(path), "ab") as handle:
        handle.write(whole.encode("utf-8")[:40])  # the crash cut the write short
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["entries"] == 3 and result["head"] == heads[-1]
    assert kinds(result) == [("audit.jsonl", 4, "torn")]
    assert "unfinished" in result["problems"][0]["detail"]
    # the restarted service ends the torn line and chains to the last complete one
    heads += write(path, [4])
    text = lines(path)
    assert len(text) == 5 and json.loads(text[4])["prev"] == heads[2]
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["entries"] == 4 and result["head"] == heads[-1]
    assert kinds(result) == [("audit.jsonl", 4, "torn")]


def test_a_torn_line_left_at_the_end_of_a_rotated_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    heads = write(path, range(2), 2 * LINE_BYTES + 10, 3)
    with open(str(path), "ab") as handle:
        handle.write(b'{"endpoint":"pre')
    heads += write(path, [2], 2 * LINE_BYTES + 10, 3)  # rotates first: the torn line stays at the end of .1
    assert json.loads(lines(path)[0])["prev"] == heads[1]
    result = verify_request_log(str(path))
    assert result["ok"] is True and kinds(result) == [("audit.jsonl.1", 3, "torn")]


def test_rotation_that_dropped_older_files_is_ok_with_start_reported(tmp_path):
    path = tmp_path / "audit.jsonl"
    heads = write(path, range(20), LINE_BYTES + 10, 1)  # one line a file, one backup
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["problems"] == [] and result["entries"] == 2
    assert result["start"] == heads[-3]


# --- expected head ---------------------------------------------------------------------------------------------------

def test_expected_head_finds_a_truncated_tail(tmp_path):
    path = tmp_path / "audit.jsonl"
    heads = write(path, range(5))
    assert verify_request_log(str(path), heads[-1])["expected_head_at"] == {"file": str(path), "line": 5}
    assert verify_request_log(str(path), heads[1].upper())["ok"] is True  # an earlier head: the log grew since
    assert verify_request_log(str(path), GENESIS_HASH)["ok"] is True
    put(path, lines(path)[:3])
    result = verify_request_log(str(path), heads[-1])
    assert result["ok"] is False and result["expected_head_at"] is None
    assert kinds(result) == [("audit.jsonl", 3, "removed_or_reordered")]
    assert "truncated" in result["problems"][0]["detail"]
    with pytest.raises(RequestLogError, match="expected_head"):
        verify_request_log(str(path), "abc")


# --- files -----------------------------------------------------------------------------------------------------------

def test_log_files_oldest_first_and_missing_log(tmp_path):
    for name in ("audit.jsonl", "audit.jsonl.1", "audit.jsonl.10", "audit.jsonl.2", "audit.jsonl.bak", "audit.jsonl.01"):
        put(tmp_path / name, [])
    assert [os.path.basename(f) for f in log_files(str(tmp_path / "audit.jsonl"))] == \
        ["audit.jsonl.10", "audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
    with pytest.raises(RequestLogError, match="does not exist"):
        verify_request_log(str(tmp_path / "nothing.jsonl"))
    empty = verify_request_log(str(tmp_path / "audit.jsonl"))
    assert empty["ok"] is True and empty["entries"] == 0 and empty["head"] == GENESIS_HASH and empty["start"] is None


def test_expand_paths(tmp_path):
    for name in ("b", "a"):
        os.makedirs(str(tmp_path / name))
        put(tmp_path / name / "audit.jsonl", [])
    pattern = str(tmp_path / "*" / "audit.jsonl")
    plain = str(tmp_path / "a" / "audit.jsonl")
    assert expand_paths([pattern, plain]) == [plain, str(tmp_path / "b" / "audit.jsonl")]
    assert expand_paths([str(tmp_path / "none" / "*.jsonl")]) == []


# --- the service ---------------------------------------------------------------------------------------------------

def test_the_service_writes_a_chain_that_verifies_across_rotation_and_restart(tmp_path):
    """Through ModelServer.handle (no model loaded: /v1/models answers 200, /v1/predict 503; both are logged)."""
    from ansible_collections.runlocalai.mlops.plugins.module_utils import serving

    config = {"name": "bc", "version": "3", "model_uri": "models:/bc/3", "state_dir": str(tmp_path / "state"),
              "log_dir": str(tmp_path / "log"), "port": 0, "audit_max_bytes": 1500, "audit_backup_count": 2}
    statuses = []
    for _restart in range(2):
        app = serving.ModelServer(serving.make_config(dict(config)))
        try:
            for _i in range(5):
                statuses.append(app.handle("GET", "/v1/models", {}, b"")[0])
                statuses.append(app.handle("POST", "/v1/predict", {}, b'{"records":[{"a":1}]}')[0])
        finally:
            app.close()
    assert statuses == [200, 503] * 10
    path = tmp_path / "log" / "audit.jsonl"
    result = verify_request_log(str(path))
    assert result["ok"] is True and result["problems"] == []
    assert [os.path.basename(f) for f in result["files"]] == ["audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
    assert result["start"] != GENESIS_HASH  # the oldest lines were rotated away
    record = json.loads(lines(path)[-1])
    assert record["endpoint"] == "predict" and record["status"] == 503 and record["hash"] == result["head"]
    assert set(record) >= {"ts", "model", "version", "request_id", "method", "status", "latency_ms", "input_sha256", "prev", "hash"}
