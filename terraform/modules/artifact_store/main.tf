data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  # Objects the IAM policies grant access to: the prefix or the whole bucket.
  object_arn   = var.artifact_prefix == "" ? "${aws_s3_bucket.this.arn}/*" : "${aws_s3_bucket.this.arn}/${var.artifact_prefix}/*"
  list_prefix  = var.artifact_prefix == "" ? ["*"] : [var.artifact_prefix, "${var.artifact_prefix}/*"]
  artifact_uri = var.artifact_prefix == "" ? "s3://${aws_s3_bucket.this.id}" : "s3://${aws_s3_bucket.this.id}/${var.artifact_prefix}"
}

# --- KMS ------------------------------------------------------------------------

# Key policy: the account administers and uses the key through IAM (the usual
# delegation to IAM policies); S3 uses it on behalf of principals that IAM allows.
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A KMS key policy is a resource policy: "*" means this key only, and administration is delegated to the account's IAM policies.
  #checkov:skip=CKV_AWS_111:A KMS key policy is a resource policy: "*" means this key only, and write access is delegated to the account's IAM policies.
  #checkov:skip=CKV_AWS_356:A KMS key policy is a resource policy: "*" means this key only; it cannot name the key's own ARN.
  statement {
    sid       = "AccountAdministersKeyThroughIAM"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "Encrypts the MLflow artifact bucket ${var.bucket_name}"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_key_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.bucket_name}"
  target_key_id = aws_kms_key.this[0].key_id
}

# --- Bucket -----------------------------------------------------------------------

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication needs a second bucket, region and role the operator chooses; versioning plus noncurrent retention protect against deletion here.
  #checkov:skip=CKV2_AWS_62:Event notifications have no consumer in this design (MLflow tracks artifacts itself).
  bucket = var.bucket_name

  # Never delete a bucket that still holds model artifacts.
  force_destroy = false

  tags = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    # ACLs are disabled: the bucket owner owns every object, access is IAM only.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
      # null: the AWS managed aws/s3 key (still SSE-KMS).
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  rule {
    id     = "noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_transition {
      noncurrent_days = var.noncurrent_transition_days
      storage_class   = "STANDARD_IA"
    }

    dynamic "noncurrent_version_transition" {
      for_each = var.noncurrent_glacier_days == null ? [] : [var.noncurrent_glacier_days]
      content {
        noncurrent_days = noncurrent_version_transition.value
        storage_class   = "GLACIER_IR"
      }
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  lifecycle {
    precondition {
      condition     = var.noncurrent_expiration_days > max(var.noncurrent_transition_days, coalesce(var.noncurrent_glacier_days, 0))
      error_message = "The noncurrent_expiration_days must be later than noncurrent_transition_days and noncurrent_glacier_days."
    }
    precondition {
      condition     = var.noncurrent_glacier_days == null || try(var.noncurrent_glacier_days >= var.noncurrent_transition_days + 30, false)
      error_message = "The noncurrent_glacier_days must be at least 30 days after noncurrent_transition_days."
    }
  }

  # Lifecycle rules on noncurrent versions need versioning in place first.
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  count = var.access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = var.access_log_prefix
}

# --- Bucket policy: TLS only, TLS 1.2 or newer ----------------------------------

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyOutdatedTLS"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # With BlockPublicPolicy on, S3 refuses a policy it considers public; and a
  # policy put before the block exists could be public for a moment.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# --- IAM policy documents for the hosts -------------------------------------------

data "aws_iam_policy_document" "read_only" {
  statement {
    sid       = "ListArtifactPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.list_prefix
    }
  }

  statement {
    sid       = "ReadArtifacts"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.object_arn]
  }

  dynamic "statement" {
    for_each = local.kms_key_arn == null ? [] : [local.kms_key_arn]
    content {
      sid       = "DecryptArtifacts"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "read_write" {
  statement {
    sid       = "ListArtifactPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.this.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.list_prefix
    }
  }

  statement {
    sid    = "ReadWriteArtifacts"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.object_arn]
  }

  dynamic "statement" {
    for_each = local.kms_key_arn == null ? [] : [local.kms_key_arn]
    content {
      sid       = "EncryptDecryptArtifacts"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}
