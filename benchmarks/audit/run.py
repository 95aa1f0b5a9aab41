#!/usr/bin/env python
"""Audit log benchmark: batched appends and verification of N entries against plain SQLite
insert/scan of the same rows, in the same run; plus the 8 x 2,000 concurrent-append proof.

Run from the repository root:
    .venv/bin/python benchmarks/audit/run.py [--entries 1000000] [--batch 10000] [--rounds 3] [--skip-concurrency]
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from ansible_collections.runlocalai.mlops.plugins.module_utils.audit import chain as audit  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.audit.chain import AuditLog  # noqa: E402


def make_entries(start, count):
    return [{"entry_id": "bench-%d" % i, "event_type": "model_promotion", "actor": "ci-bot",
             "resource": "model:churn/%d" % (i % 50), "action": "alias production %d -> %d" % (i, i + 1),
             "details": {"version": str(i + 1), "previous_version": str(i), "approvers": ["alice", "bob"], "ticket": "CHG-%d" % i}}
            for i in range(start, start + count)]


def plain_schema(conn):
    # Same columns and unique index as the audit table, no triggers, no hashing.
    conn.execute("CREATE TABLE plain (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL UNIQUE, timestamp TEXT NOT NULL, "
                 "event_type TEXT NOT NULL, actor TEXT NOT NULL, resource TEXT NOT NULL, action TEXT NOT NULL, details TEXT NOT NULL, "
                 "prev_hash TEXT NOT NULL, hash TEXT NOT NULL)")


def bench(entries_total, batch, workdir, rounds=3):
    audit_path = os.path.join(workdir, "audit.db")
    plain_path = os.path.join(workdir, "plain.db")
    log = AuditLog(audit_path)
    conn = sqlite3.connect(plain_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    plain_schema(conn)
    audit_time = plain_time = 0.0
    ts = "2026-11-27T00:00:00.000000Z"
    for start in range(0, entries_total, batch):
        entries = make_entries(start, min(batch, entries_total - start))
        t0 = time.perf_counter()
        log.append(entries)
        audit_time += time.perf_counter() - t0
        # The plain baseline gets its rows pre-serialised (json.dumps inside the timed block, like the audit path).
        t0 = time.perf_counter()
        rows = [(e["entry_id"], ts, e["event_type"], e["actor"], e["resource"], e["action"], json.dumps(e["details"]), "", "")
                for e in entries]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO plain (entry_id, timestamp, event_type, actor, resource, action, details, prev_hash, hash) "
                         "VALUES (?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        plain_time += time.perf_counter() - t0

    # verify() (chunked fast path) against the exact entry-by-entry walk (the whole of verify() before
    # the fast path, and still its fallback when anything is off), on the same file in the same run,
    # interleaved `rounds` times because the shared machine's load moves: min and median of each.
    verify_times, exact_times, loads = [], [], []
    for _ in range(rounds):
        loads.append(os.getloadavg()[0])
        t0 = time.perf_counter()
        result = log.verify()
        verify_times.append(time.perf_counter() - t0)
        assert result["valid"] and result["entries_checked"] == entries_total, result
        ro = sqlite3.connect("file:%s?mode=ro" % audit_path, uri=True, isolation_level=None)
        ro.execute("BEGIN")
        t0 = time.perf_counter()
        exact = audit._walk(ro, None)
        exact_times.append(time.perf_counter() - t0)
        ro.close()
        assert exact == result, (exact, result)
    loads.append(os.getloadavg()[0])
    verify_time = min(verify_times)

    t0 = time.perf_counter()
    count = 0
    for row in conn.execute("SELECT seq, entry_id, timestamp, event_type, actor, resource, action, details, prev_hash, hash FROM plain ORDER BY seq"):
        count += 1
    scan_time = time.perf_counter() - t0
    # A scan that also hashes each row (SHA-256 of its columns), without the chain logic.
    t0 = time.perf_counter()
    for row in conn.execute("SELECT entry_id, timestamp, event_type, actor, resource, action, details FROM plain ORDER BY seq"):
        hashlib.sha256("\x00".join(row).encode("utf-8")).hexdigest()
    scan_hash_time = time.perf_counter() - t0
    conn.close()
    return {"entries": entries_total, "batch": batch,
            "audit_append_s": audit_time, "audit_appends_per_s": entries_total / audit_time,
            "plain_insert_s": plain_time, "plain_inserts_per_s": entries_total / plain_time,
            "append_ratio": audit_time / plain_time,
            "audit_verify_s": verify_time, "audit_verify_median_s": sorted(verify_times)[len(verify_times) // 2],
            "audit_verify_all_s": verify_times, "exact_walk_s": min(exact_times),
            "exact_walk_median_s": sorted(exact_times)[len(exact_times) // 2], "exact_walk_all_s": exact_times,
            "verify_loadavg_1min": loads,
            "plain_scan_s": scan_time, "plain_scan_sha256_s": scan_hash_time,
            "audit_db_mb": os.path.getsize(audit_path) / 1e6, "plain_db_mb": os.path.getsize(plain_path) / 1e6}


def _append_many(args):
    path, worker, count = args
    log = AuditLog(path)
    for i in range(count):
        log.append([{"entry_id": "w%d-%d" % (worker, i), "event_type": "load", "actor": "worker%d" % worker,
                     "resource": "bench", "action": "append", "details": {"i": i}}])
    return count


def concurrency(workdir, processes=8, per_process=2000):
    path = os.path.join(workdir, "concurrent.db")
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        done = sum(pool.map(_append_many, [(path, w, per_process) for w in range(processes)]))
    elapsed = time.perf_counter() - t0
    result = AuditLog(path).verify()
    return {"processes": processes, "per_process": per_process, "appended": done, "entries_checked": result["entries_checked"],
            "valid": result["valid"], "seconds": elapsed, "appends_per_s": done / elapsed}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000000)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved verify() / exact-walk timings (min and median reported)")
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--workdir", default=None, help="directory for the databases (default: a temporary one, removed after)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="audit-bench-")
    try:
        out = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
               "loadavg_start": os.getloadavg()}
        out["bulk"] = bench(args.entries, args.batch, workdir, args.rounds)
        if not args.skip_concurrency:
            out["concurrency"] = concurrency(workdir)
        out["loadavg_end"] = os.getloadavg()
        print(json.dumps(out, indent=2))
        bulk = out["bulk"]
        print("\nbatched appends: audit %.0f/s vs plain SQLite %.0f/s (ratio %.2fx, target <= 3x)" % (
            bulk["audit_appends_per_s"], bulk["plain_inserts_per_s"], bulk["append_ratio"]))
        print("verify %d entries: %.2f s min, %.2f s median (target <= 10 s); exact entry-by-entry walk %.2f s min, %.2f s median; "
              "1-min load %s; plain scan %.2f s, plain scan + sha256 %.2f s" % (
                  bulk["entries"], bulk["audit_verify_s"], bulk["audit_verify_median_s"], bulk["exact_walk_s"],
                  bulk["exact_walk_median_s"], " ".join("%.1f" % x for x in bulk["verify_loadavg_1min"]),
                  bulk["plain_scan_s"], bulk["plain_scan_sha256_s"]))
        if "concurrency" in out:
            c = out["concurrency"]
            print("concurrency: %d processes x %d appends -> %d entries, chain valid=%s, %.1f s" % (
                c["processes"], c["per_process"], c["entries_checked"], c["valid"], c["seconds"]))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
