# Every input: a separate monitoring host, nginx on 8443, a DNS name for the
# tracking server that its TLS certificate covers, and a bastion for Ansible.

module "ansible_inventory" {
  source = "../.."

  hosts = {
    tracking = { address = "10.0.1.10", role = "mlflow", accelerator = "cpu", ansible_user = "admin" }
    gpu-1    = { address = "10.0.2.11", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    gpu-2    = { address = "ip-10-0-2-12.eu-central-1.compute.internal", role = "serving", accelerator = "gpu", ansible_user = "ubuntu" }
    cpu-1    = { address = "10.0.3.13", role = "serving", accelerator = "cpu", ansible_user = "admin" }
  }
  artifact_uri         = "s3://acme-mlflow-artifacts-123456789012/teams/mlflow"
  mlflow_tracking_port = 8443
  mlflow_tracking_uri  = "https://mlflow.acme.internal:8443"
  monitoring_hosts     = ["cpu-1"]
  extra_vars = {
    aws_region              = "eu-central-1"
    ansible_ssh_common_args = "-o ProxyJump=admin@bastion.acme.internal"
  }
}
