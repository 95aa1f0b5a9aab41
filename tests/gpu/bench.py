#!/usr/bin/env python3
"""The measuring half of tests/gpu/run.sh: one model service (python -m runlocalai_mlops.serving,
runtime llamacpp) started on one device, checked and timed; the fit estimate; the summary.

  bench.py serve --device cuda|cpu --llama-server BIN --model GGUF --work DIR --out JSON
                 [--requests N] [--max-tokens M] [--ctx-per-slot C] [--parallel P] [--threads T]
  bench.py estimate --model GGUF --device cuda|cpu [--ctx-per-slot C] [--parallel P] --out JSON
  bench.py summary --cuda JSON --cpu JSON --fit-cuda JSON --fit-cpu JSON [--extra JSON] [--out JSON]

PYTHONPATH must hold the package runlocalai_mlops (the collection's module_utils common, drift,
serving and llm, as the model_server role installs them); `estimate` also needs gguf (the
project's .venv, or gguf-py of the llama.cpp source). Standard library otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

MIB = 1024 * 1024
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method, url, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"raw": text.decode("utf-8", "replace")[:500]}


def children(pid):
    """The child processes of pid, whichever of its threads started them."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as handle:
                found.extend(int(p) for p in handle.read().split())
        except OSError:
            continue
    return sorted(set(found))


def rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def gpu_memory_mib(pid):
    """The GPU memory nvidia-smi reports for a process (--query-compute-apps), None when absent."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, "nvidia-smi did not answer"
    seen = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 2 and cells[0].isdigit():
            seen.append((int(cells[0]), cells[1]))
            if int(cells[0]) == pid and cells[1].isdigit():
                return int(cells[1]), None
    # In a VM or container nvidia-smi may list other pids (or none): take the only process then.
    if len(seen) == 1 and seen[0][1].isdigit():
        return int(seen[0][1]), "nvidia-smi lists pid %d, not %d: taken as the only GPU process" % (seen[0][0], pid)
    return None, "nvidia-smi lists no GPU memory for pid %d (%s)" % (pid, out.strip()[:300] or "no compute apps")


def serve(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    port = free_port()
    config = {
        "name": "gpu-check", "version": "1", "model_uri": "models:/gpu-check/1",
        "state_dir": os.path.join(work, "state"), "log_dir": os.path.join(work, "log"), "port": port,
        "threads": args.threads or os.cpu_count() or 2,
        "runtime": "llamacpp", "device": args.device,
        "model_path": os.path.abspath(args.model), "model_sha256": args.model_sha256 or sha256(args.model),
        "llama_server": os.path.abspath(args.llama_server),
        "ctx_per_slot": args.ctx_per_slot, "parallel": args.parallel, "kv_unified": False,
        "cache_type_k": "f16", "cache_type_v": "f16", "cache_ram_mib": 0, "gpu_layers": -1,
        "max_tokens": args.max_tokens, "load_timeout_seconds": 300,
    }
    for key in ("state_dir", "log_dir"):
        os.makedirs(config[key], exist_ok=True)
    config_path = os.path.join(work, "config.json")
    with open(config_path, "w") as handle:
        json.dump(config, handle, indent=1)
    log_path = os.path.join(work, "service.log")
    result = {"device": args.device, "llama_server": config["llama_server"], "config": config_path, "log": log_path,
              "ok": False, "problems": []}
    base = "http://127.0.0.1:%d" % port
    with open(log_path, "wb") as log:
        service = subprocess.Popen([sys.executable, "-m", "runlocalai_mlops.serving", "--config", config_path],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.time()
        ready = None
        while time.time() - started < 300:
            if service.poll() is not None:
                result["problems"].append("the service exited with %s before it was ready" % service.returncode)
                break
            try:
                status, ready = http("GET", base + "/ready", timeout=5)
            except (OSError, ValueError):
                status, ready = None, None
            if status == 200 and ready and ready.get("ready"):
                break
            if ready and ready.get("status") == "error":
                result["problems"].append("/ready says error: %s" % ready)
                break
            time.sleep(0.5)
        result["load_seconds"] = round(time.time() - started, 2)
        result["ready"] = ready
        if not (ready and ready.get("ready")):
            if not result["problems"]:
                result["problems"].append("not ready within 300 s: %s" % ready)
            return result
        if ready.get("device") != args.device:
            result["problems"].append("/ready says device %r, expected %r" % (ready.get("device"), args.device))
        status, models = http("GET", base + "/v1/models", timeout=30)
        result["models"] = models
        described = ((models or {}).get("models") or [{}])[0] if isinstance(models, dict) else {}
        result["gpu_layers_offloaded"] = described.get("gpu_layers_offloaded")
        if args.device == "cuda" and not described.get("gpu_layers_offloaded"):
            result["problems"].append("llama-server offloaded no layer to the GPU (gpu_layers_offloaded %r): the build "
                                      "or the driver does not see the GPU" % described.get("gpu_layers_offloaded"))

        llama = children(service.pid)
        result["llama_server_pid"] = llama[0] if llama else None
        timings, tokens, walls = [], 0, []
        body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": args.max_tokens,
                "temperature": 0.7, "seed": 1, "ignore_eos": True}
        for number in range(args.requests + 1):  # the first one warms up and is not counted
            begin = time.time()
            status, answer = http("POST", base + "/v1/chat/completions", body)
            wall = time.time() - begin
            if status != 200:
                result["problems"].append("request %d: HTTP %s %s" % (number, status, str(answer)[:300]))
                break
            if number == 0:
                result["sample_answer"] = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content", "")[:200]
                continue
            done = (answer.get("usage") or {}).get("completion_tokens") or 0
            tokens += done
            walls.append(wall)
            speed = (answer.get("timings") or {}).get("predicted_per_second")
            if speed:
                timings.append(speed)
        if walls:
            result["requests"] = len(walls)
            result["completion_tokens"] = tokens
            result["tokens_per_second_wall"] = round(tokens / sum(walls), 1)
            if timings:
                result["tokens_per_second_generation"] = round(statistics.median(timings), 1)
        if result["llama_server_pid"]:
            result["llama_server_rss_mib"] = round(rss_mib(result["llama_server_pid"]) or 0, 1)
            if args.device == "cuda":
                result["vram_mib"], note = gpu_memory_mib(result["llama_server_pid"])
                if note:
                    result["vram_note"] = note
        else:
            result["problems"].append("no llama-server child process found")
        result["ok"] = not result["problems"]
        return result
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
                service.wait()
        with open(log_path, "rb") as handle:
            result["service_log_tail"] = handle.read()[-3000:].decode("utf-8", "replace")


def estimate(args):
    from runlocalai_mlops.llm import fit, gguf  # pylint: disable=import-outside-toplevel

    meta = gguf.read_metadata(args.model)
    value = fit.estimate(meta, args.ctx_per_slot, args.parallel, device=args.device, gpu_layers=None)
    return {"device": args.device, "meta": dict((k, meta[k]) for k in ("architecture", "quantization", "layers", "weights_bytes", "file_bytes")),
            "ram_mib": round(value["ram_bytes"] / MIB, 1), "vram_mib": round(value["vram_bytes"] / MIB, 1),
            "ram": dict((k, round(v / MIB, 1)) for k, v in value["ram"].items()),
            "vram": dict((k, round(v / MIB, 1)) for k, v in value["vram"].items())}


def _difference(measured, estimated):
    if not measured or not estimated:
        return None
    return round((estimated - measured) / float(measured) * 100.0, 1)


def summary(args):
    def load(path):
        if not path or not os.path.isfile(path):
            return {}
        with open(path) as handle:
            return json.load(handle)

    cuda, cpu, fit_cuda, fit_cpu = load(args.cuda), load(args.cpu), load(args.fit_cuda), load(args.fit_cpu)
    extra = load(args.extra)
    out = dict(extra)
    out.update({"cuda": cuda, "cpu": cpu, "fit_cuda": fit_cuda, "fit_cpu": fit_cpu})
    out["ready_device_cuda"] = (cuda.get("ready") or {}).get("device") == "cuda"
    gpu_speed = cuda.get("tokens_per_second_generation") or cuda.get("tokens_per_second_wall")
    cpu_speed = cpu.get("tokens_per_second_generation") or cpu.get("tokens_per_second_wall")
    out["speedup"] = round(gpu_speed / cpu_speed, 2) if gpu_speed and cpu_speed else None
    # % difference: (estimate - measured) / measured; positive = the estimate asks for more.
    out["vram_estimate_vs_measured_pct"] = _difference(cuda.get("vram_mib"), fit_cuda.get("vram_mib"))
    out["cpu_rss_estimate_vs_measured_pct"] = _difference(cpu.get("llama_server_rss_mib"), fit_cpu.get("ram_mib"))
    out["ok"] = bool(cuda.get("ok") and cpu.get("ok") and out["ready_device_cuda"])
    lines = [
        "GPU check: %s" % ("PASS" if out["ok"] else "FAIL"),
        "  /ready on the CUDA build: device=%s; layers on the GPU: %s"
        % ((cuda.get("ready") or {}).get("device"), cuda.get("gpu_layers_offloaded")),
        "  tokens/s (generation, median of %s requests of %s tokens): cuda %s, cpu %s, speedup %s"
        % (cuda.get("requests"), args.max_tokens, gpu_speed, cpu_speed, out["speedup"]),
        "  tokens/s (end to end through the service): cuda %s, cpu %s"
        % (cuda.get("tokens_per_second_wall"), cpu.get("tokens_per_second_wall")),
        "  VRAM: measured %s MiB (nvidia-smi), fit estimate %s MiB: %s%%"
        % (cuda.get("vram_mib"), fit_cuda.get("vram_mib"), out["vram_estimate_vs_measured_pct"]),
        "  CPU RSS of llama-server: measured %s MiB, fit estimate %s MiB: %s%%"
        % (cpu.get("llama_server_rss_mib"), fit_cpu.get("ram_mib"), out["cpu_rss_estimate_vs_measured_pct"]),
    ]
    for side in (cuda, cpu):
        for problem in side.get("problems", []):
            lines.append("  problem (%s): %s" % (side.get("device"), problem))
    out["summary"] = lines
    text = json.dumps(out, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    print("\n".join(lines))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench.py")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "estimate"):
        one = sub.add_parser(name)
        one.add_argument("--device", choices=("cuda", "cpu"), required=True)
        one.add_argument("--model", required=True)
        one.add_argument("--ctx-per-slot", type=int, default=2048)
        one.add_argument("--parallel", type=int, default=1)
        one.add_argument("--out", required=True)
        if name == "serve":
            one.add_argument("--llama-server", required=True)
            one.add_argument("--model-sha256")
            one.add_argument("--work", required=True)
            one.add_argument("--requests", type=int, default=8)
            one.add_argument("--max-tokens", type=int, default=128)
            one.add_argument("--threads", type=int, default=0)
    one = sub.add_parser("summary")
    for name in ("--cuda", "--cpu", "--fit-cuda", "--fit-cpu", "--extra", "--out"):
        one.add_argument(name)
    one.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    if args.command == "summary":
        return 0 if summary(args)["ok"] else 1
    try:
        result = serve(args) if args.command == "serve" else estimate(args)
    except Exception as exc:  # pylint: disable=broad-except  # reported in the results, not a traceback alone
        result = {"device": args.device, "ok": False, "problems": ["%s: %s" % (type(exc).__name__, exc)]}
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
    if result.get("problems"):
        sys.stderr.write("bench.py %s (%s): %s\n" % (args.command, args.device, "; ".join(result["problems"])))
    return 0 if args.command == "estimate" or result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
