# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: prometheus_hosts_without_facts
short_description: The hosts Prometheus scrapes that this run has no network facts for
version_added: "0.2.0"
description:
  - The hosts named by the scrape configuration (O(node_targets), then O(serving_hosts), then O(mlflow_hosts), each once)
    whose C(ansible_facts) have no C(default_ipv4) - none gathered, as for a host left out by C(--limit). The
    C(runlocalai.mlops.monitoring) role reads their network facts before it writes C(prometheus.yml), so that a limited
    run writes the same configuration as a full one (see P(runlocalai.mlops.prometheus_scrape_config#filter)).
  - The logic is C(hosts_without_facts) in C(module_utils/monitoring/prometheus.py). Runs on the controller only; a name
    that is not a host of the inventory fails templating.
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  node_targets:
    description: Hosts whose node-exporter is scraped (C(monitoring_node_targets)).
    type: list
    elements: str
    required: true
  serving_hosts:
    description: Hosts of the model services.
    type: list
    elements: str
    required: true
  mlflow_hosts:
    description: MLflow tracking servers.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Network facts of the scrape targets this run has none for
  ansible.builtin.setup:
    gather_subset: [network]
  delegate_to: "{{ item }}"
  delegate_facts: true
  loop: >-
    {{ hostvars | runlocalai.mlops.prometheus_hosts_without_facts(monitoring_node_targets,
         groups['serving'] | default([]), groups['mlflow'] | default([])) }}
  ignore_unreachable: true
"""

RETURN = r"""
_value:
  description: Host names, in the order of the scrape configuration.
  type: list
  elements: str
  sample: [serving2]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.plugin_utils.hostvars import NOT_RENDERED, UNDEFINED
from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring.prometheus import (
    PrometheusConfigError, hostvars_without_facts)


def prometheus_hosts_without_facts(hostvars, node_targets, serving_hosts, mlflow_hosts):
    try:
        return hostvars_without_facts(hostvars, node_targets, serving_hosts, mlflow_hosts,
                                      errors=NOT_RENDERED, undefined=UNDEFINED)
    except PrometheusConfigError as exc:
        raise AnsibleFilterError("prometheus_hosts_without_facts: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"prometheus_hosts_without_facts": prometheus_hosts_without_facts}
