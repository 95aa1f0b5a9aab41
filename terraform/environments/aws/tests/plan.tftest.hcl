# A plan of the whole environment with a mocked AWS provider (no credentials,
# no network): the three modules wired together, the inventory rendered from
# the planned hosts. The variables are those of terraform.tfvars.example
# (tests/terraform/test_terraform_tests.py keeps the two equal).

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_instance" {
    defaults = {
      private_ip = "10.0.1.10"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "runlocalai-mlflow-artifacts-123456789012"
      arn = "arn:aws:s3:::runlocalai-mlflow-artifacts-123456789012"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-central-1:123456789012:key/11111111-2222-3333-4444-555555555555"
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

variables {
  region               = "eu-central-1"
  project              = "runlocalai"
  artifact_bucket_name = "runlocalai-mlflow-artifacts-123456789012"

  vpc_id    = "vpc-0123456789abcdef0"
  subnet_id = "subnet-0123456789abcdef0"

  hosts = {
    tracking = {
      role          = "mlflow"
      accelerator   = "cpu"
      instance_type = "m7i.xlarge"
    }
    gpu-1 = {
      role                       = "serving"
      accelerator                = "gpu"
      instance_type              = "g5.xlarge"
      root_volume_size_gb        = 150
      model_cache_volume_size_gb = 100
    }
    cpu-1 = {
      role          = "serving"
      accelerator   = "cpu"
      instance_type = "c7i.large"
      spot          = true
    }
  }

  admin_cidrs          = ["10.20.0.0/24"]
  mlflow_client_cidrs  = ["10.20.0.0/24"]
  serving_client_cidrs = ["10.30.0.0/16"]

  key_name = "ops-2026"
}

run "plan_the_example_values" {
  command = plan

  assert {
    condition     = output.mlflow_artifact_uri == "s3://runlocalai-mlflow-artifacts-123456789012/mlflow"
    error_message = "Unexpected artifact URI: ${output.mlflow_artifact_uri}."
  }

  assert {
    condition     = output.mlflow_tracking_uri == "https://10.0.1.10"
    error_message = "Unexpected tracking URI: ${output.mlflow_tracking_uri}."
  }

  assert {
    condition     = output.artifact_kms_key_arn == "arn:aws:kms:eu-central-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    error_message = "The artifact bucket must be encrypted with the key the environment creates."
  }

  assert {
    condition     = toset(keys(output.hosts)) == toset(["tracking", "gpu-1", "cpu-1"])
    error_message = "The environment must plan the three hosts of the example."
  }

  assert {
    condition = jsonencode({ for group, body in yamldecode(output.ansible_inventory).all.children : group => sort(keys(body.hosts)) }) == jsonencode({
      cpu        = ["cpu-1", "tracking"]
      gpu        = ["gpu-1"]
      mlflow     = ["tracking"]
      monitoring = ["tracking"]
      serving    = ["cpu-1", "gpu-1"]
    })
    error_message = "The rendered inventory has other groups than mlflow, monitoring, serving, gpu and cpu of the example hosts."
  }

  assert {
    condition = yamldecode(output.ansible_inventory).all.vars == {
      aws_region          = "eu-central-1"
      mlflow_tracking_uri = "https://10.0.1.10"
    }
    error_message = "all.vars must carry the region and the tracking URI, and no ProxyJump by default."
  }

  assert {
    condition = yamldecode(output.ansible_inventory).all.children.mlflow.vars == {
      mlflow_artifact_uri    = "s3://runlocalai-mlflow-artifacts-123456789012/mlflow"
      mlflow_artifact_bucket = "runlocalai-mlflow-artifacts-123456789012"
      mlflow_artifact_prefix = "mlflow"
    }
    error_message = "The mlflow group must carry the bucket the environment creates."
  }
}

run "ssh_proxy_jump" {
  command = plan

  variables {
    ssh_proxy_jump = "admin@bastion.example.internal"
  }

  assert {
    condition     = yamldecode(output.ansible_inventory).all.vars.ansible_ssh_common_args == "-o ProxyJump=admin@bastion.example.internal"
    error_message = "ssh_proxy_jump must reach the inventory as ansible_ssh_common_args."
  }
}

# --- the environment's own validation rules (the modules' are tested in theirs) -------

run "good_values_at_the_edges_of_the_rules" {
  command = plan

  variables {
    region         = "us-gov-west-1"
    project        = "a${join("", [for i in range(22) : "b"])}9"
    ssh_proxy_jump = "bastion.example.internal:2222"
  }

  assert {
    condition     = length(var.project) == 24
    error_message = "The 24-character project was not planned."
  }
}

run "region_malformed" {
  command = plan
  variables {
    region = "Frankfurt"
  }
  expect_failures = [var.region]
}

run "project_too_long" {
  command = plan
  variables {
    project = "a${join("", [for i in range(23) : "b"])}9"
  }
  expect_failures = [var.project]
}

run "project_upper_case" {
  command = plan
  variables {
    project = "RunLocalAI"
  }
  expect_failures = [var.project]
}

run "ssh_proxy_jump_with_options" {
  command = plan
  variables {
    ssh_proxy_jump = "admin@bastion -o StrictHostKeyChecking=no"
  }
  expect_failures = [var.ssh_proxy_jump]
}
