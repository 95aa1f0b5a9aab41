# -*- coding: utf-8 -*-
"""Filter runlocalai.mlops.drift_cli_flags: the model_server role's drift timer options, validated at
converge; the deprecated list of flags (model_server_drift_options) still works and warns."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.filter import drift_cli_flags as plugin


@pytest.fixture
def deprecations(monkeypatch):
    seen = []
    monkeypatch.setattr(plugin.display, "deprecated", lambda msg, **kwargs: seen.append((msg, kwargs)))
    return seen


def test_options_by_name_give_flags_without_warning(deprecations):
    assert plugin.drift_cli_flags({"alpha": 0.01, "extra_columns": "ignore"}) == ["--alpha", "0.01", "--extra-columns", "ignore"]
    assert plugin.drift_cli_flags({}, []) == []
    assert deprecations == []


def test_the_old_list_of_flags_still_works_and_warns(deprecations):
    assert plugin.drift_cli_flags({}, ["--extra-columns", "ignore"]) == ["--extra-columns", "ignore"]
    # merged under the new mapping: the option given by name wins
    assert plugin.drift_cli_flags({"alpha": 0.02}, ["--alpha", "0.01", "--min-rows", "5"]) == ["--alpha", "0.02", "--min-rows", "5"]
    assert len(deprecations) == 2
    message, kwargs = deprecations[0]
    assert "model_server_drift_options" in message and "model_server_drift_check" in message
    assert kwargs == {"version": "2.0.0", "collection_name": "runlocalai.mlops"}


@pytest.mark.parametrize("options,legacy,message", [
    ({"alpha": 5}, None, r"^alpha: must be a number in \(0.0, 1.0\)"),
    ({"numeric_test": "t"}, None, r"^numeric_test: must be one of ks, cvm"),
    ({"nope": 1}, None, r"unknown option 'nope'"),
    ({}, ["--alpha", "x"], r"^alpha: must be a number"),
    (["--alpha", "0.1"], None, "must be a mapping"),
])
def test_bad_options_fail_templating_naming_the_option(options, legacy, message, deprecations):
    with pytest.raises(AnsibleFilterError, match=message):
        plugin.drift_cli_flags(options, legacy)
