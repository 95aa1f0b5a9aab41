#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: llm_validation
short_description: Validation gate for an LLM version - an evaluation set answered by its own llama-server, thresholds, champion
version_added: "0.2.0"
description:
  - Judges version O(version) of the registered GGUF model O(name) (registered with M(runlocalai.mlops.mlflow_gguf_model)) the
    way M(runlocalai.mlops.model_validation) judges a pyfunc model, and records the report on the version with the same
    tags (C(validation.passed), C(validation.report), C(validation.fingerprint)) that M(runlocalai.mlops.mlflow_model) checks
    before moving a protected alias.
  - The version's GGUF file is fetched through the tracking server into O(cache_dir) on the controller (once per file; its
    SHA-256 checked against the registered C(llm.sha256)), served by O(llama_server) on a scratch instance (loopback, a
    random port and API key, one slot, stopped when the evaluation ends), and asked every item of O(eval_set) with greedy
    decoding (temperature 0, top_k 1, seed 0, prompt cache off), streaming.
  - "Metrics: C(score) (share of the items answered right), C(ttft_p50_ms) and C(ttft_p95_ms) (time to first token as the
    client sees it), C(tokens_per_second) (median of llama-server's generation speed per item). The time metrics are this
    controller's, with this build: set their thresholds for it."
  - With O(champion_alias), the version behind that alias is evaluated the same way and the candidate fails when its score
    is lower by more than O(champion_tolerance).
  - The evaluation set is YAML kept in git, at least O(min_items) items, each C(id), C(prompt) (or C(messages)) and C(expect)
    with one matcher - C(exact) (equal after trimming space and trailing punctuation, case-insensitive), C(contains) (a
    substring or a list of them, case-insensitive), C(regex) (Python C(re.search)), C(choice) (C({choices, answer}), the
    first choice found as a whole word must be the answer); optional C(max_tokens) per item or for the set (default 64).
extends_documentation_fragment:
  - runlocalai.mlops.mlflow_connection
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - PyYAML
  - a llama-server binary on the controller (C(make setup) builds one under C(.cache/llm/))
attributes:
  check_mode:
    description: Evaluates (the GGUF cache on the controller is filled as in a normal run) and reports whether the tags would
      change, without writing them.
    support: full
  diff_mode:
    description: Shows C(validation.passed) and C(validation.fingerprint) before and after when O(record=true).
    support: full
options:
  name:
    description: The registered model.
    type: str
    required: true
  version:
    description: The candidate version (a registered GGUF).
    type: str
    required: true
  eval_set:
    description: The evaluation set (YAML or JSON file on the controller).
    type: path
    required: true
  min_items:
    description: The fewest items the evaluation set may have.
    type: int
    default: 20
  thresholds:
    description:
      - Metric to threshold, for example C(score ">=0.6"), C(ttft_p95_ms "<=500"), C(tokens_per_second ">=20").
      - Operators C(>=), C(<=), C(>), C(<), C(==); a bare number means C(>=) for C(score) and C(tokens_per_second), C(<=) for
        the times.
    type: dict
    default: {}
  llama_server:
    description: The llama-server binary that serves the scratch instance (the build the hosts get).
    type: path
    required: true
  cache_dir:
    description: Where the GGUF files are kept on the controller, named by SHA-256 (created when missing).
    type: path
    required: true
  cache_keep:
    description: How many files O(cache_dir) keeps (the newest used).
    type: int
    default: 3
  ctx_size:
    description: Context of the scratch instance's one slot (prompt and answer of one item).
    type: int
    default: 2048
  threads:
    description:
      - CPU threads of the scratch instance, at most the CPUs the task may run on (its CPU affinity).
    type: int
    default: 2
  load_timeout:
    description: Seconds the scratch llama-server may take to load and answer a first token.
    type: int
    default: 120
  champion_alias:
    description: Compare with the version behind this alias (skipped when it is not set or is the candidate).
    type: str
  champion_tolerance:
    description: How much lower than the champion's the candidate's score may be.
    type: float
    default: 0.0
  record:
    description: Store the report on the version as tags (idempotent on the report's deterministic content).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Gate version 3 of smollm2 on the evaluation set in git
  runlocalai.mlops.llm_validation:
    tracking_uri: https://mlflow.example.internal
    username: deployer
    password: "{{ vault_mlflow_deployer_password }}"
    name: smollm2
    version: "3"
    eval_set: "{{ playbook_dir }}/files/eval/smollm2.yml"
    llama_server: "{{ playbook_dir }}/../.cache/llm/llama-server-cpu/llama-server"
    cache_dir: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/runlocalai-mlops/models"
    thresholds:
      score: ">=0.6"
      ttft_p95_ms: "<=1000"
      tokens_per_second: ">=10"
    champion_alias: production
    record: true
  register: gate

- name: Stop when it failed
  ansible.builtin.fail:
    msg: "{{ gate.failures }}"
  when: not gate.passed
"""

RETURN = r"""
passed:
  description: Whether every threshold and the champion comparison passed.
  returned: success
  type: bool
  sample: true
metrics:
  description: The gate's metrics.
  returned: success
  type: dict
  sample: {"score": 0.7692, "items": 26, "correct": 20, "ttft_p50_ms": 41.2, "ttft_p95_ms": 58.0, "tokens_per_second": 84.1}
failures:
  description: The thresholds (and champion comparison) that failed, each metric, value and threshold.
  returned: success
  type: list
  elements: dict
  sample: [{"metric": "score", "value": 0.0, "threshold": ">=0.6"}]
report:
  description: The whole report (also the C(validation.report) tag with O(record=true)), answers of each item included.
  returned: success
  type: dict
recorded:
  description: Whether the tags were (or, in check mode, would be) written.
  returned: success
  type: bool
version:
  description: The version judged.
  returned: success
  type: str
  sample: "3"
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.runlocalai.mlops.plugins.module_utils.llm.evaluation import MIN_ITEMS, evaluate
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.evaluation import EvalError, fingerprint, record_report
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import (
    CONNECTION_MUTUALLY_EXCLUSIVE,
    TAG_VALIDATION_FINGERPRINT,
    TAG_VALIDATION_PASSED,
    RegistryError,
    client_from_params,
    connection_argument_spec,
    tag_dict,
)
from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule

CONNECTION_KEYS = ("tracking_uri", "username", "password", "token", "validate_certs", "ca_path", "timeout")


def main():
    module = MlopsModule(
        dict(
            connection_argument_spec(env_fallback),
            name=dict(type="str", required=True),
            version=dict(type="str", required=True),
            eval_set=dict(type="path", required=True),
            min_items=dict(type="int", default=MIN_ITEMS),
            thresholds=dict(type="dict", default={}),
            llama_server=dict(type="path", required=True),
            cache_dir=dict(type="path", required=True),
            cache_keep=dict(type="int", default=3),
            ctx_size=dict(type="int", default=2048),
            threads=dict(type="int", default=2),
            load_timeout=dict(type="int", default=120),
            champion_alias=dict(type="str"),
            champion_tolerance=dict(type="float", default=0.0),
            record=dict(type="bool", default=False),
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        libraries=("yaml",),
    )
    p = module.params
    for key in ("min_items", "ctx_size", "threads", "load_timeout"):
        if p[key] < 1:
            module.fail_json(msg="%s: must be 1 or more, got %d" % (key, p[key]))
    if p["champion_tolerance"] < 0:
        module.fail_json(msg="champion_tolerance: must be 0 or more, got %s" % p["champion_tolerance"])
    spec = dict((k, p[k]) for k in ("name", "version", "eval_set", "min_items", "thresholds", "llama_server", "cache_dir",
                                    "cache_keep", "ctx_size", "threads", "load_timeout", "champion_alias", "champion_tolerance"))
    spec["connection"] = dict((k, p[k]) for k in CONNECTION_KEYS)
    diff = None
    with module.reporting_errors():
        try:
            client = client_from_params(p)
            report = evaluate(client, spec)
            recorded = False
            if p["record"]:
                before = tag_dict(client.get_version(p["name"], p["version"]))
                recorded = record_report(client, p["name"], p["version"], report, check=module.check_mode)
                diff = {"before": {TAG_VALIDATION_PASSED: before.get(TAG_VALIDATION_PASSED),
                                   TAG_VALIDATION_FINGERPRINT: before.get(TAG_VALIDATION_FINGERPRINT)},
                        "after": {TAG_VALIDATION_PASSED: "true" if report["passed"] else "false",
                                  TAG_VALIDATION_FINGERPRINT: fingerprint(report)}}
        except (EvalError, RegistryError) as exc:
            module.fail_json(msg=str(exc))
    result = dict(changed=recorded, passed=report["passed"], metrics=report["metrics"], failures=report["failures"],
                  report=report, recorded=recorded, version=p["version"])
    if module._diff and diff is not None:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
