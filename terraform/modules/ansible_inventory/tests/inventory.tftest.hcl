# What the module renders: groups, the https tracking URI, the artifact settings
# on the mlflow group only. Plan evaluates everything (no provider).

variables {
  artifact_uri = "s3://runlocalai-artifacts-123456789012/mlflow"
  hosts = {
    tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
    gpu-1    = { address = "10.0.2.11", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    gpu-2    = { address = "ip-10-0-2-12.eu-central-1.compute.internal", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    cpu-1    = { address = "10.0.3.13", role = "serving", accelerator = "cpu", ansible_user = "admin" }
  }
}

run "defaults" {
  command = plan

  assert {
    # jsonencode: Terraform's == also compares types (list and tuple differ).
    condition = jsonencode(output.groups) == jsonencode({
      mlflow     = ["tracking"]
      monitoring = ["tracking"]
      serving    = ["cpu-1", "gpu-1", "gpu-2"]
      gpu        = ["gpu-1", "gpu-2"]
      cpu        = ["cpu-1", "tracking"]
    })
    error_message = "Unexpected groups: ${jsonencode(output.groups)}."
  }

  assert {
    condition     = output.mlflow_tracking_uri == "https://10.0.1.10"
    error_message = "The tracking URI is not https on the mlflow host's address: ${output.mlflow_tracking_uri}."
  }

  assert {
    condition     = startswith(output.inventory, "---\n# Rendered by terraform/modules/ansible_inventory")
    error_message = "The inventory lacks its YAML document start and header comment."
  }

  assert {
    condition     = yamldecode(output.inventory).all.vars == { mlflow_tracking_uri = "https://10.0.1.10" }
    error_message = "all.vars is not just the tracking URI."
  }

  assert {
    condition = yamldecode(output.inventory).all.hosts["gpu-2"] == {
      ansible_host = "ip-10-0-2-12.eu-central-1.compute.internal"
      ansible_user = "ubuntu"
    }
    error_message = "The connection variables of gpu-2 are wrong."
  }

  assert {
    condition = yamldecode(output.inventory).all.children.mlflow.vars == {
      mlflow_artifact_uri    = "s3://runlocalai-artifacts-123456789012/mlflow"
      mlflow_artifact_bucket = "runlocalai-artifacts-123456789012"
      mlflow_artifact_prefix = "mlflow"
    }
    error_message = "The mlflow group does not carry the artifact bucket and prefix."
  }

  assert {
    condition = alltrue([
      for group in ["monitoring", "serving", "gpu", "cpu"] : !contains(keys(yamldecode(output.inventory).all.children[group]), "vars")
    ])
    error_message = "A group other than mlflow carries variables (the artifact settings belong to the tracking server only)."
  }
}

run "port_monitoring_host_extra_vars_and_bucket_root" {
  command = plan

  variables {
    artifact_uri         = "s3://artifacts-bucket"
    mlflow_tracking_port = 8443
    monitoring_hosts     = ["cpu-1"]
    extra_vars           = { ansible_ssh_common_args = "-o ProxyJump=admin@bastion" }
  }

  assert {
    condition     = output.mlflow_tracking_uri == "https://10.0.1.10:8443"
    error_message = "A non-443 port is missing from the tracking URI: ${output.mlflow_tracking_uri}."
  }

  assert {
    condition     = jsonencode(output.groups.monitoring) == jsonencode(["cpu-1"])
    error_message = "monitoring_hosts did not replace the mlflow host in the monitoring group."
  }

  assert {
    condition = yamldecode(output.inventory).all.vars == {
      mlflow_tracking_uri     = "https://10.0.1.10:8443"
      ansible_ssh_common_args = "-o ProxyJump=admin@bastion"
    }
    error_message = "extra_vars did not reach all.vars."
  }

  assert {
    condition = (
      yamldecode(output.inventory).all.children.mlflow.vars.mlflow_artifact_bucket == "artifacts-bucket" &&
      yamldecode(output.inventory).all.children.mlflow.vars.mlflow_artifact_prefix == ""
    )
    error_message = "An artifact_uri without a prefix must give the bucket and an empty prefix."
  }
}

run "explicit_tracking_uri_wins" {
  command = plan

  variables {
    mlflow_tracking_port = 8443
    mlflow_tracking_uri  = "https://mlflow.example.internal"
  }

  assert {
    condition     = output.mlflow_tracking_uri == "https://mlflow.example.internal"
    error_message = "mlflow_tracking_uri did not override the derived URI."
  }
}
