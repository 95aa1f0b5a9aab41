# Every validation rule of variables.tf and both IAM preconditions of main.tf:
# good values at the edges of the rules, then one run (or more) per rule with a
# value that breaks that rule and no other.
# tests/terraform/test_terraform_tests.py checks that every variable has at
# least as many failing runs as validation blocks.

mock_provider "aws" {
  override_during = plan
  source          = "./tests/mocks"
}

variables {
  name_prefix = "acme"
  project     = "acme"
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_id   = "subnet-0123456789abcdef0"
  hosts = {
    tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.xlarge" }
  }
  artifact_read_write_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
}

run "good_values_at_the_edges_of_the_rules" {
  command = plan

  variables {
    name_prefix = "a${join("", [for i in range(27) : "b"])}9"
    project     = join("", [for i in range(128) : "p"])
    vpc_id      = "vpc-01234567"
    subnet_id   = "subnet-0123456789abcdef0"
    hosts = {
      tracking                                   = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.xlarge", root_volume_size_gb = 20 }
      "0-gpu"                                    = { role = "serving", accelerator = "gpu", instance_type = "p6-b200.48xlarge", root_volume_size_gb = 16384, model_cache_volume_size_gb = 16384, ami_id = "ami-0123456789abcdef0" }
      "g${join("", [for i in range(30) : "x"])}" = { role = "serving", accelerator = "gpu", instance_type = "g4dn.xlarge", model_cache_volume_size_gb = 1, spot = true }
    }
    ami_ssm_parameters   = { gpu = "/custom/gpu", cpu = "/custom/cpu" }
    http_tokens          = "required"
    ebs_kms_key_arn      = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    admin_cidrs          = ["10.20.0.0/24", "192.168.1.7/32"]
    mlflow_client_cidrs  = ["10.0.0.0/8"]
    serving_client_cidrs = ["172.16.0.0/12"]
    mlflow_tracking_port = 65535
    model_server_ports   = { from = 1024, to = 65535 }
    node_exporter_port   = 1024
    https_egress_cidrs   = ["0.0.0.0/0"]
    dns_egress_cidrs     = ["10.0.0.2/32"]
    ntp_egress_cidrs     = ["10.0.0.0/16"]
    http_egress_cidrs    = ["10.40.0.10/32"]
    apt_https_mirrors = {
      gpu = { primary = "https://mirror.acme.internal:8443/ubuntu", security = "https://mirror.acme.internal/ubuntu-security" }
      cpu = { primary = "https://deb.debian.org", security = "https://deb.debian.org/debian-security" }
    }
  }

  assert {
    condition     = length(aws_instance.ignore_ami) == 3
    error_message = "The good values did not plan three hosts."
  }
}

run "good_values_lower_port_edges" {
  command = plan

  variables {
    mlflow_tracking_port = 1
    model_server_ports   = { from = 8000, to = 8000 }
    node_exporter_port   = 65535
    apt_https_mirrors    = null
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.this["mlflow-tracking-from-serving"].from_port == 1
    error_message = "The tracking port did not reach the rules."
  }
}

# --- name_prefix, project, vpc_id, subnet_id ----------------------------------------------

run "name_prefix_upper_case" {
  command = plan
  variables {
    name_prefix = "Acme"
  }
  expect_failures = [var.name_prefix]
}

run "name_prefix_trailing_dash" {
  command = plan
  variables {
    name_prefix = "acme-"
  }
  expect_failures = [var.name_prefix]
}

run "name_prefix_too_long" {
  command = plan
  variables {
    name_prefix = "a${join("", [for i in range(28) : "b"])}9"
  }
  expect_failures = [var.name_prefix]
}

run "project_empty" {
  command = plan
  variables {
    project = ""
  }
  expect_failures = [var.project]
}

run "project_too_long" {
  command = plan
  variables {
    project = join("", [for i in range(129) : "p"])
  }
  expect_failures = [var.project]
}

run "vpc_id_malformed" {
  command = plan
  variables {
    vpc_id = "vpc-xyz"
  }
  expect_failures = [var.vpc_id]
}

run "subnet_id_malformed" {
  command = plan
  variables {
    subnet_id = "subnet-0123"
  }
  expect_failures = [var.subnet_id]
}

# --- hosts (nine rules) -------------------------------------------------------------------

run "hosts_empty" {
  command = plan
  variables {
    hosts = {}
  }
  expect_failures = [var.hosts]
}

run "hosts_name_upper_case" {
  command = plan
  variables {
    hosts = {
      Tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_name_too_long" {
  command = plan
  variables {
    hosts = {
      "t${join("", [for i in range(31) : "x"])}" = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_role_unknown" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "tracking", accelerator = "cpu", instance_type = "m7i.large" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_accelerator_unknown" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "tpu", instance_type = "m7i.large" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_instance_type_without_size" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_gpu_on_a_cpu_family" {
  command = plan
  variables {
    hosts = {
      gpu-1 = { role = "serving", accelerator = "gpu", instance_type = "m7i.large" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_gpu_on_an_amd_gpu_family" {
  command = plan
  variables {
    hosts = {
      gpu-1 = { role = "serving", accelerator = "gpu", instance_type = "g4ad.xlarge" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_root_volume_too_small" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large", root_volume_size_gb = 19 }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_root_volume_too_large" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large", root_volume_size_gb = 16385 }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_model_cache_volume_negative" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large", model_cache_volume_size_gb = -1 }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_model_cache_volume_too_large" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large", model_cache_volume_size_gb = 16385 }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_ami_id_malformed" {
  command = plan
  variables {
    hosts = {
      tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.large", ami_id = "ubuntu-22.04" }
    }
  }
  expect_failures = [var.hosts]
}

# --- ami_ssm_parameters, http_tokens, ebs_kms_key_arn -------------------------------------

run "ami_ssm_parameters_not_a_path" {
  command = plan
  variables {
    ami_ssm_parameters = { gpu = "aws/service/deeplearning", cpu = "/aws/service/debian/release/12/latest/amd64" }
  }
  expect_failures = [var.ami_ssm_parameters]
}

run "http_tokens_optional" {
  command = plan
  variables {
    http_tokens = "optional"
  }
  expect_failures = [var.http_tokens]
}

run "ebs_kms_key_arn_alias" {
  command = plan
  variables {
    ebs_kms_key_arn = "alias/aws/ebs"
  }
  expect_failures = [var.ebs_kms_key_arn]
}

# --- the ingress CIDR lists: well-formed networks, never the internet ------------------------

run "admin_cidrs_host_bits_set" {
  command = plan
  variables {
    admin_cidrs = ["10.20.0.1/24"]
  }
  expect_failures = [var.admin_cidrs]
}

run "admin_cidrs_ipv6" {
  command = plan
  variables {
    admin_cidrs = ["fd00::/8"]
  }
  expect_failures = [var.admin_cidrs]
}

run "admin_cidrs_internet" {
  command = plan
  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}

run "mlflow_client_cidrs_octet_out_of_range" {
  command = plan
  variables {
    mlflow_client_cidrs = ["10.0.0.300/24"]
  }
  expect_failures = [var.mlflow_client_cidrs]
}

run "mlflow_client_cidrs_internet" {
  command = plan
  variables {
    mlflow_client_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.mlflow_client_cidrs]
}

run "serving_client_cidrs_without_prefix_length" {
  command = plan
  variables {
    serving_client_cidrs = ["10.30.0.0"]
  }
  expect_failures = [var.serving_client_cidrs]
}

run "serving_client_cidrs_prefix_length_33" {
  command = plan
  variables {
    serving_client_cidrs = ["10.30.0.0/33"]
  }
  expect_failures = [var.serving_client_cidrs]
}

run "serving_client_cidrs_internet" {
  command = plan
  variables {
    serving_client_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.serving_client_cidrs]
}

# --- ports ----------------------------------------------------------------------------------

run "mlflow_tracking_port_zero" {
  command = plan
  variables {
    mlflow_tracking_port = 0
  }
  expect_failures = [var.mlflow_tracking_port]
}

run "mlflow_tracking_port_above_65535" {
  command = plan
  variables {
    mlflow_tracking_port = 65536
  }
  expect_failures = [var.mlflow_tracking_port]
}

run "model_server_ports_privileged" {
  command = plan
  variables {
    model_server_ports = { from = 1023, to = 1030 }
  }
  expect_failures = [var.model_server_ports]
}

run "model_server_ports_reversed" {
  command = plan
  variables {
    model_server_ports = { from = 8009, to = 8000 }
  }
  expect_failures = [var.model_server_ports]
}

run "model_server_ports_above_65535" {
  command = plan
  variables {
    model_server_ports = { from = 8000, to = 65536 }
  }
  expect_failures = [var.model_server_ports]
}

run "node_exporter_port_privileged" {
  command = plan
  variables {
    node_exporter_port = 1023
  }
  expect_failures = [var.node_exporter_port]
}

run "node_exporter_port_above_65535" {
  command = plan
  variables {
    node_exporter_port = 65536
  }
  expect_failures = [var.node_exporter_port]
}

# --- the egress CIDR lists -------------------------------------------------------------------

run "https_egress_cidrs_without_prefix_length" {
  command = plan
  variables {
    https_egress_cidrs = ["0.0.0.0"]
  }
  expect_failures = [var.https_egress_cidrs]
}

run "dns_egress_cidrs_without_prefix_length" {
  command = plan
  variables {
    dns_egress_cidrs = ["169.254.169.253"]
  }
  expect_failures = [var.dns_egress_cidrs]
}

run "ntp_egress_cidrs_host_bits_set" {
  command = plan
  variables {
    ntp_egress_cidrs = ["10.0.0.1/8"]
  }
  expect_failures = [var.ntp_egress_cidrs]
}

run "http_egress_cidrs_host_bits_set" {
  command = plan
  variables {
    http_egress_cidrs = ["10.40.0.10/24"]
  }
  expect_failures = [var.http_egress_cidrs]
}

run "http_egress_cidrs_internet" {
  command = plan
  variables {
    http_egress_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.http_egress_cidrs]
}

# --- apt_https_mirrors ------------------------------------------------------------------------

run "apt_https_mirrors_plain_http" {
  command = plan
  variables {
    apt_https_mirrors = {
      gpu = { primary = "http://archive.ubuntu.com/ubuntu", security = "https://mirrors.edge.kernel.org/ubuntu" }
      cpu = { primary = "https://deb.debian.org/debian", security = "https://deb.debian.org/debian-security" }
    }
  }
  expect_failures = [var.apt_https_mirrors]
}

# --- the IAM preconditions (they compare variables) ---------------------------------------------

run "precondition_artifact_access_without_policy" {
  command = plan
  variables {
    artifact_read_write_policy_json = null
  }
  expect_failures = [aws_iam_role_policy.mlflow_artifacts]
}

run "precondition_direct_reads_without_policy" {
  command = plan
  variables {
    serving_direct_artifact_read = true
  }
  expect_failures = [aws_iam_role_policy.serving_artifacts]
}
