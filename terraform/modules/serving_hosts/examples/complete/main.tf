# The module with the artifact store and every switch used: a GPU host with a
# model-cache volume, a spot CPU host, a customer managed EBS key, SSH from an
# admin network, clients of MLflow and the model services, Session Manager,
# direct artifact reads, a site's plain-HTTP mirror, custom ports and tags.

provider "aws" {
  region = "eu-central-1"
}

module "artifact_store" {
  source = "../../../artifact_store"

  bucket_name = "acme-mlflow-artifacts-123456789012"
}

module "serving_hosts" {
  source = "../.."

  name_prefix = "acme-vision"
  project     = "acme"
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_id   = "subnet-0123456789abcdef0"
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
      model_cache_volume_size_gb = 200
      subnet_id                  = "subnet-0fedcba9876543210"
    }
    cpu-1 = {
      role          = "serving"
      accelerator   = "cpu"
      instance_type = "c7i.large"
      ami_id        = "ami-0123456789abcdef0"
      ssh_user      = "admin"
      spot          = true
    }
  }

  ami_ssm_parameters = {
    gpu = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    cpu = "/aws/service/debian/release/12/latest/amd64"
  }
  ignore_ami_changes  = true
  ssh_users           = { gpu = "ubuntu", cpu = "admin" }
  key_name            = "ops-2026"
  http_tokens         = "required"
  ebs_kms_key_arn     = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  detailed_monitoring = true

  admin_cidrs          = ["10.20.0.0/24"]
  mlflow_client_cidrs  = ["10.20.0.0/24"]
  serving_client_cidrs = ["10.30.0.0/16"]
  mlflow_tracking_port = 443
  model_server_ports   = { from = 8000, to = 8003 }
  node_exporter_port   = 9100
  https_egress_cidrs   = ["10.50.0.0/24"] # the site's HTTPS proxy
  dns_egress_cidrs     = ["169.254.169.253/32"]
  ntp_egress_cidrs     = ["169.254.169.123/32"]
  http_egress_cidrs    = ["10.40.0.10/32"] # the site's plain-HTTP apt mirror
  apt_https_mirrors    = null              # so leave the images' apt sources alone

  mlflow_artifact_access          = true
  artifact_read_write_policy_json = module.artifact_store.read_write_policy_json
  serving_direct_artifact_read    = true
  artifact_read_only_policy_json  = module.artifact_store.read_only_policy_json
  enable_ssm                      = true

  tags = {
    Team = "vision"
  }
}
