# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: prometheus_scrape_config
short_description: Prometheus' configuration (prometheus.yml) of the monitoring role, from the inventory
version_added: "0.2.0"
description:
  - Builds the configuration the C(runlocalai.mlops.monitoring) role writes to C(/etc/prometheus/prometheus.yml), as data;
    the role's template dumps it as YAML. The logic is C(scrape_config) in C(module_utils/monitoring/prometheus.py).
  - "Scrape jobs: C(prometheus) and C(alertmanager) (this host), C(node) (every host of O(node_targets)), C(model_server)
    (each entry of C(model_server_models) of each host of O(serving_hosts)), C(mlflow) (each host of O(mlflow_hosts): over
    TLS with basic auth where it runs nginx and the metrics password is set, else the loopback exporter on this host;
    with both kinds the loopback one is the job C(mlflow_local), relabelled C(job=mlflow)), then O(extra_scrape_configs)."
  - A target's address is where its service listens - C(127.0.0.1) when that is loopback or a wildcard on this host, the
    service's own listen address when it is a specific one, else the host's address (C(ansible_host) when it is an IP
    address, else C(ansible_facts.default_ipv4.address), else C(ansible_host), else the host's name). IPv6 addresses
    are written in brackets.
  - Each scraped host's variables are read from C(hostvars) (C(monitoring_node_exporter_listen_address) and C(_port),
    C(model_server_listen_address), C(model_server_models), C(mlflow_server_prometheus_enabled), C(_nginx_enabled),
    C(_listen_address), C(_nginx_https_port), C(_metrics_port), C(ansible_host) and the default IPv4 address of its
    facts); one the host does not set, or that cannot be rendered here, takes the job's default (for the node-exporter
    port, O(node_exporter_port)). This host's node-exporter is scraped at O(node_exporter_listen_address) and
    O(node_exporter_port).
  - Runs on the controller only; a host name that is not a host of the inventory, or a malformed C(model_server_models),
    fails templating.
seealso:
  - module: ansible.builtin.template
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  this_host:
    description: The host Prometheus runs on (C(inventory_hostname)).
    type: str
    required: true
  node_targets:
    description: Hosts whose node-exporter the C(node) job scrapes (C(monitoring_node_targets)).
    type: list
    elements: str
    required: true
  serving_hosts:
    description: Hosts of the model services (the C(monitoring_serving_group) group).
    type: list
    elements: str
    required: true
  mlflow_hosts:
    description: MLflow tracking servers (the C(monitoring_mlflow_group) group).
    type: list
    elements: str
    required: true
  prometheus_listen_address:
    description: C(monitoring_prometheus_listen_address).
    type: str
    required: true
  prometheus_port:
    description: C(monitoring_prometheus_port).
    type: int
    required: true
  alertmanager_listen_address:
    description: C(monitoring_alertmanager_listen_address).
    type: str
    required: true
  alertmanager_port:
    description: C(monitoring_alertmanager_port).
    type: int
    required: true
  node_exporter_listen_address:
    description: C(monitoring_node_exporter_listen_address) of this host.
    type: str
    required: true
  node_exporter_port:
    description: C(monitoring_node_exporter_port) of this host, and of every scraped host that does not set its own.
    type: int
    required: true
  scrape_interval:
    description: C(monitoring_prometheus_scrape_interval).
    type: str
    required: true
  scrape_timeout:
    description: C(monitoring_prometheus_scrape_timeout).
    type: str
    required: true
  evaluation_interval:
    description: C(monitoring_prometheus_evaluation_interval).
    type: str
    required: true
  external_labels:
    description: C(monitoring_prometheus_external_labels).
    type: dict
    required: true
  extra_scrape_configs:
    description: C(monitoring_prometheus_extra_scrape_configs), appended as they are.
    type: list
    elements: dict
    required: true
  rules_file:
    description: Path of the role's rules file.
    type: path
    required: true
  extra_rules_file:
    description: Path of the extra rules file, named in C(rule_files) when O(extra_rules) is not empty.
    type: path
    required: true
  extra_rules:
    description: C(monitoring_alert_extra_rules).
    type: list
    elements: dict
    required: true
  mlflow_username:
    description: User of the C(mlflow) job's basic auth.
    type: str
    required: true
  mlflow_password_set:
    description: Whether the MLflow metrics password is set (the password itself never reaches the filter).
    type: bool
    required: true
  mlflow_password_file:
    description: Path of the password file of the C(mlflow) job.
    type: path
    required: true
  mlflow_ca_file:
    description: Path of the CA file of the C(mlflow) job.
    type: path
    required: true
  mlflow_ca_cert:
    description: C(monitoring_mlflow_ca_cert); the job names O(mlflow_ca_file) when this is not empty or O(mlflow_ca_fetch) is true.
    type: str
    required: true
  mlflow_ca_fetch:
    description: C(monitoring_mlflow_ca_fetch).
    type: bool
    required: true
"""

EXAMPLES = r"""
# As the runlocalai.mlops.monitoring role writes /etc/prometheus/prometheus.yml (templates/prometheus.yml.j2).
- name: Prometheus configuration
  ansible.builtin.copy:
    content: "{{ config | ansible.builtin.to_nice_yaml(indent=2, sort_keys=false, width=1000) }}"
    dest: /etc/prometheus/prometheus.yml
    mode: "0640"
  vars:
    config: >-
      {{ hostvars | runlocalai.mlops.prometheus_scrape_config(inventory_hostname,
           node_targets=monitoring_node_targets, serving_hosts=groups['serving'] | default([]),
           mlflow_hosts=groups['mlflow'] | default([]),
           prometheus_listen_address='127.0.0.1', prometheus_port=9090,
           alertmanager_listen_address='127.0.0.1', alertmanager_port=9093,
           node_exporter_listen_address='127.0.0.1', node_exporter_port=9100,
           scrape_interval='30s', scrape_timeout='10s', evaluation_interval='30s', external_labels={},
           extra_scrape_configs=[], rules_file='/etc/prometheus/rules/runlocalai.rules.yml',
           extra_rules_file='/etc/prometheus/rules/runlocalai-extra.rules.yml', extra_rules=[],
           mlflow_username='prometheus', mlflow_password_set=true,
           mlflow_password_file='/etc/prometheus/secrets/mlflow-metrics',
           mlflow_ca_file='/etc/prometheus/mlflow-ca.pem', mlflow_ca_cert='', mlflow_ca_fetch=true) }}
"""

RETURN = r"""
_value:
  description:
    - The configuration, in the order it is written - C(global), C(alerting), C(rule_files), C(scrape_configs).
  type: dict
  sample:
    global: {scrape_interval: 30s, scrape_timeout: 10s, evaluation_interval: 30s, external_labels: {}}
    alerting: {alertmanagers: [{static_configs: [{targets: ["127.0.0.1:9093"]}]}]}
    rule_files: [/etc/prometheus/rules/runlocalai.rules.yml]
    scrape_configs:
      - {job_name: prometheus, static_configs: [{targets: ["127.0.0.1:9090"], labels: {instance: mon1}}]}
      - {job_name: alertmanager, static_configs: [{targets: ["127.0.0.1:9093"], labels: {instance: mon1}}]}
      - job_name: node
        static_configs:
          - {targets: ["127.0.0.1:9100"], labels: {instance: mon1}}
          - {targets: ["10.0.0.7:9100"], labels: {instance: serving1}}
      - job_name: model_server
        metrics_path: /metrics
        static_configs: [{targets: ["10.0.0.7:8080"], labels: {instance: serving1, model_service: iris}}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.plugin_utils.hostvars import NOT_RENDERED, UNDEFINED
from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring.prometheus import (
    PrometheusConfigError, hostvars_scrape_config)


def prometheus_scrape_config(hostvars, this_host, **settings):
    try:
        return hostvars_scrape_config(hostvars, this_host, settings, errors=NOT_RENDERED, undefined=UNDEFINED)
    except PrometheusConfigError as exc:
        raise AnsibleFilterError("prometheus_scrape_config: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"prometheus_scrape_config": prometheus_scrape_config}
