#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: prefect_flow_run
short_description: Start a run of a Prefect deployment and wait for its end
version_added: "0.2.0"
description:
  - Creates a flow run of the deployment O(deployment) (of the flow O(flow_name)) with O(parameters) merged over the
    deployment's own, and with O(wait) waits until it is Completed, Failed, Crashed or Cancelled.
  - Fails when the run does not complete (its state message says which stage refused and why), unless O(fail_on_failure=false).
  - An O(idempotency_key) the server has seen returns that run instead of starting another (the same key twice starts one run).
  - Starting a run is a change; in check mode nothing is started.
author:
  - runlocalai contributors (@runlocalai)
extends_documentation_fragment:
  - runlocalai.mlops.prefect_connection
attributes:
  check_mode:
    support: full
    description: Checks that the deployment exists and reports that a run would start; starts nothing.
  diff_mode:
    support: none
    description: A run is an event, not a state to compare.
options:
  deployment:
    description: Name of the deployment.
    type: str
    required: true
  flow_name:
    description: Name of its flow.
    type: str
    default: training-pipeline
  parameters:
    description: Parameters of this run, over the deployment's defaults (the pipeline takes C(trigger) here).
    type: dict
    default: {}
  tags:
    description: Tags of the run.
    type: list
    elements: str
    default: []
  idempotency_key:
    description: A key that makes a repeated call return the run the first call started.
    type: str
  wait:
    description: Wait for the run's end.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait before failing.
      - A run still waiting for a worker after 60 seconds fails at once when its work pool has no
        worker polling it (status C(NOT_READY)) or is paused, instead of waiting for the timeout.
    type: int
    default: 1800
  fail_on_failure:
    description: Fail when the run ends in another state than Completed.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Train breast-cancer now and wait
  runlocalai.mlops.prefect_flow_run:
    api_url: https://orchestrator.example.org:4443/api
    auth_string: "{{ vault_prefect_auth_string }}"
    ca_path: /etc/ssl/certs/prefect.crt
    deployment: breast-cancer
    parameters:
      trigger: {kind: manual, by: "{{ lookup('env', 'USER') }}"}
  register: run

- name: What it did
  ansible.builtin.debug:
    msg: "{{ run.flow_run.state.message }}"
"""

RETURN = r"""
flow_run:
  description: The run (id, name, state type, name and message, seconds it ran); without O(wait), as just created.
  returned: success, not in check mode
  type: dict
  sample:
    id: 1564cd52-5d13-421c-b784-3d8fc836b1c4
    name: private-whale
    state: {type: COMPLETED, name: Completed, message: "registered breast-cancer version 4 (run 9f1c...)"}
    total_run_time: 41.2
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule
from ansible_collections.runlocalai.mlops.plugins.module_utils.training.prefect_api import (
    PrefectError, client_from_params, connection_spec)


def summary(run):
    state = run.get("state") or {}
    return {"id": run.get("id"), "name": run.get("name"), "deployment_id": run.get("deployment_id"),
            "parameters": run.get("parameters"), "tags": run.get("tags"), "total_run_time": run.get("total_run_time"),
            "state": {"type": state.get("type"), "name": state.get("name"), "message": state.get("message")}}


def main():
    spec = connection_spec(env_fallback)
    spec.update(
        deployment=dict(type="str", required=True),
        flow_name=dict(type="str", default="training-pipeline"),
        parameters=dict(type="dict", default={}),
        tags=dict(type="list", elements="str", default=[]),
        idempotency_key=dict(type="str", no_log=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        fail_on_failure=dict(type="bool", default=True),
    )
    module = MlopsModule(spec)
    p = module.params
    with module.reporting_errors():
        if p["wait_timeout"] < 1:
            raise PrefectError("wait_timeout: expected 1 or more seconds, got %d" % p["wait_timeout"])
        client = client_from_params(p)
        deployment = client.deployment(p["deployment"], p["flow_name"])
        if deployment is None:
            raise PrefectError("deployment: %s/%s does not exist on %s (run playbooks/train.yml to register it)"
                               % (p["flow_name"], p["deployment"], p["api_url"]))
        if module.check_mode:
            module.exit_json(changed=True, msg="would start a run of %s" % p["deployment"])
        run = client.create_flow_run(deployment["id"], p["parameters"], p["tags"], p["idempotency_key"])
        if p["wait"]:
            run = client.wait(run["id"], p["wait_timeout"])
    result = summary(run)
    if p["wait"] and p["fail_on_failure"] and result["state"]["type"] != "COMPLETED":
        module.fail_json(msg="flow run %s of %s ended %s: %s" % (result["name"], p["deployment"], result["state"]["name"],
                                                                 result["state"]["message"]), flow_run=result)
    module.exit_json(changed=True, flow_run=result)


if __name__ == "__main__":
    main()
