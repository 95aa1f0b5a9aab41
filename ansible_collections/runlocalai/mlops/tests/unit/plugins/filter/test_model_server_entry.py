# -*- coding: utf-8 -*-
"""Filter runlocalai.mlops.model_server_entry: an entry over the model_server role's defaults, one name
per setting (threads) from the inventory to the service; the old names still work and warn."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.filter import model_server_entry as plugin
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.config import DEFAULTS

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "model_server")


@pytest.fixture
def deprecations(monkeypatch):
    seen = []
    monkeypatch.setattr(plugin.display, "deprecated", lambda msg, **kwargs: seen.append((msg, kwargs)))
    return seen


def test_entry_keys_win_over_the_defaults(deprecations):
    settings = plugin.model_server_entry({"name": "churn", "port": 8080, "threads": 4}, {"threads": 2, "device": "cpu"})
    assert settings == {"name": "churn", "port": 8080, "threads": 4, "device": "cpu"}
    assert deprecations == []


def test_the_old_names_still_work_and_warn(deprecations):
    settings = plugin.model_server_entry({"name": "churn", "port": 8080, "workers": 3}, {"threads": 2})
    assert settings["threads"] == 3 and "workers" not in settings
    settings = plugin.model_server_entry({"name": "fraud", "port": 8081}, {"threads": 2}, {"model_server_workers": 5})
    assert settings["threads"] == 5
    assert [m for m, _k in deprecations] == [
        "model_server_models entry churn: the key workers is deprecated: name it threads",
        "model_server_workers is deprecated: name it model_server_threads"]
    assert all(k == {"version": "2.0.0", "collection_name": "runlocalai.mlops"} for _m, k in deprecations)


def test_old_and_new_name_together_fail_naming_both(deprecations):
    with pytest.raises(AnsibleFilterError, match="give threads or its old name workers, not both"):
        plugin.model_server_entry({"name": "churn", "threads": 2, "workers": 3}, {"threads": 2})


def test_role_defaults_are_the_services_own():
    """The instance configuration the role writes and the app's defaults agree on every shared setting."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        role = yaml.safe_load(handle)
    mib = 1048576
    assert role["model_server_threads"] == DEFAULTS["threads"]
    for key in ("device", "sample_rate", "max_body_bytes", "max_instances", "window_max_age_hours", "audit_backup_count",
                "feedback_window", "cache_keep"):
        assert role["model_server_" + key] == DEFAULTS[key], key
    assert role["model_server_window_max_mb"] * mib == DEFAULTS["window_max_bytes"]
    assert role["model_server_audit_max_mb"] * mib == DEFAULTS["audit_max_bytes"]
    assert role["model_server_listen_address"] == DEFAULTS["listen_address"]
