# -*- coding: utf-8 -*-
"""Templates of the monitoring role, rendered here from the role's own defaults and vars as its template tasks
render them. The alert rules: every alert carries a runbook_url whose anchor is a section of docs/runbook.md
(GitHub's anchor rules), and the rules' unit tests expect the same runbook_url on every firing alert (promtool
compares the annotations; promtool itself runs on the host, in molecule). Alertmanager's configuration: the
top-level route's receiver when monitoring_alertmanager_default_receiver is left empty, or set."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

COLLECTION = Path(__file__).resolve().parents[3]
ROLE = COLLECTION / "roles" / "monitoring"
RUNBOOK = COLLECTION / "docs" / "runbook.md"


def _trusted(value):
    """Role files' strings are templates to Ansible (rendered when used): trust them as it does."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return dict((key, _trusted(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def role_variables(**overrides):
    """The role's defaults, then its vars (main, Debian), then the inventory's overrides, as a play sees them."""
    variables = {}
    for path in ("defaults/main.yml", "vars/main.yml", "vars/Debian.yml"):
        variables.update(yaml.safe_load((ROLE / path).read_text()))
    variables.update(overrides)
    variables["ansible_managed"] = "Ansible managed"
    return _trusted(variables)


def render(template, **overrides):
    """A template of the role rendered as the template action does (trim_blocks on), parsed as YAML."""
    templar = Templar(loader=DataLoader(), variables=role_variables(**overrides))
    text = templar.template(trust_as_template((ROLE / "templates" / template).read_text()),
                            escape_backslashes=False, overrides=dict(trim_blocks=True))
    return yaml.safe_load(text)


def rules(**overrides):
    return [rule for group in render("runlocalai.rules.yml.j2", **overrides)["groups"] for rule in group["rules"]]


def github_anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation removed, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_sections():
    """Title -> anchor of every second-level heading of the runbook."""
    return dict((title, github_anchor(title))
                for title in re.findall(r"^## (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE))


def alert_names():
    return yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__monitoring_alert_names"]


def base_url():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["monitoring_alert_runbook_base_url"]


def test_github_anchor():
    assert github_anchor("ModelServiceDown") == "modelservicedown"
    assert github_anchor("Where alerts go: `null`, routes") == "where-alerts-go-null-routes"


def test_every_alert_has_a_runbook_url_to_its_own_section_of_the_runbook():
    sections = runbook_sections()
    anchors = set(sections.values())
    found = rules()
    assert [rule["alert"] for rule in found] == alert_names()
    for rule in found:
        url = rule["annotations"].get("runbook_url")
        assert url, "%s has no runbook_url" % rule["alert"]
        page, _sep, anchor = url.partition("#")
        assert page == base_url(), url
        assert anchor in anchors, "%s: #%s is no heading of %s" % (rule["alert"], anchor, RUNBOOK)
        # Its own section: the heading is the alert's name.
        assert sections.get(rule["alert"]) == anchor, (rule["alert"], anchor)


def test_the_runbook_has_one_section_per_alert_and_no_other():
    titles = list(runbook_sections())
    assert sorted(titles) == sorted(alert_names())
    assert len(set(github_anchor(t) for t in titles)) == len(titles)  # no anchor taken twice (GitHub adds -1)


def test_the_default_base_url_is_the_runbook_in_the_collections_repository():
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert base_url() == galaxy["repository"] + "/blob/main/ansible_collections/runlocalai/mlops/docs/runbook.md"


def test_the_unit_tests_expect_the_runbook_url_of_every_firing_alert():
    by_alert = dict((rule["alert"], rule["annotations"]["runbook_url"]) for rule in rules())
    expected = 0
    for case in render("runlocalai.rules.test.yml.j2")["tests"]:
        for check in case["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                assert alert["exp_annotations"]["runbook_url"] == by_alert[check["alertname"]], check["alertname"]
                expected += 1
    assert expected == len(alert_names())  # one firing case per alert


@pytest.mark.parametrize("base", ["https://wiki.example.org/ops/runlocalai-runbook", "http://docs.internal/runbook.html"])
def test_another_base_url_moves_every_link_and_keeps_the_anchors(base):
    found = rules(monitoring_alert_runbook_base_url=base, monitoring_alert_disabled=["HostCpuPressure"])
    assert "HostCpuPressure" not in [rule["alert"] for rule in found]
    for rule in found:
        assert rule["annotations"]["runbook_url"] == base + "#" + rule["alert"].lower()
    tests = render("runlocalai.rules.test.yml.j2", monitoring_alert_runbook_base_url=base)["tests"]
    urls = [a["exp_annotations"]["runbook_url"] for t in tests for c in t["alert_rule_test"] for a in c["exp_alerts"]]
    assert urls and all(url.startswith(base + "#") for url in urls)


def test_alertmanager_routes_to_null_when_no_default_receiver_is_chosen():
    assert yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["monitoring_alertmanager_default_receiver"] == ""
    config = render("alertmanager.yml.j2")
    assert config["route"]["receiver"] == "null" and "routes" not in config["route"]
    assert config["receivers"] == [{"name": "null"}]


def test_alertmanager_routes_to_the_default_receiver_chosen():
    webhooks = [{"name": "oncall", "url": "https://hooks.example.org/alerts"}]
    routes = [{"receiver": "null", "matchers": ['alertname="HostCpuPressure"']}]
    config = render("alertmanager.yml.j2", monitoring_alertmanager_default_receiver="oncall",
                    monitoring_alertmanager_webhooks=webhooks, monitoring_alertmanager_routes=routes)
    assert config["route"]["receiver"] == "oncall" and config["route"]["routes"] == routes
    assert [r["name"] for r in config["receivers"]] == ["null", "oncall"]
    config = render("alertmanager.yml.j2", monitoring_alertmanager_default_receiver="null")
    assert config["route"]["receiver"] == "null"


def test_a_webhook_bearer_token_is_a_credentials_file_and_ca_file_a_tls_config():
    webhooks = [{"name": "training-trigger", "url": "https://orchestrator:4443/hooks/alertmanager",
                 "bearer_token": "s3cret-token-of-the-receiver", "ca_file": "/etc/ssl/certs/prefect.crt"},
                {"name": "plain", "url": "https://hooks.example.org/alerts", "bearer_token": ""}]
    config = render("alertmanager.yml.j2", monitoring_alertmanager_default_receiver="null",
                    monitoring_alertmanager_webhooks=webhooks)
    receivers = dict((r["name"], r["webhook_configs"][0]) for r in config["receivers"] if r["name"] != "null")
    assert receivers["training-trigger"]["http_config"] == {
        "authorization": {"type": "Bearer", "credentials_file": "/etc/prometheus/secrets/webhook-training-trigger"},
        "tls_config": {"ca_file": "/etc/ssl/certs/prefect.crt"}}
    assert "http_config" not in receivers["plain"]
    assert "s3cret-token-of-the-receiver" not in yaml.safe_dump(config)
