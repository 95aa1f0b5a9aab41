# Every input: an existing customer managed key instead of a new one, a team
# prefix, access logging to an existing log bucket, shorter lifecycle steps and
# tags; the read-write policy attached to the tracking server's role.

provider "aws" {
  region = "eu-central-1"
}

module "artifact_store" {
  source = "../.."

  bucket_name                     = "acme-mlflow-artifacts-123456789012"
  artifact_prefix                 = "teams/vision"
  create_kms_key                  = false
  kms_key_arn                     = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  kms_key_deletion_window_days    = 30
  abort_incomplete_multipart_days = 3
  noncurrent_transition_days      = 30
  noncurrent_glacier_days         = 60
  noncurrent_expiration_days      = 180
  access_log_bucket               = "acme-s3-access-logs-123456789012"
  access_log_prefix               = "mlflow-artifacts/"
  tags = {
    Team = "vision"
  }
}

# The tracking server's instance role (here a role of its own; with
# modules/serving_hosts, pass read_write_policy_json as
# artifact_read_write_policy_json instead).
data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "tracking" {
  name_prefix        = "vision-mlflow-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy" "tracking_artifacts" {
  name   = "mlflow-artifacts-read-write"
  role   = aws_iam_role.tracking.id
  policy = module.artifact_store.read_write_policy_json
}
