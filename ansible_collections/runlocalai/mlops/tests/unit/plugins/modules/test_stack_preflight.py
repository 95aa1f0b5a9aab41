# -*- coding: utf-8 -*-
"""stack_preflight module: one read-only check of the whole inventory, one failure listing every problem."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.runlocalai.mlops.plugins.modules import stack_preflight
from ansible_collections.runlocalai.mlops.tests.unit.plugins.preflight_data import with_role_defaults


def inventory():
    """What each host sets, the other settings from the roles' own defaults files (as the role passes them)."""
    return with_role_defaults({
        "mlflow1": {"groups": ["mlflow", "monitoring"],
                    "vars": {"mlflow_server_listen_address": "10.0.0.5", "mlflow_server_nginx_enabled": True,
                             "monitoring_alertmanager_default_receiver": "oncall"},
                    "secrets": {"mlflow_server_admin_password": True, "mlflow_server_model_reader_password": True,
                                "mlflow_server_metrics_password": True},
                    "clock": {"before": 100.0, "host": "1970-01-01T00:01:41.000000Z", "after": 102.0}},
        "serving1": {"groups": ["serving"],
                     "vars": {"model_server_models": [{"name": "churn", "alias": "production", "port": 8080}],
                              "model_server_listen_address": "10.0.0.7", "monitoring_node_exporter_listen_address": "10.0.0.7",
                              "model_server_tracking_uri": "https://10.0.0.5", "model_server_tracking_username": "model-reader",
                              "model_server_tracking_ca_src": "/srv/ca.pem"},
                     "secrets": {"model_server_api_token": True}},
    })


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_healthy_inventory_passes_and_never_changes(run_module, check_mode):
    result = run_module(stack_preflight, {"hosts": inventory(), "ansible_version": "2.19.14", "min_ansible_version": "2.17"},
                        check_mode=check_mode)
    assert not result["failed"], result.get("msg")
    assert result["changed"] is False and result["passed"] is True and result["problems"] == []
    assert result["hosts_checked"] == 2 and "clock" in result["checks"]


def test_every_problem_in_one_failure(run_module):
    hosts = inventory()
    hosts["mlflow1"]["secrets"]["mlflow_server_admin_password"] = False
    hosts["serving1"]["vars"]["model_server_models"].append({"name": "fraud", "alias": "production", "version": 2, "port": 9100})
    hosts["serving1"]["clock"] = {"before": 100.0, "host": 400.0, "after": 101.0}
    result = run_module(stack_preflight, {"hosts": hosts, "ansible_version": "2.15.0", "min_ansible_version": "2.17.0"})
    assert result["failed"] and result["changed"] is False and result["passed"] is False
    lines = result["msg"].splitlines()
    assert lines[0] == "preflight found 5 problems; nothing was changed:"
    assert lines[1:] == [
        "- serving1: model_server_models[fraud]: needs exactly one of alias or version, got both",
        "- serving1: model_server_models[fraud].port: port 9100 of model service fraud collides with node-exporter "
        "(monitoring_node_exporter_port) on the same host",
        "- mlflow1: mlflow_server_admin_password: is empty but mlflow_server_auth_enabled is true: set it (from a vault)",
        "- (controller): preflight_min_ansible_version: ansible-core 2.15.0 on the controller is older than 2.17.0",
        "- serving1: preflight_max_clock_skew_seconds: the host's clock is ahead of the controller's by at least 299 s "
        "(30 s allowed): audit timestamps and TLS validity depend on it; synchronise the clocks (chrony, systemd-timesyncd)"]
    assert len(result["problems"]) == 5


def test_report_only(run_module):
    hosts = inventory()
    hosts["mlflow1"]["secrets"]["mlflow_server_admin_password"] = False
    result = run_module(stack_preflight, {"hosts": hosts, "fail_on_problems": False, "skip": ["clock"]})
    assert not result["failed"] and result["passed"] is False
    assert [p["variable"] for p in result["problems"]] == ["mlflow_server_admin_password"]
    assert "clock" not in result["checks"]


def test_notices_become_warnings(run_module):
    hosts = inventory()
    hosts["mlflow1"]["vars"]["mlflow_server_listen_address"] = "__preflight_unknown__"
    result = run_module(stack_preflight, {"hosts": hosts})
    assert not result["failed"] and result["notices"][0].startswith("mlflow1: mlflow_server_listen_address could not be evaluated")


def test_alerts_that_go_nowhere_fail_production_and_are_a_warning_in_a_lab(run_module):
    hosts = inventory()
    hosts["mlflow1"]["vars"]["monitoring_alertmanager_default_receiver"] = "null"
    result = run_module(stack_preflight, {"hosts": hosts, "skip": ["clock"]})
    assert result["failed"] and result["passed"] is False
    assert result["msg"].splitlines()[1].startswith(
        '- mlflow1: monitoring_alertmanager_default_receiver: is "null" and no route of monitoring_alertmanager_routes '
        "sends anything elsewhere: every alert is dropped silently.")
    assert "set preflight_environment: lab" in result["msg"]
    result = run_module(stack_preflight, {"hosts": hosts, "skip": ["clock"], "environment": "lab"})
    assert not result["failed"] and result["passed"] is True
    assert result["notices"] == [
        'mlflow1: monitoring_alertmanager_default_receiver is "null" and no route of monitoring_alertmanager_routes '
        "sends anything elsewhere: every alert is dropped silently (allowed: preflight_environment is lab)"]


@pytest.mark.parametrize("args,message", [
    ({"hosts": {"a": {"groups": "serving"}}}, "hosts.a.groups: must be a list of group names"),
    ({"hosts": {}, "max_clock_skew_seconds": -1}, "max_clock_skew_seconds: must be 0 or more, got -1.0"),
    ({"hosts": {}, "min_ansible_version": "newest"}, "min_ansible_version: 'newest' is not a version"),
    ({"hosts": {}, "skip": ["gpu"]}, "value of skip must be one or more of"),
    ({"hosts": {}, "environment": "staging"}, "value of environment must be one of: production, lab"),
])
def test_bad_parameters_fail_naming_them(run_module, args, message):
    result = run_module(stack_preflight, args)
    assert result["failed"] and message in result["msg"], result["msg"]


def test_a_setting_without_value_or_default_is_named_not_a_traceback(run_module):
    hosts = inventory()
    del hosts["serving1"]["vars"]["model_server_tracking_validate_certs"]
    result = run_module(stack_preflight, {"hosts": hosts, "skip": ["clock"]})
    assert result["failed"] and result["passed"] is False
    assert result["msg"].splitlines()[1:] == [
        "- serving1: model_server_tracking_validate_certs: has no value: the host does not set it and no role default "
        "for it reached the preflight (the preflight_host_data filter fills in the roles' defaults/main.yml); the "
        "checks that need it were skipped"]
