# -*- coding: utf-8 -*-
"""The monitoring role's Grafana dashboards (files/dashboards/*.json) and their provisioning: each is
importable (schema version, a unique uid and title, unique panel ids, every query and variable on the
datasource the role provisions, every variable a query uses defined), and every metric a panel queries is
one the project exports. The exported set is read from the code that writes the series (the model
service's metrics, the drift textfiles, the GPU telemetry, the gate's and the pipeline's series), not
listed here; the only names from outside the project are Prometheus' `up` and node-exporter's `node_*`,
which the molecule scenario `monitoring` answers live (as it does every panel's query)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import report
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import gpu_telemetry
from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring import evaluation
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.metrics import Metrics

COLLECTION = Path(__file__).resolve().parents[3]
ROLE = COLLECTION / "roles" / "monitoring"
DASHBOARDS = ROLE / "files" / "dashboards"
# Grafana 10.x/11.x write 38-39; an import migrates anything from 36 on without loss.
MIN_SCHEMA_VERSION = 36
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                   "unless", "inf", "nan", "Inf", "NaN"}
EXTERNAL = re.compile(r"^(up|node_[a-zA-Z0-9_]+)$")


def role_variables():
    variables = {}
    for path in ("defaults/main.yml", "vars/main.yml", "vars/Debian.yml"):
        variables.update(yaml.safe_load((ROLE / path).read_text()))
    variables["ansible_managed"] = "Ansible managed"
    variables["group_names"] = ["grafana", "monitoring"]
    variables["inventory_hostname"] = "monitor-1"
    return dict((k, trust_as_template(v) if isinstance(v, str) else v) for k, v in variables.items())


def render(template):
    templar = Templar(loader=DataLoader(), variables=role_variables())
    text = templar.template(trust_as_template((ROLE / "templates" / template).read_text()),
                            escape_backslashes=False, overrides=dict(trim_blocks=True))
    return yaml.safe_load(text)


def dashboards():
    return dict((path.stem, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json")))


def all_panels(board):
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board):
    """(where, expr) of every panel target and every query variable of the dashboard."""
    for panel in all_panels(board):
        for target in panel.get("targets", []):
            yield "panel %r %s" % (panel["title"], target["refId"]), target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.match(r"^label_values\((.*),\s*(\w+)\)$", query)
            assert match, "variable %s: %r is not label_values(SELECTOR, LABEL)" % (variable["name"], query)
            yield "variable %s" % variable["name"], match.group(1)


def metric_names(expr):
    """The metric names a PromQL expression selects (its __name__ regex alternatives included)."""
    names = set()
    for match in re.finditer(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names |= set(match.group(1).split("|"))
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    for match in re.finditer(r"(?<![\w$:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        if match.group(2) or match.group(1) in PROMQL_KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def exported():
    """Every series name the project's code writes, read from that code."""
    names = set()
    service = Metrics("m", "1", "r", "champion", llm=True)
    service.set_ready(True)
    service.request("predict", 200, 0.01)
    service.predicted(["a"], [0.9])
    service.feedback_received(1, 1.0)
    service.generated(1, 1, 0.1, 10.0)
    service.gauge_source = lambda: {"waiting": 0, "busy": 0}
    for family in text_string_to_metric_families(service.render()):
        names |= set(sample.name for sample in family.samples)
    names |= set(name for name, _help in report.METRICS + report.MODEL_METRICS)
    names |= set(name for name, _help, _key, _factor in gpu_telemetry.SERIES) | {gpu_telemetry.UP}
    names |= {evaluation.GATE_PASSED, evaluation.GATE_TIMESTAMP, evaluation.EVALUATION_METRIC}
    names |= set(name for name, _kind, _labels, _help in evaluation.PIPELINE_SERIES)
    return names


def test_metric_names_of_an_expression():
    assert metric_names('histogram_quantile(0.95, sum by (model, le) (rate(a_bucket{x=~"y|z"}[$__rate_interval])))') == {"a_bucket"}
    assert metric_names("time() - b_seconds{m=\"1\"} * 1000 offset 1w") == {"b_seconds"}
    assert metric_names('(c or d * 0) / on (i) group_left (k) e') == {"c", "d", "e"}
    assert metric_names('{__name__=~"f|g"}') == {"f", "g"}


def test_the_exported_set_is_read_from_the_code():
    names = exported()
    assert {"mlops_model_request_duration_seconds_bucket", "mlops_model_llm_slots_busy", "mlops_feature_psi",
            "mlops_gpu_smi_up", "mlops_gate_passed", "mlops_pipeline_runs_total"} <= names
    assert not any(EXTERNAL.match(name) for name in names)


def test_the_role_ships_exactly_the_dashboards_it_lists():
    listed = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__monitoring_grafana_dashboards"]
    assert sorted(listed) == sorted(dashboards()) and len(listed) == 4


def test_dashboards_are_importable():
    boards = dashboards()
    assert len(set(b["uid"] for b in boards.values())) == len(boards)
    assert len(set(b["title"] for b in boards.values())) == len(boards)
    for name, board in boards.items():
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= MIN_SCHEMA_VERSION, name
        assert re.match(r"^[a-zA-Z0-9_-]{1,40}$", board["uid"]), name
        # A provisioned dashboard carries no database id.
        assert "id" not in board or board["id"] is None, name
        ids = [panel["id"] for panel in all_panels(board)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), name
        for panel in all_panels(board):
            assert set(("type", "title", "gridPos")) <= set(panel), (name, panel.get("title"))
            refs = [t["refId"] for t in panel.get("targets", [])]
            assert len(refs) == len(set(refs)), (name, panel["title"])
        assert any(panel.get("targets") for panel in all_panels(board)), name


def test_every_query_is_on_the_provisioned_datasource():
    datasource = render("grafana-datasource.yml.j2")["datasources"]
    assert len(datasource) == 1 and datasource[0]["type"] == "prometheus"
    uid = datasource[0]["uid"]
    assert uid == yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__monitoring_grafana_datasource_uid"]
    wanted = {"type": "prometheus", "uid": uid}
    for name, board in dashboards().items():
        for panel in all_panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == wanted, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == wanted, (name, panel["title"], target["refId"])
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"] == wanted, (name, variable["name"])


def test_every_variable_a_query_uses_is_defined():
    for name, board in dashboards().items():
        defined = set(v["name"] for v in board["templating"]["list"])
        for where, expr in queries(board):
            used = set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval", "__range", "__interval"}
            assert used <= defined, (name, where, used - defined)


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_metric_a_panel_queries_is_exported_by_the_project(name):
    known = exported()
    for where, expr in queries(dashboards()[name]):
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}") and expr.count('"') % 2 == 0, \
            (where, expr)
        names = metric_names(expr)
        assert names, (where, expr)
        unknown = set(n for n in names if n not in known and not EXTERNAL.match(n))
        assert not unknown, (where, sorted(unknown))


def test_the_provider_reads_the_directory_the_dashboards_are_written_to():
    provider = render("grafana-dashboards.yml.j2")["providers"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert len(provider) == 1
    assert provider[0]["options"]["path"] == defaults["monitoring_grafana_dashboards_dir"]
    assert provider[0]["type"] == "file" and provider[0]["allowUiUpdates"] is False


def test_the_datasource_is_this_hosts_prometheus_by_default():
    datasource = render("grafana-datasource.yml.j2")["datasources"][0]
    assert datasource["url"] == "http://127.0.0.1:9090"
    assert datasource["jsonData"]["timeInterval"] == "30s"
    assert datasource["isDefault"] is False and "basicAuth" not in datasource
