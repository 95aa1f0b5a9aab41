variable "name_prefix" {
  description = "Prefix of resource names (instances are named <name_prefix>-<host name>; IAM roles <name_prefix>-serving-..., which caps it at 29 characters)."
  type        = string

  validation {
    # 29: AWS allows 38 characters in an IAM role's name_prefix, and "-serving-" takes 9.
    condition     = can(regex("^[a-z][a-z0-9-]{0,27}[a-z0-9]$", var.name_prefix))
    error_message = "The name_prefix must be 2-29 characters of lower case letters, digits and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "project" {
  description = "Value of the Project tag on every resource."
  type        = string

  validation {
    condition     = length(var.project) > 0 && length(var.project) <= 128
    error_message = "The project must be 1-128 characters."
  }
}

variable "vpc_id" {
  description = "VPC the hosts and their security groups live in."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "The vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_id" {
  description = "Default (private) subnet of the hosts; a host's own subnet_id overrides it."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "The subnet_id must look like subnet-0123456789abcdef0."
  }
}

variable "hosts" {
  description = <<-EOT
    Hosts to create, keyed by host name (also the Ansible inventory name). role: `mlflow`
    (tracking server, registry and, by default, monitoring) or `serving` (model services);
    accelerator: `gpu` or `cpu`; instance_type (a GPU family for gpu hosts); root and
    model-cache volume sizes in GiB (0: no model-cache volume); optional subnet_id, ami_id
    (instead of the SSM parameter), ssh_user and spot.
  EOT
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

  validation {
    condition     = length(var.hosts) > 0
    error_message = "The hosts map is empty: give at least one host."
  }
  validation {
    condition     = alltrue([for name in keys(var.hosts) : can(regex("^[a-z0-9][a-z0-9-]{0,30}$", name))])
    error_message = "Every host name (map key) must be 1-31 characters of lower case letters, digits and '-'."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : contains(["mlflow", "serving"], host.role)])
    error_message = "Every host role must be \"mlflow\" or \"serving\"."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : contains(["gpu", "cpu"], host.accelerator)])
    error_message = "Every host accelerator must be \"gpu\" or \"cpu\"."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", host.instance_type))])
    error_message = "Every instance_type must look like FAMILY.SIZE, for example g5.xlarge or m7i.large."
  }
  validation {
    # NVIDIA GPU families on x86_64 (the Deep Learning AMI's architecture).
    condition = alltrue([for host in values(var.hosts) :
      host.accelerator != "gpu" || contains(
        ["g4dn", "g5", "g6", "g6e", "g6f", "gr6", "gr6f", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200"],
        split(".", host.instance_type)[0]
      )
    ])
    error_message = "A host with accelerator \"gpu\" needs an NVIDIA GPU instance family (g4dn, g5, g6, g6e, g6f, gr6, gr6f, p3, p3dn, p4d, p4de, p5, p5e, p5en, p6-b200)."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : host.root_volume_size_gb >= 20 && host.root_volume_size_gb <= 16384])
    error_message = "Every root_volume_size_gb must be from 20 to 16384 GiB (the Deep Learning AMI alone needs about 75 GiB: give GPU hosts at least 100)."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : host.model_cache_volume_size_gb == 0 || (host.model_cache_volume_size_gb >= 1 && host.model_cache_volume_size_gb <= 16384)])
    error_message = "Every model_cache_volume_size_gb must be 0 (no volume) or from 1 to 16384 GiB."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : host.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", host.ami_id))])
    error_message = "Every ami_id must be null or look like ami-0123456789abcdef0."
  }
}

variable "ami_ssm_parameters" {
  description = "SSM parameters holding the AMI ID per accelerator: the Deep Learning Base OSS Nvidia Driver AMI (Ubuntu 22.04) for gpu hosts, Debian 12 for cpu hosts."
  type = object({
    gpu = string
    cpu = string
  })
  default = {
    gpu = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    cpu = "/aws/service/debian/release/12/latest/amd64"
  }

  validation {
    condition     = startswith(var.ami_ssm_parameters.gpu, "/") && startswith(var.ami_ssm_parameters.cpu, "/")
    error_message = "The ami_ssm_parameters must be SSM parameter names starting with '/'."
  }
}

variable "ignore_ami_changes" {
  description = "Keep running instances when the SSM parameter points to a newer AMI (true), instead of replacing them on the next apply (false)."
  type        = bool
  default     = true
}

variable "ssh_users" {
  description = "Login user of the images per accelerator (the Ubuntu-based Deep Learning AMI: ubuntu; Debian: admin); a host's ssh_user overrides it."
  type = object({
    gpu = string
    cpu = string
  })
  default = {
    gpu = "ubuntu"
    cpu = "admin"
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH. Null: no key pair (reach the hosts with SSM Session Manager, see enable_ssm)."
  type        = string
  default     = null
}

variable "http_tokens" {
  description = "Instance metadata service token mode; only \"required\" (IMDSv2) is accepted."
  type        = string
  default     = "required"

  validation {
    condition     = var.http_tokens == "required"
    error_message = "The http_tokens must be \"required\": IMDSv1 lets any SSRF on the host read the instance credentials."
  }
}

variable "ebs_kms_key_arn" {
  description = "Customer managed KMS key for the root and model-cache volumes. Null: the account's default EBS key (the volumes are encrypted either way)."
  type        = string
  default     = null

  validation {
    condition     = var.ebs_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.ebs_kms_key_arn))
    error_message = "The ebs_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "detailed_monitoring" {
  description = "Enable EC2 detailed (1-minute) CloudWatch monitoring."
  type        = bool
  default     = true
}

# --- Network: what the bind rule exposes (see the README) -------------------------

variable "admin_cidrs" {
  description = "IPv4 CIDRs allowed to reach SSH (22) on every host: the Ansible controller, a VPN or a bastion. Empty: no SSH ingress (use SSM)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.admin_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every admin_cidrs entry must be an IPv4 network in CIDR notation with no host bits set, like 10.20.0.0/16."
  }
  validation {
    condition     = !contains(var.admin_cidrs, "0.0.0.0/0")
    error_message = "The admin_cidrs must not contain 0.0.0.0/0: SSH is never open to the internet."
  }
}

variable "mlflow_client_cidrs" {
  description = "IPv4 CIDRs (besides the serving hosts) allowed to reach the MLflow TLS port on the mlflow host: the controller, CI, data scientists' VPN."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.mlflow_client_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every mlflow_client_cidrs entry must be an IPv4 network in CIDR notation with no host bits set, like 10.20.0.0/16."
  }
  validation {
    condition     = !contains(var.mlflow_client_cidrs, "0.0.0.0/0")
    error_message = "The mlflow_client_cidrs must not contain 0.0.0.0/0: the tracking server is private."
  }
}

variable "serving_client_cidrs" {
  description = "IPv4 CIDRs allowed to reach the model-server ports on the serving hosts (the applications that request predictions, the controller's health checks)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.serving_client_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every serving_client_cidrs entry must be an IPv4 network in CIDR notation with no host bits set, like 10.20.0.0/16."
  }
  validation {
    condition     = !contains(var.serving_client_cidrs, "0.0.0.0/0")
    error_message = "The serving_client_cidrs must not contain 0.0.0.0/0: put a load balancer in front to serve the internet."
  }
}

variable "mlflow_tracking_port" {
  description = "TLS port of the MLflow tracking server (nginx) on the mlflow host."
  type        = number
  default     = 443

  validation {
    condition     = var.mlflow_tracking_port >= 1 && var.mlflow_tracking_port <= 65535
    error_message = "The mlflow_tracking_port must be from 1 to 65535."
  }
}

variable "model_server_ports" {
  description = "Port range of the model services on serving hosts (one port per model in model_server_models)."
  type = object({
    from = number
    to   = number
  })
  default = {
    from = 8000
    to   = 8009
  }

  validation {
    condition     = var.model_server_ports.from >= 1024 && var.model_server_ports.to <= 65535 && var.model_server_ports.from <= var.model_server_ports.to
    error_message = "The model_server_ports must be a range within 1024-65535 with from <= to."
  }
}

variable "node_exporter_port" {
  description = "Port of prometheus-node-exporter on every host, scraped from the monitoring (mlflow) host."
  type        = number
  default     = 9100

  validation {
    condition     = var.node_exporter_port >= 1024 && var.node_exporter_port <= 65535
    error_message = "The node_exporter_port must be from 1024 to 65535."
  }
}

variable "https_egress_cidrs" {
  description = "IPv4 CIDRs the hosts may reach on HTTPS (443): package mirrors, PyPI, S3, the NVIDIA repositories. Narrow it to a proxy's range where there is one."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for cidr in var.https_egress_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every https_egress_cidrs entry must be an IPv4 network in CIDR notation with no host bits set."
  }
}

variable "dns_egress_cidrs" {
  description = "IPv4 CIDRs of the DNS resolvers (53/udp and 53/tcp). Default: the Amazon-provided resolver."
  type        = list(string)
  default     = ["169.254.169.253/32"]

  validation {
    condition     = alltrue([for cidr in var.dns_egress_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every dns_egress_cidrs entry must be an IPv4 network in CIDR notation with no host bits set."
  }
}

variable "ntp_egress_cidrs" {
  description = "IPv4 CIDRs of the NTP servers (123/udp). Default: the Amazon Time Sync Service."
  type        = list(string)
  default     = ["169.254.169.123/32"]

  validation {
    condition     = alltrue([for cidr in var.ntp_egress_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every ntp_egress_cidrs entry must be an IPv4 network in CIDR notation with no host bits set."
  }
}

variable "http_egress_cidrs" {
  description = "IPv4 CIDRs the hosts may reach on plain HTTP (80), for a site's own HTTP package mirror or proxy. Empty (default): none; package sources are switched to HTTPS by user data (apt_https_mirrors)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.http_egress_cidrs : can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", cidr)) && can(cidrnetmask(cidr)) && try(cidrsubnet(cidr, 0, 0) == cidr, false)])
    error_message = "Every http_egress_cidrs entry must be an IPv4 network in CIDR notation with no host bits set."
  }
  validation {
    condition     = !contains(var.http_egress_cidrs, "0.0.0.0/0")
    error_message = "The http_egress_cidrs must not contain 0.0.0.0/0: list the mirror or proxy ranges."
  }
}

variable "apt_https_mirrors" {
  description = "HTTPS apt mirrors written by cloud-init at first boot, per accelerator (the images' default mirrors use plain HTTP, which the security group does not allow). Null: leave the image's sources alone (then set http_egress_cidrs)."
  type = object({
    gpu = object({ primary = string, security = string })
    cpu = object({ primary = string, security = string })
  })
  default = {
    gpu = { primary = "https://mirrors.edge.kernel.org/ubuntu", security = "https://mirrors.edge.kernel.org/ubuntu" }
    cpu = { primary = "https://deb.debian.org/debian", security = "https://deb.debian.org/debian-security" }
  }

  validation {
    # try(): Terraform's || does not short-circuit, and values(null) is an error.
    condition = alltrue([
      for url in try(flatten([for mirrors in values(var.apt_https_mirrors) : values(mirrors)]), []) : can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$", url))
    ])
    error_message = "Every apt_https_mirrors URL must be an https:// URL."
  }
}

# --- IAM ----------------------------------------------------------------------------

variable "mlflow_artifact_access" {
  description = "Give the mlflow host's role read-write access to the artifact store (artifact_read_write_policy_json must then be set)."
  type        = bool
  default     = true
}

variable "artifact_read_write_policy_json" {
  description = "IAM policy (JSON) for the mlflow host's role: read-write access to the artifact store (artifact_store's read_write_policy_json), used when mlflow_artifact_access is on."
  type        = string
  default     = null
}

variable "serving_direct_artifact_read" {
  description = "Give serving hosts direct read access to the artifact store (artifact_read_only_policy_json). Off by default: the tracking server proxies artifacts."
  type        = bool
  default     = false
}

variable "artifact_read_only_policy_json" {
  description = "IAM policy (JSON) for the serving hosts' role when serving_direct_artifact_read is on (artifact_store's read_only_policy_json)."
  type        = string
  default     = null
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore to the hosts' roles, for Session Manager access without SSH."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module (Role, Accelerator, ManagedBy and Project are set by the module)."
  type        = map(string)
  default     = {}
}
