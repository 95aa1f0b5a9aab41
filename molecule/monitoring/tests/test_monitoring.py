"""Real state left by the monitoring role (molecule verify).

monitoring-debian12 runs Prometheus, Alertmanager and node-exporter on
loopback; monitoring-debian13 runs node-exporter on its container address and
stands in for a serving and an MLflow host (see prepare.yml). HTTP checks run
inside the hosts (the services listen on loopback there), with the hosts'
own Python.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from molecule_probes import wait_for  # noqa: E402  (molecule/shared is not a package)

MONITOR = "monitoring-debian12"
NODE = "monitoring-debian13"
ALERTS = [
    "ModelServiceDown",
    "ModelLatencyP95High",
    "ModelDataDrift",
    "ModelConfidenceDrop",
    "ModelLlmTimeToFirstTokenHigh",
    "ModelLlmSlotsSaturated",
    "ModelAccuracyLow",
    "ModelAccuracyDecay",
    "ModelBehaviourChange",
    "HostCpuPressure",
    "HostMemoryPressure",
    "HostDiskSpaceLow",
    "HostDiskFillingUp",
    "NodeExporterDown",
    "ScrapeTargetDown",
    "GpuTelemetryDown",
    "GpuMemoryNearlyFull",
    "TrainingPipelineFailed",
    "TrainingPipelineOverdue",
]
# Every alert's runbook_url: the role's default base URL, '#', the alert's name in lower case.
RUNBOOK = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "ansible_collections/runlocalai/mlops/roles/monitoring/defaults/main.yml")
    .read_text()
)["monitoring_alert_runbook_base_url"]


def runbook_url(alert):
    return RUNBOOK + "#" + alert.lower()


DASHBOARDS = "/etc/grafana/dashboards/runlocalai"
ROLE_FILES = Path(__file__).resolve().parents[3] / "ansible_collections/runlocalai/mlops/roles/monitoring/files/dashboards"
PROM = "http://127.0.0.1:9090"
AM = "http://127.0.0.1:9093"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
SECRETS = "/etc/prometheus/secrets"

# GET a URL from inside a host: prints {"status": ..., "body": ...}.
HTTP_GET = """
import json, sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
    print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""
# Try a TCP connection from inside a host: prints "open" or "refused".
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("open")
except OSError:
    print("refused")
"""


def name(host):
    return host.backend.get_hostname()


def only(host, wanted):
    if name(host) != wanted:
        pytest.skip("checked on " + wanted)


def other(hostname):
    return testinfra.get_host(
        "ansible://" + hostname, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


def get(host, url):
    return json.loads(host.check_output("python3 -c %s %s", HTTP_GET, url))


def api(host, url):
    reply = get(host, url)
    assert reply["status"] == 200, reply
    return json.loads(reply["body"])


def connects(host, address, port):
    return host.check_output("python3 -c %s %s %s", CONNECT, address, str(port)) == "open"


def address(host):
    return host.check_output("hostname -I").split()[0]


def firing(host, alertname, **labels):
    alerts = api(host, PROM + "/api/v1/alerts")["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == alertname
        and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def query(host, promql):
    from urllib.parse import quote

    return api(host, PROM + "/api/v1/query?query=" + quote(promql))["data"]["result"]


# --- both hosts -----------------------------------------------------------------


def test_node_exporter_runs_sandboxed(host):
    service = host.service("prometheus-node-exporter")
    assert service.is_running and service.is_enabled
    score = host.check_output("systemd-analyze security prometheus-node-exporter | tail -1")
    assert float(score.split("level for prometheus-node-exporter.service:")[1].split()[0]) <= 2.0, score


def test_textfile_directory_is_writable_by_the_model_server_group(host):
    d = host.file(TEXTFILE_DIR)
    assert d.is_directory
    assert (d.user, d.group, d.mode) == ("root", "runlocalai-model", 0o775)


def test_node_exporter_listens_where_configured(host):
    args = host.file("/etc/default/prometheus-node-exporter").content_string
    assert "--collector.textfile.directory=" + TEXTFILE_DIR in args
    if name(host) == MONITOR:
        assert "--web.listen-address=127.0.0.1:9100" in args
        assert connects(host, "127.0.0.1", 9100)
        assert not connects(host, address(host), 9100)
    else:
        assert "--web.listen-address=%s:9100" % address(host) in args
        assert connects(host, address(host), 9100)
        assert not connects(host, "127.0.0.1", 9100)


# --- the node-exporter-only host ----------------------------------------------------


def test_no_prometheus_on_the_node_only_host(host):
    only(host, NODE)
    assert not host.package("prometheus").is_installed
    assert not host.package("prometheus-alertmanager").is_installed


# --- the monitoring host -----------------------------------------------------------


def test_server_services_run_sandboxed(host):
    only(host, MONITOR)
    for unit in ("prometheus", "prometheus-alertmanager"):
        service = host.service(unit)
        assert service.is_running and service.is_enabled, unit
        score = host.check_output("systemd-analyze security %s | tail -1", unit)
        assert float(score.split("level for %s.service:" % unit)[1].split()[0]) <= 2.0, score


def test_everything_on_loopback(host):
    only(host, MONITOR)
    mine = address(host)
    for port in (9090, 9093, 9100):
        assert connects(host, "127.0.0.1", port), port
        assert not connects(host, mine, port), port
    # Alertmanager's HA gossip listener is switched off.
    assert not connects(host, "127.0.0.1", 9094)
    assert not connects(host, mine, 9094)
    prom = host.file("/etc/default/prometheus").content_string
    assert "--web.listen-address=127.0.0.1:9090" in prom
    assert "--storage.tsdb.retention.time=2d" in prom
    am = host.file("/etc/default/prometheus-alertmanager").content_string
    assert "--web.listen-address=127.0.0.1:9093" in am
    assert re.search(r'--cluster.listen-address=(\s|")', am), am


def test_ready_endpoints(host):
    only(host, MONITOR)
    assert get(host, PROM + "/-/ready")["status"] == 200
    assert get(host, AM + "/-/ready")["status"] == 200


@pytest.mark.parametrize(
    "path,user,group,mode",
    [
        ("/etc/prometheus/prometheus.yml", "root", "prometheus", 0o640),
        ("/etc/prometheus/alertmanager.yml", "root", "prometheus", 0o640),
        ("/etc/prometheus/rules", "root", "prometheus", 0o750),
        ("/etc/prometheus/rules/runlocalai.rules.yml", "root", "prometheus", 0o640),
        ("/etc/prometheus/tests/runlocalai.rules.test.yml", "root", "prometheus", 0o640),
        (SECRETS, "root", "prometheus", 0o750),
        (SECRETS + "/mlflow-metrics", "root", "prometheus", 0o640),
        (SECRETS + "/alertmanager-smtp", "root", "prometheus", 0o640),
        ("/etc/prometheus/mlflow-ca.pem", "root", "root", 0o644),
        ("/etc/grafana/provisioning/datasources", "root", "root", 0o755),
        ("/etc/grafana/provisioning/datasources/runlocalai.yml", "root", "root", 0o644),
        ("/etc/grafana/provisioning/dashboards", "root", "root", 0o755),
        ("/etc/grafana/provisioning/dashboards/runlocalai.yml", "root", "root", 0o644),
        (DASHBOARDS, "root", "root", 0o755),
    ]
    + [(DASHBOARDS + "/%s.json" % board, "root", "root", 0o644) for board in ("models", "llm", "pipelines", "hosts")],
)
def test_file_owners_and_modes(host, path, user, group, mode):
    only(host, MONITOR)
    f = host.file(path)
    assert f.exists, path
    assert (f.user, f.group, f.mode) == (user, group, mode)


def test_secrets_only_in_password_files(host):
    only(host, MONITOR)
    metrics_password = host.file(SECRETS + "/mlflow-metrics").content_string
    smtp_password = host.file(SECRETS + "/alertmanager-smtp").content_string
    assert len(metrics_password) >= 12 and len(smtp_password) >= 12
    prom = host.file("/etc/prometheus/prometheus.yml").content_string
    am = host.file("/etc/prometheus/alertmanager.yml").content_string
    assert metrics_password not in prom and smtp_password not in am
    assert "password_file: %s/mlflow-metrics" % SECRETS in prom
    assert "smtp_auth_password_file: %s/alertmanager-smtp" % SECRETS in am
    # The CA read from the MLflow host is the certificate its nginx serves.
    ca = host.file("/etc/prometheus/mlflow-ca.pem").content_string
    assert ca == other(NODE).file("/etc/runlocalai/mlflow/tls/server.crt").content_string


def test_configuration_validates(host):
    only(host, MONITOR)
    host.run_expect([0], "promtool check config /etc/prometheus/prometheus.yml")
    host.run_expect([0], "promtool check rules /etc/prometheus/rules/runlocalai.rules.yml")
    host.run_expect([0], "amtool check-config /etc/prometheus/alertmanager.yml")


def test_alert_rule_unit_tests_pass(host):
    only(host, MONITOR)
    result = host.run("promtool test rules /etc/prometheus/tests/runlocalai.rules.test.yml")
    assert result.rc == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # Every alert of the rule set has a test that expects it to fire.
    tests = host.file("/etc/prometheus/tests/runlocalai.rules.test.yml").content_string
    for alert in ALERTS:
        assert "alertname: %s\n        exp_alerts:\n          - exp_labels:" % alert in tests, alert


def test_default_route_goes_to_the_receiver_named_and_routes_elsewhere(host):
    only(host, MONITOR)
    config = yaml.safe_load(host.file("/etc/prometheus/alertmanager.yml").content_string)
    # "null" named on purpose in the inventory (the role's default is empty), ModelServiceDown routed elsewhere.
    assert config["route"]["receiver"] == "null"
    assert config["route"]["routes"] == [{"receiver": "lab-webhook", "matchers": ['alertname="ModelServiceDown"']}]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["null"] == {"name": "null"}
    assert receivers["lab-webhook"]["webhook_configs"][0]["url"] == "http://127.0.0.1:9099/alerts"
    # The webhook's bearer token: in a file only Alertmanager's group reads, never in alertmanager.yml.
    token_file = "/etc/prometheus/secrets/webhook-lab-webhook"
    assert receivers["lab-webhook"]["webhook_configs"][0]["http_config"] == {
        "authorization": {"type": "Bearer", "credentials_file": token_file}}
    token = host.file(token_file)
    assert (token.user, token.group, token.mode) == ("root", "prometheus", 0o640)
    assert token.content_string == host.file("/etc/webhook-sink/token").content_string
    assert token.content_string not in host.file("/etc/prometheus/alertmanager.yml").content_string
    assert receivers["lab-email"]["email_configs"][0]["to"] == "oncall@example.org"


def test_all_rules_loaded(host):
    only(host, MONITOR)
    groups = api(host, PROM + "/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert sorted(rules) == sorted(ALERTS)
    assert all(r["health"] == "ok" for r in rules.values()), rules
    assert rules["ModelServiceDown"]["labels"] == {"severity": "critical", "site": "molecule"}
    # Every alert links to its own section of the runbook.
    assert {name: r["annotations"].get("runbook_url") for name, r in rules.items()} == {
        name: runbook_url(name) for name in ALERTS
    }


def test_every_target_up(host):
    only(host, MONITOR)
    node_address = address(other(NODE))
    expected = {
        ("prometheus", MONITOR, ""): "127.0.0.1:9090",
        ("alertmanager", MONITOR, ""): "127.0.0.1:9093",
        ("node", MONITOR, ""): "127.0.0.1:9100",
        ("node", NODE, ""): node_address + ":9100",
        ("model_server", NODE, "iris"): node_address + ":8000",
        ("model_server", NODE, "smollm2"): node_address + ":8001",
        ("mlflow", NODE, ""): node_address + ":443",
    }

    def targets():
        active = api(host, PROM + "/api/v1/targets")["data"]["activeTargets"]
        found = {(t["labels"]["job"], t["labels"]["instance"], t["labels"].get("model_service", "")): t for t in active}
        if set(found) == set(expected) and all(t["health"] == "up" for t in found.values()):
            return found
        return None

    found = wait_for(targets, "every target up")
    for key, addr in expected.items():
        assert found[key]["scrapeUrl"] == "%s://%s/metrics" % ("https" if key[0] == "mlflow" else "http", addr)
    # The series behind them arrived: the model service's and MLflow's metrics.
    assert query(host, 'mlops_model_ready{job="model_server", model="iris"}')
    assert query(host, 'mlflow_http_request_total{job="mlflow"}')


def test_textfile_metric_reaches_prometheus_and_drift_alert_fires(host):
    only(host, MONITOR)
    probe = TEXTFILE_DIR + "/mlops_drift_molecule.prom"
    # Written as a member of the textfile group only (not root), as the drift timer would.
    gid = host.check_output("getent group runlocalai-model").split(":")[2]
    script = (
        "echo 'mlops_drift_share{model=\"molecule\",model_version=\"7\"} 0.8' > " + probe + " && "
        "echo 'mlops_drift_detected{model=\"molecule\",model_version=\"7\"} 1' >> " + probe
    )
    host.run_expect([0], "setpriv --reuid=65534 --regid=%s --clear-groups sh -c %s", gid, script)
    try:
        assert host.file(probe).user == "nobody"
        metrics = get(host, "http://127.0.0.1:9100/metrics")["body"]
        assert 'mlops_drift_share{model="molecule",model_version="7"} 0.8' in metrics
        wait_for(
            lambda: query(host, 'mlops_drift_share{job="node", instance="%s", model="molecule"}' % MONITOR),
            "the textfile metric in Prometheus",
        )
        alert = wait_for(
            lambda: firing(host, "ModelDataDrift", model="molecule", instance=MONITOR), "ModelDataDrift firing"
        )[0]
        assert alert["labels"]["severity"] == "warning" and alert["labels"]["site"] == "molecule"
        assert alert["annotations"]["description"].startswith("80% of the checked features drifted")
        assert alert["annotations"]["runbook_url"] == runbook_url("ModelDataDrift")
    finally:
        host.run("rm -f %s", probe)


def test_stopped_model_service_fires_an_alert_that_reaches_the_webhook(host):
    only(host, MONITOR)
    node = other(NODE)
    node.run_expect([0], "systemctl stop fake-model-iris")
    try:
        alert = wait_for(
            lambda: firing(host, "ModelServiceDown", instance=NODE, model_service="iris"), "ModelServiceDown firing"
        )[0]
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"] == "Model service iris on %s is down" % NODE
        assert alert["annotations"]["runbook_url"] == runbook_url("ModelServiceDown")

        def in_alertmanager():
            alerts = api(host, AM + "/api/v2/alerts")
            return [a for a in alerts if a["labels"].get("alertname") == "ModelServiceDown"]

        assert wait_for(in_alertmanager, "ModelServiceDown in Alertmanager")[0]["receivers"][0]["name"] == (
            "lab-webhook"
        )

        def delivered():
            sink = host.file("/var/lib/webhook-sink/alerts.jsonl")
            if not sink.exists:
                return None
            for line in sink.content_string.splitlines():
                note = json.loads(line)
                for a in note["alerts"]:
                    if a["labels"]["alertname"] == "ModelServiceDown" and a["status"] == "firing":
                        return note
            return None

        note = wait_for(delivered, "the webhook notification")
        assert note["receiver"] == "lab-webhook"
        # Only the routed alert went to the webhook; the drift alert above did not.
        assert all(a["labels"]["alertname"] == "ModelServiceDown" for a in note["alerts"])
        # The notification carries the link to the runbook (what the on-call person opens first).
        assert all(a["annotations"]["runbook_url"] == runbook_url("ModelServiceDown") for a in note["alerts"])
    finally:
        node.run("systemctl start fake-model-iris")


# --- Grafana's provisioning and the dashboards' queries ----------------------------------
# Grafana itself is not installed here (no package on these hosts): what is proven is what
# Grafana would read - the files, the datasource it would query, and every query of every
# dashboard answered by this scenario's Prometheus.

# The demo values each dashboard is checked with: one query per value must return a series.
# Proven by stand-in data (prepare.yml, standin_metrics.py: the project's own code writing them):
# every mlops_* series - the model services' (iris, smollm2: static files of what the model
# server renders), the drift timer's, the GPU telemetry's (a recorded nvidia-smi answer), the
# training pipeline's (its contract; the pipeline itself runs elsewhere) and the gate's. Proven by
# the real exporters: up and node-exporter's node_* series (the hosts dashboard).
DEMO = {
    "models": {"model": ["iris"]},
    "llm": {"llm": ["smollm2"]},
    "pipelines": {"model": ["iris"]},
    "hosts": {"instance": [MONITOR, NODE]},
}
# GPU panels: only the GPU host answers (the stand-in GPU textfile is on monitoring-debian13).
GPU_HOSTS = [NODE]
# Grafana's own variables, as it would expand them for a six-hour dashboard on a 5 s scrape.
BUILTINS = {"$__rate_interval": "1m", "$__range": "6h", "$__interval": "30s"}


def provisioned_dashboards(host):
    return {
        board: json.loads(host.file("%s/%s.json" % (DASHBOARDS, board)).content_string)
        for board in DEMO
    }


def test_grafana_provisioning_points_at_this_prometheus_and_the_dashboards(host):
    only(host, MONITOR)
    datasources = yaml.safe_load(host.file("/etc/grafana/provisioning/datasources/runlocalai.yml").content_string)
    (source,) = datasources["datasources"]
    assert (source["uid"], source["type"], source["url"]) == ("runlocalai-prometheus", "prometheus", PROM)
    assert source["jsonData"]["timeInterval"] == "5s"
    provider = yaml.safe_load(host.file("/etc/grafana/provisioning/dashboards/runlocalai.yml").content_string)
    assert provider["providers"][0]["options"]["path"] == DASHBOARDS
    # What landed is what the role ships, and nothing else.
    assert sorted(host.file(DASHBOARDS).listdir()) == sorted(p.name for p in ROLE_FILES.glob("*.json"))
    for board, doc in provisioned_dashboards(host).items():
        assert doc == json.loads((ROLE_FILES / ("%s.json" % board)).read_text()), board
    # Nothing of it on the host outside group grafana.
    assert not other(NODE).file("/etc/grafana").exists


def expand(expr, variable, value):
    for name, text in BUILTINS.items():
        expr = expr.replace(name, text)
    # The demo values hold no regex metacharacter but '-' and '.', which match themselves here.
    return expr.replace("$" + variable, value)


def test_every_dashboard_query_answers_for_each_demo_value(host):
    only(host, MONITOR)
    # The stand-in textfiles are scraped, and both model services have answered every scrape for the
    # last 30 s (an earlier test stops and restarts iris): their rates have samples to work with.
    wait_for(lambda: query(host, 'mlops_gate_passed{instance="%s"}' % NODE), "the stand-in textfiles in Prometheus")
    wait_for(lambda: len(query(host, 'min_over_time(up{job="model_server"}[30s]) == 1')) == 2,
             "both model services up for 30 s")
    empty = []
    checked = 0
    for board, doc in provisioned_dashboards(host).items():
        ((variable, values),) = DEMO[board].items()
        # The variable's own query lists every demo value.
        (var,) = [v for v in doc["templating"]["list"] if v["name"] == variable]
        selector, label = re.match(r"^label_values\((.*),\s*(\w+)\)$", var["query"]["query"]).groups()
        listed = {series["metric"].get(label) for series in query(host, selector)}
        assert set(values) <= listed, (board, variable, listed)
        for panel in doc["panels"]:
            for target in panel.get("targets", []):
                for value in GPU_HOSTS if "mlops_gpu_" in target["expr"] else values:
                    promql = expand(target["expr"], variable, value)
                    checked += 1
                    if not query(host, promql):
                        empty.append((board, panel["title"], target["refId"], value, promql))
    assert checked > 50
    assert not empty, "queries without a series:\n" + "\n".join(map(str, empty))
