# The least the module needs: a globally unique bucket name. Everything else
# keeps its secure default (SSE-KMS under a new rotated key, versioning, public
# access blocked, TLS 1.2 only, prefix "mlflow").

provider "aws" {
  region = "eu-central-1"
}

module "artifact_store" {
  source = "../.."

  bucket_name = "acme-mlflow-artifacts-123456789012"
}
