# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight of the whole stack: the checks that span hosts and roles, run on the controller
before site.yml changes anything (the `preflight` role gathers the data, the `stack_preflight`
module runs `check_stack`).

Plain Python, no Ansible imports. Input is plain data: per host its groups, the values of the
variables the checks read (SETTINGS, with the roles' defaults filled in: this file holds no
default), which secrets are set (booleans only: the values never reach the checks) and, optionally,
a clock reading. `host_data` builds that input from the hosts' variables (the preflight_host_data
filter of the preflight role). The output is every problem found, each naming the host and the
variable, so one failure lists them all.

What each role checks about itself stays in that role (model_server's validate.yml, mlflow_server's
validate.yml, runtime's preflight.yml: OS, architecture, Python, disk, pip index); this file
checks what no single role can see: group layout, ports of different roles on one host, whether a
host can reach the services on another host (tracking server, scrape targets), the secrets one
role needs from another, whether Alertmanager delivers alerts anywhere (unless the inventory is a lab),
the controller's ansible-core and the hosts' clocks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import datetime
import re
from collections.abc import Mapping

# The value host_data gives a variable that is defined but could not be rendered (for example an
# address taken from facts of a host outside the play): checks that need it skip, with a notice.
UNKNOWN = "__preflight_unknown__"
INVENTORY = "(inventory)"
CONTROLLER = "(controller)"
CHECKS = ("groups", "models", "ports", "tracking", "scrape", "secrets", "alerting", "ansible_version", "clock")
# What the inventory is (the preflight role's preflight_environment): a lab or test inventory may let
# Alertmanager deliver nowhere; production may not. The first is the default.
ENVIRONMENTS = ("production", "lab")
# The monitoring role's receiver that delivers nothing (also its route's receiver when
# monitoring_alertmanager_default_receiver is empty).
NULL_RECEIVER = "null"
GROUPS = ("mlflow", "monitoring", "serving", "gpu", "cpu")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOOPBACK_RE = re.compile(r"^(127\.|::1$|localhost$)")
WILDCARDS = ("0.0.0.0", "::", "")
POSTGRESQL_PORT = 5432

# The variables the checks read, defined once: the preflight_host_data filter gathers exactly these
# from hostvars, the checks read no others (_Host.get refuses any other name), and a unit test holds
# them to the roles' own defaults/main.yml. Defaults are never written here: the role reads them from
# those files and the filter fills them in where a host does not set a variable.
SETTINGS = (
    "mlflow_server_listen_address",
    "mlflow_server_port",
    "mlflow_server_metrics_port",
    "mlflow_server_prometheus_enabled",
    "mlflow_server_nginx_enabled",
    "mlflow_server_nginx_https_port",
    "mlflow_server_nginx_http_port",
    "mlflow_server_auth_enabled",
    "mlflow_server_model_reader_username",
    "mlflow_server_tls_cert_src",
    "mlflow_server_backend",
    "monitoring_node_exporter_enabled",
    "monitoring_node_exporter_listen_address",
    "monitoring_node_exporter_port",
    "monitoring_prometheus_port",
    "monitoring_alertmanager_port",
    "monitoring_alertmanager_default_receiver",
    "monitoring_alertmanager_routes",
    "model_server_models",
    "model_server_listen_address",
    "model_server_allow_unauthenticated",
    "model_server_device",
    "model_server_tracking_uri",
    "model_server_tracking_username",
    "model_server_tracking_validate_certs",
    "model_server_tracking_ca_src",
    "model_server_tracking_ca_path",
)
# Read only where a host sets them, never defaulted: ansible_host has no default, and
# monitoring_server's default is the monitoring role's group rule, which the checks apply themselves.
HOST_SETTINGS = ("ansible_host", "monitoring_server")
# Secrets: only whether each is set ever leaves the filter.
SECRETS = (
    "mlflow_server_admin_password",
    "mlflow_server_model_reader_password",
    "mlflow_server_metrics_password",
    "model_server_api_token",
)
# Facts the preflight role sets on each host: the controller's time before and after the reading
# of the host's clock, and the registered reading (setup, date_time).
CLOCK_FACTS = ("__preflight_clock_before", "__preflight_clock_reading", "__preflight_clock_after")


class PreflightError(Exception):
    """The input itself is malformed (not a finding about the inventory)."""


def problem(host, variable, message):
    return {"host": host, "variable": variable, "message": message}


def format_problems(problems):
    """One message listing every problem, one line each."""
    lines = ["preflight found %d problem%s; nothing was changed:" % (len(problems), "" if len(problems) == 1 else "s")]
    for item in problems:
        lines.append("- %s: %s: %s" % (item["host"], item["variable"], item["message"]))
    return "\n".join(lines)


def version_tuple(text):
    """(2, 19, 14) from '2.19.14', '2.20.0rc1', 'v2.17'; None when there are no leading numbers."""
    parts = []
    for piece in str(text).strip().lstrip("vV").split("."):
        match = re.match(r"^[0-9]+", piece)
        if not match:
            break
        parts.append(int(match.group(0)))
        if match.group(0) != piece:
            break
    return tuple(parts) if parts else None


def parse_time(value):
    """Seconds since the epoch from a number or an ISO 8601 UTC text (2024-05-01T12:00:00.123456Z)."""
    if isinstance(value, bool):
        raise PreflightError("clock: %r is not a time" % (value,))
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]00:?00)?$", text)
    if not match:
        raise PreflightError("clock: %r is neither seconds since the epoch nor an ISO 8601 UTC time" % text)
    stamp = datetime.datetime(*[int(match.group(i)) for i in range(1, 7)])
    return calendar.timegm(stamp.timetuple()) + (float(match.group(7)) if match.group(7) else 0.0)


def is_loopback(address):
    return bool(LOOPBACK_RE.match(str(address)))


def url_host_port(url):
    """(scheme, host, port or None) of an http(s) URL, or None when it is not one."""
    match = re.match(r"^(https?)://(?:[^@/]*@)?(\[[^\]]*\]|[^:/?#]*)(?::([0-9]+))?(?:[/?#].*)?$", str(url or ""))
    if not match or not match.group(2):
        return None
    host = match.group(2).strip("[]")
    return match.group(1), host, int(match.group(3)) if match.group(3) else None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def _as_port(value):
    if isinstance(value, bool):
        return None
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


class _Host:
    def __init__(self, name, data):
        if not isinstance(data, dict):
            raise PreflightError("hosts.%s: must be a dict with groups, vars, secrets and clock" % name)
        self.name = name
        groups = data.get("groups")
        groups = [] if groups is None else groups
        if not isinstance(groups, list):
            raise PreflightError("hosts.%s.groups: must be a list of group names" % name)
        self.groups = set(str(g) for g in groups)
        self.vars = {} if data.get("vars") is None else data["vars"]
        if not isinstance(self.vars, dict):
            raise PreflightError("hosts.%s.vars: must be a dict of variable -> value" % name)
        self.secrets = {} if data.get("secrets") is None else data["secrets"]
        if not isinstance(self.secrets, dict):
            raise PreflightError("hosts.%s.secrets: must be a dict of variable -> bool (set or not)" % name)
        self.clock = data.get("clock")
        self.unknown_seen = set()
        self.missing = set()

    def get(self, name):
        """The host's value of a setting; UNKNOWN (the checks that need it skip) when it could not be
        rendered or when it has no value at all (neither set nor defaulted: reported by the checker)."""
        if name not in SETTINGS:
            raise ValueError("the checks read %s, which is not in SETTINGS: add it there (the preflight gathers "
                             "only the variables listed)" % name)
        if name not in self.vars:
            self.missing.add(name)
            return UNKNOWN
        value = self.vars[name]
        if value == UNKNOWN:
            self.unknown_seen.add(name)
        return value

    def known(self, *names):
        return all(self.get(n) != UNKNOWN for n in names)

    def flag(self, name):
        return _as_bool(self.get(name))

    def secret_set(self, name):
        return _as_bool(self.secrets.get(name, False))

    def monitoring_server(self, inventory_has_monitoring_group):
        value = self.vars.get("monitoring_server")
        if value is None or value == UNKNOWN:
            return ("monitoring" in self.groups) if inventory_has_monitoring_group else True
        return _as_bool(value)

    def addresses(self):
        """Names this host is known by (inventory name, ansible_host, service addresses)."""
        names = set([self.name])
        for var in ("ansible_host", "mlflow_server_listen_address"):
            value = self.vars.get(var)
            if value and value != UNKNOWN:
                names.add(str(value))
        return names


def route_receivers(routes, inherited):
    """Every receiver the child routes of Alertmanager's route tree send to (a route without a receiver
    inherits its parent's), depth first. Entries that are not routes are passed over (the monitoring role and
    amtool check the format)."""
    found = []
    if not isinstance(routes, list):
        return found
    for route in routes:
        if not isinstance(route, dict):
            continue
        receiver = route.get("receiver") or inherited
        found.append(str(receiver))
        found.extend(route_receivers(route.get("routes"), receiver))
    return found


class _Checker:
    def __init__(self, hosts, ansible_version, min_ansible_version, max_clock_skew_seconds, skip, inventory_groups,
                 environment=ENVIRONMENTS[0]):
        if not isinstance(hosts, dict):
            raise PreflightError("hosts: must be a dict of host name -> data")
        if environment not in ENVIRONMENTS:
            raise PreflightError("environment: must be one of %s, got %r" % (", ".join(ENVIRONMENTS), environment))
        unknown_checks = sorted(set(skip or ()) - set(CHECKS))
        if unknown_checks:
            raise PreflightError("skip: unknown check(s) %s; the checks are %s" % (", ".join(unknown_checks), ", ".join(CHECKS)))
        self.hosts = [_Host(str(name), data) for name, data in sorted(hosts.items())]
        self.by_name = dict((h.name, h) for h in self.hosts)
        self.ansible_version = ansible_version
        self.min_ansible_version = min_ansible_version
        self.max_skew = max_clock_skew_seconds
        self.skip = set(skip or ())
        self.environment = environment
        self.problems = []
        self.warnings = []
        self.members = dict((g, [h for h in self.hosts if g in h.groups]) for g in GROUPS)
        # The monitoring role's rule: Prometheus runs on the monitoring group's hosts, or on every host
        # when the inventory has no such group (an empty group counts as a group).
        self.has_monitoring_group = any("monitoring" in h.groups for h in self.hosts) or "monitoring" in (inventory_groups or ())

    def add(self, host, variable, message):
        self.problems.append(problem(host, variable, message))

    def run(self):
        for name in CHECKS:
            if name not in self.skip:
                getattr(self, "check_" + name)()
        for host in self.hosts:
            for var in sorted(host.missing):
                self.add(host.name, var, "has no value: the host does not set it and no role default for it reached the "
                                         "preflight (the preflight_host_data filter fills in the roles' defaults/main.yml); "
                                         "the checks that need it were skipped")
            for var in sorted(host.unknown_seen):
                self.warnings.append("%s: %s could not be evaluated (facts of a host outside the play?); "
                                     "the checks that need it were skipped" % (host.name, var))
        return self.problems, self.warnings

    # -- helpers --------------------------------------------------------------------------------
    def mlflow_host(self):
        hosts = self.members["mlflow"]
        return hosts[0] if len(hosts) == 1 else None

    def monitoring_servers(self):
        return [h for h in self.hosts if h.monitoring_server(self.has_monitoring_group)]

    def models(self, host):
        models = host.get("model_server_models")
        if not isinstance(models, list):
            return []
        return [m for m in models if isinstance(m, dict)]

    # -- groups ---------------------------------------------------------------------------------
    def check_groups(self):
        mlflow = self.members["mlflow"]
        if (self.members["serving"] or self.members["monitoring"]) and len(mlflow) != 1:
            users = [g for g in ("serving", "monitoring") if self.members[g]]
            self.add(INVENTORY, "groups.mlflow",
                     "has %d host%s (%s); exactly one is needed because the %s group%s hosts that use the tracking "
                     "server" % (len(mlflow), "" if len(mlflow) == 1 else "s", ", ".join(h.name for h in mlflow) or "none",
                                 " and ".join(users), " has" if len(users) == 1 else "s have"))
        monitoring = self.members["monitoring"]
        if len(monitoring) > 1:
            self.add(INVENTORY, "groups.monitoring",
                     "has %d hosts (%s); at most one may run Prometheus and Alertmanager (each would scrape and alert "
                     "on everything twice)" % (len(monitoring), ", ".join(h.name for h in monitoring)))
        for host in self.hosts:
            if "gpu" in host.groups and "cpu" in host.groups:
                self.add(host.name, "groups", "the host is in both gpu and cpu; the accelerator groups exclude each other")

    # -- model entries --------------------------------------------------------------------------
    def check_models(self):
        for host in self.hosts:
            models = host.get("model_server_models")
            if models == UNKNOWN:
                continue
            serving = "serving" in host.groups
            if models in (None, ""):
                models = []
            if not isinstance(models, list):
                self.add(host.name, "model_server_models", "must be a list of entries, got %s" % type(models).__name__)
                continue
            if not serving:
                if models:
                    self.warnings.append("%s: model_server_models has %d entr%s but the host is not in the serving group: "
                                         "nothing serves them" % (host.name, len(models), "y" if len(models) == 1 else "ies"))
                continue
            names, ports = {}, {}
            for index, entry in enumerate(models):
                if not isinstance(entry, dict):
                    self.add(host.name, "model_server_models[%d]" % index, "must be a dict with name, port and alias or version")
                    continue
                name = entry.get("name")
                label = "model_server_models[%s]" % (name if isinstance(name, str) and NAME_RE.match(name) else index)
                if not isinstance(name, str) or not NAME_RE.match(name):
                    self.add(host.name, label + ".name",
                             "is required: letters, digits, '_', '.', '-' (it names the service), got %r" % (name,))
                else:
                    names.setdefault(name, []).append(index)
                port = _as_port(entry.get("port"))
                if port is None:
                    self.add(host.name, label + ".port", "must be a TCP port (1-65535), got %r" % (entry.get("port"),))
                else:
                    ports.setdefault(port, []).append(label)
                has_alias, has_version = entry.get("alias") not in (None, ""), entry.get("version") not in (None, "")
                if has_alias == has_version:
                    self.add(host.name, label,
                             "needs exactly one of alias or version, got %s" % ("both" if has_alias else "neither"))
                device = entry.get("device", host.get("model_server_device"))
                if device == "cuda" and "gpu" not in host.groups:
                    self.add(host.name, label + ".device" if "device" in entry else "model_server_device",
                             "is cuda for %s, but the host is not in the gpu group (the NVIDIA driver and CUDA are "
                             "installed on gpu hosts only)" % label)
            for name, indexes in sorted(names.items()):
                if len(indexes) > 1:
                    self.add(host.name, "model_server_models",
                             "the name %s appears %d times (entries %s); each name may appear once per host"
                             % (name, len(indexes), ", ".join(str(i) for i in indexes)))
            for port, labels in sorted(ports.items()):
                if len(labels) > 1:
                    self.add(host.name, "model_server_models",
                             "port %d is used by %s; each port may appear once per host" % (port, " and ".join(labels)))
            if models and host.known("model_server_tracking_uri"):
                uri = host.get("model_server_tracking_uri")
                if not uri:
                    self.add(host.name, "model_server_tracking_uri",
                             "is empty but model_server_models has %d entr%s: the services read their models from the "
                             "tracking server" % (len(models), "y" if len(models) == 1 else "ies"))
            if models and host.known("model_server_listen_address"):
                listen = str(host.get("model_server_listen_address"))
                if not is_loopback(listen) and not host.flag("model_server_allow_unauthenticated") \
                        and not host.secret_set("model_server_api_token"):
                    self.add(host.name, "model_server_api_token",
                             "is empty while model_server_listen_address=%s is beyond loopback: set a token (from a "
                             "vault) or model_server_allow_unauthenticated: true on purpose" % listen)

    # -- ports of the stack on each host -----------------------------------------------------
    def services(self, host):
        """(port, variable, what) of everything the stack runs on this host."""
        found = []

        def add(var, what, *port):
            # The port: given (a model entry's, PostgreSQL's), else the setting `var`.
            value = port[0] if port else host.get(var)
            if value == UNKNOWN:
                return
            number = _as_port(value)
            if number is not None:
                found.append((number, var, what))

        if "mlflow" in host.groups:
            add("mlflow_server_port", "MLflow")
            if host.flag("mlflow_server_prometheus_enabled"):
                add("mlflow_server_metrics_port", "the MLflow metrics exporter")
            if host.flag("mlflow_server_nginx_enabled"):
                add("mlflow_server_nginx_https_port", "nginx (HTTPS)")
                add("mlflow_server_nginx_http_port", "nginx (HTTP)")
            if host.get("mlflow_server_backend") == "postgresql":
                add("mlflow_server_backend", "PostgreSQL", POSTGRESQL_PORT)
        if host.monitoring_server(self.has_monitoring_group):
            add("monitoring_prometheus_port", "Prometheus")
            add("monitoring_alertmanager_port", "Alertmanager")
        if host.flag("monitoring_node_exporter_enabled"):
            add("monitoring_node_exporter_port", "node-exporter")
        if "serving" in host.groups:
            for index, entry in enumerate(self.models(host)):
                name = entry.get("name") if isinstance(entry.get("name"), str) and NAME_RE.match(entry["name"]) else index
                add("model_server_models[%s].port" % name, "model service %s" % name, entry.get("port"))
        return found

    def check_ports(self):
        for host in self.hosts:
            by_port = {}
            for port, var, what in self.services(host):
                by_port.setdefault(port, []).append((var, what))
            for port, users in sorted(by_port.items()):
                # Two model entries on one port are reported by check_models.
                if len(users) > 1 and not all(v.startswith("model_server_models[") for v, _w in users):
                    first_var, first_what = users[0]
                    for var, what in users[1:]:
                        self.add(host.name, var, "port %d of %s collides with %s (%s) on the same host"
                                 % (port, what, first_what, first_var))

    # -- serving hosts and the tracking server ---------------------------------------------------
    def check_tracking(self):
        server = self.mlflow_host()
        if server is not None and server.known("mlflow_server_listen_address"):
            listen = str(server.get("mlflow_server_listen_address"))
            remote = [h.name for h in self.members["serving"] if h is not server and self.models(h)]
            if is_loopback(listen) and remote:
                self.add(server.name, "mlflow_server_listen_address",
                         "is %s (loopback), but serving host%s %s must reach the tracking server: listen on the host's "
                         "private address (with mlflow_server_nginx_enabled for TLS)" % (
                             listen, "" if len(remote) == 1 else "s", ", ".join(remote)))
        readers = {}
        for host in self.members["serving"]:
            if not self.models(host) or not host.known("model_server_tracking_uri"):
                continue
            uri = host.get("model_server_tracking_uri")
            if not uri:
                continue  # reported by check_models
            parsed = url_host_port(uri)
            if parsed is None:
                self.add(host.name, "model_server_tracking_uri", "%r is not an http(s) URL of the tracking server" % uri)
                continue
            scheme, address, port = parsed
            if server is None:
                continue
            if is_loopback(address) and host is not server:
                self.add(host.name, "model_server_tracking_uri",
                         "%s points at loopback, but the tracking server runs on %s" % (uri, server.name))
            elif server.known("mlflow_server_listen_address") and address in server.addresses() \
                    and server.known("mlflow_server_nginx_enabled"):
                nginx = server.flag("mlflow_server_nginx_enabled")
                want_scheme = "https" if nginx else "http"
                want_port = _as_port(server.get("mlflow_server_nginx_https_port" if nginx else "mlflow_server_port"))
                have_port = port if port is not None else (443 if scheme == "https" else 80)
                if scheme != want_scheme or (want_port is not None and have_port != want_port):
                    self.add(host.name, "model_server_tracking_uri",
                             "%s does not match the tracking server on %s, which answers at %s://%s:%s (%s)" % (
                                 uri, server.name, want_scheme, address, want_port,
                                 "nginx TLS" if nginx else "mlflow_server_port, no nginx"))
            if server.flag("mlflow_server_auth_enabled") and host.known("model_server_tracking_username"):
                username = host.get("model_server_tracking_username") or ""
                if not username:
                    self.add(host.name, "model_server_tracking_username",
                             "is empty, but the tracking server on %s requires authentication "
                             "(mlflow_server_auth_enabled): set model_server_tracking_username and "
                             "model_server_tracking_password (the model-reader user)" % server.name)
                elif server.known("mlflow_server_model_reader_username") \
                        and username == server.get("mlflow_server_model_reader_username") \
                        and not server.secret_set("mlflow_server_model_reader_password"):
                    readers.setdefault(username, []).append(host.name)
            if scheme == "https" and server.flag("mlflow_server_nginx_enabled") \
                    and not server.get("mlflow_server_tls_cert_src") \
                    and host.flag("model_server_tracking_validate_certs") \
                    and host.known("model_server_tracking_ca_src", "model_server_tracking_ca_path") \
                    and not host.get("model_server_tracking_ca_src") and not host.get("model_server_tracking_ca_path"):
                self.add(host.name, "model_server_tracking_ca_src",
                         "is empty (and so is model_server_tracking_ca_path), but the tracking server on %s has a "
                         "self-signed certificate (mlflow_server_tls_cert_src is empty): give its certificate "
                         "(mlflow_server_tls_cert_fetch_dest copies it to the controller)" % server.name)
        for username, users in sorted(readers.items()):
            self.add(server.name, "mlflow_server_model_reader_password",
                     "is empty, so the user %s that %s read%s models with is never created"
                     % (username, ", ".join(users), "s" if len(users) == 1 else ""))

    # -- can Prometheus reach its targets? ---------------------------------------------------------
    def check_scrape(self):
        servers = self.monitoring_servers()
        for host in self.hosts:
            scrapers = [p.name for p in servers if p is not host]
            if not scrapers:
                continue
            where = "Prometheus on %s" % ", ".join(scrapers)
            if host.flag("monitoring_node_exporter_enabled") and host.known("monitoring_node_exporter_listen_address"):
                listen = str(host.get("monitoring_node_exporter_listen_address"))
                if is_loopback(listen):
                    self.add(host.name, "monitoring_node_exporter_listen_address",
                             "is %s (loopback), so %s cannot scrape node-exporter here: listen on the host's private "
                             "address" % (listen, where))
            if "serving" in host.groups and self.models(host) and host.known("model_server_listen_address"):
                listen = str(host.get("model_server_listen_address"))
                if is_loopback(listen):
                    self.add(host.name, "model_server_listen_address",
                             "is %s (loopback), so %s cannot scrape the model services here: listen on the host's "
                             "private address (with model_server_api_token)" % (listen, where))
            if "mlflow" in host.groups and host.flag("mlflow_server_prometheus_enabled"):
                if not host.flag("mlflow_server_nginx_enabled"):
                    self.add(host.name, "mlflow_server_nginx_enabled",
                             "is false, so %s cannot scrape MLflow here: another host scrapes it only through nginx "
                             "TLS with the metrics user (or set mlflow_server_prometheus_enabled: false)" % where)
                elif not host.secret_set("mlflow_server_metrics_password"):
                    self.add(host.name, "mlflow_server_metrics_password",
                             "is empty, so %s cannot scrape MLflow here (nginx lets only the metrics user read "
                             "/metrics)" % where)

    # -- secrets one role needs ----------------------------------------------------------------------
    def check_secrets(self):
        for host in self.members["mlflow"]:
            if host.flag("mlflow_server_auth_enabled") and not host.secret_set("mlflow_server_admin_password"):
                self.add(host.name, "mlflow_server_admin_password",
                         "is empty but mlflow_server_auth_enabled is true: set it (from a vault)")

    # -- does Alertmanager deliver alerts anywhere? ---------------------------------------------------
    def check_alerting(self):
        lab = self.environment != ENVIRONMENTS[0]
        for host in self.monitoring_servers():
            if not host.known("monitoring_alertmanager_default_receiver", "monitoring_alertmanager_routes"):
                continue
            default = host.get("monitoring_alertmanager_default_receiver")
            default = "" if default is None else str(default)
            elsewhere = any(receiver != NULL_RECEIVER for receiver in route_receivers(
                host.get("monitoring_alertmanager_routes"), default or NULL_RECEIVER))
            if not default:
                message = ("is not set, so Alertmanager sends every alert that no route of "
                           "monitoring_alertmanager_routes matches to the receiver \"null\", which delivers nothing")
            elif default == NULL_RECEIVER and not elsewhere:
                message = ("is \"null\" and no route of monitoring_alertmanager_routes sends anything elsewhere: "
                           "every alert is dropped silently")
            else:
                continue
            if lab:
                self.warnings.append("%s: monitoring_alertmanager_default_receiver %s (allowed: preflight_environment "
                                     "is %s)" % (host.name, message, self.environment))
            else:
                self.add(host.name, "monitoring_alertmanager_default_receiver",
                         "%s. Set it to a receiver that reaches people (monitoring_alertmanager_webhooks, "
                         "_email_receivers or _extra_receivers), or to \"null\" on purpose and set "
                         "preflight_environment: lab if this inventory is a lab or test site" % message)

    # -- the controller ------------------------------------------------------------------------
    def check_ansible_version(self):
        if not self.min_ansible_version:
            return
        want = version_tuple(self.min_ansible_version)
        have = version_tuple(self.ansible_version) if self.ansible_version else None
        if want is None:
            raise PreflightError("min_ansible_version: %r is not a version" % self.min_ansible_version)
        if have is None:
            self.add(CONTROLLER, "ansible_version", "the controller's ansible-core version is unknown (%r)" % (self.ansible_version,))
        elif have < want:
            self.add(CONTROLLER, "preflight_min_ansible_version",
                     "ansible-core %s on the controller is older than %s" % (self.ansible_version, self.min_ansible_version))

    def check_clock(self):
        if self.max_skew is None:
            return
        for host in self.hosts:
            clock = host.clock
            if not clock:
                continue
            if not isinstance(clock, dict) or not all(k in clock for k in ("before", "host", "after")):
                raise PreflightError("hosts.%s.clock: must hold before, host and after" % host.name)
            before, at, after = parse_time(clock["before"]), parse_time(clock["host"]), parse_time(clock["after"])
            # The host read its clock some time between the controller's two readings: the skew is at
            # least how far outside that window the host's reading lies.
            skew = max(0.0, at - after, before - at)
            if skew > float(self.max_skew):
                self.add(host.name, "preflight_max_clock_skew_seconds",
                         "the host's clock is %s the controller's by at least %.0f s (%s allowed): audit timestamps "
                         "and TLS validity depend on it; synchronise the clocks (chrony, systemd-timesyncd)"
                         % ("ahead of" if at > after else "behind", skew, _number(self.max_skew)))


def _number(value):
    value = float(value)
    return ("%d s" % value) if value == int(value) else ("%g s" % value)


def check_stack(hosts, ansible_version=None, min_ansible_version=None, max_clock_skew_seconds=None, skip=(),
                inventory_groups=None, environment=ENVIRONMENTS[0]):
    """Every problem of the inventory as a list of {host, variable, message}, plus notices (warnings).

    hosts: {name: {"groups": [...], "vars": {variable: value}, "secrets": {variable: bool},
                   "clock": {"before": t, "host": t, "after": t} or None}}
    (what host_data returns) where vars holds every one of SETTINGS the checks read, role defaults
    filled in (a setting left out is a problem: nothing is defaulted here) and t is seconds since the
    epoch or an ISO 8601 UTC time; inventory_groups: the names of the
    inventory's groups (an empty `monitoring` group still moves Prometheus off the other hosts);
    environment: one of ENVIRONMENTS (a lab may let Alertmanager deliver nowhere: a notice, not a problem).
    Raises PreflightError on malformed input.
    """
    checker = _Checker(hosts, ansible_version, min_ansible_version, max_clock_skew_seconds, skip, inventory_groups,
                       environment)
    problems, warnings = checker.run()
    return {"problems": problems, "notices": warnings, "passed": not problems,
            "checks": [c for c in CHECKS if c not in checker.skip], "hosts_checked": len(checker.hosts)}


# -- gathering the input from the hosts' variables ------------------------------------------------

class _Unreadable(Exception):
    pass


def _plain(value, undefined):
    """Plain dicts and lists all the way down, so that a value templated lazily is rendered here (and a
    part that cannot be rendered fails here, not later). Raises _Unreadable on an undefined part."""
    if undefined and isinstance(value, undefined):
        raise _Unreadable()
    if isinstance(value, Mapping):
        return dict((key, _plain(item, undefined)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item, undefined) for item in value]
    return value


def _read(variables, name, fallback, errors, undefined):
    """The rendered value of one variable, or `fallback` when it cannot be rendered."""
    try:
        return _plain(variables[name], undefined)
    except _Unreadable:
        return fallback
    except errors:
        return fallback


def _has_template(value):
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    return False


def _is_set(value):
    return value is not None and len(str(value)) > 0


def _clock(variables, errors, undefined):
    if not all(name in variables for name in CLOCK_FACTS):
        return None  # the clock check is skipped, or the host was not reached
    before, reading, after = [_read(variables, name, None, errors, undefined) for name in CLOCK_FACTS]
    try:
        at = reading["ansible_facts"]["ansible_date_time"]["iso8601_micro"]
    except (KeyError, TypeError):
        return None  # a skipped or failed reading
    if before is None or after is None:
        return None
    return {"before": before, "host": at, "after": after}


def host_data(hostvars, hosts, role_defaults, errors=(Exception,), undefined=()):
    """check_stack's `hosts` from the hosts' variables: per host its groups (group_names), the SETTINGS
    (the host's value, else the role default, else left out: check_stack reports it), the HOST_SETTINGS
    a host sets, whether each of the SECRETS is set (never a value) and its clock reading (CLOCK_FACTS).

    hostvars: host name -> mapping of that host's variables; a value may be rendered only when read
    (Ansible's hostvars). A value whose reading raises one of `errors`, or holds an instance of one of
    the `undefined` types, cannot be rendered here (e.g. facts of a host outside the play): it becomes
    UNKNOWN, and a secret that cannot be rendered counts as not set. A role default that is a template
    (text, as read from the file) becomes UNKNOWN too.
    hosts: the names of the hosts to gather. role_defaults: variable -> default, the roles' own
    defaults/main.yml. Raises PreflightError on malformed input.
    """
    if not isinstance(role_defaults, Mapping):
        raise PreflightError("role_defaults: must be a dict of variable -> default (the roles' defaults/main.yml), got %s"
                             % type(role_defaults).__name__)
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise PreflightError("hosts: must be a list of host names, got %r" % (hosts,))
    out = {}
    for name in hosts:
        if name not in hostvars:
            raise PreflightError("hosts: %s is not a host of the inventory" % name)
        variables = hostvars[name]
        values = {}
        for var in SETTINGS + HOST_SETTINGS:
            if var in variables:
                values[var] = _read(variables, var, UNKNOWN, errors, undefined)
            elif var in role_defaults and var not in HOST_SETTINGS:
                # Read as data: a default that is a template is rendered by its role, on its host, not here.
                default = _plain(role_defaults[var], ())
                values[var] = UNKNOWN if _has_template(default) else default
        secrets = dict((var, var in variables and _is_set(_read(variables, var, None, errors, undefined)))
                       for var in SECRETS)
        groups = _read(variables, "group_names", [], errors, undefined) if "group_names" in variables else []
        out[str(name)] = {"groups": list(groups) if isinstance(groups, list) else [],
                          "vars": values, "secrets": secrets, "clock": _clock(variables, errors, undefined)}
    return out
