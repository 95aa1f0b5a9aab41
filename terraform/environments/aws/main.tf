# From `terraform apply` to `ansible-playbook`: the artifact bucket, the hosts,
# and an inventory for playbooks/site.yml (see README.md).

module "artifact_store" {
  source = "../../modules/artifact_store"

  bucket_name       = var.artifact_bucket_name
  artifact_prefix   = var.artifact_prefix
  access_log_bucket = var.access_log_bucket
}

module "serving_hosts" {
  source = "../../modules/serving_hosts"

  name_prefix = var.project
  project     = var.project
  vpc_id      = var.vpc_id
  subnet_id   = var.subnet_id
  hosts       = var.hosts
  key_name    = var.key_name
  enable_ssm  = var.enable_ssm

  admin_cidrs          = var.admin_cidrs
  mlflow_client_cidrs  = var.mlflow_client_cidrs
  serving_client_cidrs = var.serving_client_cidrs
  http_egress_cidrs    = var.http_egress_cidrs
  ignore_ami_changes   = var.ignore_ami_changes

  mlflow_artifact_access          = true
  artifact_read_write_policy_json = module.artifact_store.read_write_policy_json
  serving_direct_artifact_read    = var.serving_direct_artifact_read
  artifact_read_only_policy_json  = module.artifact_store.read_only_policy_json
}

module "ansible_inventory" {
  source = "../../modules/ansible_inventory"

  hosts        = module.serving_hosts.inventory_hosts
  artifact_uri = module.artifact_store.artifact_uri
  extra_vars = merge(
    { aws_region = var.region },
    var.ssh_proxy_jump == "" ? {} : { ansible_ssh_common_args = "-o ProxyJump=${var.ssh_proxy_jump}" },
  )
}
