locals {
  host_names = sort(keys(var.hosts))

  # The exactly-one rule is enforced by the validation of var.hosts.
  mlflow_host_name = [for name in local.host_names : name if var.hosts[name].role == "mlflow"][0]
  mlflow_address   = var.hosts[local.mlflow_host_name].address

  # Terraform 1.0 cannot validate one variable against another: an unknown
  # monitoring host fails the plan through file() with a message naming it.
  monitoring_host_names = length(var.monitoring_hosts) > 0 ? [
    for name in var.monitoring_hosts : contains(keys(var.hosts), name) ? name : file("ERROR: monitoring_hosts entry ${name} is not a key of hosts")
  ] : [local.mlflow_host_name]

  tracking_uri = var.mlflow_tracking_uri != "" ? var.mlflow_tracking_uri : (
    var.mlflow_tracking_port == 443 ? "https://${local.mlflow_address}" : "https://${local.mlflow_address}:${var.mlflow_tracking_port}"
  )

  artifact_location = trimprefix(var.artifact_uri, "s3://")
  artifact_bucket   = split("/", local.artifact_location)[0]
  artifact_prefix   = trimprefix(trimprefix(local.artifact_location, local.artifact_bucket), "/")

  group_members = {
    mlflow     = [local.mlflow_host_name]
    monitoring = local.monitoring_host_names
    serving    = [for name in local.host_names : name if var.hosts[name].role == "serving"]
    gpu        = [for name in local.host_names : name if var.hosts[name].accelerator == "gpu"]
    cpu        = [for name in local.host_names : name if var.hosts[name].accelerator == "cpu"]
  }

  group_vars = {
    mlflow = {
      mlflow_artifact_uri    = var.artifact_uri
      mlflow_artifact_bucket = local.artifact_bucket
      mlflow_artifact_prefix = local.artifact_prefix
    }
  }

  inventory = {
    all = {
      vars = merge(var.extra_vars, {
        mlflow_tracking_uri = local.tracking_uri
      })
      # Connection variables once per host; groups only list members.
      hosts = { for name in local.host_names : name => {
        ansible_host = var.hosts[name].address
        ansible_user = var.hosts[name].ansible_user
      } }
      children = { for group, members in local.group_members : group => merge(
        { hosts = { for name in members : name => {} } },
        contains(keys(local.group_vars), group) ? { vars = local.group_vars[group] } : {},
      ) }
    }
  }
}
