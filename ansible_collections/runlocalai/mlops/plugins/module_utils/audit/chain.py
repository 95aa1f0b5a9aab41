# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Tamper-evident, append-only audit log in SQLite (standard library only).

Plain Python: imports nothing from Ansible, so the same file can run on hosts
as part of a small package. The entry format is a contract documented in
``docs/governance.md``; change it only together with FORMAT.

Each entry is hashed as the SHA-256 of its canonical JSON (keys sorted, no
whitespace, UTF-8), which includes the previous entry's hash, so the entries
form a hash chain. Triggers refuse UPDATE and DELETE; ``verify`` finds edits
made after dropping them, and an expected head hash kept elsewhere finds a
truncated tail or a chain rewritten with recomputed hashes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import datetime
import hashlib
import hmac
import json
import os
import re
import sqlite3
import tempfile
import time

from ..common.canonical import canonical_json as _canonical_json

try:
    from json.encoder import c_encode_basestring as _encode_str
except ImportError:  # pragma: no cover - pure Python json
    from json.encoder import py_encode_basestring as _encode_str

FORMAT = "runlocalai.audit/1"
GENESIS_HASH = "0" * 64
HMAC_PREFIX = "hmac-sha256:"
ENTRY_FIELDS = ("entry_id", "event_type", "actor", "resource", "action")
DEFAULT_BUSY_TIMEOUT = 30.0
MAX_REPORTED = 1000

# The canonical JSON of an entry, written out so that verifying a million
# entries stays fast. Equal to json.dumps(record, sort_keys=True,
# separators=(",", ":"), ensure_ascii=False) where record["details"] is the
# stored canonical details object (see canonical_record()).
_RECORD_TEMPLATE = (
    '{"action":%s,"actor":%s,"details":%s,"entry_id":%s,"event_type":%s,'
    '"prev_hash":%s,"resource":%s,"timestamp":%s}'
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " entry_id TEXT NOT NULL UNIQUE,"
    " timestamp TEXT NOT NULL,"
    " event_type TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " resource TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " details TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_meta_no_update BEFORE UPDATE ON audit_meta"
    " BEGIN SELECT RAISE(ABORT, 'audit_meta is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_meta_no_delete BEFORE DELETE ON audit_meta"
    " BEGIN SELECT RAISE(ABORT, 'audit_meta is append-only: DELETE refused'); END",
)

_COLUMNS = "seq, entry_id, timestamp, event_type, actor, resource, action, details, prev_hash, hash"


class AuditError(Exception):
    """Bad input or an unusable log; the message names the parameter."""


class AuditConflict(AuditError):
    """An entry id is already stored with different content."""

    def __init__(self, msg, conflicts):
        super(AuditConflict, self).__init__(msg)
        self.conflicts = conflicts


def canonical_json(value):
    """common.canonical.canonical_json, failing with AuditError on what JSON cannot hold."""
    try:
        return _canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise AuditError("value is not JSON-serialisable: %s" % exc)


def record_text(entry_id, timestamp, event_type, actor, resource, action, details_json, prev_hash):
    """The canonical JSON of one entry (what its hash covers)."""
    return _RECORD_TEMPLATE % (
        _encode_str(action), _encode_str(actor), details_json, _encode_str(entry_id),
        _encode_str(event_type), _encode_str(prev_hash), _encode_str(resource), _encode_str(timestamp),
    )


def canonical_record(entry, prev_hash):
    """The record an entry's hash covers, as a dict (for independent verifiers)."""
    record = dict((k, entry[k]) for k in ENTRY_FIELDS)
    record["timestamp"] = entry["timestamp"]
    record["details"] = entry["details"]
    record["prev_hash"] = prev_hash
    return record


def entry_hash(entry_id, timestamp, event_type, actor, resource, action, details_json, prev_hash):
    text = record_text(entry_id, timestamp, event_type, actor, resource, action, details_json, prev_hash)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def utc_now():
    return format_timestamp(datetime.datetime.now(datetime.timezone.utc))


def format_timestamp(value):
    value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % value.microsecond


def parse_timestamp(value, param="timestamp"):
    """Normalise an ISO 8601 time (or epoch seconds) to 'YYYY-MM-DDTHH:MM:SS.ffffffZ' in UTC."""
    if isinstance(value, bool):
        raise AuditError("%s: expected an ISO 8601 time, got %r" % (param, value))
    if isinstance(value, (int, float)):
        return format_timestamp(datetime.datetime.fromtimestamp(value, datetime.timezone.utc))
    if not isinstance(value, str) or not value.strip():
        raise AuditError("%s: expected an ISO 8601 time, got %r" % (param, value))
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise AuditError("%s: %r is not an ISO 8601 time (e.g. 2026-11-27T10:00:00Z)" % (param, value))
    if parsed.tzinfo is None:
        raise AuditError("%s: %r has no time zone; add Z or an offset such as +00:00" % (param, value))
    return format_timestamp(parsed)


def key_path_for(path):
    return path + ".key"


def load_key(key_path, create=True):
    """Return the per-log HMAC key, creating it (mode 0600) when asked.

    Creation is atomic (written to a temporary file, then hard-linked into
    place), so concurrent first appends agree on one key. Returns None when
    the key does not exist and create is False.
    """
    try:
        with open(key_path, "r") as handle:
            text = handle.read().strip()
    except IOError as exc:
        if getattr(exc, "errno", None) != 2:
            raise AuditError("key_path: cannot read HMAC key %s: %s" % (key_path, exc))
        text = None
    if text is None:
        if not create:
            return None
        directory = os.path.dirname(os.path.abspath(key_path))
        fd, tmp = tempfile.mkstemp(prefix=".audit-key-", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (os.urandom(32).hex() + "\n").encode("ascii"))
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(tmp, key_path)
            except OSError as exc:
                if exc.errno != 17:  # EEXIST: another process won the race
                    raise AuditError("key_path: cannot create HMAC key %s: %s" % (key_path, exc))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return load_key(key_path, create=False)
    if not re.match(r"^[0-9a-f]{64}$", text):
        raise AuditError("key_path: %s does not hold a 64-hex-digit key" % key_path)
    return bytes.fromhex(text)


def keyed_hash(key, value):
    """Deterministic HMAC-SHA256 of a value's canonical JSON."""
    digest = hmac.new(key, canonical_json(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return HMAC_PREFIX + digest


def _apply_hash_fields(details, hash_fields, key):
    """Replace the listed detail fields (dotted paths for nested ones) by keyed hashes."""
    hashed = json.loads(canonical_json(details))
    for field in hash_fields:
        parts = field.split(".")
        node = hashed
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and parts[-1] in node:
            node[parts[-1]] = keyed_hash(key, node[parts[-1]])
    return hashed


_ALLOWED_FIELDS = frozenset(ENTRY_FIELDS + ("details", "timestamp"))


def normalize_entry(raw, index=0):
    """Validate one entry dict.

    Returns a dict with the five string fields, details (dict), details_json
    (its canonical JSON) and timestamp (normalised, or None when not given).
    """
    if not isinstance(raw, dict):
        raise AuditError("entries[%d]: expected a dict, got %s" % (index, type(raw).__name__))
    if not _ALLOWED_FIELDS.issuperset(raw):
        unknown = sorted(str(k) for k in set(raw) - _ALLOWED_FIELDS)
        raise AuditError("entries[%d]: unknown field(s) %s" % (index, ", ".join(unknown)))
    entry = {}
    for field in ENTRY_FIELDS:
        value = raw.get(field)
        if value.__class__ is not str or not value or value.isspace():
            if not isinstance(value, str) or not value.strip():
                raise AuditError("entries[%d].%s: required, must be a non-empty string (got %r)" % (index, field, value))
        entry[field] = value
    details = raw.get("details")
    if details is None:
        details = {}
    elif not isinstance(details, dict):
        raise AuditError("entries[%d].details: must be a dict, got %s" % (index, type(details).__name__))
    entry["details"] = details
    try:
        entry["details_json"] = canonical_json(details)
    except AuditError as exc:
        raise AuditError("entries[%d].details: %s" % (index, exc))
    ts = raw.get("timestamp")
    entry["timestamp"] = parse_timestamp(ts, "entries[%d].timestamp" % index) if ts not in (None, "") else None
    return entry


def row_to_entry(row):
    seq, entry_id, ts, event_type, actor, resource, action, details, prev_hash, digest = row
    try:
        details_value = json.loads(details)
    except (TypeError, ValueError):
        details_value = details
    return {
        "seq": seq, "entry_id": entry_id, "timestamp": ts, "event_type": event_type, "actor": actor,
        "resource": resource, "action": action, "details": details_value, "prev_hash": prev_hash, "hash": digest,
    }


def to_jsonl(entries):
    """JSON lines, one canonical entry per line."""
    return "".join(canonical_json(entry) + "\n" for entry in entries)


class AuditLog:
    """One audit log file. Each call opens and closes its own connection."""

    def __init__(self, path, key_path=None, busy_timeout=DEFAULT_BUSY_TIMEOUT):
        if not path:
            raise AuditError("path: required")
        self.path = path
        self.key_path = key_path or key_path_for(path)
        self.busy_timeout = float(busy_timeout)

    # -- connections -------------------------------------------------------
    def exists(self):
        return os.path.isfile(self.path) and os.path.getsize(self.path) > 0

    def _connect_ro(self):
        if not os.path.exists(self.path):
            raise AuditError("path: audit log %s does not exist" % self.path)
        uri = "file:%s?mode=ro" % _uri_path(self.path)
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
            _check_schema(conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise AuditError("path: %s is not a readable audit log: %s" % (self.path, exc))
        return conn

    def _connect_rw(self, mode=0o640):
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise AuditError("path: directory %s does not exist" % directory)
        if not os.path.exists(self.path):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
                os.close(fd)
                os.chmod(self.path, mode)
            except OSError as exc:
                if exc.errno != 17:
                    raise AuditError("path: cannot create %s: %s" % (self.path, exc))
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone(), self.busy_timeout)
            conn.execute("PRAGMA synchronous=FULL")
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='audit_log'").fetchall()
            if not tables:
                _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.busy_timeout)
                try:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute("INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('format', ?)", (FORMAT,))
                    conn.execute("COMMIT")
                except Exception:
                    conn.execute("ROLLBACK")
                    raise
            _check_schema(conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise AuditError("path: %s is not a usable audit log: %s" % (self.path, exc))
        return conn

    # -- append ------------------------------------------------------------
    def append(self, entries, hash_fields=(), check=False, mode=0o640):
        """Append entries atomically (all or nothing).

        Returns dict(appended=[ids], unchanged=[ids], head=hash or None,
        head_seq=int, count=int). Raises AuditConflict when an id is stored
        with other content; nothing is written then.
        """
        if not isinstance(entries, (list, tuple)) or not entries:
            raise AuditError("entries: a non-empty list of entries is required for state=present")
        hash_fields = list(hash_fields or [])
        for field in hash_fields:
            if not isinstance(field, str) or not field or field.startswith(".") or field.endswith("."):
                raise AuditError("hash_fields: %r is not a detail field name (use dots for nested fields)" % (field,))
        normalized = [normalize_entry(raw, i) for i, raw in enumerate(entries)]
        key = None
        if hash_fields:
            key = load_key(self.key_path, create=False)
            if key is None:
                # Check mode never writes: a throw-away key shows what would happen.
                key = os.urandom(32) if check else load_key(self.key_path, create=True)
            for entry in normalized:
                entry["details"] = _apply_hash_fields(entry["details"], hash_fields, key)
                entry["details_json"] = canonical_json(entry["details"])

        # Duplicate ids inside the batch: identical -> once, different -> conflict.
        batch = []
        seen = {}
        for entry in normalized:
            previous = seen.get(entry["entry_id"])
            if previous is None:
                seen[entry["entry_id"]] = entry
                batch.append(entry)
            elif _differences(previous, previous["timestamp"], entry):
                raise AuditConflict(
                    "entries: entry_id %s appears twice in the batch with different content" % entry["entry_id"],
                    [{"entry_id": entry["entry_id"], "fields": _differences(previous, previous["timestamp"], entry)}],
                )

        if check and not self.exists():
            return {"appended": [e["entry_id"] for e in batch], "unchanged": [], "head": None, "head_seq": 0, "count": len(batch)}

        conn = self._connect_ro() if check else self._connect_rw(mode)
        try:
            if not check:
                _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.busy_timeout)
            else:
                conn.execute("BEGIN")
            try:
                result = self._append_locked(conn, batch, check)
                conn.execute("ROLLBACK" if check else "COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise AuditError("path: cannot append to %s: %s" % (self.path, exc))
        finally:
            conn.close()
        return result

    def _append_locked(self, conn, batch, check):
        stored = {}
        ids = [e["entry_id"] for e in batch]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            sql = "SELECT entry_id, timestamp, event_type, actor, resource, action, details FROM audit_log WHERE entry_id IN (%s)" % (
                ",".join("?" * len(chunk)))
            for row in conn.execute(sql, chunk):
                stored[row[0]] = row
        conflicts = []
        unchanged = []
        new = []
        for entry in batch:
            row = stored.get(entry["entry_id"])
            if row is None:
                new.append(entry)
                continue
            old = {"entry_id": row[0], "event_type": row[2], "actor": row[3], "resource": row[4], "action": row[5], "details_json": row[6]}
            fields = _differences(old, row[1], entry)
            if fields:
                conflicts.append({"entry_id": entry["entry_id"], "fields": fields})
            else:
                unchanged.append(entry["entry_id"])
        if conflicts:
            raise AuditConflict(
                "entries: entry_id %s already stored with different content (%s); nothing was written" % (
                    ", ".join(c["entry_id"] for c in conflicts),
                    "; ".join("%s: %s" % (c["entry_id"], ", ".join(c["fields"])) for c in conflicts)),
                conflicts,
            )
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = last if last else (0, GENESIS_HASH)
        if check:
            count = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
            return {"appended": [e["entry_id"] for e in new], "unchanged": unchanged, "head": prev if not new else None,
                    "head_seq": seq, "count": count + len(new)}
        now = utc_now()
        rows = []
        sha256 = hashlib.sha256
        for index, entry in enumerate(new):
            seq += 1
            ts = entry["timestamp"] or now
            text = record_text(entry["entry_id"], ts, entry["event_type"], entry["actor"], entry["resource"],
                               entry["action"], entry["details_json"], prev)
            try:
                digest = sha256(text.encode("utf-8")).hexdigest()
            except UnicodeError:
                raise AuditError("entries: entry %s holds text that is not valid UTF-8" % entry["entry_id"])
            rows.append((seq, entry["entry_id"], ts, entry["event_type"], entry["actor"], entry["resource"],
                         entry["action"], entry["details_json"], prev, digest))
            prev = digest
        if rows:
            conn.executemany("INSERT INTO audit_log (%s) VALUES (?,?,?,?,?,?,?,?,?,?)" % _COLUMNS, rows)
        count = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] if rows or unchanged else 0
        return {"appended": [e["entry_id"] for e in new], "unchanged": unchanged, "head": prev, "head_seq": seq, "count": count}

    # -- verify ------------------------------------------------------------
    def head(self):
        conn = self._connect_ro()
        try:
            row = conn.execute("SELECT seq, entry_id, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            conn.close()
        return {"seq": row[0], "entry_id": row[1], "hash": row[2]} if row else {"seq": 0, "entry_id": None, "hash": GENESIS_HASH}

    def verify(self, expected_head=None):
        """Walk the chain; see docs/governance.md for the reasons reported."""
        if expected_head is not None:
            expected_head = expected_head.strip().lower()
            if not re.match(r"^[0-9a-f]{64}$", expected_head):
                raise AuditError("expected_head: %r is not a SHA-256 hex digest (64 hex digits)" % expected_head)
        conn = self._connect_ro()
        try:
            conn.execute("BEGIN")  # one consistent snapshot
            result = _fast_walk(conn, expected_head)
            if result is None:  # something is off: the exact walk names every broken entry
                result = _walk(conn, expected_head)
            conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            raise AuditError("path: cannot read %s: %s" % (self.path, exc))
        finally:
            conn.close()
        return result

    # -- query -------------------------------------------------------------
    def query(self, since=None, until=None, event_type=None, actor=None, resource=None, action=None, entry_id=None, limit=None):
        where = []
        args = []
        if since not in (None, ""):
            where.append("timestamp >= ?")
            args.append(parse_timestamp(since, "filters.since"))
        if until not in (None, ""):
            where.append("timestamp <= ?")
            args.append(parse_timestamp(until, "filters.until"))
        for column, value in (("event_type", event_type), ("actor", actor), ("resource", resource),
                              ("action", action), ("entry_id", entry_id)):
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                raise AuditError("filters.%s: must be a string" % column)
            if any(c in value for c in "*?["):
                where.append("%s GLOB ?" % column)
            else:
                where.append("%s = ?" % column)
            args.append(value)
        sql = "SELECT %s FROM audit_log" % _COLUMNS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            if int(limit) < 1:
                raise AuditError("filters.limit: must be a positive integer")
            sql += " LIMIT %d" % int(limit)
        conn = self._connect_ro()
        try:
            return [row_to_entry(row) for row in conn.execute(sql, args)]
        except sqlite3.DatabaseError as exc:
            raise AuditError("path: cannot read %s: %s" % (self.path, exc))
        finally:
            conn.close()


def _uri_path(path):
    from urllib.parse import quote
    return quote(os.path.abspath(path))


def _check_schema(conn, path):
    row = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='audit_log'").fetchone()
    if row is None:
        raise AuditError("path: %s is an SQLite file without an audit_log table" % path)
    fmt = conn.execute("SELECT value FROM audit_meta WHERE key='format'").fetchone()
    if fmt is None or fmt[0] != FORMAT:
        raise AuditError("path: %s has audit format %r, this code reads %r" % (path, fmt and fmt[0], FORMAT))


def _retry_locked(func, timeout):
    deadline = time.time() + timeout
    delay = 0.005
    while True:
        try:
            return func()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.time() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _differences(old, old_timestamp, new):
    """Fields where a stored entry differs from a new one (timestamp only when given)."""
    fields = [f for f in ("event_type", "actor", "resource", "action") if old[f] != new[f]]
    if old["details_json"] != new["details_json"]:
        fields.append("details")
    if new["timestamp"] is not None and new["timestamp"] != old_timestamp:
        fields.append("timestamp")
    return fields


# Fast path of verify(). Entries are read in chunks of FAST_CHUNK seqs, each
# chunk as ONE row of group_concat()ed columns (one SQLite step and nine
# Python objects per chunk instead of one step and ten objects per entry),
# as the UTF-8 bytes SQLite stores. Each record is rebuilt with plain quotes
# around the string fields, which is byte for byte the canonical JSON that
# was hashed exactly when no string field needs a JSON escape. So a chunk is
# only accepted when: seqs are exactly lo..hi; every value is TEXT (not a
# number or BLOB); all bytes are valid UTF-8; the string fields hold no
# backslash and no control character, and no '"' (the separator: one inside
# a field changes the count); details holds no \x1f (its separator); and
# every recomputed hash, stored hash and prev_hash link agrees. Anything else
# (tampering, or just a field that needs escaping) returns None, and _walk
# re-checks every entry one by one with the JSON encoder and names what is
# broken. The fast path can only say "valid", never hide a broken entry.
FAST_CHUNK = 2000
_FAST_COLUMNS = ("action", "actor", "details", "entry_id", "event_type", "prev_hash", "resource", "timestamp", "hash")
_FAST_SQL = (
    # 1 when every value is TEXT: numbers sort below text, BLOBs above it.
    "SELECT count(*), min(seq), max(seq), min(%s), " % " AND ".join(
        "%s >= '' AND %s < X''" % (c, c) if c != "details" else "%s < X''" % c for c in _FAST_COLUMNS)
    + ", ".join("group_concat(%s, %s)" % (c, "char(31)" if c == "details" else "'\"'") for c in _FAST_COLUMNS)
    + " FROM audit_log WHERE seq BETWEEN ? AND ?"
)
_PLAIN_RECORD = _RECORD_TEMPLATE.replace("%s", '"%b"').replace('"details":"%b"', '"details":%b').encode("ascii")
# Maps every byte a JSON string must escape (controls, backslash) to a backslash.
_ESCAPED = bytes(92 if i < 32 else i for i in range(256))


def _fast_walk(conn, expected_head, chunk=None):
    """Verify a fully valid log quickly; None when anything needs the exact walk."""
    chunk = chunk or FAST_CHUNK
    first, last = conn.execute("SELECT min(seq), max(seq) FROM audit_log").fetchone()
    if first != 1 or not isinstance(last, int):
        return None
    sha256 = hashlib.sha256
    hexlify = binascii.b2a_hex
    record = _PLAIN_RECORD.__mod__
    join = b"".join
    escaped = _ESCAPED
    expected = expected_head.encode("ascii") if expected_head is not None else None
    prev = GENESIS_HASH.encode("ascii")
    expected_seq = None
    head_id = None
    old_factory = conn.text_factory
    conn.text_factory = bytes
    try:
        for lo in range(1, last + 1, chunk):
            hi = min(last, lo + chunk - 1)
            row = conn.execute(_FAST_SQL, (lo, hi)).fetchone()
            count, first_seq, last_seq, all_text = row[:4]
            groups = row[4:]
            if count != hi - lo + 1 or first_seq != lo or last_seq != hi or all_text != 1 or None in groups:
                return None
            if not all(g.isascii() for g in groups):
                for g in groups:
                    g.decode("utf-8")  # invalid UTF-8: UnicodeDecodeError, exact walk
            simple = join(groups[i] for i in (0, 1, 3, 4, 5, 6, 7))
            if b"\\" in simple.translate(escaped):
                return None
            action, actor, details, eid, etype, prevs, res, ts, hashes = cols = [
                g.split(b"\x1f" if i == 2 else b'"') for i, g in enumerate(groups)]
            if any(len(c) != count for c in cols):
                return None
            calc = [hexlify(sha256(text).digest()) for text in map(record, zip(action, actor, details, eid, etype, prevs, res, ts))]
            if calc != hashes or prevs[0] != prev or prevs[1:] != hashes[:-1]:
                return None
            if expected is not None and expected in hashes:
                expected_seq = lo + count - 1 - hashes[::-1].index(expected)
            prev = hashes[-1]
            head_id = eid[-1]
    except (sqlite3.DatabaseError, UnicodeError, TypeError, ValueError):
        return None
    finally:
        conn.text_factory = old_factory
    top = _sequence_top(conn)
    if top is None or top > last:
        return None
    if expected_head == GENESIS_HASH:
        expected_seq = 0
    if expected_head is not None and expected_seq is None:
        return None
    head = prev.decode("ascii")
    return {
        "valid": True, "entries_checked": last, "head": head, "head_seq": last,
        "head_entry_id": head_id.decode("utf-8"), "expected_head_seq": expected_seq,
        "broken": [], "broken_count": 0, "first_broken": None,
    }


def _sequence_top(conn):
    """Highest seq ever allocated (AUTOINCREMENT): 0 when not recorded, None when not an integer."""
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='audit_log'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    if not row or row[0] is None:
        return 0
    return row[0] if isinstance(row[0], int) else None


def _walk(conn, expected_head):
    broken = []
    counts = {"count": 0}

    def report(seq, entry_id, reason):
        counts["count"] += 1
        if len(broken) < MAX_REPORTED:
            broken.append({"seq": seq, "entry_id": entry_id, "reason": reason})

    sha256 = hashlib.sha256
    enc = _encode_str
    template = _RECORD_TEMPLATE
    prev_seq = 0
    prev_hash = GENESIS_HASH
    prev_id = None
    checked = 0
    expected_seq = None
    dangling = []  # (seq, entry_id, prev_hash, predecessor seq, predecessor id)
    cursor = conn.execute("SELECT %s FROM audit_log ORDER BY seq" % _COLUMNS)
    while True:
        rows = cursor.fetchmany(10000)
        if not rows:
            break
        for seq, eid, ts, et, actor, res, action, details, ph, digest in rows:
            checked += 1
            try:
                calc = sha256((template % (enc(action), enc(actor), details, enc(eid), enc(et), enc(ph), enc(res), enc(ts)))
                              .encode("utf-8")).hexdigest()
            except (TypeError, ValueError, UnicodeError):
                calc = None
            if calc != digest:
                report(seq, eid, "modified: stored hash does not match the entry's content")
            if seq != prev_seq + 1:
                first, last = prev_seq + 1, seq - 1
                if last >= first:
                    _report_missing(report, first, last, "missing: entry deleted (the chain skips from seq %d to %d)" % (prev_seq, seq))
                if ph != prev_hash:
                    dangling.append((seq, eid, ph, None, None))
            elif ph != prev_hash:
                dangling.append((seq, eid, ph, prev_seq, prev_id))
            if expected_head is not None and digest == expected_head:
                expected_seq = seq
            prev_seq, prev_hash, prev_id = seq, digest, eid
    head = {"seq": prev_seq, "entry_id": prev_id, "hash": prev_hash}

    if dangling:
        wanted = dict((d[2], None) for d in dangling)
        for seq, eid, digest in conn.execute("SELECT seq, entry_id, hash FROM audit_log"):
            if digest in wanted:
                wanted[digest] = (seq, eid)
        for seq, eid, ph, pred_seq, pred_id in dangling:
            found = wanted.get(ph)
            if found is not None:
                report(seq, eid, "reordered: its recorded predecessor is entry %s at seq %d, not the entry before it" % (found[1], found[0]))
            elif pred_seq is None:
                pass  # predecessor deleted: already reported as missing
            elif ph == GENESIS_HASH:
                report(seq, eid, "reordered: it was recorded as the first entry")
            else:
                report(pred_seq, pred_id, "modified: rewritten with a recomputed hash (does not match the prev_hash its successor %s recorded)" % eid)

    # Highest seq ever allocated (AUTOINCREMENT): a deleted tail leaves it behind.
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='audit_log'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    if row and row[0] is not None and row[0] > prev_seq:
        _report_missing(report, prev_seq + 1, row[0], "missing: newest entries truncated (the log allocated seq up to %d)" % row[0])

    if expected_head is not None:
        if expected_head == GENESIS_HASH and checked >= 0:
            expected_seq = 0
        if expected_seq is None:
            report(prev_seq, prev_id, "expected_head %s is not in the chain: newest entries truncated or the chain rewritten" % expected_head)

    broken.sort(key=lambda b: (b["seq"] if b["seq"] is not None else 0))
    return {
        "valid": counts["count"] == 0,
        "entries_checked": checked,
        "head": head["hash"],
        "head_seq": head["seq"],
        "head_entry_id": head["entry_id"],
        "expected_head_seq": expected_seq,
        "broken": broken,
        "broken_count": counts["count"],
        "first_broken": broken[0] if broken else None,
    }


def _report_missing(report, first, last, reason):
    if last - first < 20:
        for seq in range(first, last + 1):
            report(seq, None, reason)
    else:
        report(first, None, "%s; seq %d to %d (%d entries)" % (reason, first, last, last - first + 1))
