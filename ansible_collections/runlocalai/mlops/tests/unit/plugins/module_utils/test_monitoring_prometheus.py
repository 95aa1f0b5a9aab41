# -*- coding: utf-8 -*-
"""module_utils.monitoring.prometheus: the monitoring role's prometheus.yml as data, from plain data."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring.prometheus import (
    SETTINGS, PrometheusConfigError, as_bool, host_address, host_data, hosts_without_facts, hostvars_scrape_config,
    hostvars_without_facts, scrape_config, scraped_hosts, target)

MON = "mon"

# The role's defaults on the monitoring host, as the template passes them.
BASE = {
    "node_targets": [MON],
    "serving_hosts": [],
    "mlflow_hosts": [],
    "prometheus_listen_address": "127.0.0.1",
    "prometheus_port": 9090,
    "alertmanager_listen_address": "127.0.0.1",
    "alertmanager_port": 9093,
    "node_exporter_listen_address": "127.0.0.1",
    "node_exporter_port": 9100,
    "scrape_interval": "30s",
    "scrape_timeout": "10s",
    "evaluation_interval": "30s",
    "external_labels": {},
    "extra_scrape_configs": [],
    "rules_file": "/etc/prometheus/rules/runlocalai.rules.yml",
    "extra_rules_file": "/etc/prometheus/rules/runlocalai-extra.rules.yml",
    "extra_rules": [],
    "mlflow_username": "prometheus",
    "mlflow_password_set": True,
    "mlflow_password_file": "/etc/prometheus/secrets/mlflow-metrics",
    "mlflow_ca_file": "/etc/prometheus/mlflow-ca.pem",
    "mlflow_ca_cert": "",
    "mlflow_ca_fetch": True,
}


def settings(**changes):
    out = copy.deepcopy(BASE)
    out.update(changes)
    return out


def host(ipv4=None, **variables):
    data = {"vars": dict((k, v) for k, v in variables.items() if k != "ansible_host"), "default_ipv4": ipv4}
    if "ansible_host" in variables:
        data["ansible_host"] = variables["ansible_host"]
    return data


def jobs(config):
    return dict((job["job_name"], job) for job in config["scrape_configs"])


def targets(job):
    return [(c["targets"][0], c["labels"]) for c in job["static_configs"]]


def test_settings_are_the_templates_arguments():
    assert set(BASE) == set(SETTINGS)


def test_defaults_one_host_everything_on_loopback():
    config = scrape_config(MON, settings(), {MON: host("10.0.0.1")})
    assert config == {
        "global": {"scrape_interval": "30s", "scrape_timeout": "10s", "evaluation_interval": "30s", "external_labels": {}},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]},
        "rule_files": ["/etc/prometheus/rules/runlocalai.rules.yml"],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": ["127.0.0.1:9090"], "labels": {"instance": MON}}]},
            {"job_name": "alertmanager", "static_configs": [{"targets": ["127.0.0.1:9093"], "labels": {"instance": MON}}]},
            {"job_name": "node", "static_configs": [{"targets": ["127.0.0.1:9100"], "labels": {"instance": MON}}]},
        ]}
    # Key order is the order prometheus.yml is written in (the template dumps with sort_keys=false).
    assert list(config) == ["global", "alerting", "rule_files", "scrape_configs"]


def test_molecule_monitoring_layout():
    """molecule/monitoring: a monitoring host and a serving + MLflow host scraped over the network."""
    s = settings(node_targets=[MON, "d13"], serving_hosts=["d13"], mlflow_hosts=["d13"])
    hosts = {MON: host("172.18.0.2"),
             "d13": host("172.18.0.3", monitoring_node_exporter_listen_address="172.18.0.3",
                         model_server_listen_address="172.18.0.3", model_server_models=[{"name": "iris", "port": 8000}],
                         mlflow_server_listen_address="172.18.0.3", mlflow_server_nginx_enabled=True)}
    config = scrape_config(MON, s, hosts)
    assert [j["job_name"] for j in config["scrape_configs"]] == ["prometheus", "alertmanager", "node", "model_server", "mlflow"]
    by_name = jobs(config)
    assert targets(by_name["node"]) == [("127.0.0.1:9100", {"instance": MON}), ("172.18.0.3:9100", {"instance": "d13"})]
    assert by_name["model_server"] == {"job_name": "model_server", "metrics_path": "/metrics", "static_configs": [
        {"targets": ["172.18.0.3:8000"], "labels": {"instance": "d13", "model_service": "iris"}}]}
    assert by_name["mlflow"] == {
        "job_name": "mlflow", "scheme": "https", "metrics_path": "/metrics",
        "basic_auth": {"username": "prometheus", "password_file": "/etc/prometheus/secrets/mlflow-metrics"},
        "tls_config": {"ca_file": "/etc/prometheus/mlflow-ca.pem"},
        "static_configs": [{"targets": ["172.18.0.3:443"], "labels": {"instance": "d13"}}]}


@pytest.mark.parametrize("data,address", [
    (host("10.0.0.9", ansible_host="10.1.0.1"), "10.1.0.1"),            # ansible_host, an IPv4 address, first
    (host("10.0.0.9", ansible_host="fd00::44"), "fd00::44"),            # an IPv6 one too
    (host("10.0.0.9", ansible_host="s.example.org"), "10.0.0.9"),       # a name: the facts' address first
    (host(None, ansible_host="s.example.org"), "s.example.org"),        # no facts: the name of ansible_host
    (host("10.0.0.9"), "10.0.0.9"),                                     # facts only
    (host(None), "s1"),                                                  # nothing: the inventory name
    (host(None, ansible_host="300.1.2.3x"), "300.1.2.3x"),              # not an address, kept as a name
])
def test_host_address(data, address):
    assert host_address("s1", data) == address


@pytest.mark.parametrize("name,listen,port,expected", [
    (MON, "127.0.0.1", 9100, "127.0.0.1:9100"),       # loopback on this host
    (MON, "0.0.0.0", 9100, "127.0.0.1:9100"),         # a wildcard on this host: loopback
    (MON, "::", 9100, "127.0.0.1:9100"),
    (MON, "", 9100, "127.0.0.1:9100"),
    (MON, "10.0.0.1", 9100, "10.0.0.1:9100"),         # a specific address, as it is
    (MON, "::1", 9090, "127.0.0.1:9090"),             # IPv6 loopback
    (MON, "fd00::1", 9093, "[fd00::1]:9093"),         # IPv6 in brackets
    ("s1", "127.0.0.5", 8080, "10.0.0.11:8080"),      # loopback elsewhere: the host's address (shows down)
    ("s1", "localhost", 8080, "10.0.0.11:8080"),
    ("s1", "0.0.0.0", "8080", "10.0.0.11:8080"),
    ("s1", "fd00::11", 8080, "[fd00::11]:8080"),
    ("s2", "::", 9200, "[2001:db8::22]:9200"),       # the host's IPv6 ansible_host, in brackets
    ("s1", None, 8080, "10.0.0.11:8080"),             # None renders as nothing: a wildcard
])
def test_target(name, listen, port, expected):
    hosts = {MON: host("10.0.0.1"), "s1": host("10.0.0.11"), "s2": host("10.0.0.12", ansible_host="2001:db8::22")}
    assert target(name, listen, port, MON, hosts) == expected


def test_node_job_reads_each_hosts_own_listen_address_and_port():
    s = settings(node_targets=[MON, "s1", "s2", "s3"], node_exporter_listen_address="0.0.0.0", node_exporter_port=9101)
    hosts = {MON: host("10.0.0.1", monitoring_node_exporter_listen_address="10.9.9.9", monitoring_node_exporter_port=1),
             "s1": host("10.0.0.11", monitoring_node_exporter_listen_address="10.0.0.11"),
             "s2": host("10.0.0.12", monitoring_node_exporter_port=9200),
             "s3": host(None, monitoring_node_exporter_listen_address="127.0.0.1")}
    # This host: the settings, not hostvars; others: theirs, else a wildcard and this host's port.
    assert targets(jobs(scrape_config(MON, s, hosts))["node"]) == [
        ("127.0.0.1:9101", {"instance": MON}), ("10.0.0.11:9101", {"instance": "s1"}),
        ("10.0.0.12:9200", {"instance": "s2"}), ("s3:9101", {"instance": "s3"})]


def test_model_server_job_one_target_per_model_service():
    s = settings(serving_hosts=["s1", "s2", "s3"])
    hosts = {MON: host("10.0.0.1"),
             "s1": host("10.0.0.11", model_server_listen_address="10.0.0.11",
                        model_server_models=[{"name": "a", "port": 8080}, {"name": "b", "port": "8081"}]),
             "s2": host("10.0.0.12", model_server_models=[{"name": "c", "port": 8080}]),
             "s3": host("10.0.0.13")}
    assert jobs(scrape_config(MON, s, hosts))["model_server"]["static_configs"] == [
        {"targets": ["10.0.0.11:8080"], "labels": {"instance": "s1", "model_service": "a"}},
        {"targets": ["10.0.0.11:8081"], "labels": {"instance": "s1", "model_service": "b"}},
        # model_server_listen_address defaults to loopback: unreachable from here, kept, shows down.
        {"targets": ["10.0.0.12:8080"], "labels": {"instance": "s2", "model_service": "c"}}]


def test_no_serving_hosts_and_no_models_no_model_server_job():
    config = scrape_config(MON, settings(serving_hosts=["s1"]), {MON: host("10.0.0.1"), "s1": host("10.0.0.11")})
    assert "model_server" not in jobs(config)


def test_no_node_targets_no_node_job():
    assert "node" not in jobs(scrape_config(MON, settings(node_targets=[]), {}))


def test_mlflow_local_exporter_on_this_host_only():
    s = settings(mlflow_hosts=[MON, "m1"], mlflow_password_set=False)
    hosts = {MON: host("10.0.0.1", mlflow_server_metrics_port=5011), "m1": host("10.0.0.21")}
    assert jobs(scrape_config(MON, s, hosts))["mlflow"] == {
        "job_name": "mlflow", "metrics_path": "/metrics",
        "static_configs": [{"targets": ["127.0.0.1:5011"], "labels": {"instance": MON}}]}


def test_mlflow_both_kinds_the_loopback_one_is_relabelled():
    s = settings(mlflow_hosts=[MON, "m1"])
    hosts = {MON: host("10.0.0.1"),
             "m1": host("10.0.0.21", mlflow_server_nginx_enabled="yes", mlflow_server_listen_address="0.0.0.0")}
    config = scrape_config(MON, s, hosts)
    assert [j["job_name"] for j in config["scrape_configs"]][-2:] == ["mlflow", "mlflow_local"]
    assert targets(jobs(config)["mlflow"]) == [("10.0.0.21:443", {"instance": "m1"})]
    local = jobs(config)["mlflow_local"]
    assert list(local) == ["job_name", "metrics_path", "static_configs", "relabel_configs"]
    assert local["relabel_configs"] == [{"target_label": "job", "replacement": "mlflow"}]
    assert targets(local) == [("127.0.0.1:5001", {"instance": MON})]


@pytest.mark.parametrize("changes,host_vars,expected", [
    ({"mlflow_password_set": False}, {"mlflow_server_nginx_enabled": True}, None),         # nginx without a password
    ({}, {"mlflow_server_nginx_enabled": True, "mlflow_server_prometheus_enabled": "no"}, None),
    ({}, {"mlflow_server_nginx_enabled": False}, None),                                      # another host's loopback exporter
    ({"mlflow_ca_fetch": False}, {"mlflow_server_nginx_enabled": True}, {}),                  # system trust store
    ({"mlflow_ca_fetch": False, "mlflow_ca_cert": "PEM"}, {"mlflow_server_nginx_enabled": True},
     {"ca_file": "/etc/prometheus/mlflow-ca.pem"}),
    ({}, {"mlflow_server_nginx_enabled": True, "mlflow_server_nginx_https_port": 8443}, {"ca_file": "/etc/prometheus/mlflow-ca.pem"}),
])
def test_mlflow_tls_job(changes, host_vars, expected):
    config = scrape_config(MON, settings(mlflow_hosts=["m1"], **changes), {MON: host("10.0.0.1"), "m1": host("10.0.0.21", **host_vars)})
    if expected is None:
        assert "mlflow" not in jobs(config)
    else:
        assert jobs(config)["mlflow"]["tls_config"] == expected
        port = host_vars.get("mlflow_server_nginx_https_port", 443)
        # mlflow_server_listen_address defaults to loopback: another host's, so the host's address.
        assert jobs(config)["mlflow"]["static_configs"][0]["targets"] == ["10.0.0.21:%s" % port]


def test_extra_scrape_configs_rules_and_labels():
    extra = [{"job_name": "gpu", "static_configs": [{"targets": ["10.0.1.5:9835"]}]}]
    config = scrape_config(MON, settings(extra_scrape_configs=extra, extra_rules=[{"alert": "Mine"}],
                                         external_labels={"site": "lab"}), {MON: host("10.0.0.1")})
    assert config["scrape_configs"][-1] == extra[0]
    assert config["rule_files"] == ["/etc/prometheus/rules/runlocalai.rules.yml", "/etc/prometheus/rules/runlocalai-extra.rules.yml"]
    assert config["global"]["external_labels"] == {"site": "lab"}


@pytest.mark.parametrize("s,message", [
    (dict((k, v) for k, v in BASE.items() if k != "node_targets"), "settings: node_targets missing"),
    (settings(surprise=1), "settings: surprise unknown"),
    (settings(serving_hosts=["s1"]), "s1: a scraped host with no data"),
])
def test_bad_settings_name_what_is_wrong(s, message):
    with pytest.raises(PrometheusConfigError) as exc:
        scrape_config(MON, s, {MON: host("10.0.0.1")})
    assert message in str(exc.value)


@pytest.mark.parametrize("models,message", [
    ("m", "s1: model_server_models must be a list"),
    ([{"name": "a"}], "s1: model_server_models[0] must be a dict with name and port"),
])
def test_malformed_models_fail(models, message):
    with pytest.raises(PrometheusConfigError) as exc:
        scrape_config(MON, settings(serving_hosts=["s1"]), {MON: host(None), "s1": host(None, model_server_models=models)})
    assert message in str(exc.value)


@pytest.mark.parametrize("value,expected", [
    (True, True), (False, False), ("yes", True), ("On", True), ("TRUE", True), ("1", True), (1, True), (1.0, True),
    ("no", False), ("false", False), ("0", False), (0, False), (None, False), ("", False), ([], False), ("y", False),
])
def test_as_bool_is_the_bool_filter(value, expected):
    assert as_bool(value) is expected


def test_scraped_hosts_and_hosts_without_facts():
    names = scraped_hosts(["mon", "s1"], ["s1", "s2"], ["m1", "mon"])
    assert names == ["mon", "s1", "s2", "m1"]
    facts = {"mon": {"default_ipv4": {"address": "10.0.0.1"}}, "s1": {"default_ipv4": {}}, "s2": {}, "m1": None}
    # default_ipv4 present (even empty) counts as facts; missing facts do not.
    assert hosts_without_facts(names, facts) == ["s2", "m1"]


# -- from hostvars ------------------------------------------------------------------------------

class Undefined(object):
    """Stands for Jinja's Undefined (Ansible's markers)."""


class NotRendered(Exception):
    """Stands for Ansible's template errors."""


class HostVars(dict):
    """One host's variables, rendered on access; a callable value stands for a template."""

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        return value() if callable(value) else value


def not_rendered():
    raise NotRendered("'ansible_facts' is undefined")


def read(hostvars, names):
    return host_data(hostvars, names, errors=(NotRendered,), undefined=(Undefined,))


def test_host_data_reads_only_what_the_jobs_need():
    hostvars = {"s1": HostVars({
        "ansible_host": "10.1.0.1", "ansible_facts": {"default_ipv4": {"address": "10.0.0.11"}, "mounts": []},
        "model_server_models": [{"name": "a", "port": 8080}], "model_server_api_token": "s3cret",
        "monitoring_node_exporter_listen_address": not_rendered,      # cannot be rendered: as if not set
        "mlflow_server_listen_address": Undefined(),                  # an undefined marker: as if not set
    })}
    assert read(hostvars, ["s1"]) == {"s1": {
        "ansible_host": "10.1.0.1", "default_ipv4": "10.0.0.11", "vars": {"model_server_models": [{"name": "a", "port": 8080}]}}}


def test_host_data_without_facts():
    hostvars = {"a": HostVars({}), "b": HostVars({"ansible_facts": {}}), "c": HostVars({"ansible_facts": not_rendered}),
                "d": HostVars({"ansible_facts": {"default_ipv4": {}}})}
    assert read(hostvars, ["a", "b", "c", "d"]) == dict((n, {"vars": {}, "default_ipv4": None}) for n in "abcd")


def test_host_data_an_undefined_part_fails_as_the_template_would():
    hostvars = {"s1": HostVars({"model_server_models": [{"name": "a", "port": Undefined()}]})}
    with pytest.raises(PrometheusConfigError) as exc:
        read(hostvars, ["s1"])
    assert "s1: model_server_models: a part of it cannot be rendered" in str(exc.value)


def test_other_errors_are_not_hidden():
    def broken():
        raise ZeroDivisionError()
    with pytest.raises(ZeroDivisionError):
        read({"s1": HostVars({"model_server_listen_address": broken})}, ["s1"])


def test_unknown_host_fails():
    with pytest.raises(PrometheusConfigError) as exc:
        read({}, ["ghost"])
    assert "ghost: not a host of the inventory" in str(exc.value)


def test_hostvars_scrape_config_and_without_facts():
    hostvars = {MON: HostVars({"ansible_facts": {"default_ipv4": {"address": "10.0.0.1"}}}),
                "s1": HostVars({"monitoring_node_exporter_listen_address": not_rendered, "ansible_host": "s1.example.org"})}
    config = hostvars_scrape_config(hostvars, MON, settings(node_targets=[MON, "s1"]), errors=(NotRendered,), undefined=(Undefined,))
    assert targets(jobs(config)["node"]) == [("127.0.0.1:9100", {"instance": MON}), ("s1.example.org:9100", {"instance": "s1"})]
    assert hostvars_without_facts(hostvars, [MON, "s1"], ["s1"], [], errors=(NotRendered,)) == ["s1"]
    with pytest.raises(PrometheusConfigError) as exc:
        hostvars_scrape_config(hostvars, MON, settings(node_targets="mon"))
    assert "node_targets: must be a list of host names" in str(exc.value)
