# The AWS provider as every test file of this module mocks it (mock_provider
# "aws" { source = "./tests/mocks" }): values fixed where the module, the
# examples or the assertions use them.
mock_resource "aws_instance" {
  defaults = {
    private_ip  = "10.0.1.10"
    private_dns = "ip-10-0-1-10.eu-central-1.compute.internal"
  }
}
# The complete example also creates an artifact store.
mock_resource "aws_s3_bucket" {
  defaults = {
    id  = "acme-mlflow-artifacts-123456789012"
    arn = "arn:aws:s3:::acme-mlflow-artifacts-123456789012"
  }
}
# The provider checks that policies are JSON.
mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
}
mock_data "aws_partition" {
  defaults = {
    partition = "aws"
  }
}
mock_data "aws_ssm_parameter" {
  defaults = {
    insecure_value = "ami-0123456789abcdef0"
  }
}
mock_data "aws_subnet" {
  defaults = {
    availability_zone = "eu-central-1a"
  }
}
