variable "hosts" {
  description = <<-EOT
    Hosts to put in the inventory, keyed by inventory host name. Each host has the address
    Ansible connects to (an IPv4 address or a DNS name), its role (`mlflow` for the tracking
    server, `serving` for model services), its accelerator (`gpu` or `cpu`) and the SSH user.
    Exactly one host has the role `mlflow`.
  EOT
  type = map(object({
    address      = string
    role         = string
    accelerator  = string
    ansible_user = string
  }))

  validation {
    condition     = length(var.hosts) > 0
    error_message = "The hosts map is empty: give at least the MLflow tracking host."
  }
  validation {
    condition     = alltrue([for name, host in var.hosts : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", name))])
    error_message = "Every host name (map key) must start with a letter or digit and contain only letters, digits, '.', '_' or '-' (63 characters at most)."
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
    condition     = length([for host in values(var.hosts) : host if host.role == "mlflow"]) == 1
    error_message = "Exactly one host must have the role \"mlflow\" (the tracking server and registry)."
  }
  validation {
    condition = alltrue([for host in values(var.hosts) :
      can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$", host.address)) ||
      can(regex("^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", host.address))
    ])
    error_message = "Every host address must be an IPv4 address (like 10.0.1.15) or a DNS name (like ip-10-0-1-15.ec2.internal)."
  }
  validation {
    condition     = alltrue([for host in values(var.hosts) : can(regex("^[a-z_][a-z0-9_-]{0,31}$", host.ansible_user))])
    error_message = "Every ansible_user must be a valid Unix user name (lower case letters, digits, '_' or '-')."
  }
}

variable "artifact_uri" {
  description = "Where the MLflow tracking server stores artifacts: s3://BUCKET or s3://BUCKET/PREFIX (no trailing slash)."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()-]+)*$", var.artifact_uri))
    error_message = "The artifact_uri must look like s3://BUCKET or s3://BUCKET/PREFIX, with a valid bucket name and no trailing slash."
  }
}

variable "mlflow_tracking_port" {
  description = "TLS port of the MLflow tracking server (nginx in front of MLflow) on the mlflow host."
  type        = number
  default     = 443

  validation {
    condition     = var.mlflow_tracking_port >= 1 && var.mlflow_tracking_port <= 65535 && floor(var.mlflow_tracking_port) == var.mlflow_tracking_port
    error_message = "The mlflow_tracking_port must be a whole number from 1 to 65535."
  }
}

variable "mlflow_tracking_uri" {
  description = "Tracking URI to hand to clients instead of https://<mlflow host address>[:port], for example a DNS name the TLS certificate covers. Empty: derived from the mlflow host."
  type        = string
  default     = ""

  validation {
    condition     = var.mlflow_tracking_uri == "" || can(regex("^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/.*)?$", var.mlflow_tracking_uri))
    error_message = "The mlflow_tracking_uri must be empty or an https:// URL: credentials cross the network, so plain http is refused."
  }
}

variable "monitoring_hosts" {
  description = "Names (keys of hosts) of the hosts that run Prometheus and Alertmanager. Empty: the mlflow host."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for name in var.monitoring_hosts : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", name))])
    error_message = "Every monitoring_hosts entry must be a host name from the hosts map."
  }
}

variable "extra_vars" {
  description = "Additional variables for the `all` group, for example ansible_ssh_common_args for a bastion, or aws_region."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.extra_vars) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", key))])
    error_message = "Every extra_vars key must be a valid Ansible variable name (letters, digits and '_', not starting with a digit)."
  }
}
