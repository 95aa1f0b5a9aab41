output "bucket_name" {
  description = "Name of the artifact bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the artifact bucket."
  value       = aws_s3_bucket.this.arn
}

output "artifact_uri" {
  description = "s3:// URI where MLflow stores artifacts (the bucket and the artifact prefix), for mlflow server --artifacts-destination."
  value       = local.artifact_uri
}

output "artifact_prefix" {
  description = "Key prefix the IAM policies are scoped to (empty: the whole bucket)."
  value       = var.artifact_prefix
}

output "kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts the bucket; null when the AWS managed aws/s3 key is used."
  value       = local.kms_key_arn
}

output "read_only_policy_json" {
  description = "IAM policy document (JSON) granting read-only access to the artifacts under the prefix: for serving hosts that read artifacts directly."
  value       = data.aws_iam_policy_document.read_only.json
}

output "read_write_policy_json" {
  description = "IAM policy document (JSON) granting read-write access to the artifacts under the prefix: for the MLflow tracking server."
  value       = data.aws_iam_policy_document.read_write.json
}
