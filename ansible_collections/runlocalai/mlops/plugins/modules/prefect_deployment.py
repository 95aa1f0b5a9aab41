#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: prefect_deployment
short_description: Create, update or remove a deployment of the training pipeline on a Prefect server
version_added: "0.2.0"
description:
  - Makes the Prefect deployment O(name) of the flow O(flow_name) match the options (work pool, entrypoint, the
    directory its runs start in, parameters, cron schedule, concurrency limit, tags), through the server's REST API.
  - Compares every field it manages with the server's deployment and writes only when one differs (one POST that
    creates or replaces it, schedules included), so a second run reports no change.
  - The work pool must exist (a prefect_worker creates it when it starts); the module fails naming it otherwise.
  - playbooks/train.yml calls it once per C(training_pipelines) entry.
author:
  - runlocalai contributors (@runlocalai)
extends_documentation_fragment:
  - runlocalai.mlops.prefect_connection
attributes:
  check_mode:
    support: full
    description: Reads the server's deployment and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: The managed fields before and after.
options:
  name:
    description: Name of the deployment (the playbook uses the model's name).
    type: str
    required: true
  flow_name:
    description: Name of the flow the deployment runs; created on the server when missing.
    type: str
    default: training-pipeline
  state:
    description: V(present) creates or updates it, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  work_pool:
    description: Work pool whose workers run it. Required with O(state=present).
    type: str
  entrypoint:
    description:
      - C(PATH:FUNCTION) of the flow on the workers, for example
        V(/opt/runlocalai/training/lib/runlocalai_mlops/training/flow.py:training_pipeline). Required with O(state=present).
    type: str
  code_dir:
    description: Directory on the workers each run starts in (the pipeline code the controller shipped). Required with O(state=present).
    type: path
  parameters:
    description: Default parameters of its runs.
    type: dict
    default: {}
  schedule:
    description: Cron expression of scheduled runs; empty for none.
    type: str
    default: ""
  timezone:
    description: Time zone of O(schedule).
    type: str
    default: UTC
  concurrency_limit:
    description: Runs of this deployment at once (later ones wait).
    type: int
    default: 1
  tags:
    description: Tags of the deployment.
    type: list
    elements: str
    default: []
  description:
    description: Description shown in the UI.
    type: str
  paused:
    description: Paused deployments start no scheduled runs.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The breast-cancer pipeline, nightly, one run at a time
  runlocalai.mlops.prefect_deployment:
    api_url: https://orchestrator.example.org:4443/api
    auth_string: "{{ vault_prefect_auth_string }}"
    ca_path: /etc/ssl/certs/prefect.crt
    name: breast-cancer
    work_pool: training
    entrypoint: /opt/runlocalai/training/lib/runlocalai_mlops/training/flow.py:training_pipeline
    code_dir: /var/lib/runlocalai-training/code/3f2c1e0
    parameters:
      spec:
        model: breast-cancer
        entrypoint: "breast_cancer:train"
        data_uri: file:///srv/data/bc.csv
        label_column: target
    schedule: "0 3 * * *"
"""

RETURN = r"""
deployment:
  description: The deployment as the server holds it after the run (the managed fields, plus C(id)); empty when absent.
  returned: always
  type: dict
  sample: {id: 2bcb8939-49d6-4ede-b3b7-1a31fbd07886, name: breast-cancer, work_pool: training, concurrency_limit: 1}
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule
from ansible_collections.runlocalai.mlops.plugins.module_utils.training.prefect_api import (
    PrefectError, client_from_params, comparable, connection_spec, deployment_body)


def main():
    spec = connection_spec(env_fallback)
    spec.update(
        name=dict(type="str", required=True),
        flow_name=dict(type="str", default="training-pipeline"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        work_pool=dict(type="str"),
        entrypoint=dict(type="str"),
        code_dir=dict(type="path"),
        parameters=dict(type="dict", default={}),
        schedule=dict(type="str", default=""),
        timezone=dict(type="str", default="UTC"),
        concurrency_limit=dict(type="int", default=1),
        tags=dict(type="list", elements="str", default=[]),
        description=dict(type="str"),
        paused=dict(type="bool", default=False),
    )
    module = MlopsModule(spec, required_if=[("state", "present", ("work_pool", "entrypoint", "code_dir"))])
    p = module.params
    with module.reporting_errors():
        if p["concurrency_limit"] < 1:
            raise PrefectError("concurrency_limit: expected 1 or more, got %d" % p["concurrency_limit"])
        if p["state"] == "present" and ":" not in p["entrypoint"]:
            raise PrefectError("entrypoint: expected PATH:FUNCTION, got %r" % p["entrypoint"])
        client = client_from_params(p)
        current = client.deployment(p["name"], p["flow_name"])
        before = comparable(current)
        if p["state"] == "absent":
            if current is not None and not module.check_mode:
                client.delete_deployment(current["id"])
            module.exit_json(changed=current is not None, deployment={}, diff=dict(before=before or {}, after={}))
        if client.work_pool(p["work_pool"]) is None:
            raise PrefectError("work_pool: %r does not exist on %s (a prefect_worker of that pool creates it when it starts)"
                               % (p["work_pool"], p["api_url"]))
        flow_id = client.flow_id(p["flow_name"], create=not module.check_mode) or "(new flow)"
        body = deployment_body(flow_id, p)
        after = comparable(body)
        changed = before != after
        result = dict(after, id=(current or {}).get("id"))
        if changed and not module.check_mode:
            saved = client.upsert_deployment(body)
            result = dict(comparable(saved), id=saved["id"])
    module.exit_json(changed=changed, deployment=result, diff=dict(before=before or {}, after=after))


if __name__ == "__main__":
    main()
