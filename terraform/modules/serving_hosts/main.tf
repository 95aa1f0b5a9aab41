data "aws_partition" "current" {}

locals {
  roles = toset(["mlflow", "serving"])

  common_tags = merge(var.tags, {
    ManagedBy = "terraform"
    Project   = var.project
  })

  # Accelerators whose AMI comes from SSM (hosts without their own ami_id).
  ssm_accelerators = toset([for host in values(var.hosts) : host.accelerator if host.ami_id == null])

  hosts = { for name, host in var.hosts : name => {
    role                       = host.role
    accelerator                = host.accelerator
    instance_type              = host.instance_type
    root_volume_size_gb        = host.root_volume_size_gb
    model_cache_volume_size_gb = host.model_cache_volume_size_gb
    spot                       = host.spot
    subnet_id                  = coalesce(host.subnet_id, var.subnet_id)
    ami_id                     = host.ami_id != null ? host.ami_id : data.aws_ssm_parameter.ami[host.accelerator].insecure_value
    ssh_user                   = coalesce(host.ssh_user, var.ssh_users[host.accelerator])
    user_data = templatefile("${path.module}/templates/user_data.yaml.tftpl", {
      primary  = var.apt_https_mirrors == null ? "" : var.apt_https_mirrors[host.accelerator].primary
      security = var.apt_https_mirrors == null ? "" : var.apt_https_mirrors[host.accelerator].security
    })
    tags = merge(local.common_tags, {
      Name        = "${var.name_prefix}-${name}"
      Role        = host.role
      Accelerator = host.accelerator
      # For the aws_ec2 dynamic inventory (inventories/aws/aws_ec2.yml): the
      # same host names and login users as the inventory Terraform renders.
      InventoryHost = name
      SshUser       = coalesce(host.ssh_user, var.ssh_users[host.accelerator])
    })
  } }

  model_cache_hosts = { for name, host in var.hosts : name => host if host.model_cache_volume_size_gb > 0 }

  security_group_ids = {
    mlflow  = aws_security_group.mlflow.id
    serving = aws_security_group.serving.id
  }

  # One of the two instance resources holds each host (see ignore_ami_changes).
  instances = merge(aws_instance.this, aws_instance.ignore_ami)
}

data "aws_ssm_parameter" "ami" {
  for_each = local.ssm_accelerators

  name = var.ami_ssm_parameters[each.key]
}

# --- Instances ----------------------------------------------------------------------
# Two resources because lifecycle.ignore_changes cannot depend on a variable:
# `this` follows the SSM parameter (a new AMI replaces the instance), `ignore_ami`
# keeps the AMI it was created with. Keep their arguments identical otherwise.

resource "aws_instance" "this" {
  for_each = var.ignore_ami_changes ? {} : local.hosts

  ami                         = each.value.ami_id
  instance_type               = each.value.instance_type
  subnet_id                   = each.value.subnet_id
  vpc_security_group_ids      = [each.value.role == "mlflow" ? aws_security_group.mlflow.id : aws_security_group.serving.id]
  iam_instance_profile        = aws_iam_instance_profile.this[each.value.role].name
  key_name                    = var.key_name
  associate_public_ip_address = false
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring
  user_data                   = each.value.user_data

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = var.http_tokens
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = each.value.root_volume_size_gb
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true
    tags                  = each.value.tags
  }

  dynamic "instance_market_options" {
    for_each = each.value.spot ? [each.key] : []
    content {
      market_type = "spot"
      spot_options {
        # Persistent and stopped on interruption: the host, its disks and its
        # tags survive, and the instance comes back when capacity returns.
        spot_instance_type             = "persistent"
        instance_interruption_behavior = "stop"
      }
    }
  }

  tags = each.value.tags
}

resource "aws_instance" "ignore_ami" {
  for_each = var.ignore_ami_changes ? local.hosts : {}

  ami                         = each.value.ami_id
  instance_type               = each.value.instance_type
  subnet_id                   = each.value.subnet_id
  vpc_security_group_ids      = [each.value.role == "mlflow" ? aws_security_group.mlflow.id : aws_security_group.serving.id]
  iam_instance_profile        = aws_iam_instance_profile.this[each.value.role].name
  key_name                    = var.key_name
  associate_public_ip_address = false
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring
  user_data                   = each.value.user_data

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = var.http_tokens
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = each.value.root_volume_size_gb
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true
    tags                  = each.value.tags
  }

  dynamic "instance_market_options" {
    for_each = each.value.spot ? [each.key] : []
    content {
      market_type = "spot"
      spot_options {
        spot_instance_type             = "persistent"
        instance_interruption_behavior = "stop"
      }
    }
  }

  tags = each.value.tags

  lifecycle {
    ignore_changes = [ami]
  }
}

# --- Model-cache volumes ------------------------------------------------------------

data "aws_subnet" "model_cache" {
  for_each = local.model_cache_hosts

  id = local.hosts[each.key].subnet_id
}

resource "aws_ebs_volume" "model_cache" {
  for_each = local.model_cache_hosts

  availability_zone = data.aws_subnet.model_cache[each.key].availability_zone
  size              = each.value.model_cache_volume_size_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.ebs_kms_key_arn
  tags              = merge(local.hosts[each.key].tags, { Name = "${var.name_prefix}-${each.key}-model-cache" })
}

resource "aws_volume_attachment" "model_cache" {
  for_each = local.model_cache_hosts

  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.model_cache[each.key].id
  instance_id = local.instances[each.key].id
}

# --- Security groups: the ports the bind rule exposes -------------------------------
# mlflow host: the MLflow TLS port (nginx) from the serving hosts and listed
# clients; Prometheus and Alertmanager stay on loopback (monitoring runs here).
# serving hosts: model ports from listed clients and from the monitoring host
# (scrapes of /metrics), node-exporter from the monitoring host.
# Every host: SSH from the admin CIDRs only.

resource "aws_security_group" "mlflow" {
  name_prefix = "${var.name_prefix}-mlflow-"
  description = "MLflow tracking and monitoring host of ${var.name_prefix}"
  vpc_id      = var.vpc_id
  tags        = merge(local.common_tags, { Name = "${var.name_prefix}-mlflow", Role = "mlflow" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "serving" {
  name_prefix = "${var.name_prefix}-serving-"
  description = "Model serving hosts of ${var.name_prefix}"
  vpc_id      = var.vpc_id
  tags        = merge(local.common_tags, { Name = "${var.name_prefix}-serving", Role = "serving" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  ingress_rules = merge(
    { for pair in setproduct(sort(local.roles), var.admin_cidrs) : "${pair[0]}-ssh-${pair[1]}" => {
      sg          = pair[0]
      protocol    = "tcp"
      from        = 22
      to          = 22
      cidr        = pair[1]
      source_sg   = null
      description = "SSH from the admin network ${pair[1]}"
    } },
    { for cidr in var.mlflow_client_cidrs : "mlflow-tracking-${cidr}" => {
      sg          = "mlflow"
      protocol    = "tcp"
      from        = var.mlflow_tracking_port
      to          = var.mlflow_tracking_port
      cidr        = cidr
      source_sg   = null
      description = "MLflow tracking server (TLS) from clients in ${cidr}"
    } },
    { "mlflow-tracking-from-serving" = {
      sg          = "mlflow"
      protocol    = "tcp"
      from        = var.mlflow_tracking_port
      to          = var.mlflow_tracking_port
      cidr        = null
      source_sg   = "serving"
      description = "MLflow tracking server (TLS) from the serving hosts: registry and model downloads"
    } },
    { for cidr in var.serving_client_cidrs : "serving-models-${cidr}" => {
      sg          = "serving"
      protocol    = "tcp"
      from        = var.model_server_ports.from
      to          = var.model_server_ports.to
      cidr        = cidr
      source_sg   = null
      description = "Model services from clients in ${cidr}"
    } },
    { "serving-models-from-monitoring" = {
      sg          = "serving"
      protocol    = "tcp"
      from        = var.model_server_ports.from
      to          = var.model_server_ports.to
      cidr        = null
      source_sg   = "mlflow"
      description = "Prometheus scrapes of the model services from the monitoring host"
    } },
    { "serving-node-exporter-from-monitoring" = {
      sg          = "serving"
      protocol    = "tcp"
      from        = var.node_exporter_port
      to          = var.node_exporter_port
      cidr        = null
      source_sg   = "mlflow"
      description = "Prometheus scrapes of node-exporter from the monitoring host"
    } },
  )

  egress_rules = merge(
    { for pair in setproduct(sort(local.roles), var.https_egress_cidrs) : "${pair[0]}-https-${pair[1]}" => {
      sg             = pair[0]
      protocol       = "tcp"
      from           = 443
      to             = 443
      cidr           = pair[1]
      destination_sg = null
      description    = "HTTPS to ${pair[1]}: package mirrors, PyPI, S3"
    } },
    { for item in setproduct(sort(local.roles), var.dns_egress_cidrs, ["udp", "tcp"]) : "${item[0]}-dns-${item[2]}-${item[1]}" => {
      sg             = item[0]
      protocol       = item[2]
      from           = 53
      to             = 53
      cidr           = item[1]
      destination_sg = null
      description    = "DNS (${item[2]}) to the resolver ${item[1]}"
    } },
    { for pair in setproduct(sort(local.roles), var.ntp_egress_cidrs) : "${pair[0]}-ntp-${pair[1]}" => {
      sg             = pair[0]
      protocol       = "udp"
      from           = 123
      to             = 123
      cidr           = pair[1]
      destination_sg = null
      description    = "NTP to ${pair[1]}"
    } },
    { for pair in setproduct(sort(local.roles), var.http_egress_cidrs) : "${pair[0]}-http-${pair[1]}" => {
      sg             = pair[0]
      protocol       = "tcp"
      from           = 80
      to             = 80
      cidr           = pair[1]
      destination_sg = null
      description    = "Plain HTTP to the package mirror or proxy ${pair[1]}"
    } },
    { "serving-tracking-to-mlflow" = {
      sg             = "serving"
      protocol       = "tcp"
      from           = var.mlflow_tracking_port
      to             = var.mlflow_tracking_port
      cidr           = null
      destination_sg = "mlflow"
      description    = "MLflow tracking server (TLS) on the mlflow host"
    } },
    { "mlflow-scrape-models" = {
      sg             = "mlflow"
      protocol       = "tcp"
      from           = var.model_server_ports.from
      to             = var.model_server_ports.to
      cidr           = null
      destination_sg = "serving"
      description    = "Prometheus scrapes of the model services on the serving hosts"
    } },
    { "mlflow-scrape-node-exporter" = {
      sg             = "mlflow"
      protocol       = "tcp"
      from           = var.node_exporter_port
      to             = var.node_exporter_port
      cidr           = null
      destination_sg = "serving"
      description    = "Prometheus scrapes of node-exporter on the serving hosts"
    } },
  )
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.ingress_rules

  security_group_id            = local.security_group_ids[each.value.sg]
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.from
  to_port                      = each.value.to
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.source_sg == null ? null : local.security_group_ids[each.value.source_sg]
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = local.egress_rules

  security_group_id            = local.security_group_ids[each.value.sg]
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.from
  to_port                      = each.value.to
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.destination_sg == null ? null : local.security_group_ids[each.value.destination_sg]
  tags                         = local.common_tags
}

# --- IAM: one role per host role ----------------------------------------------------

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.roles

  name_prefix        = "${var.name_prefix}-${each.key}-"
  description        = "Instance role of the ${each.key} hosts of ${var.name_prefix}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = merge(local.common_tags, { Role = each.key })
}

resource "aws_iam_instance_profile" "this" {
  for_each = local.roles

  name_prefix = "${var.name_prefix}-${each.key}-"
  role        = aws_iam_role.this[each.key].name
  tags        = merge(local.common_tags, { Role = each.key })
}

# The tracking server reads and writes artifacts (it proxies them for clients).
resource "aws_iam_role_policy" "mlflow_artifacts" {
  count = var.mlflow_artifact_access ? 1 : 0

  name   = "mlflow-artifacts-read-write"
  role   = aws_iam_role.this["mlflow"].id
  policy = var.artifact_read_write_policy_json

  lifecycle {
    precondition {
      condition     = var.artifact_read_write_policy_json != null
      error_message = "The mlflow_artifact_access is on but artifact_read_write_policy_json is null."
    }
  }
}

# Serving hosts get no artifact access unless direct reads are switched on.
resource "aws_iam_role_policy" "serving_artifacts" {
  count = var.serving_direct_artifact_read ? 1 : 0

  name   = "serving-artifacts-read-only"
  role   = aws_iam_role.this["serving"].id
  policy = var.artifact_read_only_policy_json

  lifecycle {
    precondition {
      condition     = var.artifact_read_only_policy_json != null
      error_message = "The serving_direct_artifact_read is on but artifact_read_only_policy_json is null."
    }
  }
}

resource "aws_iam_role_policy_attachment" "ssm" {
  for_each = var.enable_ssm ? local.roles : toset([])

  role       = aws_iam_role.this[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
