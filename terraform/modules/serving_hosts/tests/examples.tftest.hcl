# The examples under examples/, planned as root configurations with a mocked
# AWS provider.

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_instance" {
    defaults = {
      private_ip = "10.0.1.10"
    }
  }
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
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_ssm_parameter" {
    defaults = {
      insecure_value = "ami-0123456789abcdef0"
    }
  }
}

run "minimal_example" {
  command = plan

  module {
    source = "./examples/minimal"
  }

  assert {
    condition     = toset(keys(output.hosts)) == toset(["tracking", "cpu-1"])
    error_message = "The minimal example must plan two hosts."
  }
}

run "complete_example" {
  command = plan

  module {
    source = "./examples/complete"
  }

  assert {
    condition = jsonencode(output.inventory_hosts) == jsonencode({
      cpu-1    = { accelerator = "cpu", address = "10.0.1.10", ansible_user = "admin", role = "serving" }
      gpu-1    = { accelerator = "gpu", address = "10.0.1.10", ansible_user = "ubuntu", role = "serving" }
      tracking = { accelerator = "cpu", address = "10.0.1.10", ansible_user = "admin", role = "mlflow" }
    })
    error_message = "Unexpected inventory_hosts: ${jsonencode(output.inventory_hosts)}."
  }

  assert {
    condition     = output.artifact_uri == "s3://acme-mlflow-artifacts-123456789012/mlflow"
    error_message = "Unexpected artifact URI: ${output.artifact_uri}."
  }
}
