# -*- coding: utf-8 -*-
"""Filter runlocalai.mlops.deployment_divergences (reconcile.yml) on recorded task results."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.filter.deployment_divergences import deployment_divergences

ENTRIES = [
    {"name": "bc", "alias": "production", "port": 8080},
    {"name": "bc-pinned", "version": 1, "port": 8081},
    {"name": "churn", "alias": "champion", "port": 8082},
]


def alias(entry, state, version=None):
    out = {"item": entry, "state": state, "changed": False}
    if version is not None:
        out["version"] = {"version": str(version), "run_id": "r%s" % version}
    return out


def served(entry, status, version=None):
    out = {"item": entry, "status": status}
    if status == 200:
        out["json"] = {"models": [{"name": entry["name"], "version": str(version)}]}
    return out


def test_in_line_with_git_and_the_registry():
    aliases = [alias(ENTRIES[0], "found", 3), alias(ENTRIES[2], "found", 7)]
    answers = [served(ENTRIES[0], 200, 3), served(ENTRIES[1], 200, 1), served(ENTRIES[2], 200, 7)]
    paths = ["/etc/runlocalai-model/bc.json", "/etc/runlocalai-model/bc-pinned.json", "/etc/runlocalai-model/churn.json"]
    assert deployment_divergences(ENTRIES, aliases, answers, paths) == []


def test_every_kind_of_divergence_in_entry_order():
    aliases = [alias(ENTRIES[0], "found", 3), alias(ENTRIES[2], "missing")]
    answers = [served(ENTRIES[0], 200, 2), served(ENTRIES[1], -1), served(ENTRIES[2], 503)]
    paths = iter(["/etc/runlocalai-model/bc.json", "/etc/runlocalai-model/old-model.json"])  # a generator, as map() gives
    assert deployment_divergences(ENTRIES, aliases, answers, paths) == [
        "bc: declared v3 (alias production), service reports v2",
        "bc-pinned: declared v1, service reports nothing (HTTP -1)",
        "churn: declared alias champion does not exist in the registry",
        "old-model: configured on the host but not declared",
    ]


def test_an_instance_s_model_check_spec_is_not_an_instance():
    """model_server writes NAME.model-check.json beside NAME.json: it belongs to NAME; an orphan one
    is not an instance either (site.yml's stale clean-up removes it with its instance)."""
    aliases = [alias(ENTRIES[0], "found", 3), alias(ENTRIES[2], "found", 7)]
    answers = [served(ENTRIES[0], 200, 3), served(ENTRIES[1], 200, 1), served(ENTRIES[2], 200, 7)]
    paths = ["/etc/runlocalai-model/bc.json", "/etc/runlocalai-model/bc.model-check.json",
             "/etc/runlocalai-model/bc-pinned.json", "/etc/runlocalai-model/churn.json"]
    assert deployment_divergences(ENTRIES, aliases, answers, paths) == []


def test_results_without_their_loop_item_are_refused():
    with pytest.raises(AnsibleFilterError, match="alias_results: each result must carry the loop item"):
        deployment_divergences(ENTRIES, [{"state": "found"}], [], [])
