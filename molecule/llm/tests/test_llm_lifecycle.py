"""The LLM through the lifecycle playbooks, driven from the controller as an operator drives them (after
test_llm.py; version 1 was deployed by the side effect through deploy_model.yml, registered with the demo's
reference usage): long documents pasted for a summary are found by drift.yml (prompt_tokens); a copy of the model with
random weights (same architecture, header and tokenizer) is refused by the gate, with the alias and the
running service untouched and the refusal audited; a relabelled copy (the same weights, another file) passes
and is rolled out as v3; rollback.yml goes back to v1 from the host's GGUF cache, downloading nothing."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from molecule_probes import lifecycle_audit_entries, run_from_controller  # noqa: E402  (molecule/shared is not a package)

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
HOST = "llm-debian13"
NAME = "smollm2"
PORT = 8090
CACHE = "/var/cache/runlocalai-model"
GGUF = PROJECT / ".cache" / "llm" / "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURES = PROJECT / "ansible_collections" / "runlocalai" / "mlops" / "tests" / "unit" / "plugins" / "fixtures" / "gguf_files.py"
APPROVAL = '{"lifecycle_approvals": [{"approver": "ml-lead", "comment": "molecule"}]}'


def playbook(path, *args):
    return run_from_controller(["ansible-playbook", "-i", INVENTORY, str(path), *args])


def register(path):
    rc, output = playbook(PROJECT / "molecule" / "llm" / "register.yml", "-e", "molecule_register_path=%s" % path)
    assert rc == 0, output[-3000:]
    return re.search(r"registered version=(\d+)", output).group(1)


def host():
    return testinfra.get_host("ansible://" + HOST, ansible_inventory=INVENTORY)


def secret(name):
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def alias_version():
    node = host()
    answer = node.check_output(
        "curl -sSf --cacert /etc/runlocalai/mlflow/tls/server.crt -u admin:%s "
        "'https://%s/api/2.0/mlflow/registered-models/alias?name=%s&alias=production'",
        secret("admin"), node.check_output("hostname -I").split()[0], NAME)
    return json.loads(answer)["model_version"]["version"]


def served():
    node = host()
    answer = node.check_output("curl -sSf -H 'Authorization: Bearer %s' http://%s:%s/v1/models", secret("api-token"),
                               node.check_output("hostname -I").split()[0], str(PORT))
    return json.loads(answer)["models"][0]


def main_pid():
    return host().check_output("systemctl show -p MainPID --value runlocalai-model@%s", NAME)


def cache_inodes():
    """{file name: inode} of the host's GGUF cache (a download writes a new file: a new inode)."""
    listing = host().check_output("stat -c '%%n %%i' %s/*.gguf", CACHE)
    return dict((os.path.basename(line.split()[0]), line.split()[1]) for line in listing.splitlines())


def audit_entries():
    return lifecycle_audit_entries(host())


def copy_of(kind, dest, *extra):
    rc, output = run_from_controller([sys.executable, str(FIXTURES), kind, str(GGUF), str(dest), *extra], timeout=300)
    assert rc == 0, output
    return dest


@pytest.fixture(scope="module")
def drifted():
    node = host()
    address = node.check_output("hostname -I").split()[0]
    env = dict(os.environ, MODEL_API_TOKEN=secret("api-token"))
    sent = subprocess.run([sys.executable, str(PROJECT / "playbooks" / "files" / "demo" / "send_chat.py"), "http://%s:%d" % (address, PORT),
                           str(PROJECT / "playbooks" / "files" / "demo" / "llm-prompts-long.txt"), "--repeat", "3"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
    assert sent.returncode == 0, sent.stdout
    return playbook(PROJECT / "playbooks" / "drift.yml")


@pytest.fixture(scope="module")
def unfit(drifted):
    """The deployment of v1 with the host declaring 4 slots of 8192 tokens in 256M (extra vars win over the inventory)."""
    before = main_pid()
    declared = {"model_server_models": [{"name": NAME, "alias": "production", "port": PORT, "memory_max": "256M",
                                         "ctx_per_slot": 8192, "parallel": 4}]}
    rc, output = playbook(PROJECT / "playbooks" / "deploy_model.yml", "-e", "model=" + NAME, "-e", "version=1", "-e", APPROVAL,
                          "-e", json.dumps(declared))
    return before, rc, output


@pytest.fixture(scope="module")
def refused(unfit):
    before = {"alias": alias_version(), "pid": main_pid(), "served": served()["version"]}
    version = register(copy_of("scrambled", EPHEMERAL / "SmolLM2-random.Q4_1.gguf"))
    rc, output = playbook(PROJECT / "playbooks" / "deploy_model.yml", "-e", "model=" + NAME, "-e", "version=" + version, "-e", APPROVAL)
    return version, before, rc, output


@pytest.fixture(scope="module")
def deployed(refused):
    version = register(copy_of("renamed", EPHEMERAL / "SmolLM2-relabelled.Q4_1.gguf", "SmolLM2 relabelled copy"))
    rc, output = playbook(PROJECT / "playbooks" / "deploy_model.yml", "-e", "model=" + NAME, "-e", "version=" + version, "-e", APPROVAL)
    return version, rc, output


@pytest.fixture(scope="module")
def rolled_back(deployed):
    inodes = cache_inodes()
    rc, output = playbook(PROJECT / "playbooks" / "rollback.yml", "-e", "model=" + NAME)
    return inodes, rc, output


def test_drift_yml_finds_the_longer_prompts(drifted):
    rc, output = drifted
    said = " ".join(output.split())
    assert rc == 0, output[-4000:]
    assert re.search(r"WARNING drift found: .*%s/%s \([^)]*prompt_tokens" % (HOST, NAME), said), output[-4000:]
    assert host().service("runlocalai-model-drift@%s.timer" % NAME).is_enabled


def test_a_declaration_that_does_not_fit_is_refused_at_the_gate(unfit):
    before, rc, output = unfit
    said = " ".join(output.split())
    assert rc != 0 and "smollm2 v1 was refused and not deployed" in said, output[-4000:]
    assert re.search(r"hardware fit on %s: .*does not fit.*720 MiB.*256 MiB" % HOST, said), output[-4000:]
    # Refused before the evaluation set was run.
    assert re.search(r"Gate \| the evaluation set, answered by smollm2\] \*+ skipping: \[localhost\]", said), output[-4000:]
    assert main_pid() == before and alias_version() == "1"


def test_random_weights_are_refused_by_the_gate_and_nothing_changes(refused):
    version, before, rc, output = refused
    said = " ".join(output.split())
    assert rc != 0 and "smollm2 v%s was refused and not deployed" % version in said, output[-4000:]
    assert re.search(r"score 0(\.\d+)? \(needs >=0\.6\)", said), output[-4000:]
    assert "champion_score" in said, output[-4000:]
    assert alias_version() == before["alias"] == "1"
    assert main_pid() == before["pid"] and served()["version"] == before["served"] == "1"
    refusal = [e for e in audit_entries() if e["event_type"] == "deploy_refused"]
    assert refusal and refusal[-1]["resource"] == "model:%s/%s" % (NAME, version), refusal


def test_the_same_weights_in_another_file_pass_and_are_rolled_out(deployed):
    version, rc, output = deployed
    assert rc == 0, output[-4000:]
    assert "%s v%s is production (before: v1)" % (NAME, version) in " ".join(output.split()), output[-4000:]
    assert alias_version() == version and served()["version"] == version
    assert len(cache_inodes()) >= 2  # v1's file is kept for a rollback


def test_rollback_goes_back_to_v1_without_a_download(rolled_back):
    inodes, rc, output = rolled_back
    assert rc == 0, output[-4000:]
    assert alias_version() == "1" and served()["version"] == "1"
    assert cache_inodes() == inodes
    assert any(e["event_type"] == "rollback" for e in audit_entries())
