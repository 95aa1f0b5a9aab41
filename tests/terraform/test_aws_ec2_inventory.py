"""inventories/aws/aws_ec2.yml (the amazon.aws.aws_ec2 dynamic inventory) run by
ansible-inventory against moto's EC2 API, for instances tagged the way
terraform/modules/serving_hosts tags them: it must build the same groups, host
names and connection variables as the inventory the ansible_inventory module
renders for the same hosts."""

import json
import os
import subprocess

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer
from test_ansible_inventory_module import ROOT_CONFIG, ansible_inventory, apply
from tf_helpers import ANSIBLE_INVENTORY, ROOT, TerraformDir, terraform_bin  # noqa: F401 (fixture)

DYNAMIC = ROOT / "inventories" / "aws" / "aws_ec2.yml"
GROUPS = ("mlflow", "monitoring", "serving", "gpu", "cpu")
SPECS = {
    "tracking": ("mlflow", "cpu", "admin"),
    "gpu-1": ("serving", "gpu", "ubuntu"),
    "gpu-2": ("serving", "gpu", "ubuntu"),
    "cpu-1": ("serving", "cpu", "admin"),
}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@pytest.fixture(scope="module")
def ec2(tmp_path_factory):
    config = yaml.safe_load(DYNAMIC.read_text())
    region = config["regions"][0]
    project = config["filters"]["tag:Project"]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        image = "ami-0123456789abcdef0"  # moto does not check it (listing its images takes seconds)

        def launch(name, role, accelerator, user, project=project):
            tags = {
                "Name": f"{project}-{name}",
                "InventoryHost": name,
                "Role": role,
                "Accelerator": accelerator,
                "SshUser": user,
                "ManagedBy": "terraform",
                "Project": project,
            }
            reply = client.run_instances(
                ImageId=image,
                MinCount=1,
                MaxCount=1,
                InstanceType="m7i.large",
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                ],
            )
            return reply["Instances"][0]

        instances = {name: launch(name, *spec) for name, spec in SPECS.items()}
        launch("foreign", "serving", "cpu", "admin", project="another-project")
        stopped = launch("stopped", "serving", "gpu", "ubuntu")
        client.stop_instances(InstanceIds=[stopped["InstanceId"]])

        config["endpoint_url"] = endpoint
        # The plugin takes its configuration only from a file named *aws_ec2.yml.
        path = tmp_path_factory.mktemp("dynamic") / "test.aws_ec2.yml"
        path.write_text(yaml.safe_dump(config))
        yield path, instances
    finally:
        server.stop()


def plain(value):
    """ansible-inventory marks plugin-made values as unsafe: {"__ansible_unsafe": VALUE}."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


def dynamic_inventory(path):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **CREDENTIALS)
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Failed to parse" not in result.stderr and "Unable to parse" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def dynamic(ec2):
    return dynamic_inventory(ec2[0])


def test_dynamic_inventory_groups_the_project_hosts_by_tags(ec2, dynamic):
    _, instances = ec2
    listed = dynamic
    groups = {group: sorted(listed.get(group, {}).get("hosts", [])) for group in GROUPS}
    assert groups == {
        "mlflow": ["tracking"],
        "monitoring": ["tracking"],
        "serving": ["cpu-1", "gpu-1", "gpu-2"],
        "gpu": ["gpu-1", "gpu-2"],
        "cpu": ["cpu-1", "tracking"],
    }
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == set(SPECS), "another project's and stopped instances stay out"
    for name, instance in instances.items():
        assert plain(hostvars[name]["ansible_host"]) == instance["PrivateIpAddress"]
        assert plain(hostvars[name]["ansible_user"]) == SPECS[name][2]


def test_dynamic_and_terraform_inventories_agree(ec2, dynamic, tmp_path, terraform_bin):
    _, instances = ec2
    tf = TerraformDir(tmp_path)
    (tmp_path / "main.tf").write_text(ROOT_CONFIG)
    tf.init()
    hosts = {
        name: {
            "address": instances[name]["PrivateIpAddress"],
            "role": role,
            "accelerator": accelerator,
            "ansible_user": user,
        }
        for name, (role, accelerator, user) in SPECS.items()
    }
    outputs = apply(tf, hosts=hosts, artifact_uri="s3://runlocalai-artifacts/mlflow")
    rendered = tmp_path / "hosts.yml"
    rendered.write_text(outputs["inventory"])
    static = ansible_inventory(rendered)
    for group in GROUPS:
        assert sorted(dynamic[group]["hosts"]) == sorted(static[group]["hosts"]), group
    for name in SPECS:
        for var in ("ansible_host", "ansible_user"):
            assert plain(dynamic["_meta"]["hostvars"][name][var]) == static["_meta"]["hostvars"][name][var], (name, var)
