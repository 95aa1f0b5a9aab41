"""Verify the LLM path on the serving host (Debian 13): smollm2 (SmolLM2-135M-Instruct, Q4_1 GGUF), registered
and deployed through deploy_model.yml by the side effect, is served by llama-server behind the model service
(beside the pyfunc breast-cancer), through real HTTP on the container address,
with the bearer token, streaming, metrics, a request log without raw text whose hash chain verifies, the
GGUF file in the sha256-keyed cache, and the unit's sandbox."""

import json
import os
import shlex
import sys
from pathlib import Path

import jinja2  # what Ansible renders the role's templates with
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from molecule_probes import wait_for  # noqa: E402  (molecule/shared is not a package)

testinfra_hosts = ["ansible://default-debian13"]

NAME = "smollm2"
UNIT = "runlocalai-model@%s" % NAME
PORT = 8090
SVC = "runlocalai-model"
CONFIG = "/etc/runlocalai-model"
LOGS = "/var/log/runlocalai-model/" + NAME
STATE = "/var/lib/runlocalai-model/" + NAME
CACHE = "/var/cache/runlocalai-model"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"
PROMPT = "What is the capital of France? Answer in one sentence."


def url(host, path):
    return "http://%s:%d%s" % (host.check_output("hostname -I").split()[0], PORT, path)


def token():
    return (SECRETS / "api-token").read_text().split()[0]


def call(host, path, payload=None, auth=True, stream=False):
    """(status, body text) of a request from the host itself."""
    args = ["curl", "-sS", "-N" if stream else "-s", "-o", "/tmp/molecule-answer", "-w", "%{http_code}", "--max-time", "120"]
    if auth:
        args += ["-H", "Authorization: Bearer " + token()]
    if payload is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(payload)]
    status = int(host.check_output(shlex.join(args + [url(host, path)])))
    return status, host.file("/tmp/molecule-answer").content_string


def chat(host, stream=False, max_tokens=24):
    return call(host, "/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
                                                "temperature": 0, "stream": stream}, stream=stream)


def test_instance_is_active_and_ready_on_the_cpu(host):
    assert host.service(UNIT).is_running and host.service(UNIT).is_enabled
    status, text = call(host, "/ready", auth=False)
    body = json.loads(text)
    assert status == 200 and body["ready"] is True and body["device"] == "cpu", body


def test_models_describes_the_registered_file(host):
    status, text = call(host, "/v1/models")
    entry = json.loads(text)["models"][0]
    assert status == 200 and (entry["name"], entry["version"], entry["alias"]) == (NAME, "1", "production")
    # the GGUF header's metadata, as registered (llm.* tags), and the file actually served
    assert (entry["architecture"], entry["quantization"], entry["layers"], entry["context_length"]) == ("llama", "Q4_1", 30, 8192)
    assert entry["model_sha256"] == GGUF_SHA256 and entry["device"] == "cpu"


def test_llama_server_runs_as_a_child_with_the_declared_memory_settings(host):
    pid = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
    children = host.check_output("ps -o pid=,user:32=,args= --ppid %s" % pid)
    line = [c for c in children.splitlines() if "llama-server" in c]
    assert len(line) == 1, children
    args = line[0].split()
    assert args[1] == SVC
    flags = dict(zip(args, args[1:]))
    assert flags["--ctx-size"] == "4096" and flags["--parallel"] == "2"  # 2048 per slot x 2 slots
    assert flags["--cache-type-k"] == "f16" and flags["--cache-type-v"] == "f16" and flags["--cache-ram"] == "0"
    assert "--no-kv-unified" in args and flags["--host"] == "127.0.0.1"
    assert flags["-m"] == "%s/%s.gguf" % (CACHE, GGUF_SHA256)


def test_chat_completion_needs_the_token_and_answers(host):
    status, _text = call(host, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, auth=False)
    assert status == 401
    status, text = chat(host)
    assert status == 200, text
    answer = json.loads(text)
    assert "paris" in answer["choices"][0]["message"]["content"].lower(), answer
    assert answer["usage"]["prompt_tokens"] > 5 and answer["usage"]["completion_tokens"] > 0


def test_streaming_sends_chunks_and_done(host):
    status, text = chat(host, stream=True)
    assert status == 200, text
    events = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    assert len(events) > 3 and events[-1] == "[DONE]", text[-500:]
    content = "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for e in events[:-1])
    assert "paris" in content.lower(), content


def test_hostile_requests_get_4xx(host):
    assert call(host, "/v1/chat/completions", {"messages": []})[0] == 422
    assert call(host, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 10 ** 6})[0] == 422
    assert call(host, "/v1/predict", {"records": [{"a": 1}]})[0] == 404


def test_metrics_carry_the_llm_series(host):
    chat(host)
    status, text = call(host, "/metrics", auth=False)
    assert status == 200
    labels = 'model="%s",version="1"' % NAME
    for series in ("mlops_model_llm_prompt_tokens_total{%s}" % labels, "mlops_model_llm_completion_tokens_total{%s}" % labels,
                   "mlops_model_llm_time_to_first_token_seconds_count{%s}" % labels,
                   "mlops_model_llm_tokens_per_second_count{%s}" % labels,
                   "mlops_model_llm_requests_waiting{%s}" % labels, "mlops_model_llm_slots_busy{%s}" % labels,
                   "mlops_model_ready{%s} 1.0" % labels):
        assert series in text, series


def test_request_log_has_token_counts_and_no_raw_text(host):
    chat(host)
    log = host.file(LOGS + "/audit.jsonl")
    assert (log.user, log.group, log.mode) == (SVC, SVC, 0o640)
    entries = [json.loads(line) for line in log.content_string.splitlines()]
    chats = [e for e in entries if e.get("prompt_tokens") and e["status"] == 200]
    assert chats and all(len(e["prompt_sha256"]) >= 64 and e["completion_tokens"] > 0 for e in chats), entries[-3:]
    assert "capital of France" not in log.content_string and "Paris" not in log.content_string


def test_request_log_chain_verifies_and_a_tampered_copy_does_not(host):
    result = host.ansible("runlocalai.mlops.request_log_info", "paths=%s/audit.jsonl" % LOGS, check=False, become=True)
    report = result["logs"][0]
    assert report["ok"] is True and report["entries"] > 3, report
    host.run("rm -rf /tmp/tampered && mkdir /tmp/tampered && cp %s/audit.jsonl /tmp/tampered/" % LOGS)
    # whatever line 2 answered, it now says 999 (its hash no longer matches)
    assert host.run("sed -i -E '2s/\"status\":[0-9]+/\"status\":999/' /tmp/tampered/audit.jsonl").rc == 0
    assert '"status":999' in host.check_output("sed -n 2p /tmp/tampered/audit.jsonl")
    result = host.ansible("runlocalai.mlops.request_log_info", "paths=/tmp/tampered/audit.jsonl", check=False, become=True)
    report = result["logs"][0]
    assert report["ok"] is False and report["problems"][0]["line"] == 2, report


def test_drift_window_records_the_usage_features(host):
    files = host.check_output("ls %s/window" % STATE).split()
    assert files
    lines = host.check_output("cat %s/window/%s" % (STATE, files[-1])).splitlines()
    record = json.loads(lines[-1])
    assert {"prompt_tokens"} <= set(record["inputs"]) and "Paris" not in lines[-1], record


def test_gguf_is_cached_by_sha256_and_readable_by_the_service_only(host):
    f = host.file("%s/%s.gguf" % (CACHE, GGUF_SHA256))
    assert (f.user, f.group, f.mode, f.size) == ("root", SVC, 0o640, 98362432)
    assert host.check_output("sha256sum %s" % f.path).split()[0] == GGUF_SHA256
    d = host.file(CACHE)
    assert (d.user, d.group, d.mode) == ("root", SVC, 0o750)


def test_unit_sandboxing_score_at_most_2(host):
    result = host.run("systemd-analyze security --threshold=20 --no-pager %s.service" % UNIT)
    assert result.rc == 0, result.stdout[-3000:]


def test_a_cuda_instance_scores_at_most_3_5(host):
    """device: cuda relaxes PrivateDevices (the NVIDIA device nodes, nothing else): the unit with the role's own
    drop-in for a CUDA instance, rendered from its template, still scores at most 3.5 (no GPU here: the
    score is the manager's reading of the unit, which need not start)."""
    role = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "ansible_collections/runlocalai/mlops/roles/model_server"
    template = jinja2.Template((role / "templates" / "instance-limits.conf.j2").read_text())
    dropin = template.render(ansible_managed="test", __model_server_runtime="llamacpp",
                             __model_server_m={"memory_max": "8G", "cpu_quota": "400%", "device": "cuda", "gpus": [0, 1]})
    assert "PrivateDevices=no" in dropin and "CUDA_VISIBLE_DEVICES=0,1" in dropin, dropin
    unit = "runlocalai-model@cuda-probe.service"
    directory = "/etc/systemd/system/%s.d" % unit
    host.run_expect([0], "mkdir -p %s && printf %%s %s > %s/limits.conf && systemctl daemon-reload"
                    % (directory, shlex.quote(dropin), directory))
    try:
        assert host.check_output("systemctl show -p PrivateDevices --value %s" % unit) == "no"
        result = host.run("systemd-analyze security --threshold=35 --no-pager %s" % unit)
        assert result.rc == 0, result.stdout[-3000:]
    finally:
        host.run("rm -rf %s && systemctl daemon-reload" % directory)


@pytest.mark.parametrize("prop,value", [("User", SVC), ("PrivateDevices", "yes"), ("MemoryMax", str(1024 ** 3)),
                                        ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes")])
def test_unit_properties(host, prop, value):
    assert host.check_output("systemctl show -p %s --value %s" % (prop, UNIT)) == value


def test_a_crash_restart_comes_back_ready(host):
    pid = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
    host.run("kill -9 %s" % pid)

    def ready_again():
        new = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
        if new in ("0", pid):
            return None
        return host.run("curl -s -o /dev/null -w %%{http_code} %s" % url(host, "/ready")).stdout == "200"

    wait_for(ready_again, "smollm2 ready after a crash restart", timeout=120)
    # the old child died with its parent: one llama-server, the new main process's child
    new = host.check_output("systemctl show -p MainPID --value %s" % UNIT)
    assert host.check_output("ps -o ppid= -C llama-server").split() == [new]


def test_an_llm_has_no_model_check_timer(host):
    """No labels and no confidence: the model_server role gives an LLM entry no model-check timer."""
    timer = host.service("runlocalai-model-check@%s.timer" % NAME)
    assert not timer.is_enabled and not timer.is_running
    assert not host.file("/etc/runlocalai-model/%s.model-check.json" % NAME).exists
