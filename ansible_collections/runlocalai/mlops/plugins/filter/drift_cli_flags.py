# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: drift_cli_flags
short_description: Validated command-line flags of the drift check options
version_added: "0.2.0"
description:
  - Turns a mapping of drift check options (the options of M(runlocalai.mlops.drift_check) plus C(threads)) into the flags
    of C(python -m runlocalai_mlops.drift.cli check), validating every name, type, choice and range against the one
    definition of the options (C(module_utils/drift/options.py)). A bad option fails templating with a message naming it.
  - The model_server role uses it for the drift timer, so a bad O(_input) fails the converge, not the next timer run.
options:
  _input:
    description: "Drift check options by name, for example C({alpha: 0.01, extra_columns: ignore})."
    type: dict
    required: true
  legacy_flags:
    description:
      - Deprecated form of the same options, a list of command-line flags (C(model_server_drift_options)).
        Validated the same way and merged under O(_input); using it emits a deprecation warning.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Flags of the drift timer
  ansible.builtin.debug:
    msg: "{{ {'alpha': 0.01, 'extra_columns': 'ignore'} | runlocalai.mlops.drift_cli_flags }}"
  # ["--alpha", "0.01", "--extra-columns", "ignore"]
"""

RETURN = r"""
_value:
  description: The flags, in option-name order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MlopsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.options import cli_flags, options_from_flags

display = Display()


def drift_cli_flags(options, legacy_flags=None):
    merged = {}
    try:
        if legacy_flags:
            display.deprecated(
                "model_server_drift_options / a model entry's drift_options (command-line flags) is deprecated: give the same "
                "options by name in model_server_drift_check / the entry's drift_check, e.g. {alpha: 0.01, extra_columns: ignore}",
                version="2.0.0", collection_name="runlocalai.mlops")
            merged.update(options_from_flags(legacy_flags))
        if options is not None and not isinstance(options, dict):
            raise AnsibleFilterError("drift options: must be a mapping of option names to values, got %r" % (options,))
        merged.update(options or {})
        return cli_flags(merged)
    except MlopsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"drift_cli_flags": drift_cli_flags}
