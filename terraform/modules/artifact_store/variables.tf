variable "bucket_name" {
  description = "Globally unique name of the artifact bucket (3-63 characters: lower case letters, digits, '-', no dots so virtual-hosted TLS certificates match)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name)) && !startswith(var.bucket_name, "xn--") && !endswith(var.bucket_name, "-s3alias")
    error_message = "The bucket_name must be 3-63 characters of lower case letters, digits and '-', starting and ending with a letter or digit (no dots, no xn-- prefix, no -s3alias suffix)."
  }
}

variable "artifact_prefix" {
  description = "Key prefix under which MLflow stores artifacts, and to which the IAM policies are scoped (no leading or trailing slash). Empty: the whole bucket."
  type        = string
  default     = "mlflow"

  validation {
    condition     = var.artifact_prefix == "" || can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.artifact_prefix))
    error_message = "The artifact_prefix must be empty or path segments of safe characters separated by '/', without a leading or trailing slash."
  }
}

variable "create_kms_key" {
  description = "Create a customer managed KMS key (with yearly automatic rotation) for the bucket. When false, kms_key_arn is used, or else the AWS managed aws/s3 key; the encryption stays SSE-KMS either way."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key to encrypt the bucket with (used only when create_kms_key is false). Null: the AWS managed aws/s3 key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "The kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "kms_key_deletion_window_days" {
  description = "Waiting period before a deleted customer managed key is destroyed (7-30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_days >= 7 && var.kms_key_deletion_window_days <= 30
    error_message = "The kms_key_deletion_window_days must be from 7 to 30."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted (their parts cost money and are invisible)."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1
    error_message = "The abort_incomplete_multipart_days must be at least 1."
  }
}

variable "noncurrent_transition_days" {
  description = "Days after which noncurrent object versions move to STANDARD_IA (at least 30, the S3 minimum for that class)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_transition_days >= 30
    error_message = "The noncurrent_transition_days must be at least 30 (S3 refuses earlier STANDARD_IA transitions)."
  }
}

variable "noncurrent_glacier_days" {
  description = "Days after which noncurrent object versions move to GLACIER_IR. Null: no second transition."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_glacier_days == null || try(var.noncurrent_glacier_days >= 60, false)
    error_message = "The noncurrent_glacier_days must be null or at least 60 (30 days after the earliest STANDARD_IA transition)."
  }
}

variable "noncurrent_expiration_days" {
  description = "Days after which noncurrent object versions are deleted for good; must be later than the transitions (checked at plan time)."
  type        = number
  default     = 365

  validation {
    condition     = var.noncurrent_expiration_days >= 1
    error_message = "The noncurrent_expiration_days must be at least 1."
  }
}

variable "access_log_bucket" {
  description = "Name of an existing bucket that receives S3 server access logs for this bucket. Null: no access logging."
  type        = string
  default     = null

  validation {
    condition     = var.access_log_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.access_log_bucket))
    error_message = "The access_log_bucket must be null or a valid S3 bucket name."
  }
}

variable "access_log_prefix" {
  description = "Key prefix of this bucket's access logs in access_log_bucket."
  type        = string
  default     = "s3-access-logs/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()/-]*$", var.access_log_prefix))
    error_message = "The access_log_prefix may contain only letters, digits and !_.*'()/- characters."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module (merged with the provider's default_tags)."
  type        = map(string)
  default     = {}
}
