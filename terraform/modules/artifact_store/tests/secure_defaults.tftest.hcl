# The bucket's secure defaults and the IAM policies, planned with a mocked AWS
# provider (no credentials, no network). Mocked values are fixed where the
# module builds names from them, and known at plan time (override_during).

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "acme-mlflow-artifacts"
      arn = "arn:aws:s3:::acme-mlflow-artifacts"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-central-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      key_id = "11111111-2222-3333-4444-555555555555"
    }
  }
  # The provider checks that policies are JSON; the documents' statements are
  # asserted on below, from the data sources' arguments.
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

variables {
  bucket_name = "acme-mlflow-artifacts"
}

run "defaults" {
  command = plan

  assert {
    condition     = aws_s3_bucket.this.force_destroy == false
    error_message = "The bucket must never be force-destroyed."
  }

  assert {
    condition = (
      aws_s3_bucket_public_access_block.this.block_public_acls &&
      aws_s3_bucket_public_access_block.this.block_public_policy &&
      aws_s3_bucket_public_access_block.this.ignore_public_acls &&
      aws_s3_bucket_public_access_block.this.restrict_public_buckets
    )
    error_message = "All four public access block flags must be on."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning must be on."
  }

  assert {
    condition = (
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == aws_kms_key.this[0].arn &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled
    )
    error_message = "The bucket must be encrypted with SSE-KMS under the module's key, with S3 Bucket Keys."
  }

  assert {
    condition = (
      length(aws_kms_key.this) == 1 &&
      aws_kms_key.this[0].enable_key_rotation &&
      aws_kms_key.this[0].rotation_period_in_days == 365 &&
      aws_kms_key.this[0].deletion_window_in_days == 30
    )
    error_message = "The customer managed key must rotate yearly and wait 30 days before deletion."
  }

  assert {
    condition     = aws_kms_alias.this[0].name == "alias/acme-mlflow-artifacts"
    error_message = "The key alias must be named after the bucket."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.bucket.statement :
      s.effect == "Deny" && contains(s.actions, "s3:*") && anytrue([for c in s.condition :
        c.test == "Bool" && c.variable == "aws:SecureTransport" && contains(c.values, "false")
    ])])
    error_message = "The bucket policy must deny requests without TLS."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.bucket.statement :
      s.effect == "Deny" && contains(s.actions, "s3:*") && anytrue([for c in s.condition :
        c.test == "NumericLessThan" && c.variable == "s3:TlsVersion" && contains(c.values, "1.2")
    ])])
    error_message = "The bucket policy must deny TLS older than 1.2."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.bucket.statement :
      s.effect == "Deny" && toset(s.resources) == toset(["arn:aws:s3:::acme-mlflow-artifacts", "arn:aws:s3:::acme-mlflow-artifacts/*"])
    ])
    error_message = "The bucket policy may only deny, on the bucket and its objects."
  }

  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.this.rule[0].abort_incomplete_multipart_upload[0].days_after_initiation == 7 &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_expiration[0].noncurrent_days == 365 &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].expiration[0].expired_object_delete_marker &&
      toset([for t in aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_transition : "${t.storage_class}:${t.noncurrent_days}"]) == toset(["STANDARD_IA:30", "GLACIER_IR:90"])
    )
    error_message = "The lifecycle must abort uploads after 7 days and age noncurrent versions out (STANDARD_IA 30, GLACIER_IR 90, deleted 365)."
  }

  assert {
    condition     = length(aws_s3_bucket_logging.this) == 0
    error_message = "Access logging is off unless access_log_bucket is set."
  }

  assert {
    condition = (
      output.artifact_uri == "s3://acme-mlflow-artifacts/mlflow" &&
      output.artifact_prefix == "mlflow" &&
      output.kms_key_arn == aws_kms_key.this[0].arn
    )
    error_message = "Unexpected outputs: ${output.artifact_uri}, ${output.artifact_prefix}."
  }

  # The host policies: scoped to the prefix and the key, read-only without writes.
  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.read_only.statement :
      alltrue([for a in s.actions : length(regexall("Put|Delete|Abort|\\*", a)) == 0])
    ])
    error_message = "The read-only policy grants a write or wildcard action."
  }

  assert {
    condition = alltrue(flatten([for name, document in {
      read_only  = data.aws_iam_policy_document.read_only
      read_write = data.aws_iam_policy_document.read_write
      } : [for s in document.statement : [for r in s.resources :
        contains([
          "arn:aws:s3:::acme-mlflow-artifacts",
          "arn:aws:s3:::acme-mlflow-artifacts/mlflow/*",
          "arn:aws:kms:eu-central-1:123456789012:key/11111111-2222-3333-4444-555555555555",
        ], r)
    ]]]))
    error_message = "A host policy names a resource other than the bucket, the objects under the prefix or the key."
  }

  assert {
    condition = alltrue([for document in [data.aws_iam_policy_document.read_only, data.aws_iam_policy_document.read_write] :
      anytrue([for s in document.statement : contains(s.actions, "s3:ListBucket") && anytrue([for c in s.condition :
        c.variable == "s3:prefix" && toset(c.values) == toset(["mlflow", "mlflow/*"])
    ])])])
    error_message = "Listing must be limited to the artifact prefix."
  }

  assert {
    condition = alltrue([for a in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] :
      anytrue([for s in data.aws_iam_policy_document.read_write.statement : contains(s.actions, a)])
    ])
    error_message = "The read-write policy must allow get, put and delete."
  }
}

run "aws_managed_key" {
  command = plan

  variables {
    create_kms_key = false
  }

  assert {
    condition = (
      length(aws_kms_key.this) == 0 &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == null &&
      output.kms_key_arn == null
    )
    error_message = "Without a key of its own the bucket must still use SSE-KMS (the aws/s3 key)."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.read_write.statement :
      alltrue([for a in s.actions : !startswith(a, "kms:")])
    ])
    error_message = "No KMS statement is needed for the AWS managed key."
  }
}

run "existing_key" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-central-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
  }

  assert {
    condition = (
      length(aws_kms_key.this) == 0 &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == "arn:aws:kms:eu-central-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    )
    error_message = "The bucket must be encrypted with the given key."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.read_write.statement :
      toset(s.actions) == toset(["kms:Decrypt", "kms:GenerateDataKey"]) && toset(s.resources) == toset([var.kms_key_arn])
    ])
    error_message = "The read-write policy must let the host use the given key."
  }
}

run "whole_bucket_access_logging_and_no_glacier" {
  command = plan

  variables {
    artifact_prefix         = ""
    access_log_bucket       = "acme-s3-access-logs"
    noncurrent_glacier_days = null
  }

  assert {
    condition     = output.artifact_uri == "s3://acme-mlflow-artifacts"
    error_message = "An empty prefix must give the bucket's URI: ${output.artifact_uri}."
  }

  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.read_only.statement :
      toset(s.resources) == toset(["arn:aws:s3:::acme-mlflow-artifacts/*"])
    ])
    error_message = "An empty prefix must scope the objects to the whole bucket."
  }

  assert {
    condition = (
      length(aws_s3_bucket_logging.this) == 1 &&
      aws_s3_bucket_logging.this[0].target_bucket == "acme-s3-access-logs" &&
      aws_s3_bucket_logging.this[0].target_prefix == "s3-access-logs/"
    )
    error_message = "Access logging must go to access_log_bucket under access_log_prefix."
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_transition) == 1
    error_message = "Without noncurrent_glacier_days there is only the STANDARD_IA transition."
  }
}
