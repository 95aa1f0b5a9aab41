output "hosts" {
  description = "Created hosts by name: instance ID, private address, role, accelerator, SSH user and availability zone."
  value = { for name, host in local.hosts : name => {
    instance_id       = local.instances[name].id
    address           = local.instances[name].private_ip
    private_dns       = local.instances[name].private_dns
    availability_zone = local.instances[name].availability_zone
    role              = host.role
    accelerator       = host.accelerator
    ansible_user      = host.ssh_user
  } }
}

output "inventory_hosts" {
  description = "The hosts in the shape terraform/modules/ansible_inventory takes (address, role, accelerator, ansible_user)."
  value = { for name, host in local.hosts : name => {
    address      = local.instances[name].private_ip
    role         = host.role
    accelerator  = host.accelerator
    ansible_user = host.ssh_user
  } }
}

output "security_group_ids" {
  description = "Security group ID per host role (mlflow, serving)."
  value       = local.security_group_ids
}

output "iam_role_names" {
  description = "IAM role name per host role (mlflow, serving), for attaching further policies."
  value       = { for role, r in aws_iam_role.this : role => r.name }
}

output "instance_profile_names" {
  description = "Instance profile name per host role (mlflow, serving)."
  value       = { for role, p in aws_iam_instance_profile.this : role => p.name }
}
