# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The hash chain of a JSON-lines log: the one definition of a chained line and of its hash, used by the
model service's request log (serving/records.py, which writes it) and by its verifier (audit/requests.py).

A line is an entry with two fields added: ``prev``, the ``hash`` of the line before (64 zeros for the very
first line), and ``hash``, the SHA-256 hex digest of the canonical JSON (common/canonical.py) of the entry
with ``prev`` and without ``hash``. The line is the canonical JSON of the entry with both, so the bytes
that were hashed are the line without its ``"hash":"<digest>",`` member. The format is documented in
docs/governance.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from .canonical import canonical_json

GENESIS_HASH = "0" * 64
PREV_FIELD = "prev"
HASH_FIELD = "hash"


def text_hash(text):
    """SHA-256 hex digest of a record's canonical JSON (str, or its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def record_hash(record):
    """The hash of a record (a dict: the entry's fields and prev; a hash field in it is left out)."""
    if HASH_FIELD in record:
        record = dict((k, v) for k, v in record.items() if k != HASH_FIELD)
    return text_hash(canonical_json(record))


def chained_line(entry, prev):
    """The line that writes entry after the line whose hash is prev: (text ending in a newline, its hash).
    prev and hash are reserved field names: an entry's own values for them are replaced.

    One encoding and one hash: the fields sorting before "hash" and those after it (prev among them, so
    never none) are encoded apart; joined with a comma they are the record's canonical JSON, and with
    the hash member between them, the line's."""
    before = canonical_json(dict((k, v) for k, v in entry.items() if k < HASH_FIELD))
    after = dict((k, v) for k, v in entry.items() if k > HASH_FIELD)
    after[PREV_FIELD] = prev
    after = canonical_json(after)[1:]
    start = before[:-1] + "," if len(before) > 2 else "{"
    digest = text_hash(start + after)
    return '%s"%s":"%s",%s\n' % (start, HASH_FIELD, digest, after), digest


def hashed_bytes(line, digest):
    """The bytes a line's hash covers, for a line (bytes, without its newline) whose top-level hash field
    holds digest: the line without its "hash":"<digest>", member. None when the line has no such member
    (not written by chained_line, e.g. reformatted: hash its parsed fields with record_hash instead)."""
    member = ('"%s":"%s",' % (HASH_FIELD, digest)).encode("ascii")
    index = line.find(member)
    if index < 0:
        return None
    return line[:index] + line[index + len(member):]
