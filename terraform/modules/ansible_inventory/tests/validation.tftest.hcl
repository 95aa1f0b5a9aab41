# Every validation rule of variables.tf: one run with good values at the edges of
# the rules, then one run (or more) per rule with a value that breaks that rule
# and no other. tests/terraform/test_terraform_tests.py checks that every
# variable has at least as many failing runs as validation blocks.
#
# The ansible_inventory module has no provider: plan evaluates everything.

variables {
  artifact_uri = "s3://runlocalai-artifacts-123456789012/mlflow"
  hosts = {
    tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
    gpu-1    = { address = "10.0.2.11", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
  }
}

run "good_values_at_the_edges_of_the_rules" {
  command = plan

  variables {
    hosts = {
      "tracking.eu_1" = { address = "ip-10-0-1-10.eu-central-1.compute.internal", role = "mlflow", accelerator = "cpu", ansible_user = "ec2-user" }
      "9-gpu"         = { address = "255.255.255.255", role = "serving", accelerator = "gpu", ansible_user = "_svc" }
      "a"             = { address = "localhost", role = "serving", accelerator = "cpu", ansible_user = "a" }
    }
    artifact_uri         = "s3://a.b-c/teams/mlflow_v2/(x)"
    mlflow_tracking_port = 65535
    mlflow_tracking_uri  = "https://mlflow.example.internal:8443/path"
    monitoring_hosts     = ["a"]
    extra_vars           = { _private = "x", aws_region = "eu-central-1" }
  }

  assert {
    condition     = jsonencode(output.groups.monitoring) == jsonencode(["a"]) && jsonencode(output.groups.gpu) == jsonencode(["9-gpu"])
    error_message = "The good values gave other groups: ${jsonencode(output.groups)}."
  }
}

# --- hosts --------------------------------------------------------------------------

run "hosts_empty" {
  command = plan
  variables {
    hosts = {}
  }
  expect_failures = [var.hosts]
}

run "hosts_name_with_a_space" {
  command = plan
  variables {
    hosts = {
      tracking   = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
      "bad name" = { address = "10.0.2.11", role = "serving", accelerator = "cpu", ansible_user = "admin" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_role_unknown" {
  command = plan
  variables {
    hosts = {
      tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
      gpu-1    = { address = "10.0.2.11", role = "trainer", accelerator = "gpu", ansible_user = "ubuntu" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_accelerator_unknown" {
  command = plan
  variables {
    hosts = {
      tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
      gpu-1    = { address = "10.0.2.11", role = "serving", accelerator = "tpu", ansible_user = "ubuntu" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_two_mlflow_hosts" {
  command = plan
  variables {
    hosts = {
      tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
      gpu-1    = { address = "10.0.2.11", role = "mlflow", accelerator = "gpu", ansible_user = "ubuntu" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_no_mlflow_host" {
  command = plan
  variables {
    hosts = {
      gpu-1 = { address = "10.0.2.11", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_address_octet_out_of_range" {
  command = plan
  variables {
    hosts = {
      tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
      gpu-1    = { address = "10.0.2.256", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_address_shell_injection" {
  command = plan
  variables {
    hosts = {
      tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
      gpu-1    = { address = "gpu 1; rm -rf /", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    }
  }
  expect_failures = [var.hosts]
}

run "hosts_ansible_user_not_a_unix_name" {
  command = plan
  variables {
    hosts = {
      tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "Root User" }
    }
  }
  expect_failures = [var.hosts]
}

# --- artifact_uri -----------------------------------------------------------------------

run "artifact_uri_not_s3" {
  command = plan
  variables {
    artifact_uri = "https://bucket.s3.amazonaws.com/mlflow"
  }
  expect_failures = [var.artifact_uri]
}

run "artifact_uri_trailing_slash" {
  command = plan
  variables {
    artifact_uri = "s3://bucket/mlflow/"
  }
  expect_failures = [var.artifact_uri]
}

# --- mlflow_tracking_port ---------------------------------------------------------------

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

run "mlflow_tracking_port_fraction" {
  command = plan
  variables {
    mlflow_tracking_port = 443.5
  }
  expect_failures = [var.mlflow_tracking_port]
}

# --- mlflow_tracking_uri ----------------------------------------------------------------

run "mlflow_tracking_uri_plain_http" {
  command = plan
  variables {
    mlflow_tracking_uri = "http://10.0.1.10:5000"
  }
  expect_failures = [var.mlflow_tracking_uri]
}

# --- monitoring_hosts -------------------------------------------------------------------
# A well-formed name that is not a key of hosts fails through file() in main.tf,
# which terraform test cannot expect: tests/terraform/test_ansible_inventory_module.py
# checks that message.

run "monitoring_hosts_malformed_name" {
  command = plan
  variables {
    monitoring_hosts = ["bad name"]
  }
  expect_failures = [var.monitoring_hosts]
}

# --- extra_vars -------------------------------------------------------------------------

run "extra_vars_key_not_a_variable_name" {
  command = plan
  variables {
    extra_vars = { "bad-name" = "x" }
  }
  expect_failures = [var.extra_vars]
}
