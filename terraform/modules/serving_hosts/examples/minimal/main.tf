# The least the module needs: where the hosts go, the hosts, and the tracking
# server's access to the artifact store. Everything else keeps its secure
# default (IMDSv2, encrypted gp3, no public address, no SSH, HTTPS-only egress).

provider "aws" {
  region = "eu-central-1"
}

module "serving_hosts" {
  source = "../.."

  name_prefix = "acme"
  project     = "acme"
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_id   = "subnet-0123456789abcdef0"
  hosts = {
    tracking = { role = "mlflow", accelerator = "cpu", instance_type = "m7i.xlarge" }
    cpu-1    = { role = "serving", accelerator = "cpu", instance_type = "c7i.large" }
  }

  # In a real configuration: module.artifact_store.read_write_policy_json
  # (see ../complete).
  artifact_read_write_policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:PutObject"]
      Resource = "arn:aws:s3:::acme-mlflow-artifacts-123456789012/mlflow/*"
    }]
  })
}
