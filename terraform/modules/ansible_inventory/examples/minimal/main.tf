# The least the module needs: the hosts (exactly one mlflow host) and where
# MLflow keeps its artifacts.

module "ansible_inventory" {
  source = "../.."

  hosts = {
    tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
    gpu-1    = { address = "10.0.2.11", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
  }
  artifact_uri = "s3://acme-mlflow-artifacts-123456789012/mlflow"
}
