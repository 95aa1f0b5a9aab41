# The examples under examples/, planned as root configurations.

run "minimal_example" {
  command = plan

  module {
    source = "./examples/minimal"
  }

  assert {
    condition     = output.mlflow_tracking_uri == "https://10.0.1.10"
    error_message = "Unexpected tracking URI: ${output.mlflow_tracking_uri}."
  }

  assert {
    condition     = jsonencode(keys(yamldecode(output.inventory).all.hosts)) == jsonencode(["gpu-1", "tracking"])
    error_message = "The inventory does not list the two hosts."
  }
}

run "complete_example" {
  command = plan

  module {
    source = "./examples/complete"
  }

  assert {
    condition     = output.mlflow_tracking_uri == "https://mlflow.acme.internal:8443"
    error_message = "Unexpected tracking URI: ${output.mlflow_tracking_uri}."
  }

  assert {
    condition     = jsonencode(output.groups.monitoring) == jsonencode(["cpu-1"]) && jsonencode(output.groups.gpu) == jsonencode(["gpu-1", "gpu-2"])
    error_message = "Unexpected groups: ${jsonencode(output.groups)}."
  }

  assert {
    condition     = yamldecode(output.inventory).all.children.mlflow.vars.mlflow_artifact_prefix == "teams/mlflow"
    error_message = "The artifact prefix did not reach the mlflow group."
  }
}
