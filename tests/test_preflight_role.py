"""The preflight role on the controller: a small playbook against inventories with mistakes
(every host is this machine, connection local). One failure lists every problem, each naming the
host and the variable; secrets never reach the output; nothing changes."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECRET = "preflight-test-secret-value-1"

PLAY = [{"name": "Preflight", "hosts": "all", "gather_facts": False,
         "roles": [{"role": "runlocalai.mlops.preflight"}]}]


def healthy():
    """The lab's layout: one tracking + monitoring host, two serving hosts."""
    def serving(address):
        return {"model_server_models": [{"name": "churn", "alias": "production", "port": 8080}],
                "model_server_listen_address": address, "monitoring_node_exporter_listen_address": address,
                "model_server_api_token": SECRET,
                "model_server_tracking_uri": "https://10.0.0.5", "model_server_tracking_username": "model-reader",
                "model_server_tracking_password": SECRET, "model_server_tracking_ca_src": "/srv/ca.pem"}
    return {
        "all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                         # Where Alertmanager sends alerts (a receiver the monitoring role would define).
                         "monitoring_alertmanager_default_receiver": "oncall"},
                "children": {
                    "mlflow": {"hosts": {"mlflow1": {
                        "mlflow_server_listen_address": "10.0.0.5", "mlflow_server_nginx_enabled": True,
                        "mlflow_server_admin_password": SECRET, "mlflow_server_model_reader_password": SECRET,
                        "mlflow_server_metrics_password": SECRET}}},
                    "monitoring": {"hosts": {"mlflow1": None}},
                    "serving": {"hosts": {"serving1": serving("10.0.0.7"), "serving2": serving("10.0.0.8")}},
                    "cpu": {"hosts": {"mlflow1": None, "serving1": None, "serving2": None}}}}}


def hostvars(inventory, host):
    for group in inventory["all"]["children"].values():
        if (group.get("hosts") or {}).get(host) is not None:
            return group["hosts"][host]
    raise KeyError(host)


@pytest.fixture
def playbook(run_playbook):
    def run(inventory, plays=PLAY, extra_vars=None, check=False, args=()):
        return run_playbook(plays, extra_vars=extra_vars, check=check, inventory=inventory, args=args)
    return run


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_healthy_inventory_passes_without_changes(playbook, check):
    result = playbook(healthy(), check=check)
    assert result.returncode == 0, result.output[-3000:]
    for host in ("mlflow1", "serving1", "serving2"):
        assert "%s " % host in result.stdout and "changed=0" in result.stdout
    assert "failed=0" in result.stdout and SECRET not in result.output


def test_one_failure_lists_every_problem_naming_host_and_variable(playbook):
    inventory = healthy()
    children = inventory["all"]["children"]
    children["monitoring"]["hosts"]["serving2"] = None                                 # two monitoring hosts
    children["gpu"] = {"hosts": {"serving2": None}}                                     # gpu and cpu
    hostvars(inventory, "mlflow1")["mlflow_server_admin_password"] = ""                 # secret missing
    hostvars(inventory, "mlflow1")["mlflow_server_model_reader_password"] = ""          # reader never created
    s1 = hostvars(inventory, "serving1")
    s1["model_server_models"] = [{"name": "churn", "alias": "production", "port": 9100},   # node-exporter's port
                                 {"name": "churn", "version": 2, "port": 8081},           # duplicate name
                                 {"name": "gpu-model", "alias": "production", "version": 1, "port": 8082, "device": "cuda"}]
    s1["model_server_tracking_uri"] = "http://127.0.0.1:5000"                           # loopback, not the mlflow host
    s1["monitoring_node_exporter_listen_address"] = "127.0.0.1"                         # unscrapable
    s2 = hostvars(inventory, "serving2")
    s2["model_server_api_token"] = ""                                                   # no token beyond loopback
    s2["model_server_tracking_ca_src"] = ""                                             # self-signed CA unknown
    plays = PLAY + [{"name": "Next", "hosts": "all", "gather_facts": False,
                     "tasks": [{"name": "NEXT-PLAY-RAN", "ansible.builtin.debug": {"msg": "next"}}]}]
    result = playbook(inventory, plays=plays, extra_vars={"preflight_min_ansible_version": "99.0"})
    assert result.returncode != 0
    flat = result.flat
    assert "preflight found 14 problems; nothing was changed:" in flat, result.output[result.output.find("Module failed"):][:5000]
    for line in [
        "- (inventory): groups.monitoring: has 2 hosts (mlflow1, serving2); at most one may run Prometheus",
        "- serving2: groups: the host is in both gpu and cpu",
        "- serving1: model_server_models[gpu-model]: needs exactly one of alias or version, got both",
        "- serving1: model_server_models[gpu-model].device: is cuda for model_server_models[gpu-model], but the host "
        "is not in the gpu group",
        "- serving1: model_server_models: the name churn appears 2 times (entries 0, 1)",
        "- serving2: model_server_api_token: is empty while model_server_listen_address=10.0.0.8 is beyond loopback",
        "- serving1: model_server_models[churn].port: port 9100 of model service churn collides with node-exporter "
        "(monitoring_node_exporter_port) on the same host",
        "- serving1: model_server_tracking_uri: http://127.0.0.1:5000 points at loopback, but the tracking server runs "
        "on mlflow1",
        "- mlflow1: mlflow_server_model_reader_password: is empty, so the user model-reader that serving1, serving2 "
        "read models with is never created",
        "- serving2: model_server_tracking_ca_src: is empty (and so is model_server_tracking_ca_path), but the tracking "
        "server on mlflow1 has a self-signed certificate",
        "- serving1: monitoring_node_exporter_listen_address: is 127.0.0.1 (loopback), so Prometheus on mlflow1, "
        "serving2 cannot scrape node-exporter here",
        "- mlflow1: monitoring_node_exporter_listen_address: is 127.0.0.1 (loopback), so Prometheus on serving2 cannot",
        "- mlflow1: mlflow_server_admin_password: is empty but mlflow_server_auth_enabled is true",
        "- (controller): preflight_min_ansible_version: ansible-core 2.",
    ]:
        assert line in flat, line
    assert SECRET not in result.output
    assert "changed=0" in result.stdout and "changed=1" not in result.stdout
    # The run_once failure stops every host, not only the one it ran for: the next play never starts.
    assert "NEXT-PLAY-RAN" not in result.output


def test_alerts_that_go_nowhere_fail_a_production_inventory_not_a_lab(playbook):
    inventory = healthy()
    inventory["all"]["vars"]["monitoring_alertmanager_default_receiver"] = "null"
    result = playbook(inventory)
    assert result.returncode != 0
    assert "preflight found 1 problem; nothing was changed:" in result.flat, result.output[-3000:]
    assert ('- mlflow1: monitoring_alertmanager_default_receiver: is "null" and no route of '
            "monitoring_alertmanager_routes sends anything elsewhere: every alert is dropped silently.") in result.flat
    assert "set preflight_environment: lab if this inventory is a lab or test site" in result.flat
    # The inventory says it is a lab: a warning, and the play goes on.
    inventory["all"]["vars"]["preflight_environment"] = "lab"
    result = playbook(inventory)
    assert result.returncode == 0, result.output[-3000:]
    assert "every alert is dropped silently (allowed: preflight_environment is lab)" in result.flat, result.output[-3000:]


def test_a_skewed_clock_is_named(playbook, tmp_path):
    # serving2's Python reads a clock one hour ahead (time.time shifted in sitecustomize).
    skew = tmp_path / "skew"
    skew.mkdir()
    (skew / "sitecustomize.py").write_text("import time\n_real = time.time\ntime.time = lambda: _real() + 3600\n")
    wrapper = tmp_path / "python-skewed"
    wrapper.write_text("#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n" % (skew, sys.executable))
    wrapper.chmod(0o755)
    inventory = healthy()
    hostvars(inventory, "serving2")["ansible_python_interpreter"] = str(wrapper)
    result = playbook(inventory)
    assert result.returncode != 0
    assert "preflight found 1 problem; nothing was changed:" in result.flat, result.output[result.output.find("Module failed"):][:3000]
    # 3600 s less the time the reading took: the skew reported is a lower bound.
    assert re.search(r"- serving2: preflight_max_clock_skew_seconds: the host's clock is ahead of the controller's by "
                     r"at least 3[56][0-9][0-9] s", result.flat), result.flat[result.flat.find("Module failed"):][:1500]
    assert "(30 s allowed)" in result.flat
    result = playbook(inventory, extra_vars={"preflight_skip_checks": ["clock"]})
    assert result.returncode == 0, result.output[-3000:]


def test_report_only_and_the_registered_result(playbook):
    inventory = healthy()
    hostvars(inventory, "mlflow1")["mlflow_server_admin_password"] = ""
    plays = PLAY + [{"name": "Show", "hosts": "mlflow1", "gather_facts": False, "tasks": [
        {"name": "Problems", "ansible.builtin.debug": {
            "msg": "PROBLEMS {{ preflight_report.problems | map(attribute='host') | zip(preflight_report.problems"
                   " | map(attribute='variable')) | map('join', '/') | join(' ') }} PASSED {{ preflight_report.passed }}"}}]}]
    result = playbook(inventory, plays=plays, extra_vars={"preflight_fail_on_problems": False})
    assert result.returncode == 0, result.output[-3000:]
    assert "PROBLEMS mlflow1/mlflow_server_admin_password PASSED False" in result.flat, result.output[-3000:]


def test_values_from_facts_of_hosts_outside_the_play_are_skipped_with_a_warning(playbook):
    # Under --limit the tracking server has no facts: its address cannot be rendered.
    inventory = healthy()
    hostvars(inventory, "mlflow1")["mlflow_server_listen_address"] = "{{ ansible_facts['default_ipv4']['address'] }}"
    result = playbook(inventory, args=["--limit", "serving1"])
    assert result.returncode == 0, result.output[-3000:]
    assert "mlflow1: mlflow_server_listen_address could not be evaluated" in result.flat


def test_argument_spec_names_a_bad_setting(playbook):
    result = playbook(healthy(), extra_vars={"preflight_skip_checks": ["disk"]})
    assert result.returncode != 0
    assert "preflight_skip_checks" in result.flat and "disk" in result.flat, result.output[-3000:]


def test_a_value_that_cannot_be_rendered_deep_inside_is_unknown_and_a_secret_that_cannot_is_unset(playbook):
    # The filter renders each value whole: an undefined part inside a model entry makes the entry unknown.
    inventory = healthy()
    hostvars(inventory, "serving1")["model_server_models"] = [
        {"name": "churn", "alias": "production", "port": "{{ hostvars['mlflow1']['ansible_facts']['missing'] }}"}]
    hostvars(inventory, "mlflow1")["mlflow_server_admin_password"] = "{{ vault_that_is_not_defined }}"
    result = playbook(inventory, extra_vars={"preflight_fail_on_problems": False}, plays=PLAY + [
        {"name": "Show", "hosts": "mlflow1", "gather_facts": False, "tasks": [
            {"name": "Problems", "ansible.builtin.debug": {
                "msg": "VARIABLES {{ preflight_report.problems | map(attribute='variable') | join(' ') }}"}}]}])
    assert result.returncode == 0, result.output[-3000:]
    assert "serving1: model_server_models could not be evaluated" in result.flat
    assert "VARIABLES mlflow_server_admin_password" in result.flat, result.output[-3000:]
