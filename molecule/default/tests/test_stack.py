"""The whole chain, driven from the controller the way an operator drives it: site.yml --check
on the converged hosts changes nothing; deploying v3 (passes the gate, cannot load on the serving
host) rolls the alias back to v1, every serving host reports v1 and the audit chains verify with a
`rollback` entry; a drifted batch is found by drift.yml; an alias moved in the registry behind
Ansible's back is reported by reconcile.yml --check (which changes nothing), rolled out by site.yml
(its one-host-at-a-time restarts), and rollback.yml takes it back to the version before; moved
again, reconcile.yml converges it (git's declaration wins) and audits it on the host. Runs
after test_model_server.py (v1 is deployed by the side effect). Each playbook runs once, in a
module-scoped fixture, and the tests read its result and the real state it left."""

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
APPROVAL = '{"lifecycle_approvals": [{"approver": "ml-lead", "comment": "molecule"}]}'
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook(name, *args):
    """Run playbooks/NAME against this scenario's inventory; (rc, output)."""
    return run_from_controller(["ansible-playbook", "-i", INVENTORY, str(PLAYBOOKS / name), *args])


def recap(output):
    """{host: (ok, changed, unreachable, failed)} from the PLAY RECAP."""
    return {m[0]: tuple(int(n) for n in m[1:]) for m in RECAP.findall(output)}


def host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


def secret(name):
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def set_alias(version):
    """Move production in the registry directly (as a registry user could), not through a playbook."""
    tracking = host(TRACKING)
    tracking.check_output(
        "curl -sSf --cacert /etc/runlocalai/mlflow/tls/server.crt -u admin:%s -H 'Content-Type: application/json' "
        "--data-binary %s https://%s/api/2.0/mlflow/registered-models/alias",
        secret("admin"), json.dumps({"name": MODEL, "alias": "production", "version": version}),
        tracking.check_output("hostname -I").split()[0])


def alias_version():
    """The registry's production alias, asked on the tracking host through nginx TLS."""
    tracking = host(TRACKING)
    answer = tracking.check_output(
        "curl -sSf --cacert /etc/runlocalai/mlflow/tls/server.crt -u admin:%s "
        "'https://%s/api/2.0/mlflow/registered-models/alias?name=%s&alias=production'",
        secret("admin"), tracking.check_output("hostname -I").split()[0], MODEL)
    return json.loads(answer)["model_version"]["version"]


def served_version(name):
    serving = host(name)
    answer = serving.check_output("curl -sSf -H 'Authorization: Bearer %s' http://%s:8080/v1/models",
                                  secret("api-token"), serving.check_output("hostname -I").split()[0])
    return json.loads(answer)["models"][0]["version"]


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
    rc, output = playbook("demo_traffic.yml")
    assert rc == 0, output
    rc, output = playbook("demo_traffic.yml", "-e", "demo_drifted=true")
    assert rc == 0, output
    return playbook("drift.yml")


@pytest.fixture(scope="module")
def reconcile_check(drift_run):
    """production moved to v2 in the registry behind Ansible's back, then reconcile.yml --check."""
    set_alias("2")
    return playbook("reconcile.yml", "--check")


@pytest.fixture(scope="module")
def moved_alias(reconcile_check):
    """site.yml after the alias moved: rolls it out."""
    return playbook("site.yml")


@pytest.fixture(scope="module")
def rollback_run(moved_alias):
    """rollback.yml with no version: back to the version recorded before (v1)."""
    return playbook("rollback.yml", "-e", "model=" + MODEL)


@pytest.fixture(scope="module")
def reconcile_run(rollback_run):
    """production moved to v2 behind Ansible's back again, then reconcile.yml converges, then
    reconcile.yml --check once more."""
    set_alias("2")
    return playbook("reconcile.yml"), playbook("reconcile.yml", "--check")


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


def test_reconcile_check_reports_the_moved_alias_and_changes_nothing(reconcile_check):
    rc, output = reconcile_check
    assert rc == 0, output[-4000:]
    said = " ".join(output.split())
    assert "%s: declared v2 (alias production), service reports v1" % MODEL in said, output[-4000:]
    for name in SERVING:
        assert recap(output)[name][1] == 0, output[-2000:]
        assert served_version(name) == "1", name


def test_site_yml_rolls_out_an_alias_moved_in_the_registry(moved_alias):
    rc, output = moved_alias
    assert rc == 0, output[-4000:]
    said = " ".join(output.split())
    # restarted in the one-host-at-a-time play, not while converging
    restarts = said.split("PLAY [Model services | restarts, one host at a time]")[1]
    assert "Restart | %s" % MODEL in restarts, output[-6000:]
    for name in SERVING:
        assert served_version(name) == "2", name


def test_rollback_yml_goes_back_to_the_version_before(rollback_run):
    rc, output = rollback_run
    assert rc == 0, output[-4000:]
    assert alias_version() == "1"
    for name in SERVING:
        assert served_version(name) == "1", name
    moves = [e["action"] for e in audit_entries(TRACKING) if e["event_type"] == "rollback"]
    assert moves[-1] == "alias production 2 -> 1", moves


def test_reconcile_yml_converges_the_moved_alias_and_audits_it(reconcile_run):
    (rc, output), (check_rc, check_output) = reconcile_run
    assert rc == 0, output[-4000:]
    said = " ".join(output.split())
    assert "%s: declared v2 (alias production), service reports v1" % MODEL in said, output[-4000:]
    for name in SERVING:
        assert served_version(name) == "2", name
        reconciled = [e for e in audit_entries(name) if e["event_type"] == "reconcile"]
        assert reconciled and reconciled[-1]["resource"] == "host:" + name, reconciled
        assert "service reports v1" in reconciled[-1]["details"], reconciled[-1]
    # Afterwards nothing diverges.
    assert check_rc == 0, check_output[-4000:]
    assert "in line with git and the registry" in " ".join(check_output.split()), check_output[-4000:]
