"""The site the previous release made (prepare.yml), after this release's site.yml, its idempotence run and
the side effect (audit.yml, deploy_model.yml of the version in production): the registry, the audit chain and
the metrics from before the upgrade are all there, and the services run this release's code."""

import json
import os
import shlex
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
BEFORE = json.loads((EPHEMERAL / "before-upgrade.json").read_text())
MODEL = "breast-cancer"
AUDIT_DB = "/var/lib/runlocalai/audit/lifecycle.db"
PROM = "http://127.0.0.1:9090"


def secret(name):
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def manifest_version(collections):
    manifest = collections / "ansible_collections" / "runlocalai" / "mlops" / "MANIFEST.json"
    return json.loads(manifest.read_text())["collection_info"]["version"]


def audit_entries(host):
    code = ("import json, sqlite3; c = sqlite3.connect('file:%s?mode=ro', uri=True); c.row_factory = sqlite3.Row; "
            "print(json.dumps([dict(r) for r in c.execute('select * from audit_log order by seq')]))" % AUDIT_DB)
    return json.loads(host.check_output("python3 -c %s" % shlex.quote(code)))


def registry(host, path, **query):
    answer = host.check_output(
        "curl -sSf --cacert /etc/runlocalai/mlflow/tls/server.crt -u admin:%s %s",
        secret("admin"), "https://%s/api/2.0/mlflow/%s?%s" % (host.check_output("hostname -I").split()[0], path,
                                                              urlencode(query)))
    return json.loads(answer)


def test_the_previous_release_made_the_site_and_this_one_upgraded_it():
    previous = manifest_version(EPHEMERAL / "previous-collections")
    current = yaml.safe_load((PROJECT / "ansible_collections/runlocalai/mlops/galaxy.yml").read_text())["version"]
    assert previous == "0.1.0" and current != previous
    assert manifest_version(PROJECT / ".cache" / "collections" / "upgrade") == current


def test_registry_kept_the_version_in_production(host):
    after = registry(host, "registered-models/alias", name=MODEL, alias="production")["model_version"]
    before = BEFORE["production"]
    assert (after["version"], after["run_id"], after["source"]) == (before["version"], before["run_id"], before["source"])
    # The demo's three versions registered before the upgrade are all there.
    versions = registry(host, "model-versions/search", filter="name='%s'" % MODEL)["model_versions"]
    assert sorted(int(v["version"]) for v in versions) == [1, 2, 3]


def test_audit_chain_kept_its_entries_and_links_on(host):
    before, after = BEFORE["audit"], audit_entries(host)
    assert before, "the previous release wrote no audit entry"
    fields = ("seq", "entry_id", "event_type", "resource", "hash", "prev_hash")
    assert [tuple(e[f] for f in fields) for e in after[:len(before)]] == [tuple(e[f] for f in fields) for e in before]
    assert len(after) > len(before), "this release's deploy_model.yml added nothing to the chain"
    for previous, entry in zip(after, after[1:]):
        assert entry["prev_hash"] == previous["hash"], "chain broken at seq %s" % entry["seq"]


def test_metrics_from_before_the_upgrade_are_still_queried(host):
    query = urlencode({"query": 'count_over_time(up{job="node"}[10m])', "time": BEFORE["time"]})
    result = json.loads(host.check_output("curl -sSf '%s/api/v1/query?%s'" % (PROM, query)))["data"]["result"]
    assert result and all(float(r["value"][1]) > 0 for r in result), result


def test_model_service_serves_production_on_this_releases_code(host):
    ready = json.loads(host.check_output("curl -sSf http://%s:8080/ready" % host.check_output("hostname -I").split()[0]))
    assert ready["ready"] is True
    models = json.loads(host.check_output(
        "curl -sSf -H 'Authorization: Bearer %s' http://%s:8080/v1/models",
        secret("api-token"), host.check_output("hostname -I").split()[0]))["models"]
    assert [(m["name"], m["version"]) for m in models] == [(MODEL, BEFORE["production"]["version"])]


@pytest.mark.parametrize("unit", ["mlflow-server", "prometheus", "prometheus-alertmanager",
                                  "prometheus-node-exporter", "nginx", "runlocalai-model@breast-cancer"])
def test_services_are_active(host, unit):
    assert host.service(unit).is_running
