"""The controller trains the demo's models (requirements.txt) and the serving hosts load them from the
wheelhouse (requirements-hosts.txt). MLflow writes the trainer's versions into each model's requirements.txt
and deploy_model.yml's environment check refuses a host whose major.minor differs: the two files must pin the
packages the models require to the same versions."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
MODEL_REQUIREMENTS = ["mlflow", "scikit-learn"]


def pins(path):
    found = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            found[requirement.name.lower()] = str(requirement.specifier)
    return found


@pytest.mark.parametrize("name", MODEL_REQUIREMENTS)
def test_controller_and_hosts_pin_the_same_version(name):
    controller, hosts = pins("requirements.txt"), pins("requirements-hosts.txt")
    assert controller.get(name, "").startswith("=="), "requirements.txt must pin %s exactly" % name
    assert controller[name] == hosts.get(name), "%s: requirements.txt %s, requirements-hosts.txt %s" % (
        name, controller[name], hosts.get(name))
