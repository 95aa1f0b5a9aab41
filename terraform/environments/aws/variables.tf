variable "region" {
  description = "AWS region to deploy to."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must be an AWS region name like eu-central-1."
  }
}

variable "project" {
  description = "Project name: the Project tag and the prefix of resource names (lower case letters, digits and '-')."
  type        = string
  default     = "runlocalai"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.project))
    error_message = "The project must be 2-24 characters of lower case letters, digits and '-', starting with a letter."
  }
}

variable "artifact_bucket_name" {
  description = "Globally unique name of the MLflow artifact bucket."
  type        = string
}

variable "artifact_prefix" {
  description = "Key prefix of the MLflow artifacts in the bucket (the IAM policies are scoped to it)."
  type        = string
  default     = "mlflow"
}

variable "access_log_bucket" {
  description = "Existing bucket receiving the artifact bucket's S3 access logs. Null: no access logging."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC of the hosts."
  type        = string
}

variable "subnet_id" {
  description = "Private subnet of the hosts (they get no public address; reach them through a VPN, a bastion or SSM)."
  type        = string
}

variable "hosts" {
  description = "Hosts to create, keyed by host name: role (mlflow or serving), accelerator (gpu or cpu), instance_type and the optional attributes of terraform/modules/serving_hosts. Exactly one mlflow host."
  type = map(object({
    role                       = string
    accelerator                = string
    instance_type              = string
    root_volume_size_gb        = optional(number, 50)
    model_cache_volume_size_gb = optional(number, 0)
    subnet_id                  = optional(string)
    ami_id                     = optional(string)
    ssh_user                   = optional(string)
    spot                       = optional(bool, false)
  }))
}

variable "key_name" {
  description = "EC2 key pair for SSH; null for none (then use enable_ssm)."
  type        = string
  default     = null
}

variable "enable_ssm" {
  description = "Allow SSM Session Manager on the hosts (AmazonSSMManagedInstanceCore)."
  type        = bool
  default     = false
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs allowed SSH to every host (the Ansible controller, VPN or bastion)."
  type        = list(string)
  default     = []
}

variable "mlflow_client_cidrs" {
  description = "IPv4 CIDRs (besides the serving hosts) allowed to reach the MLflow TLS port."
  type        = list(string)
  default     = []
}

variable "serving_client_cidrs" {
  description = "IPv4 CIDRs allowed to reach the model-server ports on serving hosts."
  type        = list(string)
  default     = []
}

variable "http_egress_cidrs" {
  description = "IPv4 CIDRs of a site's plain-HTTP package mirror or proxy (port 80). Empty: apt uses HTTPS mirrors set at first boot."
  type        = list(string)
  default     = []
}

variable "ignore_ami_changes" {
  description = "Keep instances on the AMI they were created with when the SSM parameter moves on."
  type        = bool
  default     = true
}

variable "serving_direct_artifact_read" {
  description = "Let serving hosts read the artifact bucket directly (read-only) instead of through the tracking server."
  type        = bool
  default     = false
}

variable "ssh_proxy_jump" {
  description = "SSH jump host (user@host) Ansible goes through to reach the private addresses; empty for a direct connection (VPN)."
  type        = string
  default     = ""

  validation {
    condition     = var.ssh_proxy_jump == "" || can(regex("^([a-z_][a-z0-9_-]*@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$", var.ssh_proxy_jump))
    error_message = "The ssh_proxy_jump must be empty or [user@]host[:port]."
  }
}
