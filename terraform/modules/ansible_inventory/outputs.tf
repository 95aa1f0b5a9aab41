output "inventory" {
  description = "The Ansible inventory as a YAML document: write it to a file and pass it to ansible-playbook -i."
  value       = "---\n# Rendered by terraform/modules/ansible_inventory: do not edit, re-run terraform.\n${yamlencode(local.inventory)}"
}

output "groups" {
  description = "Inventory group name => sorted list of the host names in it (mlflow, monitoring, serving, gpu, cpu)."
  value       = local.group_members
}

output "mlflow_tracking_uri" {
  description = "The MLflow tracking URI the inventory hands to every host (all.vars.mlflow_tracking_uri)."
  value       = local.tracking_uri
}
