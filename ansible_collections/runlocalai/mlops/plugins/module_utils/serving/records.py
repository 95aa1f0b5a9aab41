# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""On-disk records of the service: the request log, the drift window and the feedback labels."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import os
import re
import threading
import time

from ..common.chain import GENESIS_HASH, HASH_FIELD, PREV_FIELD, chained_line
from .messages import ServingError, class_key


class RequestLog:
    """JSON lines, one per /v1 request, rotated by size (audit.jsonl, audit.jsonl.1, ... audit.jsonl.N;
    the oldest is dropped). Holds hashes of inputs, never the inputs.

    The lines form a hash chain (common/chain.py; docs/governance.md): each carries ``prev``, the hash
    of the line before, and ``hash``. The chain goes on across rotation and restarts: on open, the head
    is the hash of the last chained line of the current file, or of audit.jsonl.1 when the current
    file has none (64 zeros when neither has one, or after a line written before the chain existed).
    A line left unfinished by a crash is ended with a newline before the next line, which chains to
    the last complete one; each write is one hash and one flushed write, nothing is read back."""

    def __init__(self, path, max_bytes, backup_count):
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.lock = threading.Lock()
        self.handle = open(path, "a", encoding="utf-8")
        self.size = self.handle.tell()
        head, self.torn = _chain_tail(path)
        if head is None:
            head = _chain_tail(path + ".1")[0]
        self.head = head or GENESIS_HASH

    def _rotate(self):
        self.handle.close()
        for index in range(self.backup_count - 1, 0, -1):
            older = "%s.%d" % (self.path, index)
            if os.path.exists(older):
                os.replace(older, "%s.%d" % (self.path, index + 1))
        os.replace(self.path, self.path + ".1")
        self.handle = open(self.path, "a", encoding="utf-8")
        self.size = 0
        self.torn = False

    def write(self, entry):
        with self.lock:
            if self.handle is None:
                return
            line, digest = chained_line(entry, self.head)
            size = len(line.encode("utf-8"))
            if self.size and self.size + size > self.max_bytes:
                self._rotate()
            elif self.torn:  # end the unfinished line a crash left, so this one stands on its own
                line = "\n" + line
                size += 1
            self.handle.write(line)
            self.handle.flush()
            self.size += size
            self.head = digest
            self.torn = False

    def close(self):
        with self.lock:
            if self.handle is not None:
                self.handle.close()
                self.handle = None


_TAIL_BLOCK = 65536
_HASH_RE = re.compile(r"[0-9a-f]{64}")


def _line_head(raw):
    """What the next line chains to after the line raw (bytes): its hash for a chained line, 64 zeros
    for a line written before the chain existed, None for a torn or unreadable line."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        return None
    if not isinstance(record, dict):
        return None
    digest = record.get(HASH_FIELD)
    if isinstance(digest, str) and _HASH_RE.fullmatch(digest):
        return digest
    if HASH_FIELD not in record and PREV_FIELD not in record:
        return GENESIS_HASH
    return None


def _chain_tail(path):
    """(head, torn) of one request-log file, read backwards from its end: head is what the next line
    chains to (see _line_head; None when no line tells: a missing or empty file, or only torn lines),
    torn whether the file ends in an unfinished line (no newline)."""
    try:
        handle = open(path, "rb")
    except (IOError, OSError):
        return None, False
    with handle:
        end = handle.seek(0, os.SEEK_END)
        torn = False
        if end:
            handle.seek(end - 1)
            torn = handle.read(1) != b"\n"
        pos, carry = end, b""
        while pos > 0:
            start = max(0, pos - _TAIL_BLOCK)
            handle.seek(start)
            pieces = (handle.read(pos - start) + carry).split(b"\n")
            carry = pieces.pop(0) if start > 0 else b""  # cut by the block's start: read with the block before
            for raw in reversed(pieces):
                if raw.strip():
                    head = _line_head(raw)
                    if head is not None:
                        return head, torn
            pos = start
    return None, torn


class JsonlWindow:
    """A size-bounded rolling window of JSON-lines files in one directory (the serving-window format of
    docs/drift.md for the drift window; the feedback format for labels).

    Files are named <prefix>-YYYYMMDDHH-NNN.jsonl (UTC hour, sequence), so name order is time order; a
    file is closed at the hour or at `file_max_bytes`. After each new file, the oldest files are removed
    while the directory holds more than `max_bytes` or a file is older than `max_age_hours`.
    Each record is one write of one complete line, flushed, so a reader sees whole lines (a line being
    written at the very end is skipped by drift_io)."""

    def __init__(self, directory, prefix, max_bytes, file_max_bytes, max_age_hours):
        self.directory = directory
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.file_max_bytes = min(file_max_bytes, max_bytes)
        self.max_age = max_age_hours * 3600
        self.lock = threading.Lock()
        self.handle = None
        self.hour = None
        self.size = 0
        self.re = re.compile(r"^%s-(\d{10})-(\d{3,})\.jsonl$" % re.escape(prefix))

    def files(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(n for n in names if self.re.match(n))

    def _open(self, hour):
        seq = 0
        for name in self.files():
            match = self.re.match(name)
            if match.group(1) == hour:
                seq = max(seq, int(match.group(2)) + 1)
        path = os.path.join(self.directory, "%s-%s-%03d.jsonl" % (self.prefix, hour, seq))
        self.handle = open(path, "a", encoding="utf-8")
        self.hour = hour
        self.size = 0
        self._prune(keep=os.path.basename(path))

    def _prune(self, keep):
        now = time.time()
        entries = []
        for name in self.files():
            path = os.path.join(self.directory, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            entries.append((name, path, stat.st_size, stat.st_mtime))
        total = sum(e[2] for e in entries)
        for name, path, size, mtime in entries:
            if name == keep:
                continue
            if total > self.max_bytes or now - mtime > self.max_age:
                try:
                    os.unlink(path)
                    total -= size
                except OSError:
                    pass

    def write_lines(self, lines, now=None):
        data = "".join(lines)
        if not data:
            return
        hour = time.strftime("%Y%m%d%H", time.gmtime(time.time() if now is None else now))
        with self.lock:
            if self.handle is None or hour != self.hour or self.size + len(data) > self.file_max_bytes and self.size > 0:
                self.close_locked()
                self._open(hour)
            self.handle.write(data)
            self.handle.flush()
            self.size += len(data.encode("utf-8"))

    def close_locked(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def close(self):
        with self.lock:
            self.close_locked()


class FeedbackTracker:
    """Recent predictions by request id, and the accuracy over the last `window` labelled ones.
    A later label for the same prediction replaces the earlier one."""

    def __init__(self, window, memory):
        self.lock = threading.Lock()
        self.window = window
        self.memory = memory
        self.predictions = collections.OrderedDict()   # request_id -> [class keys]
        self.labelled = collections.OrderedDict()      # (request_id, instance) -> correct (bool)

    def remember(self, request_id, predictions):
        with self.lock:
            self.predictions[request_id] = [class_key(p) for p in predictions]
            while len(self.predictions) > self.memory:
                self.predictions.popitem(last=False)

    def label(self, request_id, items):
        """items: list of (instance, label). Returns (count, accuracy)."""
        with self.lock:
            predicted = self.predictions.get(request_id)
            if predicted is None:
                raise ServingError(404, "request_id %r: no recent prediction with this id (unknown, too old, or made "
                                        "before the service restarted)" % request_id, "request_id")
            for instance, _label in items:
                if not 0 <= instance < len(predicted):
                    raise ServingError(422, "instance: %d is out of range; request %r scored %d instance(s)"
                                       % (instance, request_id, len(predicted)), "instance")
            for instance, label in items:
                key = (request_id, instance)
                self.labelled.pop(key, None)
                self.labelled[key] = predicted[instance] == class_key(label)
                while len(self.labelled) > self.window:
                    self.labelled.popitem(last=False)
            correct = sum(1 for v in self.labelled.values() if v)
            return len(items), correct / float(len(self.labelled))
