#!/usr/bin/env python
"""Fetching a large model file into the artifact cache (module_utils/mlflow/artifacts.py, the module
mlflow_artifact_cache), with the connection cut mid-way: does the resume work, and what does it cost?

Generates a file of --size-mb MiB (not sparse: every MiB differs, so a wrong offset changes the hash),
serves it with the unit tests' stand-in of MLflow's artifact proxy (ArtifactServer in
tests/unit/plugins/module_utils/test_mlflow_artifacts.py: Range -> 206, cut after N bytes), and times,
on the same machine in the same run:

- ``straight``: one uninterrupted download (the baseline);
- ``cut+retry``: the connection is cut after --cut-at percent of the body; the same run resumes from
  the kept offset (Range: bytes=N-);
- ``cut, next run``: the first run has retries=0 and fails, keeping the .part; a second run resumes it
  (the part is hashed again from disk first, as after an interrupted play);
- ``cached``: a run with the file in the cache (no request).

The server runs in a child process (as a tracking server would): in the same process its sending
thread and the download share the interpreter lock, which made the timings meaningless.

Prints a markdown table and checks that every resume asked for exactly the kept offset, that no byte
came twice (bytes received == file size) and that the SHA-256 matched. Loopback and page cache: the
times are the client's hashing and disk writing, not a network's.

With --real-mlflow it checks a real MLflow server instead (``mlflow server`` of this venv, sqlite
backend, proxied artifacts, no auth, on a free loopback port): logs a --real-size-mb file with the
MLflow client, keeps its first 25% as a .part, fetches, and checks that the server answered the
Range request with 206 (its access log, and the bytes received); then stops the server.

Run from the repository root:
    .venv/bin/python benchmarks/llm/resume_fetch.py [--size-mb 300] [--cut-at 40] [--dir /tmp] [--rounds 3]
    .venv/bin/python benchmarks/llm/resume_fetch.py --real-mlflow [--real-size-mb 20]
"""

import argparse
import hashlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.artifacts import ArtifactError, fetch_to_cache  # noqa: E402
from ansible_collections.runlocalai.mlops.tests.unit.plugins.module_utils.test_mlflow_artifacts import (  # noqa: E402
    PATH,
    RUN,
    ArtifactServer,
)

MIB = 1 << 20
ORDER = ["straight", "cut+retry (same run)", "cut, next run (2nd run)", "cached"]


def generate(path, size):
    """Write size bytes (each MiB different) to path; returns their SHA-256."""
    digest = hashlib.sha256()
    block = bytearray(MIB)
    with open(path, "wb") as handle:
        written = counter = 0
        while written < size:
            seed = hashlib.sha256(b"resume-fetch" + counter.to_bytes(8, "big")).digest()
            block[:] = seed * (MIB // len(seed))
            chunk = bytes(block[:min(MIB, size - written)])
            handle.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            counter += 1
    return digest.hexdigest()


class ServerProcess:
    """ArtifactServer in a child process (as a tracking server is), so that its sending does not share
    this process's interpreter lock with the download; the request log comes back when it stops."""

    def __init__(self, source, **options):
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=self._serve, args=(child, source, options), daemon=True)
        self.process.start()
        self.url = self.pipe.recv()
        self.requests = []

    @staticmethod
    def _serve(pipe, source, options):
        server = ArtifactServer(source, **options)
        pipe.send(server.url)
        pipe.recv()
        server.stop()
        pipe.send(server.requests)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.pipe.send("stop")
        self.requests = self.pipe.recv()
        self.process.join(10)

    def ranges(self):
        return [r["range"] for r in self.requests]


def fresh(directory):
    """An empty directory, and the dirty pages of earlier scenarios on disk (not in the next timing)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    os.sync()
    return directory


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def straight(source, cache, size, cut, common, row, problems, notes):
    with ServerProcess(source) as server:
        fresh(cache)
        seconds, result = timed(lambda: fetch_to_cache(server.url, cache_dir=cache, **common))
    row("straight", seconds, result, server, [None])


def cut_and_retry(source, cache, size, cut, common, row, problems, notes):
    with ServerProcess(source, cut_after=cut, cuts=1) as server:
        fresh(cache)
        seconds, result = timed(lambda: fetch_to_cache(server.url, cache_dir=cache, **common))
    row("cut+retry (same run)", seconds, result, server, [None, "bytes=%d-" % cut])
    if result["downloaded_bytes"] != size:
        problems.append("cut+retry: %d bytes received for a %d-byte file" % (result["downloaded_bytes"], size))


def cut_then_next_run(source, cache, size, cut, common, row, problems, notes):
    with ServerProcess(source, cut_after=cut, cuts=1) as server:
        fresh(cache)
        started = time.perf_counter()
        try:
            fetch_to_cache(server.url, cache_dir=cache, **dict(common, retries=0))
            problems.append("cut, next run: the first run did not fail")
        except ArtifactError as exc:
            notes["first run"] = "%.2f s: %s" % (time.perf_counter() - started, exc)
        os.sync()
        kept = os.path.getsize(os.path.join(cache, common["sha256"] + ".gguf.part"))
        if kept != cut:
            problems.append("cut, next run: %d bytes kept, %d sent before the cut" % (kept, cut))
        seconds, result = timed(lambda: fetch_to_cache(server.url, cache_dir=cache, **common))
    row("cut, next run (2nd run)", seconds, result, server, [None, "bytes=%d-" % cut])
    if result["resumed_from"] != cut or result["downloaded_bytes"] != size - cut:
        problems.append("cut, next run: resumed from %d with %d bytes" % (result["resumed_from"], result["downloaded_bytes"]))


def cached(source, cache, size, cut, common, row, problems, notes):
    with ServerProcess(source) as server:
        os.sync()
        seconds, result = timed(lambda: fetch_to_cache(server.url, cache_dir=cache, **common))
    row("cached", seconds, result, server, [])
    if result["changed"] or result["downloaded_bytes"]:
        problems.append("cached: changed=%s, %d bytes" % (result["changed"], result["downloaded_bytes"]))


# The order rotates from round to round, so that no scenario always runs after the same one.
DOWNLOADS = (straight, cut_and_retry, cut_then_next_run)


def real_mlflow(size_mb, directory):
    """The Range check against a real MLflow server; returns the exit status."""
    work = tempfile.mkdtemp(prefix="resume-fetch-mlflow-", dir=directory)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = "http://127.0.0.1:%d" % port
    env = dict(os.environ)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        env.pop(name, None)
    log_path = os.path.join(work, "server.log")
    log = open(log_path, "wb")
    started = time.perf_counter()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", "--backend-store-uri", "sqlite:///%s/mlflow.db" % work,
                               "--artifacts-destination", os.path.join(work, "artifacts")],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if server.poll() is not None or time.perf_counter() - started > 180:
                print("mlflow server did not start:\n" + open(log_path, errors="replace").read()[-2000:])
                return 2
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        print("mlflow server up after %.1f s at %s" % (time.perf_counter() - started, url))
        import mlflow  # pylint: disable=import-outside-toplevel

        size = size_mb * 1000 * 1000
        source = os.path.join(work, "SmolLM2.gguf")
        sha256 = generate(source, size)
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("resume-fetch")
        with mlflow.start_run() as run:
            mlflow.log_artifact(source, artifact_path="model")
        cache = fresh(os.path.join(work, "cache"))
        kept = size // 4
        with open(source, "rb") as handle, open(os.path.join(cache, sha256 + ".gguf.part"), "wb") as part:
            part.write(handle.read(kept))
        seconds, result = timed(lambda: fetch_to_cache(url, run.info.run_id, "model/SmolLM2.gguf", sha256, cache, size=size))
        again = fetch_to_cache(url, run.info.run_id, "model/SmolLM2.gguf", sha256, cache, size=size)
        lines = [line for line in open(log_path, errors="replace").read().splitlines() if "/get-artifact" in line]
        print("run %s, %d bytes logged; a .part of %d bytes kept" % (run.info.run_id, size, kept))
        print("fetch: %.2f s, resumed from %s, %d bytes received, %d request(s); second run changed=%s, cached=%s"
              % (seconds, result["resumes"], result["downloaded_bytes"], result["attempts"], again["changed"], again["cached"]))
        print("server access log:\n  " + "\n  ".join(line.strip() for line in lines))
        ok = (result["resumes"] == [kept] and result["downloaded_bytes"] == size - kept and len(lines) == 1
              and "206 Partial Content" in lines[0] and again["changed"] is False)
        print("the real server answered the Range request with 206, the resume worked" if ok else "PROBLEM: see above")
        return 0 if ok else 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and its workers only
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--cut-at", type=float, default=40.0, help="percent of the body after which the connection is cut")
    parser.add_argument("--dir", default=None, help="where to put the file and the cache (default: a temporary directory)")
    parser.add_argument("--rounds", type=int, default=3, help="every scenario this many times; the table shows the median")
    parser.add_argument("--real-mlflow", action="store_true", help="check Range on a real MLflow server's artifact proxy instead")
    parser.add_argument("--real-size-mb", type=int, default=20, help="the artifact's size for --real-mlflow (MB, 10^6 bytes)")
    args = parser.parse_args()
    if args.real_mlflow:
        return real_mlflow(args.real_size_mb, args.dir)

    work = tempfile.mkdtemp(prefix="resume-fetch-", dir=args.dir)
    size = args.size_mb * MIB
    cut = int(size * args.cut_at / 100.0) + 12345  # not on a chunk boundary
    try:
        source = os.path.join(work, "SmolLM2.gguf")
        generation, sha256 = timed(lambda: generate(source, size))
        cache = os.path.join(work, "cache")
        common = dict(run_id=RUN, artifact_path=PATH, sha256=sha256, size=size, retry_delay=0)
        rows, problems, notes = {}, [], {}

        def row(name, seconds, result, server, expect_ranges):
            ranges = server.ranges()
            if ranges != expect_ranges:
                problems.append("%s: the server saw Range headers %r, expected %r" % (name, ranges, expect_ranges))
            rows.setdefault(name, []).append((seconds, result, ranges))

        for number in range(max(1, args.rounds)):
            shift = number % len(DOWNLOADS)
            for scenario in DOWNLOADS[shift:] + DOWNLOADS[:shift] + (cached,):
                scenario(source, cache, size, cut, common, row, problems, notes)

        with open(os.path.join(cache, sha256 + ".gguf"), "rb") as handle:
            final = hashlib.sha256()
            for block in iter(lambda: handle.read(MIB), b""):
                final.update(block)
        if final.hexdigest() != sha256:
            problems.append("the cached file's SHA-256 is %s, expected %s" % (final.hexdigest(), sha256))

        load = os.getloadavg()
        print("file: %d MiB (%d bytes), generated in %.2f s; cut after %d bytes (%.0f%%); load average %.2f %.2f %.2f, %d CPUs"
              % (args.size_mb, size, generation, cut, args.cut_at, load[0], load[1], load[2], os.cpu_count() or 0))
        print("first run of 'cut, next run' (retries=0) failed after %s" % notes.get("first run", "?"))
        print()
        print("| scenario | time, median (min-max) of %d | MiB/s | bytes received | resumed from | requests (Range) |"
              % len(next(iter(rows.values()))))
        print("|---|---|---|---|---|---|")
        for name, runs in sorted(rows.items(), key=lambda item: ORDER.index(item[0])):
            times = sorted(run[0] for run in runs)
            seconds, result, ranges = runs[-1]
            median = times[len(times) // 2]
            rate = result["downloaded_bytes"] / MIB / median if median and result["downloaded_bytes"] else 0
            print("| %s | %.2f s (%.2f-%.2f) | %s | %d | %s | %s |" % (
                name, median, times[0], times[-1], "%.0f" % rate if rate else "-", result["downloaded_bytes"], result["resumes"] or "-",
                ", ".join(r or "none" for r in ranges) or "no request"))
        print()
        if problems:
            print("PROBLEMS:\n- " + "\n- ".join(problems))
            return 1
        print("resume worked: every resumed request asked for exactly the kept offset, no byte came twice, SHA-256 %s matched"
              % sha256)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
