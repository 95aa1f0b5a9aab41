# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: preflight_host_data
short_description: The input of the stack preflight from the hosts' variables
version_added: "0.2.0"
description:
  - Builds the O(runlocalai.mlops.stack_preflight#module:hosts) option of M(runlocalai.mlops.stack_preflight) from
    C(hostvars) - per host its groups (C(group_names)), the variables the checks read, which secrets are set and the
    reading of its clock. The names of those variables are defined once, next to the checks
    (C(SETTINGS), C(HOST_SETTINGS), C(SECRETS) in C(module_utils/stack/preflight.py)).
  - A setting the host does not set takes its value from O(role_defaults) (the roles' own C(defaults/main.yml), which the
    C(runlocalai.mlops.preflight) role reads); one in neither is left out, and the module reports it. C(ansible_host) and
    C(monitoring_server) are passed only where the host sets them.
  - A variable the host sets that cannot be rendered here (for example an address from facts of a host outside the play)
    becomes V(__preflight_unknown__); the module skips the checks that need it and warns.
  - Secrets are reduced to whether they are set (a non-empty value); their values never leave the filter. A secret that
    cannot be rendered counts as not set.
  - The clock reading comes from the facts the preflight role sets on each host (C(__preflight_clock_before),
    C(__preflight_clock_reading), C(__preflight_clock_after)); a host without them has no clock reading.
  - Runs on the controller only; a name in O(hosts) that is not a host of the inventory fails templating.
seealso:
  - module: runlocalai.mlops.stack_preflight
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: Names of the hosts to gather (the role's C(preflight_hosts)).
    type: list
    elements: str
    required: true
  role_defaults:
    description: Variable name to default, the other roles' C(defaults/main.yml) read as data.
    type: dict
    required: true
"""

EXAMPLES = r"""
# As the runlocalai.mlops.preflight role gathers the input of runlocalai.mlops.stack_preflight.
- name: Gather the settings of every host (secrets only as set / not set)
  ansible.builtin.set_fact:
    preflight_data: "{{ hostvars | runlocalai.mlops.preflight_host_data(groups['all'], role_defaults) }}"
  vars:
    role_defaults: >-
      {{ (lookup('ansible.builtin.file', 'roles/mlflow_server/defaults/main.yml') | from_yaml)
         | combine(lookup('ansible.builtin.file', 'roles/monitoring/defaults/main.yml') | from_yaml)
         | combine(lookup('ansible.builtin.file', 'roles/model_server/defaults/main.yml') | from_yaml) }}
  run_once: true
  no_log: true
"""

RETURN = r"""
_value:
  description:
    - Host name to C(groups) (list), C(vars) (variable name to value), C(secrets) (variable name to a boolean) and
      C(clock) (C(before), C(host), C(after), or null).
  type: dict
  sample:
    serving1:
      groups: [serving, cpu]
      vars: {model_server_listen_address: 10.0.0.7, model_server_device: cpu, mlflow_server_port: 5000}
      secrets: {model_server_api_token: true, mlflow_server_admin_password: false}
      clock: {before: 1714564800.1, host: "2024-05-01T12:00:00.250000Z", after: 1714564800.3}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.plugin_utils.hostvars import NOT_RENDERED, UNDEFINED
from ansible_collections.runlocalai.mlops.plugins.module_utils.stack.preflight import PreflightError, host_data


def preflight_host_data(hostvars, hosts, role_defaults):
    try:
        return host_data(hostvars, hosts, role_defaults, errors=NOT_RENDERED, undefined=UNDEFINED)
    except PreflightError as exc:
        raise AnsibleFilterError("preflight_host_data: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"preflight_host_data": preflight_host_data}
