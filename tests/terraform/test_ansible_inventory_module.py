"""terraform/modules/ansible_inventory applied for real with the pinned Terraform
(scripts/terraform.env; no provider), its inventory parsed by ansible-inventory,
and its validation rules exercised with bad input (with their messages)."""

import json
import os
import shutil
import subprocess

import pytest
from tf_helpers import (
    ANSIBLE_INVENTORY,
    MODULES_DIR,
    ROOT,
    YAMLLINT,
    TerraformDir,
    terraform_bin,
)  # noqa: F401 (fixture)

# A root configuration that passes everything through to the module.
ROOT_CONFIG = """
variable "hosts" {
  type = any
}
variable "artifact_uri" {
  type = string
}
variable "monitoring_hosts" {
  type    = list(string)
  default = []
}
variable "mlflow_tracking_port" {
  type    = number
  default = 443
}
variable "mlflow_tracking_uri" {
  type    = string
  default = ""
}
variable "extra_vars" {
  type    = map(string)
  default = {}
}

module "inventory" {
  source               = "%s"
  hosts                = var.hosts
  artifact_uri         = var.artifact_uri
  monitoring_hosts     = var.monitoring_hosts
  mlflow_tracking_port = var.mlflow_tracking_port
  mlflow_tracking_uri  = var.mlflow_tracking_uri
  extra_vars           = var.extra_vars
}

output "inventory" {
  value = module.inventory.inventory
}
output "groups" {
  value = module.inventory.groups
}
output "mlflow_tracking_uri" {
  value = module.inventory.mlflow_tracking_uri
}
""" % (MODULES_DIR / "ansible_inventory")

HOSTS = {
    "tracking": {"address": "10.0.1.10", "role": "mlflow", "accelerator": "cpu", "ansible_user": "admin"},
    "gpu-1": {"address": "10.0.2.11", "role": "serving", "accelerator": "gpu", "ansible_user": "ubuntu"},
    "gpu-2": {
        "address": "ip-10-0-2-12.eu-central-1.compute.internal",
        "role": "serving",
        "accelerator": "gpu",
        "ansible_user": "ubuntu",
    },
    "cpu-1": {"address": "10.0.3.13", "role": "serving", "accelerator": "cpu", "ansible_user": "admin"},
}
ARTIFACT_URI = "s3://runlocalai-artifacts-123456789012/mlflow"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, terraform_bin):
    tf = TerraformDir(tmp_path_factory.mktemp("ansible-inventory"))
    (tf.path / "main.tf").write_text(ROOT_CONFIG)
    tf.init()
    return tf


def apply(tf, **values):
    varfile = tf.write_vars("case.tfvars.json", values)
    tf.run("apply", "-auto-approve", "-input=false", "-lock=false", f"-var-file={varfile}")
    outputs = json.loads(tf.run("output", "-json").stdout)
    return {name: output["value"] for name, output in outputs.items()}


def plan_fails(tf, **values):
    varfile = tf.write_vars("bad.tfvars.json", values)
    result = tf.run("plan", "-input=false", "-lock=false", f"-var-file={varfile}", check=False)
    return result.returncode != 0, " ".join((result.stdout + result.stderr).split())


def ansible_inventory(path, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # An inventory source that fails to parse is only a warning to ansible-inventory.
    assert "Unable to parse" not in result.stderr and "Failed to parse" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def rendered(workdir, tmp_path_factory):
    outputs = apply(workdir, hosts=HOSTS, artifact_uri=ARTIFACT_URI)
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    path.write_text(outputs["inventory"])
    return outputs, path


def test_ansible_inventory_finds_the_groups_and_hosts(rendered):
    _, path = rendered
    listed = ansible_inventory(path)
    groups = {name: sorted(body.get("hosts", [])) for name, body in listed.items() if name not in ("_meta", "all")}
    assert groups == {
        "mlflow": ["tracking"],
        "monitoring": ["tracking"],  # by default the mlflow host
        "serving": ["cpu-1", "gpu-1", "gpu-2"],
        "gpu": ["gpu-1", "gpu-2"],
        "cpu": ["cpu-1", "tracking"],
    }
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == set(HOSTS)
    for name, spec in HOSTS.items():
        assert hostvars[name]["ansible_host"] == spec["address"]
        assert hostvars[name]["ansible_user"] == spec["ansible_user"]
        assert hostvars[name]["mlflow_tracking_uri"] == "https://10.0.1.10"


def test_group_vars_carry_tracking_uri_and_artifact_bucket(rendered):
    outputs, path = rendered
    exported = ansible_inventory(path, "--export")
    assert exported["all"]["vars"] == {"mlflow_tracking_uri": "https://10.0.1.10"}
    assert exported["mlflow"]["vars"] == {
        "mlflow_artifact_uri": ARTIFACT_URI,
        "mlflow_artifact_bucket": "runlocalai-artifacts-123456789012",
        "mlflow_artifact_prefix": "mlflow",
    }
    # Only the tracking server gets the bucket (serving hosts go through it).
    listed = ansible_inventory(path)
    assert "mlflow_artifact_bucket" not in listed["_meta"]["hostvars"]["gpu-1"]
    assert outputs["mlflow_tracking_uri"] == "https://10.0.1.10"
    assert outputs["groups"]["serving"] == ["cpu-1", "gpu-1", "gpu-2"]


def show_vars_with_aws_group_vars(rendered, tmp_path, host, names):
    """The values of NAMES for HOST, with inventories/aws/group_vars next to the rendered hosts.yml
    (debug runs on the controller: nothing connects to the made-up hosts)."""
    _, path = rendered
    shutil.copy(path, tmp_path / "hosts.yml")
    shutil.copytree(ROOT / "inventories" / "aws" / "group_vars", tmp_path / "group_vars")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY.parent / "ansible"), host, "-i", str(tmp_path / "hosts.yml"), "-m", "ansible.builtin.debug",
         "-a", "msg={{ {%s} | to_json }}" % ", ".join("'%s': %s" % (n, n) for n in names)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"][host]["msg"])


def test_aws_group_vars_map_the_bucket_onto_the_mlflow_server_role(rendered, tmp_path):
    """The role's own variable names resolve on the tracking host."""
    names = ["mlflow_server_artifacts", "mlflow_server_s3_bucket", "mlflow_server_s3_prefix", "mlflow_server_listen_address",
             "mlflow_server_nginx_enabled", "mlflow_server_nginx_https_port"]
    assert show_vars_with_aws_group_vars(rendered, tmp_path, "tracking", names) == {
        "mlflow_server_artifacts": "s3",
        "mlflow_server_s3_bucket": "runlocalai-artifacts-123456789012",
        "mlflow_server_s3_prefix": "mlflow",
        "mlflow_server_listen_address": "10.0.1.10",
        "mlflow_server_nginx_enabled": True,
        "mlflow_server_nginx_https_port": 443,
    }


def test_aws_group_vars_point_serving_hosts_and_playbooks_at_the_tracking_server(rendered, tmp_path):
    """A serving host reads the registry Terraform created, on its private address; the lifecycle
    playbooks (on the controller) use the same URI."""
    names = ["model_server_tracking_uri", "model_server_listen_address", "lifecycle_tracking_uri",
             "monitoring_node_exporter_listen_address"]
    assert show_vars_with_aws_group_vars(rendered, tmp_path, "cpu-1", names) == {
        "model_server_tracking_uri": "https://10.0.1.10",
        "model_server_listen_address": "10.0.3.13",
        "lifecycle_tracking_uri": "https://10.0.1.10",
        "monitoring_node_exporter_listen_address": "10.0.3.13",
    }


def test_rendered_inventory_passes_yamllint(rendered):
    _, path = rendered
    result = subprocess.run(
        [str(YAMLLINT), "--strict", "-c", str(ROOT / ".yamllint"), str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_apply_is_stable(workdir, rendered):
    """A second plan with the same input changes nothing."""
    result = workdir.run(
        "plan", "-input=false", "-lock=false", "-detailed-exitcode", "-var-file=case.tfvars.json", check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_monitoring_host_port_extra_vars_and_bucket_root(tmp_path, terraform_bin):
    tf = TerraformDir(tmp_path)
    (tmp_path / "main.tf").write_text(ROOT_CONFIG)
    tf.init()
    outputs = apply(
        tf,
        hosts=HOSTS,
        artifact_uri="s3://artifacts-bucket",
        monitoring_hosts=["cpu-1"],
        mlflow_tracking_port=8443,
        extra_vars={"ansible_ssh_common_args": "-o ProxyJump=admin@bastion"},
    )
    path = tmp_path / "hosts.yml"
    path.write_text(outputs["inventory"])
    exported = ansible_inventory(path, "--export")
    assert exported["monitoring"]["hosts"] == ["cpu-1"]
    assert exported["all"]["vars"] == {
        "mlflow_tracking_uri": "https://10.0.1.10:8443",
        "ansible_ssh_common_args": "-o ProxyJump=admin@bastion",
    }
    assert exported["mlflow"]["vars"]["mlflow_artifact_bucket"] == "artifacts-bucket"
    assert exported["mlflow"]["vars"]["mlflow_artifact_prefix"] == ""
    # An explicit tracking URI wins over the derived one.
    outputs = apply(tf, hosts=HOSTS, artifact_uri=ARTIFACT_URI, mlflow_tracking_uri="https://mlflow.example.internal")
    assert outputs["mlflow_tracking_uri"] == "https://mlflow.example.internal"


def _with(name, **changes):
    hosts = json.loads(json.dumps(HOSTS))
    hosts[name].update(changes)
    return hosts


BAD = [
    ({"hosts": {}}, "The hosts map is empty"),
    ({"hosts": _with("gpu-1", role="trainer")}, 'Every host role must be "mlflow" or "serving"'),
    ({"hosts": _with("gpu-1", accelerator="tpu")}, 'Every host accelerator must be "gpu" or "cpu"'),
    ({"hosts": _with("gpu-1", role="mlflow")}, 'Exactly one host must have the role "mlflow"'),
    ({"hosts": _with("tracking", role="serving")}, 'Exactly one host must have the role "mlflow"'),
    ({"hosts": _with("gpu-1", address="10.0.2.256")}, "Every host address must be an IPv4 address"),
    ({"hosts": _with("gpu-1", address="10.0.2")}, "Every host address must be an IPv4 address"),
    ({"hosts": _with("gpu-1", address="gpu 1; rm -rf /")}, "Every host address must be an IPv4 address"),
    ({"hosts": _with("gpu-1", ansible_user="Root User")}, "Every ansible_user must be a valid Unix user name"),
    ({"hosts": dict(HOSTS, **{"bad name": HOSTS["cpu-1"]})}, "Every host name (map key) must start"),
    ({"artifact_uri": "https://bucket.s3.amazonaws.com/mlflow"}, "The artifact_uri must look like s3://BUCKET"),
    ({"artifact_uri": "s3://Bad_Bucket/mlflow"}, "The artifact_uri must look like s3://BUCKET"),
    ({"artifact_uri": "s3://bucket/mlflow/"}, "The artifact_uri must look like s3://BUCKET"),
    ({"mlflow_tracking_uri": "http://10.0.1.10:5000"}, "The mlflow_tracking_uri must be empty or an https:// URL"),
    ({"mlflow_tracking_port": 70000}, "The mlflow_tracking_port must be a whole number from 1 to 65535"),
    ({"extra_vars": {"bad-name": "x"}}, "Every extra_vars key must be a valid Ansible variable name"),
    ({"monitoring_hosts": ["bad name"]}, "Every monitoring_hosts entry must be a host name"),
]


@pytest.mark.parametrize("values,message", BAD, ids=[m[:40] + "/" + json.dumps(v)[:30] for v, m in BAD])
def test_validation_rejects_bad_input(workdir, values, message):
    failed, output = plan_fails(workdir, **dict({"hosts": HOSTS, "artifact_uri": ARTIFACT_URI}, **values))
    assert failed, f"{values} was accepted"
    assert "Invalid value for variable" in output, output
    assert message in output, output


def test_unknown_monitoring_host_is_refused(workdir):
    failed, output = plan_fails(workdir, hosts=HOSTS, artifact_uri=ARTIFACT_URI, monitoring_hosts=["prometheus-1"])
    assert failed
    assert "monitoring_hosts entry prometheus-1 is not a key of hosts" in output, output
