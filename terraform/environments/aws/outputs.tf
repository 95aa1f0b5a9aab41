output "ansible_inventory" {
  description = "Ansible inventory (YAML) of the created hosts with the groups mlflow, monitoring, serving, gpu and cpu: terraform output -raw ansible_inventory > ../../../inventories/aws/hosts.yml"
  value       = module.ansible_inventory.inventory
}

output "mlflow_artifact_uri" {
  description = "s3:// URI where the MLflow tracking server stores artifacts."
  value       = module.artifact_store.artifact_uri
}

output "mlflow_tracking_uri" {
  description = "MLflow tracking URI (https on the mlflow host's private address)."
  value       = module.ansible_inventory.mlflow_tracking_uri
}

output "hosts" {
  description = "Created hosts: instance ID, private address, role, accelerator, SSH user."
  value       = module.serving_hosts.hosts
}

output "artifact_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the artifact bucket."
  value       = module.artifact_store.kms_key_arn
}
