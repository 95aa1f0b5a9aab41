output "inventory" {
  description = "The rendered inventory: terraform output -raw inventory > hosts.yml"
  value       = module.ansible_inventory.inventory
}

output "groups" {
  description = "Inventory group name => host names."
  value       = module.ansible_inventory.groups
}

output "mlflow_tracking_uri" {
  description = "The tracking URI the inventory hands to every host."
  value       = module.ansible_inventory.mlflow_tracking_uri
}
