"""The validation rules of the AWS modules, with their error messages.

Each variable's block is transplanted verbatim (its type, validation conditions
and messages, read with python-hcl2) into a provider-free configuration and
planned with good and bad values. The modules' own `terraform test` files cover
every rule too, but `expect_failures` only says that a variable failed; these
tests also check that the message is the one of the rule meant.
"""

import json

import pytest
from tf_helpers import (
    ENV_DIR,
    MODULES_DIR,
    TerraformDir,
    expr,
    load_config,
    load_tf,
    terraform_bin,
)  # noqa: F401 (fixture)

HOSTS_DIR = MODULES_DIR / "serving_hosts"
ARTIFACT_DIR = MODULES_DIR / "artifact_store"

HOST_DEFAULTS = {
    "root_volume_size_gb": 50,
    "model_cache_volume_size_gb": 0,
    "subnet_id": None,
    "ami_id": None,
    "ssh_user": None,
    "spot": False,
}


def host(**attributes):
    return dict(HOST_DEFAULTS, **attributes)


def example_hosts():
    """The hosts of terraform.tfvars.example, with the optional attributes filled in."""
    return {
        name: dict(HOST_DEFAULTS, **spec)
        for name, spec in load_tf(ENV_DIR / "terraform.tfvars.example")["hosts"].items()
    }


def transplant(directory, name):
    """The variable block `name` of a module, type and validation rules."""
    body = load_config(directory, raw=True)["variable"][name]
    lines = [f'variable "{name}" {{', f"  type = {expr(body['type'])}"]
    for rule in body["validation"]:
        lines += [
            "  validation {",
            f"    condition     = {expr(rule['condition'])}",
            f"    error_message = {rule['error_message']}",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def planner(tmp_path_factory, terraform_bin):
    """plan(directory, variable, value) -> (returncode, output), one init per variable."""
    dirs = {}

    def plan(directory, name, value):
        key = (str(directory), name)
        if key not in dirs:
            path = tmp_path_factory.mktemp(f"validate-{directory.name}-{name}")
            (path / "main.tf").write_text(transplant(directory, name))
            dirs[key] = TerraformDir(path)
            dirs[key].init()
        tf = dirs[key]
        varfile = tf.write_vars("case.tfvars.json", {name: value})
        result = tf.run("plan", "-input=false", "-lock=false", f"-var-file={varfile}", check=False)
        return result.returncode, " ".join((result.stdout + result.stderr).split())

    return plan


GOOD = [
    (HOSTS_DIR, "hosts", "example"),
    (
        HOSTS_DIR,
        "hosts",
        {
            "tracking": host(role="mlflow", accelerator="cpu", instance_type="m7i.xlarge"),
            "gpu-1": host(
                role="serving",
                accelerator="gpu",
                instance_type="p4d.24xlarge",
                ami_id="ami-0123456789abcdef0",
                model_cache_volume_size_gb=500,
            ),
        },
    ),
    (HOSTS_DIR, "admin_cidrs", ["10.20.0.0/24", "192.168.1.7/32"]),
    (HOSTS_DIR, "mlflow_client_cidrs", []),
    (HOSTS_DIR, "serving_client_cidrs", ["10.30.0.0/16"]),
    (HOSTS_DIR, "https_egress_cidrs", ["0.0.0.0/0"]),
    (HOSTS_DIR, "http_egress_cidrs", ["10.40.0.10/32"]),
    (HOSTS_DIR, "http_tokens", "required"),
    (HOSTS_DIR, "apt_https_mirrors", None),
    (ARTIFACT_DIR, "artifact_prefix", ""),
    (ARTIFACT_DIR, "artifact_prefix", "teams/mlflow"),
    (ARTIFACT_DIR, "noncurrent_transition_days", 30),
    (ARTIFACT_DIR, "noncurrent_glacier_days", None),
    (ARTIFACT_DIR, "kms_key_arn", None),
    (ARTIFACT_DIR, "kms_key_arn", "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    (ARTIFACT_DIR, "access_log_bucket", None),
    (HOSTS_DIR, "ebs_kms_key_arn", None),
]

BAD = [
    (HOSTS_DIR, "hosts", {}, "The hosts map is empty"),
    (
        HOSTS_DIR,
        "hosts",
        {"gpu-1": host(role="serving", accelerator="gpu", instance_type="m7i.large")},
        'A host with accelerator "gpu" needs an NVIDIA GPU instance family',
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"gpu-1": host(role="serving", accelerator="gpu", instance_type="g4ad.xlarge")},
        'A host with accelerator "gpu" needs an NVIDIA GPU instance family',
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"t": host(role="tracking", accelerator="cpu", instance_type="m7i.large")},
        'Every host role must be "mlflow" or "serving"',
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"t": host(role="mlflow", accelerator="tpu", instance_type="m7i.large")},
        'Every host accelerator must be "gpu" or "cpu"',
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"Bad_Name": host(role="mlflow", accelerator="cpu", instance_type="m7i.large")},
        "Every host name (map key) must be",
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"t": host(role="mlflow", accelerator="cpu", instance_type="m7i")},
        "Every instance_type must look like FAMILY.SIZE",
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"t": host(role="mlflow", accelerator="cpu", instance_type="m7i.large", root_volume_size_gb=8)},
        "Every root_volume_size_gb must be from 20 to 16384",
    ),
    (
        HOSTS_DIR,
        "hosts",
        {"t": host(role="mlflow", accelerator="cpu", instance_type="m7i.large", ami_id="ubuntu")},
        "Every ami_id must be null or look like",
    ),
    (HOSTS_DIR, "http_tokens", "optional", 'The http_tokens must be "required"'),
    (HOSTS_DIR, "http_egress_cidrs", ["0.0.0.0/0"], "The http_egress_cidrs must not contain 0.0.0.0/0"),
    (HOSTS_DIR, "https_egress_cidrs", ["0.0.0.0"], "Every https_egress_cidrs entry must be an IPv4 network"),
    (
        HOSTS_DIR,
        "apt_https_mirrors",
        {
            "gpu": {"primary": "http://archive.ubuntu.com/ubuntu", "security": "https://a.example"},
            "cpu": {"primary": "https://deb.debian.org/debian", "security": "https://deb.debian.org/debian-security"},
        },
        "Every apt_https_mirrors URL must be an https:// URL",
    ),
    (ARTIFACT_DIR, "artifact_prefix", "mlflow/", "The artifact_prefix must be empty or path segments"),
    (ARTIFACT_DIR, "artifact_prefix", "/mlflow", "The artifact_prefix must be empty or path segments"),
    (ARTIFACT_DIR, "noncurrent_transition_days", 10, "The noncurrent_transition_days must be at least 30"),
    (ARTIFACT_DIR, "kms_key_arn", "alias/aws/s3", "The kms_key_arn must be null or a KMS key ARN"),
    (ARTIFACT_DIR, "noncurrent_glacier_days", 45, "The noncurrent_glacier_days must be null or at least 60"),
    (ARTIFACT_DIR, "access_log_bucket", "Logs_Bucket", "The access_log_bucket must be null or a valid S3 bucket name"),
]

# Every CIDR list that opens ingress refuses malformed networks and the internet.
for _name in ("admin_cidrs", "mlflow_client_cidrs", "serving_client_cidrs"):
    BAD += [
        (HOSTS_DIR, _name, ["0.0.0.0/0"], f"The {_name} must not contain 0.0.0.0/0"),
        (HOSTS_DIR, _name, ["10.0.0.300/24"], f"Every {_name} entry must be an IPv4 network"),
        (HOSTS_DIR, _name, ["10.0.0.1/24"], f"Every {_name} entry must be an IPv4 network"),  # host bits set
        (HOSTS_DIR, _name, ["10.0.0.0"], f"Every {_name} entry must be an IPv4 network"),
        (HOSTS_DIR, _name, ["10.0.0.0/33"], f"Every {_name} entry must be an IPv4 network"),
        (HOSTS_DIR, _name, ["fd00::/8"], f"Every {_name} entry must be an IPv4 network"),
    ]


def _id(case):
    return f"{case[0].name}.{case[1]}={json.dumps(case[2])[:40]}"


@pytest.mark.parametrize("case", GOOD, ids=[_id(c) for c in GOOD])
def test_valid_values_pass(planner, case):
    directory, name, value = case
    if value == "example":
        value = example_hosts()
    returncode, output = planner(directory, name, value)
    assert returncode == 0, output


@pytest.mark.parametrize("case", BAD, ids=[_id(c) for c in BAD])
def test_invalid_values_fail_with_the_rule_message(planner, case):
    directory, name, value, message = case
    returncode, output = planner(directory, name, value)
    assert returncode != 0, f"{name}={value!r} was accepted"
    assert "Invalid value for variable" in output, output
    assert message in output, output
