"""Structural tests of the Terraform code (python-hcl2): they fail when a secure
default, a description or a module contract is lost, in the source text. The
modules' own `terraform test` files (tests/*.tftest.hcl, run by
scripts/test-terraform.sh) check the same defaults in planned values.
"""

import json
import re

import pytest
from tf_helpers import CONFIG_DIRS, ENV_DIR, EXAMPLE_DIRS, MODULES_DIR, ROOT, TERRAFORM_DIR, expr, load_config, load_tf

ARTIFACT = load_config(MODULES_DIR / "artifact_store")
HOSTS = load_config(MODULES_DIR / "serving_hosts")
INVENTORY = load_config(MODULES_DIR / "ansible_inventory")
ENV = load_config(ENV_DIR)

INGRESS_VARIABLES = ("admin_cidrs", "mlflow_client_cidrs", "serving_client_cidrs")


def _ids(dirs):
    return [str(d.relative_to(TERRAFORM_DIR)) for d in dirs]


def walk(node):
    """Every scalar in a parsed structure (keys included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)
    else:
        yield node


# --- every configuration ---------------------------------------------------------


def test_every_terraform_directory_is_covered():
    """A new module under terraform/ joins these tests (they iterate CONFIG_DIRS, and EXAMPLE_DIRS
    for the modules' examples)."""
    found = sorted({p.parent for p in TERRAFORM_DIR.rglob("*.tf") if ".terraform" not in p.parts})
    assert found == sorted(CONFIG_DIRS + EXAMPLE_DIRS)
    for directory in CONFIG_DIRS:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
            assert (directory / name).is_file(), f"{directory.relative_to(ROOT)} lacks {name}"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_every_variable_is_typed_and_described(directory):
    variables = load_config(directory)["variable"]
    assert variables, f"{directory} declares no variables"
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} in {directory.name} has no type"
        assert (
            len(str(body.get("description", "")).strip()) >= 10
        ), f"variable {name} in {directory.name} has no description"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_every_output_is_described(directory):
    outputs = load_config(directory)["output"]
    assert outputs, f"{directory} declares no outputs"
    for name, body in outputs.items():
        assert (
            len(str(body.get("description", "")).strip()) >= 10
        ), f"output {name} in {directory.name} has no description"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_validation_messages_are_sentences(directory):
    # Terraform < 1.2 refuses other messages; the tests match on them.
    for name, body in load_config(directory)["variable"].items():
        for rule in body.get("validation", []):
            message = str(rule["error_message"])
            assert message[:1].isupper() and message.rstrip().endswith("."), f"{name}: {message!r}"


def test_aws_configurations_pin_terraform_and_provider_ranges():
    for config in (ARTIFACT, HOSTS, ENV):
        (block,) = config["terraform"]
        assert block["required_version"] == ">= 1.5"
        aws = block["required_providers"][0]["aws"]
        assert aws["source"] == "hashicorp/aws"
        assert re.fullmatch(r">= 5\.\d+, < \d+\.0", aws["version"]), aws["version"]


def test_no_secret_or_state_files_committed():
    for pattern in ("*.tfstate", "*.tfstate.*", "terraform.tfvars", "*.auto.tfvars", ".terraform.lock.hcl"):
        assert not list(TERRAFORM_DIR.rglob(pattern)), f"{pattern} under terraform/"


# --- ansible_inventory: provider-free, written for Terraform 1.0 -----------------
# (statically: nothing runs it on 1.0; the tests run Terraform 1.11.4)


def test_ansible_inventory_is_provider_free_and_written_for_terraform_1_0():
    (block,) = INVENTORY["terraform"]
    assert block["required_version"] == ">= 1.0"
    assert "required_providers" not in block
    assert not INVENTORY["resource"] and not INVENTORY["data"] and not INVENTORY["module"]
    for path in (MODULES_DIR / "ansible_inventory").glob("*.tf"):
        parsed = load_tf(path)
        assert "provider" not in parsed, path.name
        assert "check" not in parsed, f"{path.name}: check blocks need Terraform 1.5"
        for value in walk(parsed):
            assert "optional(" not in str(value), f"{path.name}: optional() needs Terraform 1.3"
    # Cross-variable validation needs Terraform 1.9.
    for name, body in INVENTORY["variable"].items():
        for rule in body.get("validation", []):
            others = set(re.findall(r"var\.(\w+)", expr(rule["condition"]))) - {name}
            assert not others, f"validation of {name} references {others}"


# --- artifact_store ----------------------------------------------------------------


def _one(config, kind, rtype, name="this"):
    assert rtype in config[kind], f"{kind} {rtype} is missing"
    assert name in config[kind][rtype], f"{kind} {rtype}.{name} is missing"
    return config[kind][rtype][name]


def test_bucket_is_never_force_destroyed():
    assert _one(ARTIFACT, "resource", "aws_s3_bucket")["force_destroy"] is False


def test_public_access_block_has_all_four_flags():
    block = _one(ARTIFACT, "resource", "aws_s3_bucket_public_access_block")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block.get(flag) is True, flag


def test_acls_are_disabled_by_bucket_owner_enforced():
    controls = _one(ARTIFACT, "resource", "aws_s3_bucket_ownership_controls")
    assert controls["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
    assert "aws_s3_bucket_acl" not in ARTIFACT["resource"]


def test_versioning_is_enabled():
    versioning = _one(ARTIFACT, "resource", "aws_s3_bucket_versioning")
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"


def test_sse_kms_by_default_with_a_rotated_customer_key():
    sse = _one(ARTIFACT, "resource", "aws_s3_bucket_server_side_encryption_configuration")
    rule = sse["rule"][0]
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    assert rule["bucket_key_enabled"] is True
    assert ARTIFACT["variable"]["create_kms_key"]["default"] is True
    key = _one(ARTIFACT, "resource", "aws_kms_key")
    assert key["enable_key_rotation"] is True
    assert "var.create_kms_key" in expr(key["count"])
    assert ARTIFACT["variable"]["kms_key_deletion_window_days"]["default"] == 30


def _statements(document):
    return document.get("statement", [])


def test_bucket_policy_denies_plain_http_and_tls_below_1_2():
    statements = _statements(_one(ARTIFACT, "data", "aws_iam_policy_document", "bucket"))
    conditions = {}
    for statement in statements:
        assert statement["effect"] == "Deny"
        assert statement["actions"] == ["s3:*"]
        assert statement["principals"][0]["identifiers"] == ["*"]
        assert len(statement["resources"]) == 2  # the bucket and its objects
        for condition in statement["condition"]:
            conditions[(condition["test"], condition["variable"])] = condition["values"]
    assert conditions[("Bool", "aws:SecureTransport")] == ["false"]
    assert conditions[("NumericLessThan", "s3:TlsVersion")] == ["1.2"]


def test_bucket_policy_is_applied_after_the_public_access_block():
    policy = _one(ARTIFACT, "resource", "aws_s3_bucket_policy")
    assert expr(policy["policy"]) == "data.aws_iam_policy_document.bucket.json"
    assert "aws_s3_bucket_public_access_block.this" in [expr(d) for d in policy["depends_on"]]


def test_lifecycle_aborts_uploads_and_ages_out_noncurrent_versions():
    lifecycle = _one(ARTIFACT, "resource", "aws_s3_bucket_lifecycle_configuration")
    rules = {rule["id"]: rule for rule in lifecycle["rule"]}
    for rule in rules.values():
        assert rule["status"] == "Enabled"
    assert any("abort_incomplete_multipart_upload" in rule for rule in rules.values())
    noncurrent = [rule for rule in rules.values() if "noncurrent_version_expiration" in rule]
    assert noncurrent and "noncurrent_version_transition" in noncurrent[0]
    assert noncurrent[0]["noncurrent_version_transition"][0]["storage_class"] == "STANDARD_IA"
    defaults = {
        name: ARTIFACT["variable"][name]["default"]
        for name in ("abort_incomplete_multipart_days", "noncurrent_transition_days", "noncurrent_expiration_days")
    }
    assert defaults["abort_incomplete_multipart_days"] <= 7
    assert defaults["noncurrent_transition_days"] < defaults["noncurrent_expiration_days"]
    assert "aws_s3_bucket_versioning.this" in [expr(d) for d in lifecycle["depends_on"]]


def test_access_logging_is_optional():
    logging = _one(ARTIFACT, "resource", "aws_s3_bucket_logging")
    assert "var.access_log_bucket" in expr(logging["count"])
    assert ARTIFACT["variable"]["access_log_bucket"]["default"] is None


def _actions(document):
    return {action for statement in _statements(document) for action in statement["actions"]}


def test_read_only_policy_cannot_write_and_read_write_can():
    read_only = _actions(_one(ARTIFACT, "data", "aws_iam_policy_document", "read_only"))
    read_write = _actions(_one(ARTIFACT, "data", "aws_iam_policy_document", "read_write"))
    assert {"s3:GetObject", "s3:ListBucket"} <= read_only
    assert not {a for a in read_only if re.search(r"Put|Delete|Abort|\*", a)}, read_only
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= read_write
    assert not [a for a in read_write if a.endswith("*")], "no wildcard actions"


def test_host_policies_are_scoped_to_the_prefix_not_the_account():
    for name in ("read_only", "read_write"):
        document = _one(ARTIFACT, "data", "aws_iam_policy_document", name)
        for statement in _statements(document):
            for resource in statement["resources"]:
                assert resource != "*", f"{name}: unscoped resource"
        listing = [s for s in _statements(document) if "s3:ListBucket" in s["actions"]][0]
        assert listing["condition"][0]["variable"] == "s3:prefix"
    assert "var.artifact_prefix" in expr(ARTIFACT["locals"]["object_arn"])


# --- serving_hosts -------------------------------------------------------------------


def _instances():
    instances = HOSTS["resource"]["aws_instance"]
    assert set(instances) == {"this", "ignore_ami"}
    return instances


def test_instances_require_imdsv2_with_hop_limit_1():
    for name, instance in _instances().items():
        metadata = instance["metadata_options"][0]
        assert expr(metadata["http_tokens"]) == "var.http_tokens", name
        assert metadata["http_put_response_hop_limit"] == 1, name
        assert metadata["http_endpoint"] == "enabled", name
    variable = HOSTS["variable"]["http_tokens"]
    assert variable["default"] == "required"
    assert any(expr(rule["condition"]) == 'var.http_tokens == "required"' for rule in variable["validation"])


def test_root_volume_is_encrypted_gp3_and_cache_volume_encrypted():
    for name, instance in _instances().items():
        root = instance["root_block_device"][0]
        assert root["encrypted"] is True, name
        assert root["volume_type"] == "gp3", name
    cache = HOSTS["resource"]["aws_ebs_volume"]["model_cache"]
    assert cache["encrypted"] is True and cache["type"] == "gp3"


def test_instances_are_private_monitored_ebs_optimized_and_profiled():
    for name, instance in _instances().items():
        assert instance["associate_public_ip_address"] is False, name
        assert instance["ebs_optimized"] is True, name
        assert expr(instance["monitoring"]) == "var.detailed_monitoring", name
        assert "aws_iam_instance_profile.this" in expr(instance["iam_instance_profile"]), name
    assert HOSTS["variable"]["detailed_monitoring"]["default"] is True


def test_both_instance_resources_are_identical_except_ami_lifecycle():
    this, ignore = _instances()["this"], dict(_instances()["ignore_ami"])
    assert ignore.pop("lifecycle") == [{"ignore_changes": ["ami"]}]
    assert "lifecycle" not in this
    assert expr(this.pop("for_each")) == "var.ignore_ami_changes ? {} : local.hosts"
    assert expr(ignore.pop("for_each")) == "var.ignore_ami_changes ? local.hosts : {}"
    assert this == ignore


def test_spot_goes_through_instance_market_options():
    for name, instance in _instances().items():
        (dynamic,) = [d for d in instance["dynamic"] if "instance_market_options" in d]
        content = dynamic["instance_market_options"]["content"][0]
        assert content["market_type"] == "spot", name
        assert "each.value.spot" in expr(dynamic["instance_market_options"]["for_each"])
    assert "aws_spot_instance_request" not in HOSTS["resource"]


def test_instances_carry_role_accelerator_managedby_project_tags():
    tags = expr(HOSTS["locals"]["hosts"])
    for key in ("Role", "Accelerator", "InventoryHost", "SshUser"):
        assert re.search(rf"\b{key}\s*=", tags), key
    common = HOSTS["locals"]["common_tags"]
    assert "ManagedBy" in expr(common) and "Project" in expr(common)
    for name, instance in _instances().items():
        assert expr(instance["tags"]) == "each.value.tags", name


def test_ami_comes_from_ssm_with_override_and_ignore_switch():
    assert expr(HOSTS["data"]["aws_ssm_parameter"]["ami"]["name"]) == "var.ami_ssm_parameters[each.key]"
    defaults = HOSTS["variable"]["ami_ssm_parameters"]["default"]
    assert "deeplearning" in defaults["gpu"] and "nvidia" in defaults["gpu"]
    assert "debian" in defaults["cpu"] or "ubuntu" in defaults["cpu"]
    assert "host.ami_id != null ? host.ami_id" in expr(HOSTS["locals"]["hosts"])
    assert expr(HOSTS["variable"]["ignore_ami_changes"]["type"]) == "bool"


def _rules(kind):
    """The text of the security group rule list (locals ingress_rules / egress_rules)."""
    return expr(HOSTS["locals"][f"{kind}_rules"])


def test_every_security_group_and_rule_has_a_description():
    for name in ("mlflow", "serving"):
        assert HOSTS["resource"]["aws_security_group"][name]["description"]
    for kind in ("ingress", "egress"):
        rule = HOSTS["resource"][f"aws_vpc_security_group_{kind}_rule"]["this"]
        assert expr(rule["description"]) == "each.value.description"
        text = _rules(kind)
        entries = len(re.findall(r"\bsg\s*=", text))
        descriptions = len(re.findall(r'\bdescription\s*=\s*"[^"]{10,}', text))
        assert entries and entries == descriptions, f"{kind}: {entries} rules, {descriptions} descriptions"
    assert "aws_security_group_rule" not in HOSTS["resource"]
    for sg in HOSTS["resource"]["aws_security_group"].values():
        assert "ingress" not in sg and "egress" not in sg, "inline rules bypass the described rule list"


def test_ingress_is_only_from_listed_cidrs_on_the_exposed_ports():
    text = _rules("ingress")
    assert "0.0.0.0/0" not in text and "::/0" not in text
    sources = set(re.findall(r"var\.(\w+_cidrs)", text))
    assert sources == set(INGRESS_VARIABLES)
    # The ports the bind rule exposes and nothing else.
    ports = set(re.findall(r"\b(?:from|to)\s*=\s*([\w.]+)", text))
    assert ports == {
        "22",
        "var.mlflow_tracking_port",
        "var.model_server_ports.from",
        "var.model_server_ports.to",
        "var.node_exporter_port",
    }, ports
    for name in INGRESS_VARIABLES:
        variable = HOSTS["variable"][name]
        assert variable["default"] == [], name
        conditions = " ".join(expr(rule["condition"]) for rule in variable["validation"])
        assert '!contains(var.%s, "0.0.0.0/0")' % name in conditions, name
        assert "cidrnetmask" in conditions, name


def test_no_open_ingress_anywhere_in_terraform():
    """0.0.0.0/0 may appear only as an egress default or inside validation rules."""
    for directory in CONFIG_DIRS:
        config = load_config(directory)
        for name, body in config["variable"].items():
            stripped = {k: v for k, v in body.items() if k != "validation"}
            if "0.0.0.0/0" in json.dumps(stripped):
                assert name == "https_egress_cidrs", f"{directory.name}: variable {name} defaults to 0.0.0.0/0"
        for kind in ("resource", "data", "module", "locals", "output"):
            blob = json.dumps(config[kind])
            assert "0.0.0.0/0" not in blob and "::/0" not in blob, f"{directory.name}: {kind}"
    example = json.dumps(load_tf(ENV_DIR / "terraform.tfvars.example"))
    assert "0.0.0.0/0" not in example and "::/0" not in example


def test_egress_defaults_to_https_dns_ntp_and_http_only_to_listed_mirrors():
    text = _rules("egress")
    ports = set(re.findall(r"\bfrom\s*=\s*([\w.]+)", text))
    assert ports == {
        "443",
        "53",
        "123",
        "80",
        "var.mlflow_tracking_port",
        "var.model_server_ports.from",
        "var.node_exporter_port",
    }, ports
    assert re.search(r"from\s*=\s*80\b", text)
    assert "var.http_egress_cidrs" in text
    assert HOSTS["variable"]["http_egress_cidrs"]["default"] == []
    assert HOSTS["variable"]["dns_egress_cidrs"]["default"] == ["169.254.169.253/32"]
    assert HOSTS["variable"]["ntp_egress_cidrs"]["default"] == ["169.254.169.123/32"]
    # No all-protocol rule.
    assert '"-1"' not in text and "= -1" not in text
    # apt sources are switched to HTTPS at first boot by default.
    mirrors = HOSTS["variable"]["apt_https_mirrors"]["default"]
    for per_accelerator in mirrors.values():
        for url in per_accelerator.values():
            assert url.startswith("https://"), url


def test_user_data_template_switches_apt_to_https_mirrors():
    template = (MODULES_DIR / "serving_hosts" / "templates" / "user_data.yaml.tftpl").read_text()
    assert template.startswith("#cloud-config\n")
    assert "uri: ${primary}" in template and "uri: ${security}" in template


def test_iam_tracking_host_read_write_serving_none_unless_switched_on():
    policies = HOSTS["resource"]["aws_iam_role_policy"]
    mlflow, serving = policies["mlflow_artifacts"], policies["serving_artifacts"]
    assert expr(mlflow["role"]) == 'aws_iam_role.this["mlflow"].id'
    assert expr(mlflow["policy"]) == "var.artifact_read_write_policy_json"
    assert expr(serving["role"]) == 'aws_iam_role.this["serving"].id'
    assert expr(serving["policy"]) == "var.artifact_read_only_policy_json"
    assert expr(serving["count"]) == "var.serving_direct_artifact_read ? 1 : 0"
    assert HOSTS["variable"]["serving_direct_artifact_read"]["default"] is False
    assert HOSTS["variable"]["enable_ssm"]["default"] is False
    assert "AmazonSSMManagedInstanceCore" in expr(
        HOSTS["resource"]["aws_iam_role_policy_attachment"]["ssm"]["policy_arn"]
    )
    assert set(HOSTS["resource"]["aws_iam_role_policy_attachment"]) == {"ssm"}, "no other managed policies"
    assume = HOSTS["data"]["aws_iam_policy_document"]["assume_ec2"]["statement"][0]
    assert assume["principals"][0]["identifiers"] == ["ec2.amazonaws.com"]


def test_hosts_variable_has_the_required_validations():
    conditions = [expr(rule["condition"]) for rule in HOSTS["variable"]["hosts"]["validation"]]
    joined = "\n".join(conditions)
    assert "length(var.hosts) > 0" in conditions
    assert 'host.accelerator != "gpu" || contains(' in joined
    assert 'contains(["mlflow", "serving"], host.role)' in joined
    assert 'contains(["gpu", "cpu"], host.accelerator)' in joined


# --- the root configuration and the contracts between modules -------------------------


def test_environment_outputs_and_wiring():
    assert {"ansible_inventory", "mlflow_artifact_uri"} <= set(ENV["output"])
    assert expr(ENV["output"]["ansible_inventory"]["value"]) == "module.ansible_inventory.inventory"
    assert expr(ENV["output"]["mlflow_artifact_uri"]["value"]) == "module.artifact_store.artifact_uri"
    inventory = ENV["module"]["ansible_inventory"]
    assert expr(inventory["hosts"]) == "module.serving_hosts.inventory_hosts"
    assert expr(inventory["artifact_uri"]) == "module.artifact_store.artifact_uri"
    hosts = ENV["module"]["serving_hosts"]
    assert expr(hosts["artifact_read_write_policy_json"]) == "module.artifact_store.read_write_policy_json"
    assert expr(hosts["artifact_read_only_policy_json"]) == "module.artifact_store.read_only_policy_json"
    for name, module in ENV["module"].items():
        assert module["source"] == f"../../modules/{name}"
        for argument in module:
            if argument != "source":
                assert argument in load_config(MODULES_DIR / name)["variable"], f"{name}.{argument} is not a variable"
    provider = load_tf(ENV_DIR / "versions.tf")["provider"][0]["aws"]
    tags = provider["default_tags"][0]["tags"]
    assert set(tags) >= {"Project", "ManagedBy"}


def test_serving_hosts_output_matches_the_inventory_module_input():
    attributes = set(re.findall(r"(\w+)\s*=(?![>=])", expr(INVENTORY["variable"]["hosts"]["type"])))
    produced = set(re.findall(r"(\w+)\s*=(?![>=])", expr(HOSTS["output"]["inventory_hosts"]["value"])))
    assert attributes == {"address", "role", "accelerator", "ansible_user"}
    assert produced == attributes


def test_environment_hosts_type_matches_the_module():
    assert ENV["variable"]["hosts"]["type"] == HOSTS["variable"]["hosts"]["type"]


def test_example_tfvars_sets_every_required_variable():
    example = load_tf(ENV_DIR / "terraform.tfvars.example")
    required = {name for name, body in ENV["variable"].items() if "default" not in body}
    assert required <= set(example), required - set(example)
    assert set(example) <= set(ENV["variable"]), set(example) - set(ENV["variable"])
