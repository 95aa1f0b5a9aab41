#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: stack_preflight
short_description: Check the whole inventory across hosts and roles before anything changes
version_added: "0.1.0"
description:
  - Runs on the controller, once, with data the C(runlocalai.mlops.preflight) role gathers from every host's
    variables. Checks what no single role can see - the group layout (one C(mlflow) host when hosts serve or
    monitor, at most one C(monitoring) host, C(gpu) and C(cpu) apart), the model entries of each serving host
    (unique names and ports, alias or version, C(cuda) only on C(gpu) hosts, a tracking URI, a token beyond
    loopback), ports of different roles on one host, whether serving hosts can reach and authenticate to the
    tracking server, whether Prometheus can reach its scrape targets, secrets one role needs from another
    (never their values, only whether they are set), whether Alertmanager on the monitoring hosts delivers
    alerts anywhere (not in a lab, see O(environment)), the controller's ansible-core version and each host's
    clock against the controller's.
  - Fails with one message listing every problem, each naming the host and the variable, unless
    O(fail_on_problems=false). Reads only; never changes anything (RV(ignore:changed) is always false).
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description: Checks exactly as in a normal run; nothing is ever written.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
options:
  hosts:
    description:
      - Host name to its data. Keys of each value
      - C(groups) - the host's groups (C(group_names)).
      - C(vars) - variable name to value, with the roles' defaults filled in where the host sets none (what the
        P(runlocalai.mlops.preflight_host_data#filter) filter gives, from the roles' own C(defaults/main.yml)). The
        module holds no defaults - a variable the checks read that is missing here is reported as a problem naming
        the host and the variable, and the checks that need it are skipped. A value of V(__preflight_unknown__) marks
        a variable that could not be rendered (for example from facts of a host outside the play); the checks that
        need it are skipped with a warning.
      - C(secrets) - variable name to a boolean, whether that secret is set (never the secret itself).
      - C(clock) - optional C(before), C(host), C(after) - the controller's time before and after the host's
        clock was read, and the host's reading (seconds since the epoch or ISO 8601 UTC).
    type: dict
    required: true
  inventory_groups:
    description: Names of every group of the inventory (an empty C(monitoring) group still counts, as in the monitoring role).
    type: list
    elements: str
    default: []
  ansible_version:
    description: The controller's ansible-core version (C(ansible_version.full)).
    type: str
  min_ansible_version:
    description: Oldest ansible-core accepted on the controller; empty skips the check.
    type: str
    default: ""
  max_clock_skew_seconds:
    description: Greatest accepted difference between a host's clock and the controller's.
    type: float
    default: 30
  environment:
    description:
      - What the inventory is (the C(runlocalai.mlops.preflight) role's C(preflight_environment)).
      - V(production) - a monitoring host whose Alertmanager sends every alert to the receiver C(null)
        (C(monitoring_alertmanager_default_receiver) empty, or C(null) with no route of
        C(monitoring_alertmanager_routes) sending anything elsewhere) is a problem.
      - V(lab) - a lab or test inventory; the same is only a notice.
    type: str
    choices: [production, lab]
    default: production
  skip:
    description: Checks to leave out.
    type: list
    elements: str
    choices: [groups, models, ports, tracking, scrape, secrets, alerting, ansible_version, clock]
    default: []
  fail_on_problems:
    description: Fail when a problem is found (the result still lists every problem).
    type: bool
    default: true
seealso:
  - module: runlocalai.mlops.host_facts
"""

EXAMPLES = r"""
# What the runlocalai.mlops.preflight role does: the filter runlocalai.mlops.preflight_host_data gathers
# each host's settings (see its EXAMPLES), the module checks them all at once on the controller.
- name: Gather the settings of every host (the roles' defaults where a host sets none)
  ansible.builtin.set_fact:
    preflight_data: "{{ hostvars | runlocalai.mlops.preflight_host_data(groups['all'], role_defaults) }}"
  run_once: true
  no_log: true

- name: Check the inventory
  runlocalai.mlops.stack_preflight:
    hosts: "{{ preflight_data }}"
    inventory_groups: "{{ groups.keys() | list }}"
    ansible_version: "{{ ansible_version.full }}"
    min_ansible_version: "2.17"
    environment: production
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
passed:
  description: Whether no problem was found.
  returned: always
  type: bool
  sample: false
problems:
  description: Every problem found, each with C(host) (or V((inventory)), V((controller))), C(variable) and C(message).
  returned: always
  type: list
  elements: dict
  sample:
    - host: serving1
      variable: model_server_models[churn].port
      message: port 9100 of model service churn collides with node-exporter (monitoring_node_exporter_port) on the same host
notices:
  description: Findings that do not fail the check (also shown as warnings), e.g. variables that could not be evaluated.
  returned: always
  type: list
  elements: str
checks:
  description: The checks that ran.
  returned: always
  type: list
  elements: str
  sample: [groups, models, ports, tracking, scrape, secrets, alerting, ansible_version, clock]
hosts_checked:
  description: Number of hosts checked.
  returned: always
  type: int
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runlocalai.mlops.plugins.module_utils.stack.preflight import (
    CHECKS, ENVIRONMENTS, PreflightError, check_stack, format_problems)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hosts=dict(type="dict", required=True),
            inventory_groups=dict(type="list", elements="str", default=[]),
            ansible_version=dict(type="str"),
            min_ansible_version=dict(type="str", default=""),
            max_clock_skew_seconds=dict(type="float", default=30.0),
            environment=dict(type="str", choices=list(ENVIRONMENTS), default=ENVIRONMENTS[0]),
            skip=dict(type="list", elements="str", choices=list(CHECKS), default=[]),
            fail_on_problems=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["max_clock_skew_seconds"] < 0:
        module.fail_json(msg="max_clock_skew_seconds: must be 0 or more, got %s" % params["max_clock_skew_seconds"], changed=False)
    try:
        result = check_stack(params["hosts"], ansible_version=params["ansible_version"],
                             min_ansible_version=params["min_ansible_version"] or None,
                             max_clock_skew_seconds=params["max_clock_skew_seconds"], skip=params["skip"],
                             inventory_groups=params["inventory_groups"], environment=params["environment"])
    except PreflightError as exc:
        module.fail_json(msg=str(exc), changed=False)
    for warning in result["notices"]:
        module.warn(warning)
    if result["problems"] and params["fail_on_problems"]:
        module.fail_json(msg=format_problems(result["problems"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
