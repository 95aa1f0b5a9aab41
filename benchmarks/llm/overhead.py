#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What the model service costs in front of llama-server: tokens per second and time to first token
of streamed chat completions through our service (the app, which starts llama-server as its child)
against a bare llama-server started by hand with the very same flags (serving.llamacpp.server_argv
of the same configuration), same binary, same model, same prompts, same client, in one run.

Both servers run side by side (an idle llama-server takes no CPU); each round measures one, then the
other (the order alternates by round), at each concurrency (1 and 4 streams by default: --parallel
slots, so 4 streams generate at once). Requests are greedy (temperature 0), `ignore_eos` with a fixed
max_tokens (64), no prompt cache reuse (cache_prompt false), so every request does the same work on
both. The client is the same code for both: one thread per stream, each with its keep-alive
http.client connection (as OpenAI client libraries keep theirs; llama-server closes its connection
after every streamed answer, so for bare the client reconnects, inside the measured time, as a
pooling client does; our service keeps it and connects to its child per request instead), the event
stream read as it arrives; time to first token (TTFT) is from sending the request to the first event that
carries content; a stream's decode speed is (tokens - 1) / (last token - first token); aggregate
tokens/s is all tokens of a batch over its wall time. Also reported: the CPU time our service process
used per 1000 tokens (from /proc), the overhead that does not depend on how busy the machine is.

On a shared machine the speed of one batch swings with the other jobs' load far more than by 3 %,
so each bare batch is paired with the ours batch run right before or after it, and the table also
gives the median over rounds of those paired ratios (and differences). A second phase measures the
TTFT overhead alone: --probes alternating single requests for one token of a short, cached prompt
(llama-server's own work per request is then a few ms), bare and ours in turn; reported as the
median of the paired differences. And the CPU time our service process used per 1000 tokens (from
/proc): the overhead that does not depend on the load.

Targets (issue): at most 3 % fewer tokens/s and at most 5 ms more TTFT than bare llama-server.

usage: .venv/bin/python benchmarks/llm/overhead.py [--server PATH] [--model GGUF] [--threads 2] [--parallel 4]
       [--max-tokens 64] [--rounds 10] [--requests 1] [--concurrency 1 4] [--probes 200] [--json FILE]
"""

from __future__ import print_function

import argparse
import glob
import hashlib
import http.client
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ansible_collections.runlocalai.mlops.plugins.module_utils.serving import config as serving_config  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving import llamacpp  # noqa: E402

MODULE_UTILS = os.path.join(ROOT, "ansible_collections", "runlocalai", "mlops", "plugins", "module_utils")
# What `make setup` builds and unpacks, linked under .cache/llm/ (scripts/setup.sh).
SETUP_LLM = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, ".cache", "llm")
DEFAULT_MODEL = os.path.join(SETUP_LLM, "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator works to a ten year old.",
    "List some ideas for a weekend trip in the mountains, with a sentence on each.",
    "Describe the water cycle in a few paragraphs.",
    "What should I consider when adopting a dog? Give practical advice.",
    "Summarize the plot of a detective novel you would like to read.",
    "Give me a recipe for a simple vegetable soup, step by step.",
    "Explain the difference between weather and climate.",
]


def default_server():
    return os.path.join(SETUP_LLM, "llama-server-cpu", "llama-server")


def cpu_seconds(pid):
    """utime + stime of a process (seconds), from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def get(port, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_status(port, path, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited with code %s while starting" % proc.returncode)
        try:
            if get(port, path, timeout=2)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise SystemExit("no 200 from %s within %d s" % (path, timeout))


def connect(port):
    """A keep-alive client connection (as OpenAI client libraries keep theirs), TCP_NODELAY."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    reconnect(conn)
    return conn


def reconnect(conn):
    conn.close()
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def closed_by_server(conn):
    """Whether the server closed the connection (llama-server closes it after every streamed answer,
    though it says keep-alive): what a pooling client checks before it reuses one."""
    if conn.sock is None:
        return True
    readable = select.select([conn.sock], [], [], 0)[0]
    return bool(readable) and conn.sock.recv(1, socket.MSG_PEEK) == b""


def send(conn, body):
    """Send on the kept connection, or on a new one when the server closed it (counted in the time,
    as a pooling client pays it)."""
    if closed_by_server(conn):
        reconnect(conn)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        return conn.getresponse()
    except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
        reconnect(conn)  # closed between the check and the request
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        return conn.getresponse()


def stream_chat(conn, prompt, max_tokens, cache_prompt=False):
    """One streamed chat completion on a keep-alive connection: (ttft seconds, tokens, decode tokens/s
    or None, total seconds)."""
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "cache_prompt": cache_prompt, "stream": True}).encode()
    started = time.perf_counter()
    response = send(conn, body)
    if response.status != 200:
        raise RuntimeError("HTTP %d: %s" % (response.status, response.read()[:300]))
    buffer = b""
    first = last = None
    tokens = 0
    while True:
        piece = response.read1(65536)
        if not piece:
            break
        now = time.perf_counter()
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if not event.startswith(b"data: ") or event == b"data: [DONE]":
                continue
            choices = json.loads(event[6:]).get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                tokens += 1
                last = now
                if first is None:
                    first = now
    total = time.perf_counter() - started
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    return first - started, tokens, decode, total


def run_batch(port, concurrency, requests_per_stream, prompts, max_tokens):
    """`concurrency` streams at once, each `requests_per_stream` requests in a row: per-request
    results and the batch's wall time."""
    results = []
    errors = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def stream(index):
        conn = connect(port)
        barrier.wait()
        try:
            for k in range(requests_per_stream):
                result = stream_chat(conn, prompts[(index + k * concurrency) % len(prompts)], max_tokens)
                with lock:
                    results.append(result)
        except Exception as exc:  # pylint: disable=broad-except
            with lock:
                errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return results, wall


def copy_package(directory):
    package = os.path.join(directory, "runlocalai_mlops")
    os.makedirs(package)
    open(os.path.join(package, "__init__.py"), "w").close()
    for sub in ("common", "drift", "serving"):
        os.makedirs(os.path.join(package, sub))
        for path in glob.glob(os.path.join(MODULE_UTILS, sub, "*.py")):
            shutil.copy(path, os.path.join(package, sub))
    return directory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=default_server(), help="llama-server binary (default: the cached CPU build)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx-per-slot", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1, help="requests in a row per stream in each batch")
    parser.add_argument("--probes", type=int, default=200, help="TTFT probe pairs (0: none)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    if not args.server or not os.access(args.server, os.X_OK):
        raise SystemExit("no llama-server binary (scripts/build-llama-server.sh, or --server)")
    if not os.path.isfile(args.model):
        raise SystemExit("no model at %s (--model)" % args.model)
    with open(args.model, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    work = tempfile.mkdtemp(prefix="llm-overhead-")
    ours_port = llamacpp.free_port()
    config = serving_config.make_config({
        "name": "bench", "version": "1", "model_uri": "models:/bench/1", "runtime": "llamacpp", "state_dir": os.path.join(work, "state"),
        "log_dir": os.path.join(work, "log"), "port": ours_port, "model_path": args.model, "model_sha256": digest, "llama_server": args.server,
        "threads": args.threads, "parallel": args.parallel, "ctx_per_slot": args.ctx_per_slot, "max_tokens": args.max_tokens,
        "device": args.device})
    bare_port = llamacpp.free_port()
    argv = llamacpp.server_argv(config, bare_port)
    procs = []
    try:
        bare_log = open(os.path.join(work, "bare.log"), "wb")
        bare = subprocess.Popen(argv, stdout=bare_log, stderr=subprocess.STDOUT)
        procs.append(bare)
        config_path = os.path.join(work, "bench.json")
        with open(config_path, "w") as handle:
            json.dump(config, handle)
        ours_log = open(os.path.join(work, "service.log"), "wb")
        ours = subprocess.Popen([sys.executable, "-m", "runlocalai_mlops.serving", "--config", config_path], cwd=work, stdout=ours_log,
                                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=copy_package(os.path.join(work, "lib"))))
        procs.append(ours)
        wait_status(bare_port, "/health", bare)
        wait_status(ours_port, "/ready", ours)
        targets = {"bare": bare_port, "ours": ours_port}
        for port in targets.values():  # warm-up
            run_batch(port, max(args.concurrency), 1, PROMPTS, args.max_tokens)
        load_before = os.getloadavg()
        raw = dict((name, dict((c, []) for c in args.concurrency)) for name in targets)
        service_cpu = 0.0
        service_tokens = 0
        for round_index in range(args.rounds):
            order = ["bare", "ours"] if round_index % 2 == 0 else ["ours", "bare"]
            for concurrency in args.concurrency:
                for name in order:
                    before = cpu_seconds(ours.pid) if name == "ours" else None
                    results, wall = run_batch(targets[name], concurrency, args.requests, PROMPTS, args.max_tokens)
                    if name == "ours":
                        service_cpu += cpu_seconds(ours.pid) - before
                        service_tokens += sum(r[1] for r in results)
                    raw[name][concurrency].append({"results": results, "wall": wall})
            sys.stderr.write("round %d/%d done\n" % (round_index + 1, args.rounds))
        probes = {"bare": [], "ours": []}
        probe_prompt = "Say hello."
        conns = dict((name, connect(port)) for name, port in targets.items())
        for conn in conns.values():  # the prompt cached: a probe's work is a token or two
            stream_chat(conn, probe_prompt, 1, cache_prompt=True)
        for index in range(args.probes):
            for name in (["bare", "ours"] if index % 2 == 0 else ["ours", "bare"]):
                probes[name].append(stream_chat(conns[name], probe_prompt, 1, cache_prompt=True)[0])
        for conn in conns.values():
            conn.close()
        load_after = os.getloadavg()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def summary(batches):
        ttft = [r[0] for b in batches for r in b["results"]]
        decode = [r[2] for b in batches for r in b["results"] if r[2]]
        aggregate = [sum(r[1] for r in b["results"]) / b["wall"] for b in batches]
        tokens = set(r[1] for b in batches for r in b["results"])
        return {"ttft_ms_median": statistics.median(ttft) * 1000.0, "decode_tps_median": statistics.median(decode),
                "aggregate_tps_median": statistics.median(aggregate), "requests": len(ttft), "tokens_per_request": sorted(tokens),
                "ttft_ms_best": min(ttft) * 1000.0, "decode_tps_best": max(decode), "aggregate_tps_best": max(aggregate)}

    def paired(concurrency):
        """Medians over rounds of the paired overheads: decode and aggregate tok/s (%), TTFT (ms)."""
        decode, aggregate, ttft = [], [], []
        for bare_b, ours_b in zip(raw["bare"][concurrency], raw["ours"][concurrency]):
            b, o = summary([bare_b]), summary([ours_b])
            decode.append(100.0 * (b["decode_tps_median"] - o["decode_tps_median"]) / b["decode_tps_median"])
            aggregate.append(100.0 * (b["aggregate_tps_median"] - o["aggregate_tps_median"]) / b["aggregate_tps_median"])
            ttft.append(o["ttft_ms_median"] - b["ttft_ms_median"])
        return statistics.median(decode), statistics.median(aggregate), statistics.median(ttft)

    rows = []
    for concurrency in (args.concurrency if args.rounds else ()):
        bare_s, ours_s = summary(raw["bare"][concurrency]), summary(raw["ours"][concurrency])
        bare_s["paired"] = ours_s["paired"] = paired(concurrency)
        rows.append((concurrency, bare_s, ours_s))
    nproc = os.cpu_count()
    print("llama-server %s, model %s, %d threads, --parallel %d, ctx %d per slot, max_tokens %d (ignore_eos, greedy), "
          "%d rounds x %d requests per stream; %d CPUs, load average %.2f before, %.2f after"
          % (args.server, os.path.basename(args.model), args.threads, args.parallel, args.ctx_per_slot, args.max_tokens, args.rounds,
             args.requests, nproc, load_before[0], load_after[0]))
    print()
    print("| streams | decode tok/s per stream, bare / ours | overhead (paired) | aggregate tok/s, bare / ours | overhead (paired) "
          "| TTFT median, bare / ours | overhead (paired) |")
    print("|---:|---|---:|---|---:|---|---:|")
    for concurrency, bare_s, ours_s in rows:
        decode, aggregate, ttft = ours_s["paired"]
        print("| %d | %.1f / %.1f | %+.1f %% (%+.1f %%) | %.1f / %.1f | %+.1f %% (%+.1f %%) | %.1f / %.1f ms | %+.1f ms (%+.1f ms) |" % (
            concurrency, bare_s["decode_tps_median"], ours_s["decode_tps_median"],
            100.0 * (bare_s["decode_tps_median"] - ours_s["decode_tps_median"]) / bare_s["decode_tps_median"], decode,
            bare_s["aggregate_tps_median"], ours_s["aggregate_tps_median"],
            100.0 * (bare_s["aggregate_tps_median"] - ours_s["aggregate_tps_median"]) / bare_s["aggregate_tps_median"], aggregate,
            bare_s["ttft_ms_median"], ours_s["ttft_ms_median"], ours_s["ttft_ms_median"] - bare_s["ttft_ms_median"], ttft))
    print()
    if rows:
        print("Best of the rounds (the batch least disturbed by other jobs), bare / ours:")
        print()
        print("| streams | decode tok/s per stream | overhead | aggregate tok/s | overhead | TTFT (fastest request) | overhead |")
        print("|---:|---|---:|---|---:|---|---:|")
        for concurrency, bare_s, ours_s in rows:
            print("| %d | %.1f / %.1f | %+.1f %% | %.1f / %.1f | %+.1f %% | %.1f / %.1f ms | %+.1f ms |" % (
                concurrency, bare_s["decode_tps_best"], ours_s["decode_tps_best"],
                100.0 * (bare_s["decode_tps_best"] - ours_s["decode_tps_best"]) / bare_s["decode_tps_best"],
                bare_s["aggregate_tps_best"], ours_s["aggregate_tps_best"],
                100.0 * (bare_s["aggregate_tps_best"] - ours_s["aggregate_tps_best"]) / bare_s["aggregate_tps_best"],
                bare_s["ttft_ms_best"], ours_s["ttft_ms_best"], ours_s["ttft_ms_best"] - bare_s["ttft_ms_best"]))
        print()
    if args.probes:
        differences = [1000.0 * (o - b) for b, o in zip(probes["bare"], probes["ours"])]
        print("TTFT probes (one token of a cached prompt, %d pairs): median bare %.2f ms, ours %.2f ms; paired difference median %+.2f ms "
              "(quartiles %+.2f / %+.2f ms); fastest bare %.2f ms, ours %.2f ms"
              % (args.probes, 1000.0 * statistics.median(probes["bare"]), 1000.0 * statistics.median(probes["ours"]),
                 statistics.median(differences), *statistics.quantiles(differences, n=4)[::2],
                 1000.0 * min(probes["bare"]), 1000.0 * min(probes["ours"])))
    print("service process CPU: %.2f ms per 1000 tokens relayed (%.2f s for %d tokens); overhead = fewer tok/s or more ms than bare"
          % (1000.0 * 1000.0 * service_cpu / max(service_tokens, 1), service_cpu, service_tokens))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "rows": [{"streams": c, "bare": b, "ours": o} for c, b, o in rows],
                       "service_cpu_s": service_cpu, "service_tokens": service_tokens, "load": [load_before, load_after],
                       "raw": raw, "probes": probes}, handle, indent=1)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
