"""The apt mirror holds what the roles install because both read one definition: every distribution
package a role installs (an apt/package task) comes from a variable its vars files name
__<role>_..._package(s) (or from the role's public *_packages variables, a site's choice), and the
collection's playbooks/apt_packages.yml lists exactly those variables. A task that names a package
literally, or through another variable, would install something the lab mirror lacks: it fails here."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ROOT / "ansible_collections" / "runlocalai" / "mlops"
MIRRORED = ["runtime", "mlflow_server", "monitoring", "prefect_server"]  # the default of apt_packages_roles
MODULES = {"ansible.builtin.apt", "ansible.builtin.package", "apt", "package"}
PATTERN = re.compile(r"^__[a-z0-9_]+_packages?$")


def package_tasks(role):
    for path in sorted((COLLECTION / "roles" / role / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for module in MODULES & set(task):
                names = (task[module] or {}).get("name")
                if names is not None:
                    yield path.name, task.get("name"), names


def expressions(names):
    """The Jinja expressions a task's `name:` is made of; fails on anything else (a literal name)."""
    out = []
    for item in names if isinstance(names, list) else [names]:
        parts = re.split(r"\{\{(.*?)\}\}", str(item), flags=re.S)
        literal = "".join(parts[0::2]).strip()
        assert not literal, "a package named literally: %r" % literal
        out += parts[1::2]
    return out


@pytest.mark.parametrize("role", MIRRORED)
def test_packages_come_from_role_variables(role):
    seen = 0
    for path, task, names in package_tasks(role):
        seen += 1
        for expression in expressions(names):
            assert not re.search(r"['\"]", expression), "%s: %s names a package literally: %s" % (path, task, expression)
            variables = set(re.findall(r"\b(_{0,2}[a-z][a-z0-9_]*)\b", expression)) - {"or", "and", "not", "if", "else"}
            assert variables, "%s: %s: no variable in %s" % (path, task, expression)
            for variable in variables:
                assert PATTERN.match(variable) or re.match(r"^%s_[a-z0-9_]*packages?$" % role, variable), \
                    "%s: %s: %s is neither a vars-file __%s_*_package(s) nor a public %s_*_packages" % (
                        path, task, variable, role, role)
    assert seen, "%s installs no distribution package: drop it from apt_packages_roles" % role


def test_the_playbook_lists_every_package_variable(tmp_path):
    dest = tmp_path / "packages.txt"
    subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                    str(COLLECTION / "playbooks" / "apt_packages.yml"), "-e", "apt_packages_dest=%s" % dest],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    listed = {tuple(line.split()[:2]) for line in dest.read_text().splitlines()}
    for role in MIRRORED:
        for path, task, names in package_tasks(role):
            for variable in set(re.findall(r"\b(__[a-z0-9_]+_packages?)\b", " ".join(expressions(names)))):
                assert (role, variable) in listed, "%s: %s: %s missing from the mirror list" % (path, task, variable)
