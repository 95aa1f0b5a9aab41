# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: deployment_divergences
short_description: Where a serving host's deployments differ from git and the registry
version_added: "0.2.0"
description:
  - What C(playbooks/reconcile.yml) reports and converges, as sentences, in entry order, then the undeclared instances.
  - A declared version or the version the declared alias points at, against the version the service reports at
    C(/v1/models); a declared alias missing from the registry; an instance configured on the host that no entry declares.
  - The logic is C(module_utils/stack/reconcile.py).
options:
  _input:
    description: The host's C(model_server_models).
    type: list
    elements: dict
    required: true
  alias_results:
    description: The loop results of M(runlocalai.mlops.mlflow_model_info) for the entries that declare an alias.
    type: list
    elements: dict
    required: true
  served_results:
    description: The loop results of C(GET /v1/models) (M(ansible.builtin.uri)) for every entry.
    type: list
    elements: dict
    required: true
  configured_paths:
    description: Paths of the instance configuration files found on the host (C(<name>.json)).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: List the divergences
  ansible.builtin.set_fact:
    divergences: >-
      {{ model_server_models | runlocalai.mlops.deployment_divergences(aliases.results, served.results,
                                                                      configured.files | map(attribute='path')) }}
"""

RETURN = r"""
_value:
  description: "One sentence per divergence, e.g. C(churn: declared v3 (alias production), service reports v2)."
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MlopsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.stack.reconcile import divergences


def deployment_divergences(entries, alias_results, served_results, configured_paths):
    try:
        return divergences(entries, alias_results, served_results, list(configured_paths))
    except MlopsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"deployment_divergences": deployment_divergences}
