output "artifact_uri" {
  description = "Where MLflow stores artifacts (mlflow server --artifacts-destination)."
  value       = module.artifact_store.artifact_uri
}

output "bucket_arn" {
  description = "ARN of the artifact bucket."
  value       = module.artifact_store.bucket_arn
}

output "kms_key_arn" {
  description = "The key that encrypts the bucket (the existing one given)."
  value       = module.artifact_store.kms_key_arn
}

output "read_only_policy_json" {
  description = "IAM policy for serving hosts that read artifacts directly."
  value       = module.artifact_store.read_only_policy_json
}
