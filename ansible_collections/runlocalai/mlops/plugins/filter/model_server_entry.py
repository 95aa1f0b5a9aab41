# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: model_server_entry
short_description: A model_server_models entry over the role's defaults, renamed keys honoured
version_added: "0.2.0"
description:
  - The settings of one C(model_server_models) entry as the model_server role uses them, the entry's own keys over
    O(defaults), with the keys and role variables that were renamed still honoured, each use emitting a deprecation
    warning (C(workers) is now C(threads), C(model_server_workers) is now C(model_server_threads)).
  - The logic is C(module_utils/serving/entry.py).
options:
  _input:
    description: The entry.
    type: dict
    required: true
  defaults:
    description: The role's default of each entry key, by key (C(threads) for C(model_server_threads), ...).
    type: dict
    required: true
  deprecated_vars:
    description: "The renamed role variables the inventory sets, by their old name, e.g. C({model_server_workers: 4})."
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Settings of an entry
  ansible.builtin.debug:
    msg: "{{ {'name': 'churn', 'port': 8080, 'workers': 4} | runlocalai.mlops.model_server_entry({'threads': 2}) }}"
  # {"name": "churn", "port": 8080, "threads": 4}, and a deprecation warning for workers
"""

RETURN = r"""
_value:
  description: The entry's settings.
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MlopsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.entry import entry_settings

display = Display()


def model_server_entry(entry, defaults, deprecated_vars=None):
    try:
        settings, deprecations = entry_settings(entry, defaults, deprecated_vars)
    except MlopsError as exc:
        raise AnsibleFilterError(str(exc))
    for message in deprecations:
        display.deprecated(message, version="2.0.0", collection_name="runlocalai.mlops")
    return settings


class FilterModule(object):
    def filters(self):
        return {"model_server_entry": model_server_entry}
