# The hosts' secure defaults, the security group rules and IAM, planned with a
# mocked AWS provider (no credentials, no network). Mocked values are fixed
# where the module or the assertions use them, and known at plan time
# (override_during). A mocked provider fills optional computed attributes left
# null (key_name, the root volume's kms_key_id) with made-up values, so only
# values the module sets are asserted on.

mock_provider "aws" {
  override_during = plan
  source          = "./tests/mocks"
}

# Distinct IDs for the groups and roles the rules and policies point at.
override_resource {
  target          = aws_security_group.mlflow
  override_during = plan
  values          = { id = "sg-0aaaaaaaaaaaaaaa1" }
}
override_resource {
  target          = aws_security_group.serving
  override_during = plan
  values          = { id = "sg-0aaaaaaaaaaaaaaa2" }
}
override_resource {
  target          = aws_iam_role.this["mlflow"]
  override_during = plan
  values          = { id = "acme-mlflow-role" }
}
override_resource {
  target          = aws_iam_role.this["serving"]
  override_during = plan
  values          = { id = "acme-serving-role" }
}

variables {
  name_prefix = "acme"
  project     = "acme"
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_id   = "subnet-0123456789abcdef0"
  hosts = {
    tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.xlarge" }
    gpu-1    = { role = "serving", accelerator = "gpu", instance_type = "g5.xlarge", root_volume_size_gb = 150, model_cache_volume_size_gb = 100 }
    cpu-1    = { role = "serving", accelerator = "cpu", instance_type = "c7i.large", spot = true }
  }
  artifact_read_write_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::acme/mlflow/*\"}]}"
}

run "defaults" {
  command = plan

  assert {
    condition     = length(aws_instance.this) == 0 && toset(keys(aws_instance.ignore_ami)) == toset(["tracking", "gpu-1", "cpu-1"])
    error_message = "With ignore_ami_changes (default true) every host is in aws_instance.ignore_ami."
  }

  assert {
    condition = alltrue([for i in aws_instance.ignore_ami :
      i.metadata_options[0].http_tokens == "required" &&
      i.metadata_options[0].http_endpoint == "enabled" &&
      i.metadata_options[0].http_put_response_hop_limit == 1 &&
      i.metadata_options[0].instance_metadata_tags == "disabled"
    ])
    error_message = "Every host must require IMDSv2 tokens with a hop limit of 1 and no tags in the metadata."
  }

  assert {
    condition = alltrue([for i in aws_instance.ignore_ami :
      i.root_block_device[0].encrypted &&
      i.root_block_device[0].volume_type == "gp3" &&
      i.root_block_device[0].delete_on_termination
    ])
    error_message = "Every root volume must be encrypted gp3, deleted with the instance."
  }

  assert {
    condition = alltrue([for i in aws_instance.ignore_ami :
      i.associate_public_ip_address == false && i.ebs_optimized && i.monitoring
    ])
    error_message = "Every host must be private, EBS optimized and monitored."
  }

  assert {
    condition = (
      aws_instance.ignore_ami["gpu-1"].root_block_device[0].volume_size == 150 &&
      aws_instance.ignore_ami["tracking"].root_block_device[0].volume_size == 50
    )
    error_message = "root_volume_size_gb (default 50) did not reach the root volumes."
  }

  assert {
    condition     = alltrue([for i in aws_instance.ignore_ami : i.ami == "ami-0123456789abcdef0"])
    error_message = "The AMI must come from the SSM parameter."
  }

  assert {
    condition = (
      data.aws_ssm_parameter.ami["gpu"].name == "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id" &&
      data.aws_ssm_parameter.ami["cpu"].name == "/aws/service/debian/release/12/latest/amd64"
    )
    error_message = "GPU hosts take the Deep Learning AMI, CPU hosts Debian 12."
  }

  # No public ingress by default: only the rules between the two groups.
  assert {
    condition = toset(keys(aws_vpc_security_group_ingress_rule.this)) == toset([
      "mlflow-tracking-from-serving",
      "serving-models-from-monitoring",
      "serving-node-exporter-from-monitoring",
    ])
    error_message = "Unexpected default ingress rules: ${jsonencode(keys(aws_vpc_security_group_ingress_rule.this))}."
  }

  assert {
    condition = alltrue([for r in aws_vpc_security_group_ingress_rule.this :
      r.cidr_ipv4 == null && r.cidr_ipv6 == null && r.from_port != 22
    ])
    error_message = "By default no ingress rule may take a CIDR, and there is no SSH."
  }

  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.this["mlflow-tracking-from-serving"].from_port == 443 &&
      aws_vpc_security_group_ingress_rule.this["serving-models-from-monitoring"].from_port == 8000 &&
      aws_vpc_security_group_ingress_rule.this["serving-models-from-monitoring"].to_port == 8009 &&
      aws_vpc_security_group_ingress_rule.this["serving-node-exporter-from-monitoring"].from_port == 9100
    )
    error_message = "The ingress ports must be the tracking port, the model ports and node-exporter's."
  }

  assert {
    condition = alltrue([for r in merge(aws_vpc_security_group_ingress_rule.this, aws_vpc_security_group_egress_rule.this) :
      length(r.description) >= 10 && r.ip_protocol != "-1"
    ])
    error_message = "Every rule needs a description and a protocol (no all-traffic rules)."
  }

  assert {
    condition = (
      alltrue([for r in aws_vpc_security_group_egress_rule.this : r.from_port != 80]) &&
      toset([for r in aws_vpc_security_group_egress_rule.this : "${r.ip_protocol}/${r.from_port}/${coalesce(r.cidr_ipv4, "group")}"]) == toset([
        "tcp/443/0.0.0.0/0",
        "udp/53/169.254.169.253/32",
        "tcp/53/169.254.169.253/32",
        "udp/123/169.254.169.123/32",
        "tcp/443/group",
        "tcp/8000/group",
        "tcp/9100/group",
      ])
    )
    error_message = "Egress must be HTTPS, DNS and NTP, plus the tracking and scrape ports between the groups; no plain HTTP by default."
  }

  assert {
    condition = (
      toset(keys(aws_ebs_volume.model_cache)) == toset(["gpu-1"]) &&
      aws_ebs_volume.model_cache["gpu-1"].encrypted &&
      aws_ebs_volume.model_cache["gpu-1"].type == "gp3" &&
      aws_ebs_volume.model_cache["gpu-1"].size == 100 &&
      aws_ebs_volume.model_cache["gpu-1"].availability_zone == "eu-central-1a" &&
      aws_volume_attachment.model_cache["gpu-1"].device_name == "/dev/sdf"
    )
    error_message = "Only gpu-1 gets a model-cache volume: encrypted gp3, 100 GiB, in its subnet's zone, as /dev/sdf."
  }

  assert {
    condition = (
      aws_instance.ignore_ami["cpu-1"].instance_market_options[0].market_type == "spot" &&
      aws_instance.ignore_ami["cpu-1"].instance_market_options[0].spot_options[0].spot_instance_type == "persistent" &&
      aws_instance.ignore_ami["cpu-1"].instance_market_options[0].spot_options[0].instance_interruption_behavior == "stop" &&
      length(aws_instance.ignore_ami["gpu-1"].instance_market_options) == 0
    )
    error_message = "cpu-1 (spot = true) must be a persistent spot instance, stopped on interruption; gpu-1 on demand."
  }

  assert {
    condition = (
      length(aws_iam_role_policy.mlflow_artifacts) == 1 &&
      aws_iam_role_policy.mlflow_artifacts[0].policy == var.artifact_read_write_policy_json &&
      aws_iam_role_policy.mlflow_artifacts[0].role == "acme-mlflow-role" &&
      length(aws_iam_role_policy.serving_artifacts) == 0 &&
      length(aws_iam_role_policy_attachment.ssm) == 0
    )
    error_message = "Only the tracking host's role gets artifact access by default; no SSM."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.assume_ec2.statement :
      alltrue([for p in s.principals : p.type == "Service" && toset(p.identifiers) == toset(["ec2.amazonaws.com"])])
    ])
    error_message = "The instance roles may be assumed by EC2 only."
  }

  assert {
    condition = (
      jsonencode(aws_instance.ignore_ami["gpu-1"].tags) == jsonencode({
        Name          = "acme-gpu-1"
        Role          = "serving"
        Accelerator   = "gpu"
        InventoryHost = "gpu-1"
        SshUser       = "ubuntu"
        ManagedBy     = "terraform"
        Project       = "acme"
      }) &&
      aws_instance.ignore_ami["tracking"].tags["SshUser"] == "admin"
    )
    error_message = "Unexpected tags: ${jsonencode(aws_instance.ignore_ami["gpu-1"].tags)}."
  }

  assert {
    condition = (
      strcontains(aws_instance.ignore_ami["gpu-1"].user_data, "uri: https://mirrors.edge.kernel.org/ubuntu") &&
      strcontains(aws_instance.ignore_ami["cpu-1"].user_data, "uri: https://deb.debian.org/debian-security")
    )
    error_message = "User data must switch apt to the HTTPS mirrors."
  }

  assert {
    condition = jsonencode(output.inventory_hosts) == jsonencode({
      cpu-1    = { accelerator = "cpu", address = "10.0.1.10", ansible_user = "admin", role = "serving" }
      gpu-1    = { accelerator = "gpu", address = "10.0.1.10", ansible_user = "ubuntu", role = "serving" }
      tracking = { accelerator = "cpu", address = "10.0.1.10", ansible_user = "admin", role = "mlflow" }
    })
    error_message = "Unexpected inventory_hosts: ${jsonencode(output.inventory_hosts)}."
  }

  assert {
    condition     = toset(keys(output.security_group_ids)) == toset(["mlflow", "serving"])
    error_message = "One security group per host role."
  }
}

run "ingress_from_listed_networks" {
  command = plan

  variables {
    admin_cidrs          = ["10.20.0.0/24"]
    mlflow_client_cidrs  = ["10.20.0.0/24"]
    serving_client_cidrs = ["10.30.0.0/16"]
  }

  assert {
    condition = toset([for r in aws_vpc_security_group_ingress_rule.this : "${r.from_port}-${r.to_port}/${r.cidr_ipv4}" if r.cidr_ipv4 != null]) == toset([
      "22-22/10.20.0.0/24",
      "443-443/10.20.0.0/24",
      "8000-8009/10.30.0.0/16",
    ])
    error_message = "The listed networks must reach SSH, the tracking port and the model ports, and nothing else."
  }

  assert {
    condition = (
      length([for r in aws_vpc_security_group_ingress_rule.this : r if r.from_port == 22]) == 2 &&
      aws_vpc_security_group_ingress_rule.this["mlflow-tracking-10.20.0.0/24"].security_group_id == "sg-0aaaaaaaaaaaaaaa1" &&
      aws_vpc_security_group_ingress_rule.this["serving-models-10.30.0.0/16"].security_group_id == "sg-0aaaaaaaaaaaaaaa2"
    )
    error_message = "SSH goes to both groups, the tracking port to mlflow, the model ports to serving."
  }
}

run "replace_hosts_on_a_new_ami" {
  command = plan

  variables {
    ignore_ami_changes = false
  }

  assert {
    condition     = length(aws_instance.ignore_ami) == 0 && toset(keys(aws_instance.this)) == toset(["tracking", "gpu-1", "cpu-1"])
    error_message = "With ignore_ami_changes = false every host is in aws_instance.this."
  }

  assert {
    condition     = alltrue([for i in aws_instance.this : i.metadata_options[0].http_tokens == "required" && i.root_block_device[0].encrypted && !i.associate_public_ip_address])
    error_message = "aws_instance.this must keep IMDSv2, encryption and no public address."
  }
}

run "ssm_direct_reads_customer_key_and_key_pair" {
  command = plan

  variables {
    enable_ssm                     = true
    serving_direct_artifact_read   = true
    artifact_read_only_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::acme/mlflow/*\"}]}"
    ebs_kms_key_arn                = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    key_name                       = "ops-2026"
    detailed_monitoring            = false
  }

  assert {
    condition = (
      toset(keys(aws_iam_role_policy_attachment.ssm)) == toset(["mlflow", "serving"]) &&
      alltrue([for a in aws_iam_role_policy_attachment.ssm : a.policy_arn == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"])
    )
    error_message = "enable_ssm must attach AmazonSSMManagedInstanceCore to both roles."
  }

  assert {
    condition = (
      length(aws_iam_role_policy.serving_artifacts) == 1 &&
      aws_iam_role_policy.serving_artifacts[0].role == "acme-serving-role" &&
      aws_iam_role_policy.serving_artifacts[0].policy == var.artifact_read_only_policy_json
    )
    error_message = "serving_direct_artifact_read must give the serving role the read-only policy."
  }

  assert {
    condition = (
      alltrue([for i in aws_instance.ignore_ami : i.root_block_device[0].kms_key_id == var.ebs_kms_key_arn && i.key_name == "ops-2026" && !i.monitoring]) &&
      aws_ebs_volume.model_cache["gpu-1"].kms_key_id == var.ebs_kms_key_arn
    )
    error_message = "ebs_kms_key_arn, key_name and detailed_monitoring must reach the hosts and volumes."
  }
}

run "own_ami_subnet_user_and_plain_http_mirror" {
  command = plan

  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large", ami_id = "ami-0fedcba9876543210", subnet_id = "subnet-0aaaaaaaaaaaaaaaa", ssh_user = "debian" }
    }
    apt_https_mirrors = null
    http_egress_cidrs = ["10.40.0.10/32"]
  }

  assert {
    condition = (
      length(data.aws_ssm_parameter.ami) == 0 &&
      aws_instance.ignore_ami["tracking"].ami == "ami-0fedcba9876543210" &&
      aws_instance.ignore_ami["tracking"].subnet_id == "subnet-0aaaaaaaaaaaaaaaa" &&
      output.inventory_hosts["tracking"].ansible_user == "debian"
    )
    error_message = "A host's ami_id, subnet_id and ssh_user must override the defaults."
  }

  assert {
    condition     = !strcontains(aws_instance.ignore_ami["tracking"].user_data, "apt:")
    error_message = "apt_https_mirrors = null must leave the image's apt sources alone."
  }

  assert {
    condition = toset([for r in aws_vpc_security_group_egress_rule.this : "${r.security_group_id}/${r.cidr_ipv4}" if r.from_port == 80]) == toset([
      "sg-0aaaaaaaaaaaaaaa1/10.40.0.10/32",
      "sg-0aaaaaaaaaaaaaaa2/10.40.0.10/32",
    ])
    error_message = "Plain HTTP must go to the listed mirror only."
  }
}

run "no_artifact_access" {
  command = plan

  variables {
    mlflow_artifact_access          = false
    artifact_read_write_policy_json = null
  }

  assert {
    condition     = length(aws_iam_role_policy.mlflow_artifacts) == 0 && length(aws_iam_role_policy.serving_artifacts) == 0
    error_message = "Without mlflow_artifact_access no role gets an artifact policy."
  }
}
