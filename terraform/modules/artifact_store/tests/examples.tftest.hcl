# The examples under examples/, planned as root configurations with a mocked
# AWS provider.

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "acme-mlflow-artifacts-123456789012"
      arn = "arn:aws:s3:::acme-mlflow-artifacts-123456789012"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

run "minimal_example" {
  command = plan

  module {
    source = "./examples/minimal"
  }

  assert {
    condition     = output.artifact_uri == "s3://acme-mlflow-artifacts-123456789012/mlflow"
    error_message = "Unexpected artifact URI: ${output.artifact_uri}."
  }
}

run "complete_example" {
  command = plan

  module {
    source = "./examples/complete"
  }

  assert {
    condition     = output.artifact_uri == "s3://acme-mlflow-artifacts-123456789012/teams/vision"
    error_message = "Unexpected artifact URI: ${output.artifact_uri}."
  }

  assert {
    condition     = output.kms_key_arn == "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    error_message = "The complete example must use the existing key."
  }

  assert {
    condition     = aws_iam_role_policy.tracking_artifacts.name == "mlflow-artifacts-read-write"
    error_message = "The tracking role gets no artifact policy."
  }
}
