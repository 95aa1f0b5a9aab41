output "artifact_uri" {
  description = "Where MLflow stores artifacts (mlflow server --artifacts-destination)."
  value       = module.artifact_store.artifact_uri
}

output "read_write_policy_json" {
  description = "IAM policy for the tracking server's role."
  value       = module.artifact_store.read_write_policy_json
}
