"""The whole chain, driven from the controller the way an operator drives it, for both runtimes on the
serving host (breast-cancer, a pyfunc; smollm2, a local LLM): site.yml --check on the converged hosts
changes nothing; deploying breast-cancer v3 (passes the gate, cannot load on the serving host) rolls the
alias back to v1, every serving host reports v1 and the audit chains verify with a `rollback` entry; a
drifted batch and longer prompts are found by drift.yml; the LLM gate refuses a declaration that does not
fit (before any evaluation), changing nothing, and passes smollm2 v2 (the same weights in another file),
which deploy_model.yml rolls out; breast-cancer's alias moved in the registry behind Ansible's back is
reported by reconcile.yml --check (which changes nothing) and rolled out by site.yml (its
one-host-at-a-time restarts); rollback.yml takes each model back to the version before (the LLM from the
host's GGUF cache, downloading nothing); both aliases moved again, reconcile.yml converges them (git's
declaration wins) and audits it on the host. (A copy with random weights refused by the gate:
tests/unit/plugins/modules/test_llm_validation.py, with the same model and llama-server.) Runs after test_llm.py and test_model_server.py (the
side effect deployed v1 of both). Each playbook runs once, in a module-scoped fixture, and the tests read
its result and the real state it left."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from molecule_probes import lifecycle_audit_entries, run_from_controller  # noqa: E402  (molecule/shared is not a package)

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
PLAYBOOKS = PROJECT / "playbooks"
TRACKING = "default-debian12"
SERVING = ["default-debian13"]
MODEL = "breast-cancer"
LLM = "smollm2"
PORTS = {MODEL: 8080, LLM: 8090}
CACHE = "/var/cache/runlocalai-model"
GGUF = PROJECT / ".cache" / "llm" / "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURES = PROJECT / "ansible_collections" / "runlocalai" / "mlops" / "tests" / "unit" / "plugins" / "fixtures" / "gguf_files.py"
APPROVAL = '{"lifecycle_approvals": [{"approver": "ml-lead", "comment": "molecule"}]}'
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook(name, *args):
    """Run playbooks/NAME (or the playbook at an absolute path) against this scenario's inventory; (rc, output)."""
    return run_from_controller(["ansible-playbook", "-i", INVENTORY, str(PLAYBOOKS / name), *args])


def recap(output):
    """{host: (ok, changed, unreachable, failed)} from the PLAY RECAP."""
    return {m[0]: tuple(int(n) for n in m[1:]) for m in RECAP.findall(output)}


def host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


def secret(name):
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def set_alias(version, model=MODEL):
    """Move production in the registry directly (as a registry user could), not through a playbook."""
    tracking = host(TRACKING)
    tracking.check_output(
        "curl -sSf --cacert /etc/runlocalai/mlflow/tls/server.crt -u admin:%s -H 'Content-Type: application/json' "
        "--data-binary %s https://%s/api/2.0/mlflow/registered-models/alias",
        secret("admin"), json.dumps({"name": model, "alias": "production", "version": version}),
        tracking.check_output("hostname -I").split()[0])


def alias_version(model=MODEL):
    """The registry's production alias, asked on the tracking host through nginx TLS."""
    tracking = host(TRACKING)
    answer = tracking.check_output(
        "curl -sSf --cacert /etc/runlocalai/mlflow/tls/server.crt -u admin:%s "
        "'https://%s/api/2.0/mlflow/registered-models/alias?name=%s&alias=production'",
        secret("admin"), tracking.check_output("hostname -I").split()[0], model)
    return json.loads(answer)["model_version"]["version"]


def served_version(name, model=MODEL):
    serving = host(name)
    answer = serving.check_output("curl -sSf -H 'Authorization: Bearer %s' http://%s:%s/v1/models",
                                  secret("api-token"), serving.check_output("hostname -I").split()[0], str(PORTS[model]))
    return json.loads(answer)["models"][0]["version"]


def main_pid(name, model):
    return host(name).check_output("systemctl show -p MainPID --value runlocalai-model@%s", model)


def gguf_cache(name):
    """{file name: inode} of a host's GGUF cache (a download writes a new file: a new inode)."""
    listing = host(name).check_output("stat -c '%%n %%i' %s/*.gguf", CACHE)
    return dict((os.path.basename(line.split()[0]), line.split()[1]) for line in listing.splitlines())


def audit_entries(name):
    """Every entry of the lifecycle audit chain on a host, oldest first."""
    return lifecycle_audit_entries(host(name))


@pytest.fixture(scope="module")
def site_check():
    return playbook("site.yml", "--check")


@pytest.fixture(scope="module")
def failed_deploy(site_check):
    return playbook("deploy_model.yml", "-e", "model=" + MODEL, "-e", "version=3", "-e", APPROVAL)


@pytest.fixture(scope="module")
def audit_run(failed_deploy):
    return playbook("audit.yml")


@pytest.fixture(scope="module")
def drift_run(audit_run):
    """A drifted batch for breast-cancer, and long documents pasted for a summary for smollm2 (registered
    with a reference of short questions), then drift.yml."""
    rc, output = playbook("demo_traffic.yml")
    assert rc == 0, output
    rc, output = playbook("demo_traffic.yml", "-e", "demo_drifted=true")
    assert rc == 0, output
    for name in SERVING:
        rc, output = run_from_controller(
            [sys.executable, str(PLAYBOOKS / "files" / "demo" / "send_chat.py"),
             "http://%s:%d" % (host(name).check_output("hostname -I").split()[0], PORTS[LLM]),
             str(PLAYBOOKS / "files" / "demo" / "llm-prompts-long.txt"), "--repeat", "3"],
            env={"MODEL_API_TOKEN": secret("api-token")}, timeout=900)
        assert rc == 0, output
    return playbook("drift.yml")


def register_llm(path):
    """Register a GGUF file as the next version of smollm2 (molecule/default/register.yml); its version."""
    rc, output = playbook(PROJECT / "molecule" / "default" / "register.yml", "-e", "molecule_register_path=%s" % path)
    assert rc == 0, output[-3000:]
    return re.search(r"registered %s version=(\d+)" % re.escape(path.name), output).group(1)


def gguf_copy(kind, dest, *extra):
    rc, output = run_from_controller([sys.executable, str(FIXTURES), kind, str(GGUF), str(dest), *extra], timeout=300)
    assert rc == 0, output
    return dest


@pytest.fixture(scope="module")
def llm_v2(drift_run):
    """smollm2 v2: the same weights in another file (a new sha256)."""
    path = gguf_copy("renamed", EPHEMERAL / "SmolLM2-relabelled.Q4_1.gguf", "SmolLM2 relabelled copy")
    return register_llm(path)


@pytest.fixture(scope="module")
def llm_unfit(llm_v2):
    """deploy_model.yml of smollm2 v2 with the host declaring 4 slots of 8192 tokens in 256M (extra vars
    win over the inventory)."""
    before = {name: main_pid(name, LLM) for name in SERVING}
    declared = {"model_server_models": [{"name": LLM, "alias": "production", "port": PORTS[LLM], "memory_max": "256M",
                                         "ctx_per_slot": 8192, "parallel": 4}]}
    rc, output = playbook("deploy_model.yml", "-e", "model=" + LLM, "-e", "version=" + llm_v2, "-e", APPROVAL,
                          "-e", json.dumps(declared))
    return before, rc, output


@pytest.fixture(scope="module")
def llm_deployed(llm_unfit, llm_v2):
    """deploy_model.yml of smollm2 v2 as the inventory declares it: fit, evaluation set, alias, restart."""
    return playbook("deploy_model.yml", "-e", "model=" + LLM, "-e", "version=" + llm_v2, "-e", APPROVAL)


@pytest.fixture(scope="module")
def reconcile_check(llm_deployed):
    """breast-cancer's production moved to v2 in the registry behind Ansible's back, then reconcile.yml --check."""
    set_alias("2")
    return playbook("reconcile.yml", "--check")


@pytest.fixture(scope="module")
def moved_alias(reconcile_check):
    """site.yml after the alias moved: rolls it out."""
    return playbook("site.yml")


@pytest.fixture(scope="module")
def rollback_run(moved_alias):
    """rollback.yml with no version, for each model: back to the version recorded before (v1); the
    hosts' GGUF caches read before and after."""
    caches = {name: gguf_cache(name) for name in SERVING}
    runs = {model: playbook("rollback.yml", "-e", "model=" + model) for model in (MODEL, LLM)}
    return runs, caches, {name: gguf_cache(name) for name in SERVING}


@pytest.fixture(scope="module")
def reconcile_run(rollback_run):
    """production of both models moved to v2 behind Ansible's back again, then reconcile.yml converges,
    then reconcile.yml --check once more."""
    set_alias("2")
    set_alias("2", LLM)
    caches = {name: gguf_cache(name) for name in SERVING}
    return playbook("reconcile.yml"), playbook("reconcile.yml", "--check"), caches


def test_site_check_on_the_converged_hosts_changes_nothing(site_check):
    rc, output = site_check
    assert rc == 0, output[-4000:]
    hosts = recap(output)
    assert set(hosts) >= {TRACKING, *SERVING}, output[-2000:]
    changed = {name: counts[1] for name, counts in hosts.items() if counts[1] or counts[2] or counts[3]}
    assert not changed, output[-6000:]


def test_a_version_failing_ready_is_rolled_back(failed_deploy):
    rc, output = failed_deploy
    assert rc != 0, output[-4000:]
    # The play's own message says what happened.
    said = " ".join(output.split())  # the callback may fold long messages
    assert "%s v3 failed its health check on %s" % (MODEL, SERVING[0]) in said, output[-4000:]
    assert "Rolled back: production points at v1 again" in said, output[-4000:]
    assert alias_version() == "1"
    for name in SERVING:
        assert served_version(name) == "1", name


def test_the_rollback_is_in_the_audit_chain(failed_deploy):
    entries = audit_entries(TRACKING)
    v3 = [e["event_type"] for e in entries if e["resource"] == "model:%s/3" % MODEL]
    # the gate passed and the alias moved, then the failed host moved it back
    assert v3[-2:] == ["model_promotion", "rollback"], v3


def test_the_gate_verdict_is_a_series_node_exporter_serves_on_the_tracking_host(failed_deploy):
    """breast-cancer v3 passed the gate: its verdict and metrics, written by the lifecycle role's gate
    (evaluation_series) into the tracking host's textfile directory, are served by its node-exporter."""
    tracking = host(TRACKING)
    textfile = tracking.file("/var/lib/prometheus/node-exporter/mlops_gate_%s.prom" % MODEL)
    assert textfile.exists and (textfile.user, textfile.mode) == ("root", 0o644)

    # Node-exporter serves it and Prometheus (on the same host's loopback) has scraped it.
    def query(expr):
        answer = json.loads(tracking.check_output("curl -sSf --get http://127.0.0.1:9090/api/v1/query --data-urlencode %s",
                                                  "query=" + expr))
        return answer["data"]["result"]
    passed = query('mlops_gate_passed{model="%s"}' % MODEL)
    assert len(passed) == 1 and passed[0]["metric"]["version"] == "3" and passed[0]["value"][1] == "1", passed
    accuracy = query('mlops_evaluation_metric{model="%s",metric="accuracy",group="all"}' % MODEL)
    assert len(accuracy) == 1 and accuracy[0]["metric"]["stage"] == "gate", accuracy
    assert 0 < float(accuracy[0]["value"][1]) <= 1, accuracy


def test_audit_yml_verifies_every_chain_against_the_recorded_heads(audit_run):
    rc, output = audit_run
    assert rc == 0, output[-4000:]
    heads = {p.stem for p in (EPHEMERAL / "audit-heads").glob("*.json")}
    assert {TRACKING, *SERVING} <= heads


def test_drift_yml_finds_the_drifted_batch(drift_run):
    rc, output = drift_run
    assert rc == 0, output[-4000:]
    for name in SERVING:
        report = json.loads((EPHEMERAL / "reports" / "drift" / name / (MODEL + ".json")).read_text())
        assert report["result"]["drifted"] is True, report
        assert {"mean_radius", "worst_area"} <= set(report["result"]["drifted_features"]), report


def test_drift_yml_finds_the_longer_prompts(drift_run):
    rc, output = drift_run
    said = " ".join(output.split())
    for name in SERVING:
        assert re.search(r"WARNING drift found: .*%s/%s \([^)]*prompt_tokens" % (name, LLM), said), output[-4000:]
        report = json.loads((EPHEMERAL / "reports" / "drift" / name / (LLM + ".json")).read_text())
        assert "prompt_tokens" in report["result"]["drifted_features"], report
        assert host(name).service("runlocalai-model-drift@%s.timer" % LLM).is_enabled


def test_a_declaration_that_does_not_fit_is_refused_at_the_gate(llm_unfit, llm_v2):
    before, rc, output = llm_unfit
    said = " ".join(output.split())
    assert rc != 0 and "%s v%s was refused and not deployed" % (LLM, llm_v2) in said, output[-4000:]
    for name in SERVING:
        assert re.search(r"hardware fit on %s: .*does not fit.*720 MiB.*256 MiB" % name, said), output[-4000:]
        assert main_pid(name, LLM) == before[name]
    # Refused before the evaluation set was run (whatever the callback prints between a task and its result).
    assert re.search(r"Gate \| the evaluation set, answered by %s\][^\[]*skipping: \[localhost\]" % LLM, said), output[-4000:]
    assert alias_version(LLM) == "1"
    refusal = [e for e in audit_entries(TRACKING) if e["event_type"] == "deploy_refused"]
    assert refusal and refusal[-1]["resource"] == "model:%s/%s" % (LLM, llm_v2), refusal


def test_a_new_llm_version_passes_the_gate_and_is_rolled_out(llm_deployed, llm_v2):
    rc, output = llm_deployed
    said = " ".join(output.split())
    assert rc == 0, output[-4000:]
    assert re.search(r"%s v%s: gate passed; .*score=0\.\d+" % (LLM, llm_v2), said), output[-4000:]
    assert "%s v%s is production (before: v1)" % (LLM, llm_v2) in said, output[-4000:]
    assert alias_version(LLM) == llm_v2
    for name in SERVING:
        assert served_version(name, LLM) == llm_v2
        assert len(gguf_cache(name)) == 2, name  # another file: downloaded; v1's kept for a rollback


def test_reconcile_check_reports_the_moved_alias_and_changes_nothing(reconcile_check):
    rc, output = reconcile_check
    assert rc == 0, output[-4000:]
    said = " ".join(output.split())
    assert "%s: declared v2 (alias production), service reports v1" % MODEL in said, output[-4000:]
    assert "%s: declared" % LLM not in said, output[-4000:]  # in line
    for name in SERVING:
        assert recap(output)[name][1] == 0, output[-2000:]
        assert served_version(name) == "1", name


def test_site_yml_rolls_out_an_alias_moved_in_the_registry(moved_alias):
    rc, output = moved_alias
    assert rc == 0, output[-4000:]
    said = " ".join(output.split())
    # restarted in the one-host-at-a-time play, not while converging; the LLM, in line, not at all
    restarts = said.split("PLAY [Model services | restarts, one host at a time]")[1]
    assert "Restart | %s" % MODEL in restarts and "Restart | %s" % LLM not in restarts, output[-6000:]
    for name in SERVING:
        assert served_version(name) == "2" and served_version(name, LLM) == "2", name


def test_rollback_yml_goes_back_to_the_version_before(rollback_run):
    runs, caches_before, caches_after = rollback_run
    for model in (MODEL, LLM):
        rc, output = runs[model]
        assert rc == 0, output[-4000:]
        assert alias_version(model) == "1", model
    for name in SERVING:
        assert served_version(name) == "1" and served_version(name, LLM) == "1", name
        assert caches_after[name] == caches_before[name], name  # the LLM came back from the cache
    moves = [(e["resource"], e["action"]) for e in audit_entries(TRACKING) if e["event_type"] == "rollback"]
    assert moves[-2:] == [("model:%s/1" % MODEL, "alias production 2 -> 1"), ("model:%s/1" % LLM, "alias production 2 -> 1")], moves


def test_reconcile_yml_converges_the_moved_alias_and_audits_it(reconcile_run):
    (rc, output), (check_rc, check_output), caches = reconcile_run
    assert rc == 0, output[-4000:]
    said = " ".join(output.split())
    for model in (MODEL, LLM):
        assert "%s: declared v2 (alias production), service reports v1" % model in said, output[-4000:]
    for name in SERVING:
        assert served_version(name) == "2" and served_version(name, LLM) == "2", name
        assert gguf_cache(name) == caches[name], name
        reconciled = [e for e in audit_entries(name) if e["event_type"] == "reconcile"]
        assert reconciled and reconciled[-1]["resource"] == "host:" + name, reconciled
        assert "service reports v1" in reconciled[-1]["details"], reconciled[-1]
    # Afterwards nothing diverges.
    assert check_rc == 0, check_output[-4000:]
    assert "in line with git and the registry" in " ".join(check_output.split()), check_output[-4000:]
