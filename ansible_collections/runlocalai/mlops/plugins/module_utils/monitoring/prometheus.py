# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Prometheus' configuration (prometheus.yml) of the monitoring role, built from the inventory.

Plain Python, no Ansible imports. The input is plain data: the settings of the host Prometheus
runs on (the role's variables there) and, per scraped host, the few variables and facts the scrape
jobs read (HOST_VARS, `ansible_host`, the default IPv4 address). The filters
runlocalai.mlops.prometheus_scrape_config and runlocalai.mlops.prometheus_hosts_without_facts
gather that from hostvars; the role's template dumps the result as YAML.

A target's address is where its service listens: loopback when that is this host, the service's
own listen address when it is a specific one, and otherwise (wildcard, or not known here) the
host's address (`ansible_host` when it is an IP address, else the default IPv4 address from its
facts, else `ansible_host`, else its name). A service that listens on loopback on another host
cannot be reached: its target is kept, and shows down.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

LOOPBACK_RE = re.compile(r"^(127\.|::1$|localhost$)")
WILDCARDS = ("", "0.0.0.0", "::")
# ansible_host counts as an address (rather than a name) when it matches this.
IP_ADDRESS_RE = re.compile(r"^([0-9]{1,3}\.){3}[0-9]{1,3}$|^[0-9a-fA-F:]*:[0-9a-fA-F:.]*$")

# The variables of a scraped host the jobs read, with the value taken when the host has none.
# monitoring_node_exporter_port has none here: it defaults to this host's own port.
HOST_VARS = {
    "monitoring_node_exporter_listen_address": "",
    "monitoring_node_exporter_port": None,
    "model_server_listen_address": "127.0.0.1",
    "model_server_models": [],
    "mlflow_server_prometheus_enabled": True,
    "mlflow_server_nginx_enabled": False,
    "mlflow_server_listen_address": "127.0.0.1",
    "mlflow_server_nginx_https_port": 443,
    "mlflow_server_metrics_port": 5001,
}
# What the configuration's header says the jobs are (the role README describes each).
JOBS = ("prometheus", "alertmanager", "node", "model_server", "mlflow")


class PrometheusConfigError(ValueError):
    """Input the configuration cannot be built from; the message names the host and variable."""


def as_bool(value):
    """Ansible's `bool` filter: yes/on/true/1 (any case) and 1 are true, everything else false."""
    if isinstance(value, str):
        value = value.lower()
    elif isinstance(value, int):
        value = str(value).lower()
    if value in ("yes", "on", "true", "1"):
        return True
    try:
        return value == 1
    except TypeError:
        return False


def _text(value):
    # As Jinja renders a value into text (Ansible renders None as nothing).
    return "" if value is None else str(value)


def is_local(listen):
    """True when a listen address is loopback or a wildcard: reached at the host's own address."""
    listen = _text(listen)
    return bool(LOOPBACK_RE.match(listen)) or listen in WILDCARDS


def host_address(name, host):
    """The address Prometheus reaches host `name` at. host: its plain data (see scrape_config)."""
    ansible_host = host.get("ansible_host")
    if "ansible_host" in host and IP_ADDRESS_RE.match(_text(ansible_host)):
        return _text(ansible_host)
    if host.get("default_ipv4") is not None:
        return _text(host["default_ipv4"])
    return _text(ansible_host) if "ansible_host" in host else _text(name)


def target(name, listen, port, this_host, hosts):
    """`address:port` (`[address]:port` for IPv6) of a service of host `name` listening on `listen`."""
    if is_local(listen):
        address = "127.0.0.1" if name == this_host else host_address(name, _host(hosts, name))
    else:
        address = _text(listen)
    return "%s:%s" % ("[%s]" % address if ":" in address else address, _text(port))


def _host(hosts, name):
    if name not in hosts:
        raise PrometheusConfigError("%s: a scraped host with no data (not a host of the inventory?)" % name)
    return hosts[name]


def _var(hosts, name, var, default=None):
    """A scraped host's value of one of HOST_VARS, or the value taken when it has none (HOST_VARS',
    or `default` where that is None)."""
    host_vars = _host(hosts, name).get("vars") or {}
    if var in host_vars:
        return host_vars[var]
    return default if HOST_VARS[var] is None else HOST_VARS[var]


def scraped_hosts(node_targets, serving_hosts, mlflow_hosts):
    """Every host the configuration names, in order, once each."""
    names = []
    for name in list(node_targets) + list(serving_hosts) + list(mlflow_hosts):
        if name not in names:
            names.append(name)
    return names


def hosts_without_facts(names, facts):
    """The hosts among `names` that have no default IPv4 address in their facts (none gathered, as for a
    host left out by --limit). facts: host name -> its ansible_facts (missing or None: no facts)."""
    return [name for name in names if "default_ipv4" not in (facts.get(name) or {})]


def _mlflow_jobs(settings, hosts, this_host):
    tls_configs, local_configs = [], []
    for name in settings["mlflow_hosts"]:
        if not as_bool(_var(hosts, name, "mlflow_server_prometheus_enabled")):
            continue
        nginx = as_bool(_var(hosts, name, "mlflow_server_nginx_enabled"))
        if nginx and settings["mlflow_password_set"]:
            tls_configs.append({
                "targets": [target(name, _var(hosts, name, "mlflow_server_listen_address"),
                                   _var(hosts, name, "mlflow_server_nginx_https_port"), this_host, hosts)],
                "labels": {"instance": name}})
        elif name == this_host and not nginx:
            local_configs.append({
                "targets": ["127.0.0.1:" + _text(_var(hosts, name, "mlflow_server_metrics_port"))],
                "labels": {"instance": name}})
    jobs = []
    if tls_configs:
        # Truthiness, not the bool filter, as the role has always read monitoring_mlflow_ca_fetch here.
        tls = {"ca_file": settings["mlflow_ca_file"]} if len(settings["mlflow_ca_cert"]) > 0 or settings["mlflow_ca_fetch"] else {}
        jobs.append({
            "job_name": "mlflow",
            "scheme": "https",
            "metrics_path": "/metrics",
            "basic_auth": {"username": settings["mlflow_username"], "password_file": settings["mlflow_password_file"]},
            "tls_config": tls,
            "static_configs": tls_configs})
    if local_configs:
        local_job = {"job_name": "mlflow", "metrics_path": "/metrics", "static_configs": local_configs}
        if tls_configs:
            # Job names are unique: the loopback one gets its own name, and the label `job` says mlflow.
            local_job["job_name"] = "mlflow_local"
            local_job["relabel_configs"] = [{"target_label": "job", "replacement": "mlflow"}]
        jobs.append(local_job)
    return jobs


# The settings scrape_config reads: the role's variables on the host Prometheus runs on.
SETTINGS = (
    "node_targets", "serving_hosts", "mlflow_hosts",
    "prometheus_listen_address", "prometheus_port", "alertmanager_listen_address", "alertmanager_port",
    "node_exporter_listen_address", "node_exporter_port",
    "scrape_interval", "scrape_timeout", "evaluation_interval", "external_labels", "extra_scrape_configs",
    "rules_file", "extra_rules_file", "extra_rules",
    "mlflow_username", "mlflow_password_set", "mlflow_password_file", "mlflow_ca_file", "mlflow_ca_cert", "mlflow_ca_fetch",
)


def scrape_config(this_host, settings, hosts):
    """Prometheus' configuration as a dict, in the order prometheus.yml is written.

    this_host: the inventory name of the host Prometheus runs on.
    settings: every name of SETTINGS -> the role's value on that host (the hosts lists are names;
      mlflow_password_set is whether the metrics password is set, never the password).
    hosts: host name -> {"vars": {name of HOST_VARS -> value, only those the host has},
      "ansible_host": only when the host has one, "default_ipv4": the address from its facts or None},
      for every host of the lists in settings.
    """
    missing = [name for name in SETTINGS if name not in settings]
    if missing:
        raise PrometheusConfigError("settings: %s missing" % ", ".join(missing))
    unknown = sorted(name for name in settings if name not in SETTINGS)
    if unknown:
        raise PrometheusConfigError("settings: %s unknown (known: %s)" % (", ".join(unknown), ", ".join(SETTINGS)))
    if not isinstance(hosts, Mapping):
        raise PrometheusConfigError("hosts: must be a dict of host name -> data, got %s" % type(hosts).__name__)
    s = settings

    def this(listen, port):
        return target(this_host, listen, port, this_host, hosts)

    jobs = [
        {"job_name": "prometheus", "static_configs": [{
            "targets": [this(s["prometheus_listen_address"], s["prometheus_port"])], "labels": {"instance": this_host}}]},
        {"job_name": "alertmanager", "static_configs": [{
            "targets": [this(s["alertmanager_listen_address"], s["alertmanager_port"])], "labels": {"instance": this_host}}]},
    ]
    node_configs = []
    for name in s["node_targets"]:
        if name == this_host:
            listen, port = s["node_exporter_listen_address"], s["node_exporter_port"]
        else:
            listen = _var(hosts, name, "monitoring_node_exporter_listen_address")
            port = _var(hosts, name, "monitoring_node_exporter_port", s["node_exporter_port"])
        node_configs.append({"targets": [target(name, listen, port, this_host, hosts)], "labels": {"instance": name}})
    if node_configs:
        jobs.append({"job_name": "node", "static_configs": node_configs})
    model_configs = []
    for name in s["serving_hosts"]:
        models = _var(hosts, name, "model_server_models")
        if not isinstance(models, list):
            raise PrometheusConfigError("%s: model_server_models must be a list of models, got %r" % (name, models))
        for index, model in enumerate(models):
            if not isinstance(model, Mapping) or "port" not in model or "name" not in model:
                raise PrometheusConfigError("%s: model_server_models[%d] must be a dict with name and port" % (name, index))
            model_configs.append({
                "targets": [target(name, _var(hosts, name, "model_server_listen_address"), model["port"], this_host, hosts)],
                "labels": {"instance": name, "model_service": model["name"]}})
    if model_configs:
        jobs.append({"job_name": "model_server", "metrics_path": "/metrics", "static_configs": model_configs})
    jobs.extend(_mlflow_jobs(s, hosts, this_host))

    return {
        "global": {
            "scrape_interval": s["scrape_interval"],
            "scrape_timeout": s["scrape_timeout"],
            "evaluation_interval": s["evaluation_interval"],
            "external_labels": s["external_labels"]},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [
            this(s["alertmanager_listen_address"], s["alertmanager_port"])]}]}]},
        "rule_files": [s["rules_file"]] + ([s["extra_rules_file"]] if len(s["extra_rules"]) > 0 else []),
        "scrape_configs": jobs + list(s["extra_scrape_configs"]),
    }


# -- gathering the input from the hosts' variables ------------------------------------------------

class _Unreadable(Exception):
    pass


def _read(variables, name, errors, undefined):
    """The value of one variable; _Unreadable when it cannot be rendered (reading raises one of
    `errors`, or gives an instance of one of the `undefined` types): as Jinja's `default` sees it."""
    try:
        value = variables[name]
    except errors:
        raise _Unreadable()
    if undefined and isinstance(value, undefined):
        raise _Unreadable()
    return value


def _plain(value, where, undefined):
    """Plain dicts and lists all the way down, so that a value templated lazily is rendered here; an
    undefined part fails, as it fails the template."""
    if undefined and isinstance(value, undefined):
        raise PrometheusConfigError("%s: a part of it cannot be rendered (undefined)" % where)
    if isinstance(value, Mapping):
        return dict((key, _plain(item, where, undefined)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item, where, undefined) for item in value]
    return value


def _facts(variables, errors, undefined):
    """A host's ansible_facts as a mapping ({} when it has none or they cannot be read)."""
    if "ansible_facts" not in variables:
        return {}
    try:
        facts = _read(variables, "ansible_facts", errors, undefined)
    except _Unreadable:
        return {}
    return facts if isinstance(facts, Mapping) else {}


def _default_ipv4(facts, errors, undefined):
    try:
        ipv4 = facts["default_ipv4"] if "default_ipv4" in facts else None
        if not isinstance(ipv4, Mapping) or "address" not in ipv4:
            return None
        return _read(ipv4, "address", errors, undefined)
    except _Unreadable:
        return None


def _variables(hostvars, name):
    if name not in hostvars:
        raise PrometheusConfigError("%s: not a host of the inventory" % name)
    return hostvars[name]


def host_data(hostvars, names, errors=(Exception,), undefined=()):
    """scrape_config's `hosts` from the hosts' variables, for the hosts `names`.

    hostvars: host name -> mapping of that host's variables; a value may be rendered only when read
    (Ansible's hostvars). A variable whose reading raises one of `errors`, or gives an instance of one
    of the `undefined` types, counts as not set (as for Jinja's `default`); one that is readable but
    holds an undefined part raises PrometheusConfigError (it fails the template).
    """
    out = {}
    for name in names:
        variables = _variables(hostvars, name)
        data = {"vars": {}, "default_ipv4": _default_ipv4(_facts(variables, errors, undefined), errors, undefined)}
        for var in list(HOST_VARS) + ["ansible_host"]:
            if var not in variables:
                continue
            try:
                value = _plain(_read(variables, var, errors, undefined), "%s: %s" % (name, var), undefined)
            except _Unreadable:
                continue
            if var == "ansible_host":
                data["ansible_host"] = value
            else:
                data["vars"][var] = value
        out[name] = data
    return out


def hostvars_without_facts(hostvars, node_targets, serving_hosts, mlflow_hosts, errors=(Exception,), undefined=()):
    """hosts_without_facts of every scraped host, their facts read from hostvars."""
    names = scraped_hosts(node_targets, serving_hosts, mlflow_hosts)
    return hosts_without_facts(names, dict((name, _facts(_variables(hostvars, name), errors, undefined)) for name in names))


def hostvars_scrape_config(hostvars, this_host, settings, errors=(Exception,), undefined=()):
    """scrape_config, the scraped hosts' data read from hostvars (see host_data)."""
    for name in ("node_targets", "serving_hosts", "mlflow_hosts"):
        if name in settings and (isinstance(settings[name], (str, bytes)) or not isinstance(settings[name], (list, tuple))):
            raise PrometheusConfigError("%s: must be a list of host names, got %r" % (name, settings[name]))
    names = scraped_hosts(settings.get("node_targets", []), settings.get("serving_hosts", []), settings.get("mlflow_hosts", []))
    return scrape_config(this_host, settings, host_data(hostvars, names, errors, undefined))
