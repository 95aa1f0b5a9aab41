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


def role_default(role, name):
    import yaml  # pylint: disable=import-outside-toplevel
    path = ROOT / "ansible_collections" / "runlocalai" / "mlops" / "roles" / role / "defaults" / "main.yml"
    return yaml.safe_load(path.read_text())[name]


def test_the_training_hosts_pin_what_the_roles_install_and_the_serving_hosts_run():
    """The pipeline's candidates log the worker's versions; the serving hosts must run the same ones."""
    training = pins("requirements-hosts-training.txt")
    worker = dict((Requirement(p).name.lower(), str(Requirement(p).specifier)) for p in role_default("prefect_worker", "prefect_worker_packages"))
    assert dict((k, v) for k, v in training.items() if k in worker) == worker, (training, worker)
    assert training["prefect"] == "==" + role_default("prefect_server", "prefect_server_version")
    hosts = pins("requirements-hosts.txt")
    for name in MODEL_REQUIREMENTS:
        assert training[name] == hosts[name], "%s: requirements-hosts-training.txt %s, requirements-hosts.txt %s" % (name, training[name], hosts[name])
