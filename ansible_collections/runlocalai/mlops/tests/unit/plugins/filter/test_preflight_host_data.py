# -*- coding: utf-8 -*-
"""Filter runlocalai.mlops.preflight_host_data: the preflight role's input from hostvars. The logic is
module_utils.stack.preflight.host_data (tested there); here the Ansible side: which errors mean
"cannot be rendered" and how bad input fails templating."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError
from jinja2 import StrictUndefined

from ansible_collections.runlocalai.mlops.tests.unit.plugins.hostvars_standin import HostVars, undefined_variable, broken
from ansible_collections.runlocalai.mlops.plugins.filter import preflight_host_data as plugin
from ansible_collections.runlocalai.mlops.plugins.module_utils.stack.preflight import UNKNOWN


def test_the_filter_is_registered():
    assert plugin.FilterModule().filters() == {"preflight_host_data": plugin.preflight_host_data}


def test_what_ansible_cannot_render_becomes_unknown_and_secrets_stay_booleans():
    hostvars = {"mlflow1": HostVars({
        "group_names": ["mlflow"],
        "mlflow_server_listen_address": undefined_variable,
        "model_server_models": [{"name": "m", "port": StrictUndefined(name="undefined_port")}],
        "mlflow_server_admin_password": "s3cret",
        "mlflow_server_metrics_password": undefined_variable,
    })}
    data = plugin.preflight_host_data(hostvars, ["mlflow1"], {"mlflow_server_port": 5000})["mlflow1"]
    assert data["groups"] == ["mlflow"]
    assert data["vars"] == {"mlflow_server_listen_address": UNKNOWN, "model_server_models": UNKNOWN,
                            "mlflow_server_port": 5000}
    assert data["secrets"]["mlflow_server_admin_password"] is True
    assert data["secrets"]["mlflow_server_metrics_password"] is False
    assert "s3cret" not in repr(data)


def test_other_errors_are_not_hidden():
    with pytest.raises(ZeroDivisionError):
        plugin.preflight_host_data({"h": HostVars({"mlflow_server_port": broken})}, ["h"], {})


@pytest.mark.parametrize("hosts,defaults,message", [
    (["ghost"], {}, "preflight_host_data: hosts: ghost is not a host of the inventory"),
    (["h"], "defaults", "preflight_host_data: role_defaults: must be a dict"),
])
def test_bad_input_fails_templating_naming_it(hosts, defaults, message):
    with pytest.raises(AnsibleFilterError) as exc:
        plugin.preflight_host_data({"h": HostVars({})}, hosts, defaults)
    assert message in str(exc.value)
