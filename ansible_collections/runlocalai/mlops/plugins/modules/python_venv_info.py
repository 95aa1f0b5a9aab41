#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: python_venv_info
short_description: What a Python virtualenv holds, and whether its pinned distributions are installed
version_added: "0.2.0"
description:
  - Reports whether the virtualenv at O(path) exists, the installed version of each distribution O(requirements) name,
    and whether every requirement is pinned (C(NAME==VERSION), extras allowed) and installed at exactly that version,
    so that a role can skip pip when nothing is to be done.
  - With O(python), also the version and full build string (C(sys.version)) of the interpreter a virtualenv is made from.
  - Reads only; never changes anything. The role runlocalai.mlops.runtime (entry point C(venv)) uses it.
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    description: Reads as usual (it never changes anything).
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
options:
  path:
    description: The virtualenv's directory.
    type: path
    required: true
  requirements:
    description: Requirement strings (C(mlflow==3.17.2), C(mlflow[auth]==3.17.2), C(numpy>=2)); their names are looked up.
    type: list
    elements: str
    default: []
  python:
    description: An interpreter (path or command name) whose version to report, e.g. the one a virtualenv is made with.
    type: str
"""

EXAMPLES = r"""
- name: Read the serving virtualenv
  runlocalai.mlops.python_venv_info:
    path: /opt/runlocalai/venvs/model-server
    requirements: [mlflow==3.17.2]
    python: python3
  register: venv

- name: Install only when a pin is missing or at another version
  ansible.builtin.pip:
    name: [mlflow==3.17.2]
    virtualenv: /opt/runlocalai/venvs/model-server
  when: not venv.pinned
"""

RETURN = r"""
exists:
  description: Whether O(path) holds a virtualenv (an executable C(bin/python)).
  returned: always
  type: bool
packages:
  description: Installed version of each requirement's distribution (null when not installed); empty when there is no virtualenv.
  returned: always
  type: dict
  sample: {"mlflow": "3.17.2"}
pinned:
  description: Every requirement is C(NAME==VERSION) and installed at that version (false when there is none to check).
  returned: always
  type: bool
base:
  description: With O(python), its C(version), C(build) (C(sys.version)) and C(executable); else null.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runlocalai.mlops.plugins.module_utils.host.base import HostFactsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.host.venv import venv_info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            requirements=dict(type="list", elements="str", default=[]),
            python=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    try:
        result = venv_info(module.params["path"], module.params["requirements"], module.params["python"])
    except HostFactsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
