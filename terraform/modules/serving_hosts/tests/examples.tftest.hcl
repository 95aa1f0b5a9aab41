# The examples under examples/, planned as root configurations with a mocked
# AWS provider.

mock_provider "aws" {
  override_during = plan
  source          = "./tests/mocks"
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
