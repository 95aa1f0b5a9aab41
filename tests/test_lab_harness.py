"""The lab harness: image tags follow the recipe, the lab inventory has the
groups the playbooks use."""

import shutil
import subprocess

import jinja2
import pytest
import yaml

from conftest import ROOT


def image_tag(script, release):
    return subprocess.run([str(script), release, "--print-tag"], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_image_tag_changes_with_the_recipe(tmp_path):
    script = tmp_path / "lab-image.sh"
    shutil.copy(ROOT / "scripts" / "lab-image.sh", script)
    before = {release: image_tag(script, release) for release in ("bookworm", "trixie")}
    assert before["bookworm"].startswith("runlocalai-lab:bookworm-")
    assert before["bookworm"].split("-")[-1] != before["trixie"].split("-")[-1]
    assert image_tag(script, "bookworm") == before["bookworm"]  # stable
    script.write_text(script.read_text().replace("procps,", "procps,less,"))
    assert image_tag(script, "bookworm") != before["bookworm"]


def test_image_script_rejects_unknown_release():
    result = subprocess.run([str(ROOT / "scripts" / "lab-image.sh"), "buster"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unsupported release 'buster'" in result.stderr


@pytest.mark.parametrize(
    "hosts,serving",
    [(["lab-1"], ["lab-1"]), (["lab-1", "lab-2", "lab-3"], ["lab-2", "lab-3"])],
)
def test_lab_inventory_groups(hosts, serving):
    # Ansible's template module renders with trim_blocks on.
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    text = env.from_string((ROOT / "playbooks" / "templates" / "lab_hosts.yml.j2").read_text()).render(
        lab_hosts=hosts, lab_addresses=dict((h, "172.17.0.%d" % (i + 2)) for i, h in enumerate(hosts)))
    inventory = yaml.safe_load(text)["all"]
    assert inventory["hosts"][hosts[-1]]["lab_address"] == "172.17.0.%d" % (len(hosts) + 1)
    groups = inventory["children"]
    assert list(groups["mlflow"]["hosts"]) == ["lab-1"]
    assert list(groups["monitoring"]["hosts"]) == ["lab-1"]
    # The training pipeline: Prefect's server and its worker beside the tracking server.
    assert list(groups["orchestrator"]["hosts"]) == ["lab-1"]
    assert list(groups["training"]["hosts"]) == ["lab-1"]
    assert list(groups["serving"]["hosts"]) == serving
    assert list(groups["cpu"]["hosts"]) == hosts
    assert not groups["gpu"]["hosts"]
