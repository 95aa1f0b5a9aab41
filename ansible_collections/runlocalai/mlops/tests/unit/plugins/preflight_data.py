# -*- coding: utf-8 -*-
"""The other roles' defaults as the preflight role reads them (the files its vars/main.yml names, in
its order), for the preflight tests: test data gives what a host sets, the defaults come from the
roles' own files, never from a copy in a test.

    from ansible_collections.runlocalai.mlops.tests.unit.plugins.preflight_data import role_defaults, with_role_defaults
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re
from pathlib import Path

import yaml

from ansible_collections.runlocalai.mlops.plugins.module_utils.stack.preflight import HOST_SETTINGS, SETTINGS

COLLECTION = Path(__file__).resolve().parents[3]
ROLES = COLLECTION / "roles"
PREFLIGHT_VARS = ROLES / "preflight" / "vars" / "main.yml"


def default_roles():
    """The roles whose defaults/main.yml the preflight role reads, in the order it combines them."""
    return re.findall(r"role_path ~ '/\.\./([a-z_]+)/defaults/main\.yml'", PREFLIGHT_VARS.read_text())


def role_defaults():
    combined = {}
    for role in default_roles():
        combined.update(yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {})
    return combined


def with_role_defaults(hosts):
    """A copy of check_stack's `hosts` with every setting a host leaves out taken from the role defaults
    (what the preflight_host_data filter does for the role). Malformed parts are left as they are."""
    hosts = copy.deepcopy(hosts)
    if not isinstance(hosts, dict):
        return hosts
    defaults = role_defaults()
    for data in hosts.values():
        if not isinstance(data, dict) or not isinstance(data.get("vars", {}), (dict, type(None))):
            continue
        variables = data.get("vars") or {}
        data["vars"] = variables
        for name in SETTINGS:
            if name not in variables and name in defaults and name not in HOST_SETTINGS:
                variables[name] = copy.deepcopy(defaults[name])
    return hosts
