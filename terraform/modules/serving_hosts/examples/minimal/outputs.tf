output "hosts" {
  description = "The created hosts: instance ID, private address, role, accelerator, SSH user."
  value       = module.serving_hosts.hosts
}
