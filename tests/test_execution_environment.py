"""The collection's execution environment (EE), checked offline:

- the build context `ansible-builder create` writes for meta/ee-controller.yml (the
  controller image): a Containerfile from the documented base image, meta/ee-requirements.txt
  and meta/ee-bindep.txt copied into _build/ unchanged and used by the Containerfile, and
  _build/requirements.yml naming runlocalai.mlops (its dependencies come from galaxy.yml);
- the collection-level metadata, from the collection installed as users install it
  (scripts/install-collection.sh: the tarball with its declared dependencies): it still holds
  meta/execution-environment.yml and the files it names, and `ansible-builder introspect`
  reads every requirement of them from it, as an EE build would;
- meta/ee-requirements.txt names a distribution for every third-party package plugins/ imports.

Building the image itself (`ansible-builder build`) needs the base image's container registry,
Galaxy and a Python package index, none of which these tests reach.
"""

import ast
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

COLLECTION = ROOT / "ansible_collections" / "runlocalai" / "mlops"
META = COLLECTION / "meta"
# The collections runlocalai.mlops's roles use: galaxy.yml's dependencies.
DEPENDENCIES = {"ansible.posix", "community.postgresql"}
# import name -> distribution, where they differ
DISTRIBUTIONS = {"sklearn": "scikit-learn"}
# ansible-core and its own dependencies (PyYAML, Jinja2), and a backport for old Pythons
PROVIDED = {"ansible", "ansible_collections", "jinja2", "yaml", "importlib_metadata", "__future__"}


def env(**extra):
    """This Python's scripts first on PATH; no bytecode written into the checkout."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, PYTHONDONTWRITEBYTECODE="1", **extra)


def run(cmd, **kwargs):
    """Run a command; fail the calling fixture or test with its output when it fails."""
    result = subprocess.run([str(part) for part in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def requirement_lines(path):
    """The requirement lines of a pip or bindep file, comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context `ansible-builder create` writes for meta/ee-controller.yml."""
    path = tmp_path_factory.mktemp("ee") / "context"
    run(["ansible-builder", "create", "-f", META / "ee-controller.yml", "--context", path,
         "--output-filename", "Containerfile", "-v1"], cwd=path.parent, env=env())
    return path


@pytest.fixture(scope="module")
def containerfile(context):
    path = context / "Containerfile"
    assert path.is_file(), "ansible-builder create wrote no Containerfile"
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def collections_path(tmp_path_factory):
    """runlocalai.mlops installed from its tarball with its declared dependencies, with a
    configuration of our own (only the installed copies are visible)."""
    tmp = tmp_path_factory.mktemp("ee-install")
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    run([ROOT / "scripts" / "install-collection.sh", tmp / "collections"], cwd=tmp,
        env=env(ANSIBLE_CONFIG=str(tmp / "ansible.cfg")))
    return tmp / "collections"


@pytest.fixture(scope="module")
def installed(collections_path):
    return collections_path / "ansible_collections" / "runlocalai" / "mlops"


@pytest.fixture(scope="module")
def introspected(collections_path):
    """What `ansible-builder introspect` reads from the installed collections:
    {"pip" | "bindep": {requirement: "# from collection ..." comment}}."""
    out = collections_path.parent
    run(["ansible-builder", "introspect", collections_path,
         "--write-pip", out / "pip.txt", "--write-bindep", out / "bindep.txt"], cwd=out, env=env())
    found = {"pip": {}, "bindep": {}}
    for kind, requirements in found.items():
        # each line: REQUIREMENT  # from collection NAME
        for line in (out / f"{kind}.txt").read_text(encoding="utf-8").splitlines():
            requirement, _, comment = line.partition("#")
            if requirement.strip():
                requirements[requirement.strip()] = comment.strip()
    return found


# --- the build context of meta/ee-controller.yml ------------------------------------------

def test_base_image_names_no_registry_host(containerfile):
    name = yaml.safe_load((META / "ee-controller.yml").read_text(encoding="utf-8"))["images"]["base_image"]["name"]
    # A registry host is a first path component with a dot or a port, or localhost.
    first, slash, _ = name.partition("/")
    assert not (slash and ("." in first or ":" in first or first == "localhost")), (
        f"base image {name!r} names a registry host: a site pulls it through its own registry mirror")
    assert f'ARG EE_BASE_IMAGE="{name}"' in containerfile.splitlines()


def test_containerfile_uses_python_3_11(containerfile):
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile.splitlines()


def test_containerfile_copies_and_introspects_the_requirement_files(containerfile):
    lines = containerfile.splitlines()
    assert "COPY _build/requirements.txt requirements.txt" in lines
    assert "COPY _build/bindep.txt bindep.txt" in lines
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile


def test_containerfile_installs_the_collections_of_requirements_yml(containerfile):
    assert re.search(r"ansible-galaxy collection install .* -r requirements\.yml", containerfile), (
        "the Containerfile does not install the collections of _build/requirements.yml")


@pytest.mark.parametrize("source,copy", [("ee-requirements.txt", "requirements.txt"), ("ee-bindep.txt", "bindep.txt")])
def test_build_file_is_the_meta_file_unchanged(context, source, copy):
    assert (context / "_build" / copy).read_bytes() == (META / source).read_bytes(), (
        f"_build/{copy} is not meta/{source}")


def test_build_requirements_yml_names_runlocalai_mlops(context):
    collections = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    assert "runlocalai.mlops" in {entry["name"] for entry in collections}


def test_build_requirements_yml_leaves_the_dependencies_to_galaxy_yml(context):
    # ansible-galaxy resolves them from runlocalai.mlops's galaxy.yml: listing them is a duplicate.
    collections = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    declared = yaml.safe_load((COLLECTION / "galaxy.yml").read_text(encoding="utf-8"))["dependencies"]
    assert not {entry["name"] for entry in collections} & set(declared)


# --- the collection-level metadata, from the installed collection --------------------------

def test_installed_collection_declares_its_dependencies(installed):
    manifest = json.loads((installed / "MANIFEST.json").read_text(encoding="utf-8"))
    dependencies = manifest["collection_info"]["dependencies"]
    assert DEPENDENCIES <= set(dependencies), f"MANIFEST.json dependencies: {dependencies}"


@pytest.mark.parametrize("name", ["meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt"])
def test_installed_collection_ships_the_ee_metadata(installed, name):
    assert (installed / name).is_file(), f"the collection tarball lacks {name}"


@pytest.mark.parametrize("source,kind", [("ee-requirements.txt", "pip"), ("ee-bindep.txt", "bindep")])
def test_introspect_reads_every_requirement_from_the_installed_collection(introspected, source, kind):
    found = introspected[kind]
    missing = [line for line in requirement_lines(META / source) if "runlocalai.mlops" not in found.get(line, "")]
    assert not missing, f"ansible-builder introspect did not find {missing} of meta/{source} (found: {found})"


# --- plugins/ imports ----------------------------------------------------------------------

def third_party_imports():
    """{top-level package: the first plugins/ file importing it}, stdlib and ansible-core aside."""
    imported = {}
    for path in sorted((COLLECTION / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top not in PROVIDED:
                    imported.setdefault(top, str(path.relative_to(COLLECTION)))
    return imported


def normalized(name):
    return name.lower().replace("_", "-")


def test_every_third_party_import_of_plugins_is_in_ee_requirements():
    listed = {normalized(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
              for line in requirement_lines(META / "ee-requirements.txt")}
    imported = third_party_imports()
    assert imported, "no third-party import found in plugins/"
    missing = [f"{DISTRIBUTIONS.get(top, top)} (imported by {where})" for top, where in sorted(imported.items())
               if normalized(DISTRIBUTIONS.get(top, top)) not in listed]
    assert not missing, "meta/ee-requirements.txt lacks " + ", ".join(missing)
