#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fit check's memory estimate (module_utils/llm/fit.py) against the resident memory of a real
llama-server, on CPU.

For each context per slot x parallel slots it starts llama-server with --ctx-size ctx*parallel
(the total, as the role passes it), f16 K and V caches, no prompt cache (--cache-ram 0) and one KV
buffer per slot (--no-kv-unified), waits for /health, fills every slot's context at once (one
/completion request per slot, concurrently, with a prompt of ctx_per_slot - 64 tokens and
n_predict 16), then reads VmRSS (and VmHWM, the peak) from /proc/PID/status and compares it with
fit.estimate() for the same settings. One set of constants for all cases: nothing is fitted per
case. Prints a Markdown table; --json writes the rows too.

With --vocab-sweep it measures instead what the process costs beside its buffers, against the
size of the vocabulary: small llama files written here (2 layers, random weights, a synthetic BPE
vocabulary of 1,000, 49,152 and 128,000 tokens), one 400-token request each; RSS minus the
weights, the KV cache, the compute and output buffers, and the line through those points (fit.py's
PROCESS_BASE_BYTES and PROCESS_BYTES_PER_VOCAB_TOKEN).

usage: .venv/bin/python benchmarks/llm/fit_vs_rss.py [--server PATH] [--model GGUF] [--threads 2] [--vocab-sweep]
"""

from __future__ import print_function

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import fit, gguf  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.llamacpp import free_port  # noqa: E402

MIB = 1024 * 1024
# What `make setup` builds and unpacks, linked under .cache/llm/ (scripts/setup.sh).
SETUP_LLM = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, ".cache", "llm")
DEFAULT_MODEL = os.path.join(SETUP_LLM, "SmolLM2-135M-Instruct.Q4_1.gguf")
CASES = [(2048, 1), (2048, 4), (8192, 1), (8192, 4)]


def default_server():
    return os.path.join(SETUP_LLM, "llama-server-cpu", "llama-server")


def build_info(server):
    """The source and flags the binary was built from (BUILD-INFO beside it, written by scripts/build-llama-server.sh)."""
    try:
        with open(os.path.join(os.path.dirname(server), "BUILD-INFO")) as handle:
            lines = handle.read().split("\n")
    except (IOError, OSError):
        return "no BUILD-INFO"
    source = [line.split("=", 1)[1].split()[0] for line in lines if line.startswith("source=")]
    flags = [line.split("=", 1)[1] for line in lines if line.startswith("flag=")]
    return "%s, %d build flags" % (source[0] if source else "unknown source", len(flags))


def http(url, body=None, timeout=3600):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read().decode() or "{}")


def proc_status(pid):
    values = {}
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            match = re.match(r"^(VmRSS|VmHWM|RssAnon|RssFile):\s+([0-9]+) kB", line)
            if match:
                values[match.group(1)] = int(match.group(2)) * 1024
    return values


def knows(server, flag):
    out = subprocess.run([server, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60).stdout.decode("utf-8", "replace")
    return flag in out


def buffers(log_text):
    """llama.cpp's own accounting from its log (MiB): model, KV, compute, output buffers."""
    found = {}
    for key, pattern in (("model", r"CPU_Mapped model buffer size\s*=\s*([0-9.]+) MiB"),
                         ("kv", r"CPU KV buffer size\s*=\s*([0-9.]+) MiB"),
                         ("compute", r"CPU compute buffer size\s*=\s*([0-9.]+) MiB"),
                         ("output", r"CPU\s+output buffer size\s*=\s*([0-9.]+) MiB")):
        values = [float(v) for v in re.findall(pattern, log_text)]
        found[key] = values[-1] if values else None
    return found


def prompts(base, ctx, parallel):
    """One prompt per slot of ctx - 64 tokens (token ids), different per slot from the first token on."""
    port_url, vocab_text = base
    tokens = http(port_url + "/tokenize", {"content": vocab_text})["tokens"]
    while len(tokens) < ctx:
        tokens = tokens + tokens
    length = ctx - 64
    return [tokens[slot * 7:slot * 7 + length] for slot in range(parallel)]


def filler_text(words=12000):
    # Varied words and numbers, so a prompt is many distinct tokens (no repetition shortcuts).
    parts = []
    for i in range(words):
        parts.append("%s %d" % (("alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "amber", "north", "light")[i % 10], (i * 7919) % 10007))
    return " ".join(parts)


def start_server(argv, port, log_path, timeout=120):
    """Start llama-server (its output to log_path) and wait until /health says ok: (process, base URL)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("llama-server exited (%s): %s" % (proc.returncode, open(log_path).read()[-2000:]))
        try:
            if http(url + "/health", timeout=2).get("status") == "ok":
                return proc, url
        except Exception:  # pylint: disable=broad-except  # 503 while loading, refused before listening
            pass
        if time.time() > deadline:
            os.killpg(proc.pid, 15)
            raise RuntimeError("llama-server not healthy in %d s" % timeout)
        time.sleep(0.3)


def run_case(server, model, meta, ctx, parallel, threads, unified_flag, log_dir):
    port = free_port()
    argv = [server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "--ctx-size", str(ctx * parallel),
            "--parallel", str(parallel), "--cache-type-k", "f16", "--cache-type-v", "f16", "--cache-ram", "0", "-t", str(threads),
            "-lv", "4"]
    if unified_flag:
        argv.append(unified_flag)
    log_path = os.path.join(log_dir, "llama-server-%d-%d.log" % (ctx, parallel))
    proc, url = start_server(argv, port, log_path)
    try:
        idle = proc_status(proc.pid)
        token_lists = prompts((url, filler_text()), ctx, parallel)
        results, errors = [None] * parallel, []

        def ask(slot):
            try:
                results[slot] = http(url + "/completion", {"prompt": token_lists[slot], "n_predict": 16, "cache_prompt": False,
                                                           "id_slot": slot if parallel > 1 else -1, "temperature": 0})
            except Exception as exc:  # pylint: disable=broad-except
                errors.append("slot %d: %s" % (slot, exc))

        started = time.time()
        workers = [threading.Thread(target=ask, args=(slot,)) for slot in range(parallel)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.time() - started
        if errors:
            raise RuntimeError("; ".join(errors))
        loaded = proc_status(proc.pid)
        evaluated = [r.get("timings", {}).get("prompt_n") or r.get("tokens_evaluated") for r in results]
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
    estimate = fit.estimate(meta, ctx, parallel, "f16", "f16", 0, "cpu")
    with open(log_path) as handle:
        logged = buffers(handle.read())
    return {"ctx_per_slot": ctx, "parallel": parallel, "prompt_tokens": evaluated, "seconds": round(seconds, 1),
            "estimate_bytes": estimate["ram_bytes"], "estimate_parts": estimate["ram"], "rss_bytes": loaded["VmRSS"],
            "hwm_bytes": loaded["VmHWM"], "rss_anon_bytes": loaded.get("RssAnon"), "rss_file_bytes": loaded.get("RssFile"),
            "idle_rss_bytes": idle["VmRSS"], "llama_buffers_mib": logged,
            "error_pct": round(100.0 * (estimate["ram_bytes"] - loaded["VmRSS"]) / loaded["VmRSS"], 1),
            "error_hwm_pct": round(100.0 * (estimate["ram_bytes"] - loaded["VmHWM"]) / loaded["VmHWM"], 1)}


def write_vocab_model(path, vocab):
    """A 2-layer llama file with a synthetic BPE vocabulary of `vocab` tokens and as many merges."""
    import numpy
    import gguf as gguf_lib

    writer = gguf_lib.GGUFWriter(path, "llama")
    embedding, layers, heads, kv_heads, ffn = 64, 2, 4, 2, 128
    writer.add_name("vocab-%d" % vocab)
    writer.add_context_length(4096)
    writer.add_embedding_length(embedding)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(embedding // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf_lib.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    base = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 161 + 162)]
    writer.add_token_list(base + ["w%dx" % i for i in range(vocab - len(base))])
    writer.add_token_types([1] * vocab)
    writer.add_token_merges(["w%d x" % i for i in range(vocab - len(base))])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    rng = numpy.random.RandomState(0)
    head = embedding // heads

    def tensor(name, shape, dtype=numpy.float16):
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(dtype))

    tensor("token_embd.weight", (vocab, embedding))
    for layer in range(layers):
        prefix = "blk.%d." % layer
        tensor(prefix + "attn_norm.weight", (embedding,), numpy.float32)
        tensor(prefix + "attn_q.weight", (embedding, embedding))
        tensor(prefix + "attn_k.weight", (kv_heads * head, embedding))
        tensor(prefix + "attn_v.weight", (kv_heads * head, embedding))
        tensor(prefix + "attn_output.weight", (embedding, embedding))
        tensor(prefix + "ffn_norm.weight", (embedding,), numpy.float32)
        tensor(prefix + "ffn_gate.weight", (ffn, embedding))
        tensor(prefix + "ffn_up.weight", (ffn, embedding))
        tensor(prefix + "ffn_down.weight", (embedding, ffn))
    tensor("output_norm.weight", (embedding,), numpy.float32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def vocab_sweep(server, threads, unified_flag):
    work = tempfile.mkdtemp(prefix="fit-vocab-")
    print("| vocabulary | VmRSS KiB | weights KiB | KV + compute + output KiB (llama.cpp's log) | the rest KiB |")
    print("|---|---|---|---|---|")
    points = []
    for vocab in (1000, 49152, 128000):
        path = os.path.join(work, "vocab-%d.gguf" % vocab)
        write_vocab_model(path, vocab)
        meta = gguf.read_metadata(path)
        port = free_port()
        argv = [server, "-m", path, "--host", "127.0.0.1", "--port", str(port), "--ctx-size", "512", "--parallel", "1",
                "--cache-ram", "0", "-t", str(threads), "-lv", "4"] + ([unified_flag] if unified_flag else [])
        log_path = path + ".log"
        proc, url = start_server(argv, port, log_path)
        try:
            http(url + "/completion", {"prompt": list(range(5, 405)), "n_predict": 8, "cache_prompt": False})
            rss = proc_status(proc.pid)["VmRSS"]
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        with open(log_path) as handle:
            logged = buffers(handle.read())
        buffers_bytes = sum((logged[key] or 0) for key in ("kv", "compute", "output")) * MIB
        rest = rss - meta["weights_bytes"] - buffers_bytes
        points.append((vocab, rest))
        print("| %d | %d | %d | %d | %d |" % (vocab, rss // 1024, meta["weights_bytes"] // 1024, buffers_bytes // 1024, rest // 1024))
        sys.stdout.flush()
    count = float(len(points))
    mean_x = sum(x for x, _y in points) / count
    mean_y = sum(y for _x, y in points) / count
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _y in points)
    print()
    print("the rest = %.1f MiB + %.0f bytes x vocabulary (fit.py: PROCESS_BASE_BYTES %.1f MiB, PROCESS_BYTES_PER_VOCAB_TOKEN %d)" % (
        (mean_y - slope * mean_x) / MIB, slope, fit.PROCESS_BASE_BYTES / float(MIB), fit.PROCESS_BYTES_PER_VOCAB_TOKEN))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=default_server(),
                        help="llama-server binary (default: the one make setup built, .cache/llm/llama-server-cpu/llama-server)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--case", action="append", help="CTX:PARALLEL, repeatable (default: 2048:1 2048:4 8192:1 8192:4)")
    parser.add_argument("--vocab-sweep", action="store_true", help="measure the process's cost against the vocabulary size instead")
    args = parser.parse_args()
    if not args.server or not os.path.isfile(args.server):
        parser.error("no llama-server binary (build one with scripts/build-llama-server.sh, or give --server)")
    if args.vocab_sweep:
        print("server %s (%s)" % (args.server, build_info(args.server)))
        print()
        return vocab_sweep(args.server, args.threads, "--no-kv-unified" if knows(args.server, "--no-kv-unified") else None)
    cases = [tuple(int(x) for x in case.split(":")) for case in args.case] if args.case else CASES
    meta = gguf.read_metadata(args.model)
    unified_flag = "--no-kv-unified" if knows(args.server, "--no-kv-unified") else None
    log_dir = tempfile.mkdtemp(prefix="fit-vs-rss-")
    print("server %s (%s; %s), model %s (%s, %s, %.1f MiB of weights), %d threads, %d CPUs; logs in %s" % (
        args.server, build_info(args.server), "--no-kv-unified" if unified_flag else "no --no-kv-unified flag", os.path.basename(args.model),
        meta["architecture"], meta["quantization"], meta["weights_bytes"] / MIB, args.threads, os.cpu_count(), log_dir))
    rows = []
    print()
    print("| ctx per slot x slots | KV tokens | estimate MiB (weights + KV + compute + process) | VmRSS MiB (anon + file) | VmHWM MiB "
          "| error vs VmRSS | error vs VmHWM | llama.cpp buffers MiB (model / KV / compute / output) | fill time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ctx, parallel in cases:
        row = run_case(args.server, args.model, meta, ctx, parallel, args.threads, unified_flag, log_dir)
        rows.append(row)
        parts = row["estimate_parts"]
        logged = row["llama_buffers_mib"]
        print("| %d x %d | %d | %.1f (%.1f + %.1f + %.1f + %.1f) | %.1f (%.1f + %.1f) | %.1f | %+.1f%% | %+.1f%% | %s / %s / %s / %s | %.1f s |" % (
            ctx, parallel, ctx * parallel, row["estimate_bytes"] / MIB, parts["weights"] / MIB, parts["kv_cache"] / MIB,
            parts["compute"] / MIB, parts["process"] / MIB, row["rss_bytes"] / MIB, (row["rss_anon_bytes"] or 0) / MIB,
            (row["rss_file_bytes"] or 0) / MIB, row["hwm_bytes"] / MIB, row["error_pct"], row["error_hwm_pct"],
            logged["model"], logged["kv"], logged["compute"], logged["output"], row["seconds"]))
        sys.stdout.flush()
    worst = max(abs(row["error_pct"]) for row in rows)
    print()
    print("largest error vs VmRSS: %.1f%% (target: within 15%%)" % worst)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, sort_keys=True)
    return 0 if worst <= 15.0 else 1


if __name__ == "__main__":
    sys.exit(main())
