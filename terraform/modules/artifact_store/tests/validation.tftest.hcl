# Every validation rule of variables.tf and both lifecycle preconditions of
# main.tf: one run with good values at the edges of the rules, then one run (or
# more) per rule with a value that breaks that rule and no other.
# tests/terraform/test_terraform_tests.py checks that every variable has at
# least as many failing runs as validation blocks.

mock_provider "aws" {
  override_during = plan

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  bucket_name = "acme-mlflow-artifacts"
}

run "good_values_at_the_edges_of_the_rules" {
  command = plan

  variables {
    bucket_name                     = "a-1"
    artifact_prefix                 = "teams/ml_flow.v2/(x)!*'"
    create_kms_key                  = false
    kms_key_arn                     = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd"
    kms_key_deletion_window_days    = 7
    abort_incomplete_multipart_days = 1
    noncurrent_transition_days      = 30
    noncurrent_glacier_days         = 60
    noncurrent_expiration_days      = 61
    access_log_bucket               = "logs.example-1"
    access_log_prefix               = ""
    tags                            = { Team = "ml" }
  }

  assert {
    condition     = output.artifact_prefix == "teams/ml_flow.v2/(x)!*'"
    error_message = "The good values did not go through."
  }
}

run "good_values_upper_edges" {
  command = plan

  variables {
    bucket_name                  = "a${join("", [for i in range(61) : "b"])}c"
    kms_key_deletion_window_days = 30
    noncurrent_glacier_days      = 90
    noncurrent_expiration_days   = 91
    access_log_prefix            = "logs/s3/"
  }

  assert {
    condition     = length(var.bucket_name) == 63
    error_message = "The 63-character bucket name was not planned."
  }
}

# --- bucket_name ------------------------------------------------------------------------

run "bucket_name_upper_case_and_underscore" {
  command = plan
  variables {
    bucket_name = "Acme_Artifacts"
  }
  expect_failures = [var.bucket_name]
}

run "bucket_name_with_dots" {
  command = plan
  variables {
    bucket_name = "acme.artifacts"
  }
  expect_failures = [var.bucket_name]
}

run "bucket_name_too_long" {
  command = plan
  variables {
    bucket_name = "a${join("", [for i in range(62) : "b"])}c"
  }
  expect_failures = [var.bucket_name]
}

run "bucket_name_xn_prefix" {
  command = plan
  variables {
    bucket_name = "xn--artifacts"
  }
  expect_failures = [var.bucket_name]
}

run "bucket_name_s3alias_suffix" {
  command = plan
  variables {
    bucket_name = "artifacts-s3alias"
  }
  expect_failures = [var.bucket_name]
}

# --- artifact_prefix --------------------------------------------------------------------

run "artifact_prefix_leading_slash" {
  command = plan
  variables {
    artifact_prefix = "/mlflow"
  }
  expect_failures = [var.artifact_prefix]
}

run "artifact_prefix_trailing_slash" {
  command = plan
  variables {
    artifact_prefix = "mlflow/"
  }
  expect_failures = [var.artifact_prefix]
}

# --- kms_key_arn ------------------------------------------------------------------------

run "kms_key_arn_alias" {
  command = plan
  variables {
    create_kms_key = false
    kms_key_arn    = "alias/aws/s3"
  }
  expect_failures = [var.kms_key_arn]
}

# --- kms_key_deletion_window_days -------------------------------------------------------

run "kms_key_deletion_window_days_below_7" {
  command = plan
  variables {
    kms_key_deletion_window_days = 6
  }
  expect_failures = [var.kms_key_deletion_window_days]
}

run "kms_key_deletion_window_days_above_30" {
  command = plan
  variables {
    kms_key_deletion_window_days = 31
  }
  expect_failures = [var.kms_key_deletion_window_days]
}

# --- abort_incomplete_multipart_days ----------------------------------------------------

run "abort_incomplete_multipart_days_zero" {
  command = plan
  variables {
    abort_incomplete_multipart_days = 0
  }
  expect_failures = [var.abort_incomplete_multipart_days]
}

# --- noncurrent_transition_days ---------------------------------------------------------

run "noncurrent_transition_days_below_30" {
  command = plan
  variables {
    noncurrent_transition_days = 29
  }
  expect_failures = [var.noncurrent_transition_days]
}

# --- noncurrent_glacier_days ------------------------------------------------------------

run "noncurrent_glacier_days_below_60" {
  command = plan
  variables {
    noncurrent_glacier_days = 59
  }
  expect_failures = [var.noncurrent_glacier_days]
}

# --- noncurrent_expiration_days ---------------------------------------------------------

run "noncurrent_expiration_days_zero" {
  command = plan
  variables {
    noncurrent_expiration_days = 0
  }
  expect_failures = [var.noncurrent_expiration_days]
}

# --- access_log_bucket ------------------------------------------------------------------

run "access_log_bucket_invalid_name" {
  command = plan
  variables {
    access_log_bucket = "Logs_Bucket"
  }
  expect_failures = [var.access_log_bucket]
}

# --- access_log_prefix ------------------------------------------------------------------

run "access_log_prefix_unsafe_character" {
  command = plan
  variables {
    access_log_prefix = "logs?x=1"
  }
  expect_failures = [var.access_log_prefix]
}

# --- the lifecycle preconditions (they compare variables) -------------------------------

run "precondition_expiration_not_after_the_transitions" {
  command = plan
  variables {
    noncurrent_glacier_days    = 90
    noncurrent_expiration_days = 90
  }
  expect_failures = [aws_s3_bucket_lifecycle_configuration.this]
}

run "precondition_glacier_less_than_30_days_after_standard_ia" {
  command = plan
  variables {
    noncurrent_transition_days = 60
    noncurrent_glacier_days    = 70
  }
  expect_failures = [aws_s3_bucket_lifecycle_configuration.this]
}
