output "hosts" {
  description = "The created hosts: instance ID, private address, role, accelerator, SSH user."
  value       = module.serving_hosts.hosts
}

output "inventory_hosts" {
  description = "The hosts in the shape modules/ansible_inventory takes."
  value       = module.serving_hosts.inventory_hosts
}

output "security_group_ids" {
  description = "Security group ID per host role."
  value       = module.serving_hosts.security_group_ids
}

output "iam_role_names" {
  description = "IAM role name per host role."
  value       = module.serving_hosts.iam_role_names
}

output "artifact_uri" {
  description = "Where MLflow stores artifacts."
  value       = module.artifact_store.artifact_uri
}
