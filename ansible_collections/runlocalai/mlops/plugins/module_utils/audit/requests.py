# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Verifying the model service's request log (serving/records.py RequestLog): JSON lines rotated by size
(audit.jsonl.N ... audit.jsonl.1, audit.jsonl) whose lines form a hash chain (common/chain.py, the one
definition of a line's hash). Used by the request_log_info module; the format and what is reported are
documented in docs/governance.md.

Plain Python (standard library only): it runs on the serving host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import json
import os
import re

from ..common.chain import GENESIS_HASH, HASH_FIELD, PREV_FIELD, hashed_bytes, record_hash, text_hash
from ..common.errors import InputError

KINDS = ("edited", "removed_or_reordered", "torn", "unparseable")
MAX_REPORTED = 1000
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_ROTATED_RE = re.compile(r"[1-9][0-9]*")


class RequestLogError(InputError):
    """A request log that cannot be read, or bad input; the message names the parameter."""


def log_files(path):
    """The files of one request log, oldest first: path.N, ..., path.1, path (those that exist)."""
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path) + "."
    try:
        names = os.listdir(directory)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise RequestLogError("path: cannot read the directory of %s: %s" % (path, exc))
        names = []
    rotated = sorted((int(name[len(base):]), name) for name in names
                     if name.startswith(base) and _ROTATED_RE.fullmatch(name[len(base):]))
    files = [os.path.join(directory, name) for _index, name in reversed(rotated)]
    if os.path.isfile(path):
        files.append(path)
    if not files:
        raise RequestLogError("path: %s does not exist (nor any rotated %s.1, %s.2, ...)" % (path, path, path))
    return files


def expand_paths(paths):
    """paths, each a request log's path or a glob pattern (several logs; matching none is not an error),
    expanded and without duplicates, in the order given."""
    out = []
    for path in paths:
        if any(c in path for c in "*?["):
            matched = sorted(glob.glob(path))
        else:
            matched = [path]
        for item in matched:
            if item not in out:
                out.append(item)
    return out


def _parse(body):
    """(record, None) for a JSON object line, else (None, why)."""
    if not body.strip():
        return None, "empty line"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, "not UTF-8 (%s)" % exc.reason
    try:
        record = json.loads(text)
    except ValueError as exc:
        return None, "not JSON (%s)" % exc
    if not isinstance(record, dict):
        return None, "not a JSON object"
    return record, None


def _check_record(body, record):
    """None when the stored hash of a line (body: its bytes; record: parsed) is its content's hash, else
    what is wrong."""
    digest, prev = record.get(HASH_FIELD), record.get(PREV_FIELD)
    if not isinstance(digest, str) or not _HASH_RE.fullmatch(digest):
        return "its hash field is missing or not 64 hex digits"
    if not isinstance(prev, str) or not _HASH_RE.fullmatch(prev):
        return "its prev field is missing or not 64 hex digits"
    covered = hashed_bytes(body, digest)  # the line as written: hash its bytes, no re-encoding
    if covered is not None and text_hash(covered) == digest:
        return None
    try:  # any other shape (e.g. reformatted): the canonical JSON of its fields
        calc = record_hash(record)
    except (TypeError, ValueError) as exc:
        return "its content cannot be hashed: %s" % exc
    if calc != digest:
        return "the stored hash does not match the line's content (a field was edited)"
    return None


def _where(position):
    return "%s line %d" % position if position else "no line"


def _at(position):
    return {"file": position[0], "line": position[1]} if position else None


class _Walk:
    """The state of one walk over a log's lines, oldest first; line() takes each line in turn."""

    def __init__(self, expected_head):
        self.expected_head = expected_head
        self.problems = []
        self.problem_count = self.failing = 0
        self.entries = self.unchained = 0
        self.first_ts = self.last_ts = self.start = None
        self.head = self.head_at = self.expected_at = self.last_position = None
        self.unlinkable = False  # the line before holds no usable hash (already reported as edited)
        self.dangling = []  # (position, prev, position of the line before): links to look up afterwards
        # Lines that are not chained records, since the last record: (position, why, kind when the chain
        # links across them, kind when it breaks across them, ends with a newline).
        self.pending = []

    def report(self, position, kind, detail):
        self.problem_count += 1
        self.failing += kind != "torn"
        if len(self.problems) < MAX_REPORTED:
            self.problems.append({"file": position[0], "line": position[1], "kind": kind, "detail": detail})

    def settle(self, outcome):
        """Judge the pending lines: outcome is before (the chain had not begun), bridged (the next record
        chains to the one before them), broken (it does not) or end (no record follows)."""
        last = len(self.pending) - 1
        for index, (position, why, bridged, broken, terminated) in enumerate(self.pending):
            if outcome == "before":
                self.report(position, "torn", "%s; before the oldest kept chained line, so it hides no line of the chain" % why)
            elif outcome == "bridged" and bridged == "torn":
                self.report(position, "torn", "%s; the next line chains to the one before it, so no line is missing "
                                              "(an unfinished write)" % why)
            elif outcome == "end" and bridged == "torn" and not terminated and index == last:
                self.report(position, "torn", "%s; the last line, unfinished (no newline): a write that did not complete" % why)
            elif broken == "unparseable" and outcome != "bridged":
                self.report(position, "unparseable", "%s; the chain breaks across it: it replaced one or more lines" % why)
            else:
                self.report(position, "edited", "%s; a line inside the chain without prev and hash (inserted, or rewritten "
                                                "without them)" % why)
        del self.pending[:]

    def line(self, position, raw):
        self.last_position = position
        terminated = raw.endswith(b"\n")
        body = raw[:-1] if terminated else raw
        record, why = _parse(body)
        if record is None:
            self.pending.append((position, why, "torn", "unparseable", terminated))
            return
        if HASH_FIELD not in record and PREV_FIELD not in record:
            if self.head is None:  # written before the chain began (by an older version of the service)
                self.settle("before")
                self.unchained += 1
            else:
                self.pending.append((position, "no prev and hash fields", "edited", "edited", terminated))
            return
        wrong = _check_record(body, record)
        prev = record.get(PREV_FIELD)
        if self.head is None:
            self.settle("before")
            self.start = prev if isinstance(prev, str) else None
        elif prev == self.head:
            self.settle("bridged")
        elif self.pending:
            self.settle("broken")  # the lines in between replaced the one prev names
        elif wrong is None and not self.unlinkable:
            self.dangling.append((position, prev, self.head_at))
        if wrong is not None:
            self.report(position, "edited", wrong)
        digest = record.get(HASH_FIELD)
        self.unlinkable = not isinstance(digest, str) or not _HASH_RE.fullmatch(digest)
        self.head = "" if self.unlinkable else digest
        self.head_at = position
        self.entries += 1
        if self.entries == 1:
            self.first_ts = record.get("ts")
        self.last_ts = record.get("ts")
        if self.head == self.expected_head:
            self.expected_at = position

    def finish(self, files):
        self.settle("end")
        if self.dangling:
            found = _positions(files, set(d[1] for d in self.dangling))
            for position, prev, before in self.dangling:
                if prev == GENESIS_HASH:
                    detail = "its prev is 64 zeros (written as the very first line), yet %s comes before it" % _where(before)
                elif prev in found:
                    detail = ("its prev is the hash of %s, not of the line before it (%s): lines were reordered, "
                              "or the lines between removed" % (_where(found[prev]), _where(before)))
                else:
                    detail = ("its prev matches no kept line: the line(s) between %s and it were removed, or the line "
                              "before it was rewritten with a recomputed hash" % _where(before))
                self.report(position, "removed_or_reordered", detail)
        expected = self.expected_head
        if expected is not None and self.expected_at is None and expected not in (self.start, GENESIS_HASH):
            self.report(self.head_at or self.last_position or (files[-1], 0), "removed_or_reordered",
                        "expected_head %s is not in the log: its newest lines were removed (truncated) or the log was "
                        "rewritten (or that head was rotated away: check more often than the log rotates)" % expected)
        self.problems.sort(key=lambda p: (files.index(p["file"]), p["line"]))


def verify_request_log(path, expected_head=None):
    """Walk every line of the request log at path, oldest first across rotation, checking each line's
    hash and its link to the line before.

    Returns dict(path, files, ok, entries, unchained, first_ts, last_ts, head, head_at, start,
    expected_head_at, problems, problem_count). problems (at most MAX_REPORTED, problem_count counts all)
    are dicts {file, line, kind, detail} with kind one of KINDS; ok is true when every problem is torn
    (a write a crash left unfinished: no line is missing or changed). The oldest kept line's prev is
    returned as start (64 zeros when the log is whole from its first line): older files rotated away
    are not a problem.
    """
    if expected_head is not None:
        expected_head = expected_head.strip().lower()
        if not _HASH_RE.fullmatch(expected_head):
            raise RequestLogError("expected_head: %r is not a SHA-256 hex digest (64 hex digits)" % expected_head)
    files = log_files(path)
    walk = _Walk(expected_head)
    handles = _open_all(files)
    try:
        for name, handle in handles:
            for number, raw in enumerate(handle, 1):
                walk.line((name, number), raw)
    finally:
        for _name, handle in handles:
            handle.close()
    walk.finish(files)
    return {
        "path": path, "files": files, "ok": walk.failing == 0, "entries": walk.entries, "unchained": walk.unchained,
        "first_ts": walk.first_ts, "last_ts": walk.last_ts, "head": walk.head if walk.head is not None else GENESIS_HASH,
        "head_at": _at(walk.head_at), "start": walk.start, "expected_head_at": _at(walk.expected_at),
        "problems": walk.problems, "problem_count": walk.problem_count,
    }


def _open_all(files):
    """Every file opened before any is read: a rotation while the log is read renames files, but the
    open ones stay the same files, so no line is skipped or read twice."""
    handles = []
    try:
        for name in files:
            handles.append((name, open(name, "rb")))
    except (IOError, OSError) as exc:
        for _name, handle in handles:
            handle.close()
        raise RequestLogError("path: cannot read %s: %s" % (name, exc))
    return handles


def _positions(files, wanted):
    """Where each wanted hash is stored: {hash: (file, line)} (the second pass, only when a link breaks)."""
    found = {}
    for name in files:
        try:
            handle = open(name, "rb")
        except (IOError, OSError):  # rotated away since: its lines are not named
            continue
        with handle:
            for number, raw in enumerate(handle, 1):
                record = _parse(raw.rstrip(b"\n"))[0]
                digest = record.get(HASH_FIELD) if record is not None else None
                if isinstance(digest, str) and digest in wanted and digest not in found:
                    found[digest] = (name, number)
    return found


def verify_request_logs(paths, expected_head=None, fail_on_problem=False):
    """verify_request_log over paths (globs expanded). Returns (result, failure): result is
    dict(logs, ok, problem_count); failure the message to fail with when fail_on_problem is set and a
    log is not ok, naming each file and line (the first few), else None."""
    if not paths:
        raise RequestLogError("paths: at least one path (or glob pattern) is required")
    expanded = expand_paths(paths)
    if expected_head is not None and len(expanded) != 1:
        raise RequestLogError("expected_head: applies to one log, but paths name %d" % len(expanded))
    logs = [verify_request_log(path, expected_head) for path in expanded]
    result = {"logs": logs, "ok": all(log["ok"] for log in logs), "problem_count": sum(log["problem_count"] for log in logs)}
    failure = None
    if fail_on_problem and not result["ok"]:
        bad = [p for log in logs for p in log["problems"] if p["kind"] != "torn"]
        failing = sum(1 for log in logs if not log["ok"])
        failure = "request log verification failed (%d log%s): %s" % (
            failing, "" if failing == 1 else "s",
            "; ".join("%s line %d: %s: %s" % (p["file"], p["line"], p["kind"], p["detail"]) for p in bad[:5]))
        if len(bad) > 5:
            failure += "; and %d more" % (len(bad) - 5)
    return result, failure
