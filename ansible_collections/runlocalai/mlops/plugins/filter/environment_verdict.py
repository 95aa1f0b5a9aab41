# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: environment_verdict
short_description: Whether the serving hosts can run a model version, from their host_facts results
version_added: "0.2.0"
description:
  - The decision of the deploy's environment check (the lifecycle role's C(environment) entry point), over the loop
    results of M(runlocalai.mlops.host_facts) run with O(runlocalai.mlops.host_facts#module:expected_from) on each
    target against its model-server virtualenv.
  - A required package whose major.minor differs from the installed one (or that is missing, or outside the range the
    model requires), a CUDA major the model was built for that the host cannot run, or another Python major is a
    mismatch; another Python minor is a warning. With O(policy=warn) mismatches are warnings too.
  - The logic is C(module_utils/host/compatibility.py).
options:
  _input:
    description: The loop results of M(runlocalai.mlops.host_facts), C(item) being the host; a skipped item is a host
      that was not compared.
    type: list
    elements: dict
    required: true
  policy:
    description: V(fail) - mismatches refuse the version; V(warn) - they are reported as warnings.
    type: str
    default: fail
    choices: [fail, warn]
  files_found:
    description: Whether the version had any of its MLflow environment files in the registry.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Judge the targets
  ansible.builtin.set_fact:
    verdict: "{{ host_results.results | runlocalai.mlops.environment_verdict(lifecycle_environment_mismatch) }}"
"""

RETURN = r"""
_value:
  description:
    - C(passed), C(policy), C(mismatches) (each C(host), C(item), C(wanted), C(found), C(message)), C(warnings),
      C(failures) (the messages that refuse), C(summary) and C(hosts) (per host what was compared).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MlopsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.host.compatibility import verdict

SKIPPED_NOTE = "no model-server virtualenv on the host yet (the roll-out creates it from the pinned packages)"


def environment_verdict(results, policy="fail", files_found=True):
    hosts = []
    for result in results or []:
        if not isinstance(result, dict) or "item" not in result:
            raise AnsibleFilterError("environment_verdict: expected the loop results of host_facts, got %r" % (result,))
        if result.get("skipped"):
            hosts.append({"host": result["item"], "facts": None, "note": SKIPPED_NOTE})
        elif result.get("failed"):
            raise AnsibleFilterError("environment_verdict: host_facts failed on %s: %s" % (result["item"], result.get("msg")))
        else:
            hosts.append({"host": result["item"], "facts": result})
    try:
        return verdict(hosts, policy=policy, files_found=bool(files_found))
    except MlopsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"environment_verdict": environment_verdict}
