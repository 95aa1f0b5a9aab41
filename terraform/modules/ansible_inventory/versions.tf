# Provider-free on purpose: this module runs (init, plan, apply) with the
# Terraform 1.0 binary the tests install, so it avoids optional() object
# attributes, check blocks and cross-variable validation.
terraform {
  required_version = ">= 1.0"
}
