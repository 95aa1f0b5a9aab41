# -*- coding: utf-8 -*-
"""Tests for the request_log_info module (through the shared run_module fixture)."""

import os

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.chain import GENESIS_HASH, chained_line
from ansible_collections.runlocalai.mlops.plugins.modules import request_log_info


def make_log(directory, count):
    """An instance's audit.jsonl with count chained lines, as the service writes them; returns (path, head)."""
    os.makedirs(str(directory))
    path = str(directory / "audit.jsonl")
    head = GENESIS_HASH
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            line, head = chained_line({"ts": "2026-11-27T10:00:%02d.000000Z" % i, "request_id": "r%d" % i, "status": 200,
                                       "endpoint": "predict"}, head)
            handle.write(line)
    return path, head


def rewrite(path, number, old, new):
    with open(path) as handle:
        text = handle.readlines()
    text[number - 1] = text[number - 1].replace(old, new)
    with open(path, "w") as handle:
        handle.writelines(text)


def test_every_log_of_a_glob_verifies(run_module, tmp_path):
    churn, churn_head = make_log(tmp_path / "churn", 3)
    bc, bc_head = make_log(tmp_path / "bc", 2)
    for check_mode in (False, True):
        result = run_module(request_log_info, {"paths": [str(tmp_path / "*" / "audit.jsonl")]}, check_mode=check_mode)
        assert result["failed"] is False and result["changed"] is False
        assert result["ok"] is True and result["problem_count"] == 0
        assert [(log["path"], log["ok"], log["entries"], log["head"], log["problems"]) for log in result["logs"]] == [
            (bc, True, 2, bc_head, []), (churn, True, 3, churn_head, [])]
        assert result["logs"][1]["start"] == GENESIS_HASH and result["logs"][1]["head_at"] == {"file": churn, "line": 3}


def test_a_pattern_matching_nothing_is_no_log(run_module, tmp_path):
    result = run_module(request_log_info, {"paths": [str(tmp_path / "*" / "audit.jsonl")], "fail_on_problem": True})
    assert result["failed"] is False and result["ok"] is True and result["logs"] == []


def test_fail_on_problem_names_file_line_and_kind(run_module, tmp_path):
    good, _head = make_log(tmp_path / "good", 2)
    bad, _head = make_log(tmp_path / "bad", 4)
    rewrite(bad, 2, '"status":200', '"status":201')
    args = {"paths": [good, bad]}
    reported = run_module(request_log_info, args)
    assert reported["failed"] is False and reported["ok"] is False and reported["problem_count"] == 1
    assert [log["ok"] for log in reported["logs"]] == [True, False]
    assert [(p["file"], p["line"], p["kind"]) for p in reported["logs"][1]["problems"]] == [(bad, 2, "edited")]
    failed = run_module(request_log_info, dict(args, fail_on_problem=True))
    assert failed["failed"] is True and failed["changed"] is False
    assert failed["msg"].startswith("request log verification failed (1 log): %s line 2: edited: " % bad)
    assert failed["logs"] == reported["logs"]


def test_a_torn_line_does_not_fail(run_module, tmp_path):
    path, head = make_log(tmp_path / "churn", 2)
    with open(path, "a") as handle:
        handle.write('{"endpoint":"pred')
    result = run_module(request_log_info, {"paths": [path], "fail_on_problem": True})
    assert result["failed"] is False and result["ok"] is True and result["problem_count"] == 1
    log = result["logs"][0]
    assert log["head"] == head and [(p["line"], p["kind"]) for p in log["problems"]] == [(3, "torn")]


def test_expected_head(run_module, tmp_path):
    path, head = make_log(tmp_path / "churn", 3)
    found = run_module(request_log_info, {"paths": [path], "expected_head": head})
    assert found["failed"] is False and found["logs"][0]["expected_head_at"] == {"file": path, "line": 3}
    gone = run_module(request_log_info, {"paths": [path], "expected_head": "ab" * 32, "fail_on_problem": True})
    assert gone["failed"] is True and "line 3: removed_or_reordered: expected_head" in gone["msg"]
    bad = run_module(request_log_info, {"paths": [path], "expected_head": "nope"})
    assert bad["failed"] is True and bad["msg"].startswith("expected_head: ")
    several = run_module(request_log_info, {"paths": [path, path + "x"], "expected_head": head})
    assert several["failed"] is True and several["msg"] == "expected_head: applies to one log, but paths name 2"


def test_a_missing_log_fails(run_module, tmp_path):
    result = run_module(request_log_info, {"paths": [str(tmp_path / "audit.jsonl")]})
    assert result["failed"] is True and "does not exist" in result["msg"] and result["msg"].startswith("path: ")
    empty = run_module(request_log_info, {"paths": []})
    assert empty["failed"] is True and empty["msg"].startswith("paths: ")
