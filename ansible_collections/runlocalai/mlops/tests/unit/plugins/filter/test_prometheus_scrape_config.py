# -*- coding: utf-8 -*-
"""Filters runlocalai.mlops.prometheus_scrape_config and prometheus_hosts_without_facts: the monitoring
role's prometheus.yml and the hosts whose facts it needs, from hostvars. The logic is
module_utils.monitoring.prometheus (tested there); here the Ansible side: which errors mean "cannot be
rendered", how bad input fails templating, and the YAML the role's template writes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_nice_yaml
from jinja2 import StrictUndefined

from ansible_collections.runlocalai.mlops.tests.unit.plugins.hostvars_standin import HostVars, undefined_variable
from ansible_collections.runlocalai.mlops.plugins.filter import prometheus_hosts_without_facts as without_facts_plugin
from ansible_collections.runlocalai.mlops.plugins.filter import prometheus_scrape_config as plugin


FROM_FACTS = "{{ ansible_facts['default_ipv4']['address'] }}"

# The role's settings on the monitoring host of molecule/monitoring (as the template passes them).
SETTINGS = dict(
    node_targets=["monitoring-debian12", "monitoring-debian13"],
    serving_hosts=["monitoring-debian13"],
    mlflow_hosts=["monitoring-debian13"],
    prometheus_listen_address="127.0.0.1", prometheus_port=9090,
    alertmanager_listen_address="127.0.0.1", alertmanager_port=9093,
    node_exporter_listen_address="127.0.0.1", node_exporter_port=9100,
    scrape_interval="5s", scrape_timeout="4s", evaluation_interval="5s", external_labels={},
    extra_scrape_configs=[], rules_file="/etc/prometheus/rules/runlocalai.rules.yml",
    extra_rules_file="/etc/prometheus/rules/runlocalai-extra.rules.yml", extra_rules=[],
    mlflow_username="prometheus", mlflow_password_set=True, mlflow_password_file="/etc/prometheus/secrets/mlflow-metrics",
    mlflow_ca_file="/etc/prometheus/mlflow-ca.pem", mlflow_ca_cert="", mlflow_ca_fetch=True,
)


def molecule_hostvars(debian13_facts=True):
    d13 = {"monitoring_node_exporter_listen_address": "172.18.0.3", "model_server_listen_address": "172.18.0.3",
           "model_server_models": [{"name": "iris", "port": 8000}], "mlflow_server_listen_address": "172.18.0.3",
           "mlflow_server_nginx_enabled": True, "mlflow_server_metrics_password": "s3cret",
           "ansible_facts": {"default_ipv4": {"address": "172.18.0.3"}}}
    if not debian13_facts:
        # The side effect of molecule/monitoring: the host's facts forgotten, its addresses cannot be rendered.
        d13.update(monitoring_node_exporter_listen_address=undefined_variable,
                   model_server_listen_address=StrictUndefined(name=FROM_FACTS),
                   mlflow_server_listen_address=undefined_variable, ansible_facts={})
    return {"monitoring-debian12": HostVars({"ansible_facts": {"default_ipv4": {"address": "172.18.0.2"}}}),
            "monitoring-debian13": HostVars(d13)}


# prometheus.yml of molecule/monitoring's monitoring host as the template wrote it before the logic moved to
# Python (rendered from git's previous prometheus.yml.j2), less its three comment lines.
MOLECULE_MONITORING_YAML = """\
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s
  external_labels: {}
alerting:
  alertmanagers:
  - static_configs:
    - targets:
      - 127.0.0.1:9093
rule_files:
- /etc/prometheus/rules/runlocalai.rules.yml
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets:
    - 127.0.0.1:9090
    labels:
      instance: monitoring-debian12
- job_name: alertmanager
  static_configs:
  - targets:
    - 127.0.0.1:9093
    labels:
      instance: monitoring-debian12
- job_name: node
  static_configs:
  - targets:
    - 127.0.0.1:9100
    labels:
      instance: monitoring-debian12
  - targets:
    - 172.18.0.3:9100
    labels:
      instance: monitoring-debian13
- job_name: model_server
  metrics_path: /metrics
  static_configs:
  - targets:
    - 172.18.0.3:8000
    labels:
      instance: monitoring-debian13
      model_service: iris
- job_name: mlflow
  scheme: https
  metrics_path: /metrics
  basic_auth:
    username: prometheus
    password_file: /etc/prometheus/secrets/mlflow-metrics
  tls_config:
    ca_file: /etc/prometheus/mlflow-ca.pem
  static_configs:
  - targets:
    - 172.18.0.3:443
    labels:
      instance: monitoring-debian13
"""


def test_the_filters_are_registered():
    assert plugin.FilterModule().filters() == {"prometheus_scrape_config": plugin.prometheus_scrape_config}
    assert without_facts_plugin.FilterModule().filters() == {
        "prometheus_hosts_without_facts": without_facts_plugin.prometheus_hosts_without_facts}


def test_the_yaml_is_what_the_template_wrote_before():
    config = plugin.prometheus_scrape_config(molecule_hostvars(), "monitoring-debian12", **SETTINGS)
    assert to_nice_yaml(config, indent=2, sort_keys=False, width=1000) == MOLECULE_MONITORING_YAML
    assert "s3cret" not in repr(config)


def test_what_ansible_cannot_render_takes_the_jobs_default():
    config = plugin.prometheus_scrape_config(molecule_hostvars(debian13_facts=False), "monitoring-debian12", **SETTINGS)
    jobs = dict((job["job_name"], job) for job in config["scrape_configs"])
    # A wildcard (node-exporter) or loopback (the others) of a host without facts: its name, and it shows down.
    assert jobs["node"]["static_configs"][1]["targets"] == ["monitoring-debian13:9100"]
    assert jobs["model_server"]["static_configs"][0]["targets"] == ["monitoring-debian13:8000"]
    assert jobs["mlflow"]["static_configs"][0]["targets"] == ["monitoring-debian13:443"]


def test_hosts_without_facts():
    assert without_facts_plugin.prometheus_hosts_without_facts(
        molecule_hostvars(debian13_facts=False), SETTINGS["node_targets"], SETTINGS["serving_hosts"], SETTINGS["mlflow_hosts"]
    ) == ["monitoring-debian13"]
    assert without_facts_plugin.prometheus_hosts_without_facts(
        molecule_hostvars(), SETTINGS["node_targets"], SETTINGS["serving_hosts"], SETTINGS["mlflow_hosts"]) == []


def test_other_errors_are_not_hidden():
    def broken():
        raise ZeroDivisionError("a bug, not an undefined variable")
    hostvars = molecule_hostvars()
    hostvars["monitoring-debian13"].data["model_server_listen_address"] = broken
    with pytest.raises(ZeroDivisionError):
        plugin.prometheus_scrape_config(hostvars, "monitoring-debian12", **SETTINGS)


@pytest.mark.parametrize("changes,message", [
    ({"node_targets": ["ghost"]}, "prometheus_scrape_config: ghost: not a host of the inventory"),
    ({"serving_hosts": "monitoring-debian13"}, "prometheus_scrape_config: serving_hosts: must be a list of host names"),
    ({"typo_port": 1}, "prometheus_scrape_config: settings: typo_port unknown"),
])
def test_bad_input_fails_templating_naming_it(changes, message):
    settings = dict(SETTINGS, **changes)
    with pytest.raises(AnsibleFilterError) as exc:
        plugin.prometheus_scrape_config(molecule_hostvars(), "monitoring-debian12", **settings)
    assert message in str(exc.value)


def test_an_undefined_part_of_a_model_fails_templating():
    hostvars = molecule_hostvars()
    hostvars["monitoring-debian13"].data["model_server_models"] = [{"name": "iris", "port": StrictUndefined(name="p")}]
    with pytest.raises(AnsibleFilterError) as exc:
        plugin.prometheus_scrape_config(hostvars, "monitoring-debian12", **SETTINGS)
    assert "monitoring-debian13: model_server_models: a part of it cannot be rendered" in str(exc.value)


def test_hosts_without_facts_unknown_host_fails():
    with pytest.raises(AnsibleFilterError) as exc:
        without_facts_plugin.prometheus_hosts_without_facts(molecule_hostvars(), ["ghost"], [], [])
    assert "prometheus_hosts_without_facts: ghost: not a host of the inventory" in str(exc.value)
