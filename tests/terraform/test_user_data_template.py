"""The serving_hosts user data template rendered by Terraform's templatefile():
a cloud-config document that switches apt to the HTTPS mirrors, or leaves the
image's sources alone when the mirrors are switched off."""

import json

import pytest
import yaml
from tf_helpers import MODULES_DIR, TerraformDir, load_config, terraform_bin  # noqa: F401 (fixture)

TEMPLATE = MODULES_DIR / "serving_hosts" / "templates" / "user_data.yaml.tftpl"
MIRRORS = load_config(MODULES_DIR / "serving_hosts")["variable"]["apt_https_mirrors"]["default"]


def render(tmp_path, primary, security):
    tf = TerraformDir(tmp_path)
    (tmp_path / "main.tf").write_text(
        'output "user_data" {\n  value = templatefile(%s, %s)\n}\n'
        % (json.dumps(str(TEMPLATE)), json.dumps({"primary": primary, "security": security}))
    )  # HCL accepts JSON objects
    tf.init()
    tf.run("apply", "-auto-approve", "-input=false", "-lock=false")
    return json.loads(tf.run("output", "-json").stdout)["user_data"]["value"]


@pytest.mark.parametrize("accelerator", sorted(MIRRORS))
def test_user_data_sets_https_apt_mirrors(tmp_path, terraform_bin, accelerator):
    mirrors = MIRRORS[accelerator]
    text = render(tmp_path, mirrors["primary"], mirrors["security"])
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert document["apt"]["primary"] == [{"arches": ["default"], "uri": mirrors["primary"]}]
    assert document["apt"]["security"] == [{"arches": ["default"], "uri": mirrors["security"]}]
    assert mirrors["primary"].startswith("https://") and mirrors["security"].startswith("https://")


def test_user_data_without_mirrors_changes_nothing(tmp_path, terraform_bin):
    text = render(tmp_path, "", "")
    assert text.startswith("#cloud-config\n")
    assert yaml.safe_load(text) is None  # comments only
