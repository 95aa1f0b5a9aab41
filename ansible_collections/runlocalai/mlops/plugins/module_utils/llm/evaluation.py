# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The validation gate of an LLM version: an evaluation set kept in git, answered with greedy
decoding by the version's own GGUF file served by llama-server on a scratch instance (loopback, a
random port and key, one slot, gone when the evaluation ends), scored, timed and compared with the
champion.

The evaluation set is a YAML (or JSON) file:

    name: smollm2-basics          # optional
    max_tokens: 32                # per item unless the item says otherwise (default 64)
    items:
      - id: capital-germany
        prompt: What is the capital of Germany?      # or messages: [{role, content}, ...]
        expect: {contains: Berlin}                  # exact | contains | regex | choice

Matchers, each on the answer's text: ``exact`` (equal after trimming white space and trailing
punctuation, case-insensitive), ``contains`` (a substring, case-insensitive; a list: any of them),
``regex`` (Python ``re.search``), ``choice`` (``{choices: [yes, no], answer: no}``: the first of the
choices that appears in the answer as a whole word, case-insensitive, must be the answer).

Metrics: ``score`` (share of items answered right), ``ttft_p50_ms`` / ``ttft_p95_ms`` (time to the
first token as the client sees it, streaming, prompt cache off) and ``tokens_per_second`` (median
of llama-server's own generation speed per item). Thresholds and the champion comparison use
mlflow/evaluation.py's rules; the report is recorded on the version with the same tags
(validation.passed, ...) that the registry's promotion gate checks for every model.

Plain Python (the gate runs on the controller); the server is serving/llamacpp.py's LlamaServer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import json
import math
import os
import re
import time

from ..common.errors import InputError, MlopsError
from ..common.files import file_sha256
from ..host.base import usable_cpus
from ..mlflow.artifacts import fetch_to_cache
from ..mlflow.evaluation import check_thresholds, compare_champion, validate_threshold_names
from ..mlflow.registry import alias_dict, tag_dict
from ..serving.llamacpp import loopback_server
from .gguf import FORMAT, TAG_PREFIX

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None
    HAS_YAML = False

MATCHERS = ("exact", "contains", "regex", "choice")
METRICS = frozenset(["score", "ttft_p50_ms", "ttft_p95_ms", "tokens_per_second"])
MIN_ITEMS = 20
DEFAULT_MAX_TOKENS = 64
ANSWER_KEPT = 200          # characters of each answer kept in the report
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


class EvaluationError(MlopsError):
    """The evaluation could not run (the server did not start, an item got no answer)."""


# -- the evaluation set ------------------------------------------------------------------------
def _item_error(index, item_id, message):
    return InputError("eval_set: item %d%s: %s" % (index + 1, " (%s)" % item_id if item_id else "", message))


def _check_expect(index, item_id, expect):
    if not isinstance(expect, dict) or len(expect) != 1:
        raise _item_error(index, item_id, "expect must be one of %s, e.g. {contains: Berlin}" % ", ".join(MATCHERS))
    kind, value = list(expect.items())[0]
    if kind not in MATCHERS:
        raise _item_error(index, item_id, "expect: %r is not one of %s" % (kind, ", ".join(MATCHERS)))
    if kind == "exact" and not isinstance(value, str):
        raise _item_error(index, item_id, "expect.exact must be a string")
    if kind == "contains":
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise _item_error(index, item_id, "expect.contains must be a non-empty string or a list of them")
        value = values
    if kind == "regex":
        if not isinstance(value, str):
            raise _item_error(index, item_id, "expect.regex must be a string")
        try:
            re.compile(value)
        except re.error as exc:
            raise _item_error(index, item_id, "expect.regex %r does not compile: %s" % (value, exc))
    if kind == "choice":
        choices = value.get("choices") if isinstance(value, dict) else None
        if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) and c for c in choices)):
            raise _item_error(index, item_id, "expect.choice needs choices: a list of at least two strings")
        if value.get("answer") not in choices:
            raise _item_error(index, item_id, "expect.choice.answer must be one of its choices %s" % choices)
        value = {"choices": choices, "answer": value["answer"]}
    return {kind: value}


def _check_messages(index, item_id, messages):
    if not isinstance(messages, list) or not messages:
        raise _item_error(index, item_id, "messages must be a non-empty list of {role, content}")
    for message in messages:
        if not (isinstance(message, dict) and message.get("role") in ("system", "user", "assistant")
                and isinstance(message.get("content"), str)):
            raise _item_error(index, item_id, "each message needs a role (system, user or assistant) and a content string")
    return messages


def parse_eval_set(data, source="eval_set", min_items=MIN_ITEMS):
    """The evaluation set as a dict(name, max_tokens, items); InputError naming the item and field."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise InputError("eval_set: %s needs a list `items` (each: id, prompt or messages, expect)" % source)
    default_max = data.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(default_max, int) or isinstance(default_max, bool) or default_max < 1:
        raise InputError("eval_set: max_tokens must be a whole number of 1 or more, got %r" % (default_max,))
    items, seen = [], set()
    for index, raw in enumerate(data["items"]):
        if not isinstance(raw, dict):
            raise _item_error(index, None, "must be a mapping with id, prompt or messages, and expect")
        item_id = raw.get("id")
        if not isinstance(item_id, str) or not ID_RE.match(item_id):
            raise _item_error(index, None, "id must be 1 to 80 letters, digits, '_', '.', ':' or '-', got %r" % (item_id,))
        if item_id in seen:
            raise _item_error(index, item_id, "id is used twice")
        seen.add(item_id)
        unknown = sorted(set(raw) - set(["id", "prompt", "messages", "expect", "max_tokens"]))
        if unknown:
            raise _item_error(index, item_id, "unknown key(s) %s" % ", ".join(unknown))
        if ("prompt" in raw) == ("messages" in raw):
            raise _item_error(index, item_id, "give either prompt or messages")
        if "prompt" in raw:
            if not isinstance(raw["prompt"], str) or not raw["prompt"].strip():
                raise _item_error(index, item_id, "prompt must be a non-empty string")
            messages = [{"role": "user", "content": raw["prompt"]}]
        else:
            messages = _check_messages(index, item_id, raw["messages"])
        max_tokens = raw.get("max_tokens", default_max)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _item_error(index, item_id, "max_tokens must be a whole number of 1 or more")
        items.append({"id": item_id, "messages": messages, "expect": _check_expect(index, item_id, raw.get("expect")),
                      "max_tokens": max_tokens})
    if len(items) < min_items:
        raise InputError("eval_set: %s has %d item(s); the gate needs at least %d" % (source, len(items), min_items))
    return {"name": data.get("name") or os.path.splitext(os.path.basename(source))[0], "max_tokens": default_max, "items": items}


def load_eval_set(path, min_items=MIN_ITEMS):
    if not HAS_YAML:  # pragma: no cover
        raise InputError("eval_set: reading it needs PyYAML")
    if not os.path.isfile(path):
        raise InputError("eval_set: %s does not exist" % path)
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError("eval_set: cannot read %s: %s" % (path, exc))
    evalset = parse_eval_set(data, path, min_items)
    evalset["sha256"] = file_sha256(path)
    return evalset


# -- scoring -------------------------------------------------------------------------------------
def normalize(text):
    return re.sub(r"[\s.!?;:,]+$", "", (text or "").strip()).casefold()


def matches(expect, answer):
    """Whether the answer meets the item's expectation (see the module's docstring)."""
    kind, value = list(expect.items())[0]
    text = answer or ""
    if kind == "exact":
        return normalize(text) == normalize(value)
    if kind == "contains":
        return any(v.casefold() in text.casefold() for v in value)
    if kind == "regex":
        return re.search(value, text) is not None
    found = None
    best = None
    for choice in value["choices"]:
        match = re.search(r"(?<!\w)%s(?!\w)" % re.escape(choice), text, re.IGNORECASE)
        if match and (best is None or match.start() < best):
            found, best = choice, match.start()
    return found == value["answer"]


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def summarize(results):
    """The gate's metrics from the per-item results."""
    speeds = [r["tokens_per_second"] for r in results if r["tokens_per_second"] is not None]
    ttfts = [r["ttft_ms"] for r in results]
    return {"score": round(sum(1 for r in results if r["passed"]) / float(len(results)), 4),
            "items": len(results), "correct": sum(1 for r in results if r["passed"]),
            "ttft_p50_ms": round(percentile(ttfts, 50), 1), "ttft_p95_ms": round(percentile(ttfts, 95), 1),
            "tokens_per_second": round(percentile(speeds, 50), 1) if speeds else 0.0}


# -- asking the scratch server ------------------------------------------------------------------
def request_body(item):
    """Greedy decoding, no prompt cache (each item's time to first token includes its prompt)."""
    return {"messages": item["messages"], "max_tokens": item["max_tokens"], "stream": True, "temperature": 0.0,
            "top_k": 1, "seed": 0, "cache_prompt": False}


def read_stream(lines, started, clock=time.monotonic):
    """Read an OpenAI chat stream (an iterator of raw SSE lines): dict(answer, ttft_ms, finish_reason,
    timings). The first token's time is when the first non-empty content arrives."""
    parts, first, finish, timings = [], None, None, {}
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else raw.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            event = json.loads(data)
        except ValueError:
            raise EvaluationError("llama-server sent an event that is not JSON: %r" % data[:200])
        if "error" in event:
            raise EvaluationError("llama-server answered an error: %s" % json.dumps(event["error"])[:300])
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                if first is None:
                    first = clock()
                parts.append(content)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        if event.get("timings"):
            timings = event["timings"]
    end = clock()
    return {"answer": "".join(parts), "ttft_ms": ((first if first is not None else end) - started) * 1000.0,
            "finish_reason": finish, "timings": timings}


def ask(server, item, timeout=120.0):
    conn = server.connection(timeout)
    try:
        started = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=json.dumps(request_body(item)).encode("utf-8"), headers=server.headers())
        response = conn.getresponse()
        if response.status != 200:
            detail = response.read()[:300].decode("utf-8", "replace")
            raise EvaluationError("llama-server answered item %s with HTTP %d: %s" % (item["id"], response.status, detail))
        result = read_stream(iter(response.readline, b""), started)
    except (OSError, http.client.HTTPException) as exc:
        raise EvaluationError("llama-server gave no answer to item %s (%s: %s); its last output:\n%s"
                              % (item["id"], type(exc).__name__, exc, server.output()))
    finally:
        conn.close()
    speed = result["timings"].get("predicted_per_second")
    return {"id": item["id"], "answer": result["answer"], "passed": matches(item["expect"], result["answer"]),
            "ttft_ms": result["ttft_ms"], "finish_reason": result["finish_reason"],
            "completion_tokens": result["timings"].get("predicted_n"),
            "tokens_per_second": float(speed) if speed else None}


def scratch_config(llama_server, gguf_path, ctx_size, threads, name):
    """The scratch instance: one slot, f16 KV cache, no prompt cache, CPU (the gate judges answers;
    its speed numbers are the controller's). No more threads than the CPUs it may run on: llama.cpp's
    threads spin while they wait, and two on one CPU take turns (several times slower)."""
    return {"llama_server": llama_server, "model_path": gguf_path, "ctx_per_slot": ctx_size, "parallel": 1, "kv_unified": False,
            "cache_type_k": "f16", "cache_type_v": "f16", "cache_ram_mib": 0, "threads": min(threads, usable_cpus()),
            "device": "cpu", "gpu_layers": 0, "name": name}


def check_run(llama_server, evalset, ctx_size):
    if not (os.path.isfile(llama_server) and os.access(llama_server, os.X_OK)):
        raise InputError("llama_server: %s is not an executable file (make setup builds one under .cache/llm/)" % llama_server)
    longest = max(item["max_tokens"] for item in evalset["items"])
    if ctx_size <= longest:
        raise InputError("ctx_size: %d leaves no room for prompts of up to %d tokens of answer" % (ctx_size, longest))


def run_eval_set(llama_server, gguf_path, evalset, ctx_size=2048, threads=2, load_timeout=120, name="candidate"):
    """Every item through a scratch llama-server on gguf_path: the per-item results, in order."""
    check_run(llama_server, evalset, ctx_size)
    server = loopback_server(scratch_config(llama_server, gguf_path, ctx_size, threads, name))
    try:
        server.start()
        try:
            server.wait_ready(load_timeout)
        except RuntimeError as exc:
            raise EvaluationError("the scratch llama-server for %s did not start: %s" % (name, exc))
        return [ask(server, item) for item in evalset["items"]]
    finally:
        server.close()


# -- the gate ---------------------------------------------------------------------------------------
def gguf_version(client, name, version):
    """(version entity, its tags) of a registered GGUF version; InputError when it is not one."""
    entity = client.get_version(name, version)
    if entity is None:
        raise InputError("version: registered model %r has no version %s" % (name, version))
    tags = tag_dict(entity)
    if tags.get(TAG_PREFIX + "format") != FORMAT:
        raise InputError("version: %s version %s is not a registered GGUF file (no tag %sformat=%s; register it with "
                         "mlflow_gguf_model)" % (name, version, TAG_PREFIX, FORMAT))
    return entity, tags


def fetch_version(connection, entity, tags, cache_dir, keep):
    """The version's GGUF file in the controller's cache (downloaded once, sha256 checked)."""
    if not os.path.isdir(cache_dir):
        try:
            os.makedirs(cache_dir, 0o700)
        except OSError as exc:
            raise InputError("cache_dir: cannot create %s: %s" % (cache_dir, exc))
    result = fetch_to_cache(connection["tracking_uri"], entity["run_id"], tags[TAG_PREFIX + "artifact_path"],
                            tags[TAG_PREFIX + "sha256"], cache_dir, size=int(tags[TAG_PREFIX + "file_bytes"]),
                            username=connection.get("username"), password=connection.get("password"),
                            token=connection.get("token"), validate_certs=connection.get("validate_certs", True),
                            ca_path=connection.get("ca_path"), timeout=connection.get("timeout") or 30, keep=keep)
    return result["path"]


def _report_items(results):
    return [{"id": r["id"], "passed": r["passed"], "answer": r["answer"][:ANSWER_KEPT], "finish_reason": r["finish_reason"]}
            for r in results]


def evaluate(client, spec):
    """The gate for spec["name"] version spec["version"] (see the llm_validation module's options):
    the report dict (metrics, items, failures, passed, champion)."""
    thresholds = spec.get("thresholds") or {}
    validate_threshold_names(thresholds, METRICS)
    check_thresholds({}, thresholds)
    evalset = load_eval_set(spec["eval_set"], spec.get("min_items", MIN_ITEMS))
    name, version = spec["name"], str(spec["version"])
    entity, tags = gguf_version(client, name, version)
    check_run(spec["llama_server"], evalset, spec.get("ctx_size") or 2048)
    run = dict(llama_server=spec["llama_server"], evalset=evalset, ctx_size=spec.get("ctx_size") or 2048,
               threads=spec.get("threads") or 2, load_timeout=spec.get("load_timeout") or 120)
    path = fetch_version(spec["connection"], entity, tags, spec["cache_dir"], spec.get("cache_keep", 3))
    results = run_eval_set(gguf_path=path, name="%s-v%s" % (name, version), **run)
    metrics = summarize(results)
    report = {"model": {"name": name, "version": version}, "runtime": "llamacpp", "sha256": tags[TAG_PREFIX + "sha256"],
              "eval_set": {"name": evalset["name"], "sha256": evalset["sha256"], "items": len(evalset["items"])},
              "decoding": "greedy (temperature 0, top_k 1, seed 0)", "metrics": metrics, "items": _report_items(results),
              "thresholds": dict((k, str(v)) for k, v in sorted(thresholds.items()))}
    failures = check_thresholds(metrics, thresholds)
    alias = spec.get("champion_alias")
    if alias:
        champion = alias_dict(client.get_model(name) or {}).get(alias)
        if champion is None:
            report["champion"] = {"alias": alias, "status": "no champion: alias %r not set on %r; comparison skipped" % (alias, name)}
        elif str(champion) == version:
            report["champion"] = {"alias": alias, "version": version, "status": "the candidate is the champion; comparison skipped"}
        else:
            c_entity, c_tags = gguf_version(client, name, champion)
            c_path = fetch_version(spec["connection"], c_entity, c_tags, spec["cache_dir"], spec.get("cache_keep", 3))
            c_metrics = summarize(run_eval_set(gguf_path=c_path, name="%s-v%s" % (name, champion), **run))
            tolerance = float(spec.get("champion_tolerance") or 0.0)
            report["champion"] = {"alias": alias, "version": str(champion), "metrics": {"score": c_metrics["score"]},
                                  "tolerance": tolerance, "status": "compared"}
            failures += compare_champion(metrics, c_metrics, ["score"], tolerance)
    report["failures"] = failures
    report["passed"] = not failures
    return report
