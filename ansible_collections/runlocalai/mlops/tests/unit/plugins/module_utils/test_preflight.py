# -*- coding: utf-8 -*-
"""module_utils.preflight: the cross-host, cross-role checks of the whole inventory, on plain data."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
from collections.abc import Mapping

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.stack import preflight
from ansible_collections.runlocalai.mlops.plugins.module_utils.stack.preflight import (
    CHECKS, CLOCK_FACTS, HOST_SETTINGS, SECRETS, SETTINGS, UNKNOWN, PreflightError, check_stack, format_problems,
    host_data, parse_time, url_host_port, version_tuple)
from ansible_collections.runlocalai.mlops.tests.unit.plugins.preflight_data import (
    default_roles, role_defaults, with_role_defaults)


# Where Alertmanager sends alerts, as group_vars/all would set it for every host (the monitoring role reads
# it on the hosts that run Alertmanager).
RECEIVER = {"monitoring_alertmanager_default_receiver": "oncall"}


def healthy():
    """One tracking + monitoring host and two serving hosts, as the lab lays them out: no problems."""
    def serving(address, port):
        return {
            "groups": ["serving", "cpu"],
            "vars": {**RECEIVER, "ansible_host": address, "model_server_listen_address": address,
                     "monitoring_node_exporter_listen_address": address,
                     "model_server_models": [{"name": "churn", "alias": "production", "port": port},
                                             {"name": "fraud", "version": 3, "port": port + 1}],
                     "model_server_tracking_uri": "https://10.0.0.5", "model_server_tracking_username": "model-reader",
                     "model_server_tracking_ca_src": "/srv/ca/mlflow.crt"},
            "secrets": {"model_server_api_token": True},
            "clock": {"before": 1000.0, "host": 1001.0, "after": 1002.0},
        }
    return {
        "mlflow1": {
            "groups": ["mlflow", "monitoring", "cpu"],
            "vars": {**RECEIVER, "ansible_host": "10.0.0.5", "mlflow_server_listen_address": "10.0.0.5",
                     "mlflow_server_nginx_enabled": True},
            "secrets": {"mlflow_server_admin_password": True, "mlflow_server_model_reader_password": True,
                        "mlflow_server_metrics_password": True},
            "clock": {"before": "1970-01-01T00:16:40.000000Z", "host": "1970-01-01T00:16:41.500000Z",
                      "after": "1970-01-01T00:16:42.000000Z"},
        },
        "serving1": serving("10.0.0.7", 8080),
        "serving2": serving("10.0.0.8", 8080),
    }


def run(hosts, **kwargs):
    """check_stack on what the hosts set, the other settings from the roles' own defaults files (as the
    preflight_host_data filter fills them in for the role)."""
    kwargs.setdefault("ansible_version", "2.19.14")
    kwargs.setdefault("min_ansible_version", "2.17.0")
    kwargs.setdefault("max_clock_skew_seconds", 30)
    return check_stack(with_role_defaults(hosts), **kwargs)


def found(result):
    return [(p["host"], p["variable"]) for p in result["problems"]]


def only(result, host, variable, *words):
    """Exactly one problem, on that host and variable, whose message holds every word."""
    assert found(result) == [(host, variable)], result["problems"]
    message = result["problems"][0]["message"]
    for word in words:
        assert word in message, message
    return message


def test_the_healthy_lab_layout_passes():
    result = run(healthy())
    assert result["passed"] and result["problems"] == [] and result["notices"] == []
    assert result["checks"] == list(CHECKS) and result["hosts_checked"] == 3


def test_a_single_host_with_defaults_passes_once_it_says_where_alerts_go():
    # Everything on one host, loopback everywhere: the default single-box install. Its one problem: with the
    # monitoring role's defaults, Alertmanager (on every host: there is no monitoring group) delivers nothing.
    hosts = {"box": {"groups": ["mlflow", "serving"],
                     "vars": {"model_server_models": [{"name": "m", "alias": "prod", "port": 8080}],
                              "model_server_tracking_uri": "http://127.0.0.1:5000",
                              "model_server_tracking_username": "model-reader"},
                     "secrets": {"mlflow_server_admin_password": True, "mlflow_server_model_reader_password": True}}}
    only(run(hosts), "box", "monitoring_alertmanager_default_receiver", "is not set")
    assert run(hosts, environment="lab")["problems"] == []
    hosts["box"]["vars"].update(RECEIVER)
    assert run(hosts)["problems"] == []


# --- groups -------------------------------------------------------------------------------------

def test_serving_needs_exactly_one_mlflow_host():
    hosts = healthy()
    hosts["serving1"]["groups"].append("mlflow")
    hosts["serving1"]["secrets"]["mlflow_server_admin_password"] = True
    result = run(hosts, skip=["tracking", "scrape", "ports"])
    only(result, "(inventory)", "groups.mlflow", "has 2 hosts (mlflow1, serving1)", "exactly one", "serving and monitoring")
    hosts["mlflow1"]["groups"] = ["monitoring"]
    hosts["serving1"]["groups"].remove("mlflow")
    only(run(hosts, skip=["tracking", "scrape"]), "(inventory)", "groups.mlflow", "has 0 hosts (none)")


def test_at_most_one_monitoring_host_and_gpu_cpu_apart():
    hosts = healthy()
    hosts["serving1"]["groups"] = ["serving", "monitoring", "gpu", "cpu"]
    result = run(hosts, skip=["scrape", "ports"])
    assert found(result) == [("(inventory)", "groups.monitoring"), ("serving1", "groups")]
    assert "has 2 hosts (mlflow1, serving1)" in result["problems"][0]["message"]
    assert "both gpu and cpu" in result["problems"][1]["message"]


# --- model entries --------------------------------------------------------------------------------

def test_model_entries_need_unique_names_and_ports_and_one_of_alias_or_version():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_models"] = [
        {"name": "churn", "alias": "production", "port": 8080},
        {"name": "churn", "alias": "production", "version": 4, "port": 8080},
        {"name": "bad name", "port": "http", "alias": "x"},
        {"name": "lost"},
        "churn",
    ]
    result = run(hosts)
    messages = dict(((p["host"], p["variable"]), p["message"]) for p in result["problems"])
    assert set(h for h, _v in messages) == {"serving1"}
    assert "needs exactly one of alias or version, got both" in messages[("serving1", "model_server_models[churn]")]
    assert "got 'bad name'" in messages[("serving1", "model_server_models[2].name")]
    assert "got 'http'" in messages[("serving1", "model_server_models[2].port")]
    assert "got None" in messages[("serving1", "model_server_models[lost].port")]
    assert "got neither" in messages[("serving1", "model_server_models[lost]")]
    assert "must be a dict" in messages[("serving1", "model_server_models[4]")]
    duplicates = [p["message"] for p in result["problems"] if p["variable"] == "model_server_models"]
    assert duplicates == ["the name churn appears 2 times (entries 0, 1); each name may appear once per host",
                          "port 8080 is used by model_server_models[churn] and model_server_models[churn]; "
                          "each port may appear once per host"]


def test_the_same_port_on_two_hosts_is_fine():
    hosts = healthy()
    assert hosts["serving1"]["vars"]["model_server_models"][0]["port"] == hosts["serving2"]["vars"]["model_server_models"][0]["port"]
    assert run(hosts)["problems"] == []


def test_models_need_a_tracking_uri_and_a_token_beyond_loopback():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_tracking_uri"] = ""
    hosts["serving1"]["secrets"]["model_server_api_token"] = False
    result = run(hosts)
    assert found(result) == [("serving1", "model_server_tracking_uri"), ("serving1", "model_server_api_token")]
    assert "has 2 entries" in result["problems"][0]["message"]
    assert "model_server_listen_address=10.0.0.7 is beyond loopback" in result["problems"][1]["message"]
    hosts["serving1"]["vars"]["model_server_tracking_uri"] = "https://10.0.0.5"
    hosts["serving1"]["vars"]["model_server_allow_unauthenticated"] = True
    assert run(hosts)["problems"] == []


def test_cuda_models_belong_on_gpu_hosts():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_models"][0]["device"] = "cuda"
    hosts["serving2"]["vars"]["model_server_device"] = "cuda"
    result = run(hosts)
    assert found(result) == [("serving1", "model_server_models[churn].device"), ("serving2", "model_server_device"),
                             ("serving2", "model_server_device")]
    assert "not in the gpu group" in result["problems"][0]["message"]
    hosts["serving1"]["groups"] = ["serving", "gpu"]
    hosts["serving2"]["groups"] = ["serving", "gpu"]
    assert run(hosts)["problems"] == []


def test_models_on_a_host_outside_serving_are_a_notice():
    hosts = healthy()
    hosts["mlflow1"]["vars"]["model_server_models"] = [{"name": "x", "alias": "a", "port": 8080}]
    result = run(hosts)
    assert result["passed"]
    assert result["notices"] == ["mlflow1: model_server_models has 1 entry but the host is not in the serving group: "
                                 "nothing serves them"]


# --- ports -------------------------------------------------------------------------------------------

def test_model_ports_must_not_take_the_stacks_own_ports():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_models"][0]["port"] = 9100  # node-exporter
    hosts["mlflow1"]["groups"].append("serving")
    hosts["mlflow1"]["vars"].update({"model_server_models": [{"name": "m", "alias": "a", "port": 5001}],
                                     "model_server_listen_address": "10.0.0.5",
                                     "model_server_tracking_uri": "https://10.0.0.5",
                                     "model_server_tracking_username": "model-reader",
                                     "model_server_tracking_ca_path": "/etc/runlocalai/mlflow/tls/server.crt"})
    hosts["mlflow1"]["secrets"]["model_server_api_token"] = True
    result = run(hosts)
    assert found(result) == [("mlflow1", "model_server_models[m].port"), ("serving1", "model_server_models[churn].port")]
    assert result["problems"][0]["message"] == (
        "port 5001 of model service m collides with the MLflow metrics exporter (mlflow_server_metrics_port) on the same host")
    assert result["problems"][1]["message"] == (
        "port 9100 of model service churn collides with node-exporter (monitoring_node_exporter_port) on the same host")


def test_the_roles_ports_must_not_collide_with_each_other():
    hosts = healthy()
    hosts["mlflow1"]["vars"].update({"monitoring_prometheus_port": 5000, "mlflow_server_backend": "postgresql",
                                     "monitoring_alertmanager_port": "5432"})
    result = run(hosts)
    assert [p["message"] for p in result["problems"]] == [
        "port 5000 of Prometheus collides with MLflow (mlflow_server_port) on the same host",
        "port 5432 of Alertmanager collides with PostgreSQL (mlflow_server_backend) on the same host"]
    assert found(result) == [("mlflow1", "monitoring_prometheus_port"), ("mlflow1", "monitoring_alertmanager_port")]


def test_prometheus_runs_everywhere_without_a_monitoring_group():
    hosts = healthy()
    hosts["mlflow1"]["groups"].remove("monitoring")
    hosts["serving1"]["vars"]["model_server_models"][0]["port"] = 9090
    result = run(hosts, skip=["scrape"])
    only(result, "serving1", "model_server_models[churn].port", "collides with Prometheus (monitoring_prometheus_port)")
    # An empty monitoring group moves Prometheus off every host, as in the monitoring role.
    assert run(hosts, skip=["scrape"], inventory_groups=["all", "monitoring"])["problems"] == []
    hosts["serving1"]["vars"]["monitoring_server"] = True
    only(run(hosts, skip=["scrape"], inventory_groups=["monitoring"]), "serving1", "model_server_models[churn].port")


# --- the tracking server ----------------------------------------------------------------------------------

def test_a_loopback_tracking_server_cannot_serve_other_hosts():
    hosts = healthy()
    hosts["mlflow1"]["vars"]["mlflow_server_listen_address"] = "127.0.0.1"
    hosts["serving2"]["vars"]["model_server_tracking_uri"] = "http://localhost:5000"
    result = run(hosts, skip=["scrape"])
    assert found(result) == [("mlflow1", "mlflow_server_listen_address"), ("serving2", "model_server_tracking_uri")]
    assert "serving hosts serving1, serving2 must reach the tracking server" in result["problems"][0]["message"]
    assert result["problems"][1]["message"] == "http://localhost:5000 points at loopback, but the tracking server runs on mlflow1"


def test_the_tracking_uri_must_match_how_the_server_answers():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_tracking_uri"] = "http://10.0.0.5:5000"
    hosts["serving2"]["vars"]["model_server_tracking_uri"] = "https://10.0.0.5:8443/"
    result = run(hosts)
    assert found(result) == [("serving1", "model_server_tracking_uri"), ("serving2", "model_server_tracking_uri")]
    assert "answers at https://10.0.0.5:443 (nginx TLS)" in result["problems"][0]["message"]
    hosts["mlflow1"]["vars"]["mlflow_server_nginx_https_port"] = "8443"
    only(run(hosts), "serving1", "model_server_tracking_uri")
    # A URL naming another address (a load balancer, a DNS name) is not second-guessed.
    hosts["serving1"]["vars"]["model_server_tracking_uri"] = "https://mlflow.example.org"
    assert run(hosts)["problems"] == []
    hosts["serving1"]["vars"]["model_server_tracking_uri"] = "ftp://10.0.0.5"
    only(run(hosts), "serving1", "model_server_tracking_uri", "not an http(s) URL")


def test_credentials_for_the_tracking_server():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_tracking_username"] = ""
    hosts["mlflow1"]["secrets"]["mlflow_server_model_reader_password"] = False
    result = run(hosts)
    assert found(result) == [("serving1", "model_server_tracking_username"), ("mlflow1", "mlflow_server_model_reader_password")]
    assert "requires authentication (mlflow_server_auth_enabled)" in result["problems"][0]["message"]
    assert result["problems"][1]["message"] == (
        "is empty, so the user model-reader that serving2 reads models with is never created")
    hosts["mlflow1"]["vars"]["mlflow_server_auth_enabled"] = False
    assert run(hosts)["problems"] == []


def test_a_self_signed_tracking_server_needs_its_ca_on_the_serving_hosts():
    hosts = healthy()
    hosts["serving1"]["vars"]["model_server_tracking_ca_src"] = ""
    only(run(hosts), "serving1", "model_server_tracking_ca_src", "self-signed certificate", "mlflow_server_tls_cert_fetch_dest")
    hosts["serving1"]["vars"]["model_server_tracking_validate_certs"] = False
    assert run(hosts)["problems"] == []
    hosts["serving1"]["vars"]["model_server_tracking_validate_certs"] = True
    hosts["mlflow1"]["vars"]["mlflow_server_tls_cert_src"] = "/srv/pki/mlflow.crt"
    assert run(hosts)["problems"] == []


# --- scrape targets ----------------------------------------------------------------------------------------

def test_prometheus_must_reach_every_target():
    hosts = healthy()
    del hosts["serving1"]["vars"]["monitoring_node_exporter_listen_address"]  # default: loopback
    hosts["serving2"]["vars"]["model_server_listen_address"] = "127.0.0.1"
    result = run(hosts)
    assert found(result) == [("serving1", "monitoring_node_exporter_listen_address"), ("serving2", "model_server_listen_address")]
    assert "so Prometheus on mlflow1 cannot scrape node-exporter here" in result["problems"][0]["message"]
    assert "cannot scrape the model services here" in result["problems"][1]["message"]
    hosts["serving1"]["vars"]["monitoring_node_exporter_enabled"] = False
    hosts["serving2"]["vars"]["model_server_listen_address"] = "0.0.0.0"
    assert run(hosts)["problems"] == []


def test_a_remote_prometheus_scrapes_mlflow_only_through_nginx_with_the_metrics_user():
    hosts = healthy()
    hosts["mlflow1"]["groups"].remove("monitoring")
    hosts["serving1"]["groups"].append("monitoring")
    hosts["mlflow1"]["vars"]["monitoring_node_exporter_listen_address"] = "10.0.0.5"
    hosts["mlflow1"]["secrets"]["mlflow_server_metrics_password"] = False
    only(run(hosts), "mlflow1", "mlflow_server_metrics_password", "Prometheus on serving1 cannot scrape MLflow")
    hosts["mlflow1"]["vars"]["mlflow_server_nginx_enabled"] = False
    hosts["mlflow1"]["vars"]["mlflow_server_listen_address"] = "10.0.0.5"
    for name in ("serving1", "serving2"):
        hosts[name]["vars"]["model_server_tracking_uri"] = "http://10.0.0.5:5000"
    only(run(hosts), "mlflow1", "mlflow_server_nginx_enabled", "only through nginx TLS")
    hosts["mlflow1"]["vars"]["mlflow_server_prometheus_enabled"] = False
    assert run(hosts)["problems"] == []


# --- secrets ------------------------------------------------------------------------------------------------

def test_the_admin_password_must_be_set_while_auth_is_on():
    hosts = healthy()
    hosts["mlflow1"]["secrets"]["mlflow_server_admin_password"] = False
    only(run(hosts), "mlflow1", "mlflow_server_admin_password", "mlflow_server_auth_enabled is true")
    hosts["mlflow1"]["vars"]["mlflow_server_auth_enabled"] = False
    assert run(hosts)["problems"] == []


def test_no_secret_value_is_needed_or_echoed():
    hosts = healthy()
    hosts["mlflow1"]["secrets"]["mlflow_server_admin_password"] = "false"
    result = run(hosts)
    assert found(result) == [("mlflow1", "mlflow_server_admin_password")]
    assert "false" not in result["problems"][0]["message"].replace("is true", "")


# --- alerting: does Alertmanager deliver anywhere? --------------------------------------------------------------

NULL_ONLY = "every alert is dropped silently"


def alerting(default, routes=None, environment="production", host="mlflow1"):
    """check_stack on the healthy layout with the monitoring host's receiver and routes as given (None: the
    monitoring role's default)."""
    hosts = healthy()
    variables = hosts[host]["vars"]
    variables.pop("monitoring_alertmanager_default_receiver")
    if default is not None:
        variables["monitoring_alertmanager_default_receiver"] = default
    if routes is not None:
        variables["monitoring_alertmanager_routes"] = routes
    return run(hosts, environment=environment)


def test_the_monitoring_roles_default_receiver_fails_production_naming_what_to_set():
    result = alerting(None)
    message = only(result, "mlflow1", "monitoring_alertmanager_default_receiver", "is not set", "\"null\"",
                   "delivers nothing", "monitoring_alertmanager_webhooks", "preflight_environment: lab")
    assert format_problems(result["problems"]).splitlines()[1] == (
        "- mlflow1: monitoring_alertmanager_default_receiver: " + message)
    # Unset is unset, whatever the routes: the default decides where everything else goes.
    only(alerting("", [{"receiver": "oncall", "matchers": ['severity="critical"']}]),
         "mlflow1", "monitoring_alertmanager_default_receiver", "is not set")


@pytest.mark.parametrize("routes", [
    None,                                                                     # the role's default: no routes
    [],
    [{"receiver": "null", "matchers": ['severity="warning"']}],
    [{"matchers": ['severity="critical"']}],                                  # inherits null
    [{"matchers": ['team="ml"'], "routes": [{"matchers": ['severity="critical"']}]}],  # nested, still null
    ["not a route", {"receiver": "", "matchers": []}],
], ids=["default", "none", "to-null", "inherits-null", "nested-inherits-null", "malformed"])
def test_null_with_no_route_elsewhere_fails_production(routes):
    only(alerting("null", routes), "mlflow1", "monitoring_alertmanager_default_receiver", "is \"null\"", NULL_ONLY,
         "preflight_environment: lab")


@pytest.mark.parametrize("default,routes", [
    ("oncall", None),                                                         # a receiver for everything
    ("null", [{"receiver": "oncall", "matchers": ['severity="critical"']}]),  # null on purpose, critical routed
    ("null", [{"matchers": ['team="ml"'], "routes": [{"receiver": "ml-team", "matchers": ['severity="critical"']}]}]),
    ("oncall", [{"receiver": "null", "matchers": ['alertname="HostCpuPressure"']}]),  # one alert muted on purpose
], ids=["receiver", "null-with-route", "null-with-nested-route", "receiver-with-null-route"])
def test_alerts_that_go_somewhere_pass(default, routes):
    result = alerting(default, routes)
    assert result["problems"] == [] and result["notices"] == []


@pytest.mark.parametrize("default", [None, "", "null"])
def test_a_lab_may_deliver_nowhere_with_a_notice(default):
    result = alerting(default, environment="lab")
    assert result["passed"] and result["problems"] == []
    assert len(result["notices"]) == 1
    assert result["notices"][0].startswith("mlflow1: monitoring_alertmanager_default_receiver is ")
    assert result["notices"][0].endswith("(allowed: preflight_environment is lab)")


def test_only_the_hosts_running_alertmanager_are_checked():
    hosts = healthy()
    hosts["serving1"]["vars"]["monitoring_alertmanager_default_receiver"] = ""        # no Alertmanager there
    hosts["serving2"]["vars"]["monitoring_alertmanager_default_receiver"] = "null"
    assert run(hosts)["problems"] == []
    hosts["serving1"]["vars"]["monitoring_server"] = True
    only(run(hosts, skip=["ports", "scrape"]), "serving1", "monitoring_alertmanager_default_receiver", "is not set")


def test_an_unknown_receiver_skips_the_check_and_the_check_can_be_skipped():
    hosts = healthy()
    hosts["mlflow1"]["vars"]["monitoring_alertmanager_default_receiver"] = UNKNOWN
    result = run(hosts)
    assert result["problems"] == [] and "mlflow1: monitoring_alertmanager_default_receiver could not be evaluated" in (
        result["notices"][0])
    hosts["mlflow1"]["vars"]["monitoring_alertmanager_default_receiver"] = "null"
    result = run(hosts, skip=["alerting"])
    assert result["problems"] == [] and "alerting" not in result["checks"]


def test_route_receivers_inherit_down_the_tree():
    routes = [{"receiver": "a", "routes": [{"matchers": []}, {"receiver": "b", "routes": [{}]}]},
              {"matchers": []}, "junk", {"routes": "junk"}]
    assert preflight.route_receivers(routes, "null") == ["a", "a", "b", "b", "null", "null"]
    assert preflight.route_receivers(None, "null") == []


# --- controller -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("have,want,ok", [("2.19.14", "2.17.0", True), ("2.17.0", "2.17", True), ("2.16.9", "2.17.0", False),
                                          ("2.20.0rc1", "2.20", True), ("2.9.27", "2.17", False)])
def test_ansible_core_version(have, want, ok):
    result = run(healthy(), ansible_version=have, min_ansible_version=want)
    if ok:
        assert result["problems"] == []
    else:
        only(result, "(controller)", "preflight_min_ansible_version", "ansible-core %s on the controller is older than %s" % (have, want))


def test_clock_skew_is_measured_against_the_controllers_window():
    hosts = healthy()
    hosts["serving1"]["clock"] = {"before": 1000.0, "host": 1100.0, "after": 1003.0}  # 97 s ahead at least
    hosts["serving2"]["clock"] = {"before": "1000.0", "host": 960, "after": 1002}  # 40 s behind at least
    result = run(hosts)
    assert found(result) == [("serving1", "preflight_max_clock_skew_seconds"), ("serving2", "preflight_max_clock_skew_seconds")]
    assert "ahead of the controller's by at least 97 s (30 s allowed)" in result["problems"][0]["message"]
    assert "behind the controller's by at least 40 s" in result["problems"][1]["message"]
    assert run(hosts, max_clock_skew_seconds=120)["problems"] == []
    assert run(hosts, skip=["clock"])["problems"] == []


def test_unknown_values_skip_their_checks_with_a_notice():
    hosts = healthy()
    hosts["mlflow1"]["vars"]["mlflow_server_listen_address"] = UNKNOWN
    hosts["serving1"]["vars"]["model_server_listen_address"] = UNKNOWN
    hosts["serving1"]["vars"]["model_server_tracking_uri"] = "http://127.0.0.1:5000"
    result = run(hosts)
    only(result, "serving1", "model_server_tracking_uri", "points at loopback")
    assert result["notices"] == [
        "mlflow1: mlflow_server_listen_address could not be evaluated (facts of a host outside the play?); "
        "the checks that need it were skipped",
        "serving1: model_server_listen_address could not be evaluated (facts of a host outside the play?); "
        "the checks that need it were skipped"]


def test_every_problem_is_listed_in_one_message():
    hosts = healthy()
    hosts["mlflow1"]["secrets"]["mlflow_server_admin_password"] = False
    hosts["serving2"]["vars"]["model_server_models"][1]["port"] = 9100
    result = run(hosts, ansible_version="2.16.0")
    message = format_problems(result["problems"])
    assert message.splitlines() == [
        "preflight found 3 problems; nothing was changed:",
        "- serving2: model_server_models[fraud].port: port 9100 of model service fraud collides with node-exporter "
        "(monitoring_node_exporter_port) on the same host",
        "- mlflow1: mlflow_server_admin_password: is empty but mlflow_server_auth_enabled is true: set it (from a vault)",
        "- (controller): preflight_min_ansible_version: ansible-core 2.16.0 on the controller is older than 2.17.0"]


# --- input errors and helpers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("hosts,kwargs,message", [
    ([], {}, "hosts: must be a dict"),
    ({"a": []}, {}, "hosts.a: must be a dict"),
    ({"a": {"groups": "serving"}}, {}, "hosts.a.groups: must be a list"),
    ({"a": {"vars": []}}, {}, "hosts.a.vars: must be a dict"),
    ({"a": {"clock": {"before": 1}}}, {}, "hosts.a.clock: must hold before, host and after"),
    ({"a": {"clock": {"before": 1, "host": "yesterday", "after": 2}}}, {}, "clock: 'yesterday' is neither"),
    ({}, {"skip": ["gpus"]}, "skip: unknown check(s) gpus"),
    ({}, {"min_ansible_version": "latest"}, "min_ansible_version: 'latest' is not a version"),
    ({}, {"environment": "staging"}, "environment: must be one of production, lab, got 'staging'"),
])
def test_malformed_input_raises_naming_the_field(hosts, kwargs, message):
    with pytest.raises(PreflightError) as exc:
        run(hosts, **kwargs)
    assert message in str(exc.value)


def test_helpers():
    assert version_tuple("2.19.14") == (2, 19, 14) and version_tuple("v2.20.0rc1") == (2, 20, 0) and version_tuple("x") is None
    assert parse_time("2024-05-01T12:00:00.250000Z") == pytest.approx(1714564800.25)
    assert parse_time(12) == 12.0 and parse_time("12.5") == 12.5
    assert url_host_port("https://user:pw@[::1]:8443/x") == ("https", "::1", 8443)
    assert url_host_port("http://mlflow") == ("http", "mlflow", None)
    assert url_host_port("mlflow:5000") is None


def test_input_is_not_modified():
    hosts = healthy()
    before = copy.deepcopy(hosts)
    run(hosts)
    assert hosts == before


def test_the_checks_do_not_modify_their_input():
    hosts = with_role_defaults(healthy())
    before = copy.deepcopy(hosts)
    check_stack(hosts, ansible_version="2.19.14", min_ansible_version="2.17.0", max_clock_skew_seconds=30)
    assert hosts == before


# --- no defaults here: a setting with no value is reported ------------------------------------------------

def test_a_setting_neither_set_nor_defaulted_is_a_problem_not_a_crash():
    hosts = with_role_defaults(healthy())
    del hosts["mlflow1"]["vars"]["mlflow_server_port"]
    del hosts["serving1"]["vars"]["model_server_listen_address"]
    result = check_stack(hosts)
    assert found(result) == [("mlflow1", "mlflow_server_port"), ("serving1", "model_server_listen_address")]
    for item in result["problems"]:
        assert item["message"].startswith("has no value: the host does not set it and no role default for it reached "
                                          "the preflight"), item["message"]
        assert "the checks that need it were skipped" in item["message"]


def test_without_the_role_defaults_every_setting_read_is_named():
    result = check_stack({"box": {"groups": ["mlflow", "serving"], "vars": {}}})
    assert not result["passed"]
    assert set(v for _h, v in found(result)) <= set(SETTINGS)
    assert ("box", "mlflow_server_port") in found(result) and ("box", "model_server_models") in found(result)


# --- the names the preflight reads: defined once, held to the roles ------------------------------------------

def test_the_preflight_reads_the_defaults_of_the_roles_it_checks():
    assert default_roles() == ["mlflow_server", "monitoring", "model_server"]


def test_every_name_the_preflight_reads_is_a_role_default_or_host_only():
    defaults = role_defaults()
    assert set(HOST_SETTINGS) == {"ansible_host", "monitoring_server"}
    missing = [name for name in SETTINGS + SECRETS if name not in defaults]
    assert missing == [], "not in the roles' defaults/main.yml (renamed or removed?): %s" % missing
    # Defaults are read as data, so a template default could not be checked (it would be unknown).
    templates = [name for name in SETTINGS if preflight._has_template(defaults[name])]
    assert templates == [], "role defaults that are templates: %s" % templates
    assert len(set(SETTINGS + HOST_SETTINGS + SECRETS)) == len(SETTINGS + HOST_SETTINGS + SECRETS)


def test_the_checks_read_every_setting_and_no_other(monkeypatch):
    seen = set()
    get = preflight._Host.get

    def recording(self, name):
        seen.add(name)
        return get(self, name)

    monkeypatch.setattr(preflight._Host, "get", recording)
    hosts = healthy()
    hosts["mlflow1"]["vars"]["mlflow_server_backend"] = "postgresql"
    assert run(hosts)["problems"] == []
    assert seen == set(SETTINGS)
    monkeypatch.setattr(preflight._Host, "get", get)
    with pytest.raises(ValueError, match="not in SETTINGS"):
        preflight._Host("h", {"vars": {}}).get("monitoring_prometheus_tsdb_path")


# --- host_data: the input from the hosts' variables (the preflight_host_data filter) ---------------------------

class NotRendered(Exception):
    """Stands for Ansible's error on reading a variable whose template cannot be rendered."""


class Undef(object):
    """Stands for the undefined value (a marker) Ansible may return in place of one."""


RAISE = object()


class HostVars(Mapping):
    """One host's variables, rendered on access like Ansible's hostvars."""

    def __init__(self, data):
        self.data = data
        self.read = []

    def __getitem__(self, key):
        self.read.append(key)
        value = self.data[key]
        if value is RAISE:
            raise NotRendered(key)
        return value

    def __contains__(self, key):  # the raw variables, nothing rendered (as Ansible's hostvars)
        return key in self.data

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def gather(hostvars, hosts=None, defaults=None):
    return host_data(hostvars, list(hostvars) if hosts is None else hosts,
                     role_defaults() if defaults is None else defaults, errors=(NotRendered,), undefined=(Undef,))


SECRET = "host-data-secret-value"


def lab_hostvars():
    """healthy() as hostvars: what each host sets, its groups, its secrets' values, its clock facts."""
    out = {}
    for name, data in healthy().items():
        variables = dict(data["vars"], group_names=data["groups"])
        variables.update((var, SECRET if is_set else "") for var, is_set in data["secrets"].items())
        clock = data["clock"]
        variables.update({"__preflight_clock_before": clock["before"], "__preflight_clock_after": clock["after"],
                          "__preflight_clock_reading": {"ansible_facts": {"ansible_date_time": {"iso8601_micro": clock["host"]}}}})
        out[name] = HostVars(variables)
    return out


def test_host_data_gives_the_checks_what_the_hosts_set_and_the_role_defaults():
    hostvars = lab_hostvars()
    data = gather(hostvars)
    assert sorted(data) == ["mlflow1", "serving1", "serving2"]
    mlflow1 = data["mlflow1"]
    assert mlflow1["groups"] == ["mlflow", "monitoring", "cpu"]
    assert mlflow1["vars"]["mlflow_server_listen_address"] == "10.0.0.5"      # set by the host
    assert mlflow1["vars"]["mlflow_server_port"] == 5000                      # the role's default
    assert mlflow1["vars"]["ansible_host"] == "10.0.0.5"
    assert set(mlflow1["vars"]) == set(SETTINGS) | {"ansible_host"}         # monitoring_server: never defaulted
    assert mlflow1["secrets"] == dict((name, name != "model_server_api_token") for name in SECRETS)
    assert mlflow1["clock"] == {"before": "1970-01-01T00:16:40.000000Z", "host": "1970-01-01T00:16:41.500000Z",
                                "after": "1970-01-01T00:16:42.000000Z"}
    assert data["serving1"]["secrets"]["model_server_api_token"] is True
    # The same result as the checks' own test data: the healthy lab passes.
    assert check_stack(data, ansible_version="2.19.14", min_ansible_version="2.17.0")["problems"] == []
    assert SECRET not in json.dumps(data)
    # Only the listed variables (and the facts it needs) are read.
    assert set(hostvars["mlflow1"].read) <= set(SETTINGS + HOST_SETTINGS + SECRETS + CLOCK_FACTS) | {"group_names"}


def test_host_data_marks_what_cannot_be_rendered():
    hostvars = lab_hostvars()
    mlflow1 = hostvars["mlflow1"].data
    mlflow1["mlflow_server_listen_address"] = RAISE                           # facts of a host outside the play
    mlflow1["monitoring_server"] = Undef()
    mlflow1["model_server_models"] = [{"name": "m", "port": Undef()}]         # undefined deep inside
    mlflow1["mlflow_server_admin_password"] = RAISE                           # a secret: counts as not set
    mlflow1["group_names"] = RAISE
    data = gather(hostvars)["mlflow1"]
    assert data["vars"]["mlflow_server_listen_address"] == UNKNOWN
    assert data["vars"]["monitoring_server"] == UNKNOWN
    assert data["vars"]["model_server_models"] == UNKNOWN
    assert data["secrets"]["mlflow_server_admin_password"] is False
    assert data["groups"] == []
    # Any other error is not "cannot be rendered": it stays an error.
    mlflow1["mlflow_server_port"] = RAISE
    with pytest.raises(NotRendered):
        host_data(hostvars, ["mlflow1"], {}, errors=(KeyError,))


def test_host_data_leaves_out_a_setting_with_no_value_and_a_template_default():
    hostvars = {"box": HostVars({"group_names": ["mlflow"], "monitoring_server": True})}
    data = gather(hostvars, defaults={"mlflow_server_port": 5000, "mlflow_server_backend": "{{ lookup('env', 'X') }}",
                                      "monitoring_server": "{{ 'monitoring' in groups }}"})["box"]
    assert data["vars"] == {"mlflow_server_port": 5000, "mlflow_server_backend": UNKNOWN, "monitoring_server": True}
    assert data["secrets"] == dict((name, False) for name in SECRETS) and data["clock"] is None
    result = check_stack({"box": data}, skip=["ansible_version"])
    assert ("box", "mlflow_server_listen_address") in found(result)
    assert "mlflow_server_backend could not be evaluated" in " ".join(result["notices"])


@pytest.mark.parametrize("value,is_set", [("x", True), ("", False), (None, False), (0, True), (RAISE, False)])
def test_host_data_reduces_secrets_to_set_or_not(value, is_set):
    data = gather({"h": HostVars({"model_server_api_token": value})}, defaults={})["h"]
    assert data["secrets"]["model_server_api_token"] is is_set


@pytest.mark.parametrize("facts", [
    {},                                                                        # clock check skipped: no facts
    {"__preflight_clock_before": 1.0, "__preflight_clock_after": 2.0,
     "__preflight_clock_reading": {"skipped": True}},                          # reading skipped
    {"__preflight_clock_before": 1.0, "__preflight_clock_after": RAISE,
     "__preflight_clock_reading": {"ansible_facts": {"ansible_date_time": {"iso8601_micro": "x"}}}},
])
def test_host_data_without_a_whole_clock_reading_has_none(facts):
    assert gather({"h": HostVars(facts)}, defaults={})["h"]["clock"] is None


@pytest.mark.parametrize("hosts,defaults,message", [
    (["ghost"], {}, "hosts: ghost is not a host of the inventory"),
    ("h", {}, "hosts: must be a list of host names"),
    (["h"], [], "role_defaults: must be a dict"),
])
def test_host_data_names_malformed_input(hosts, defaults, message):
    with pytest.raises(PreflightError) as exc:
        gather({"h": HostVars({})}, hosts=hosts, defaults=defaults)
    assert message in str(exc.value)
