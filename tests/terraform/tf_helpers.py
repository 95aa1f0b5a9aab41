"""Helpers for the Terraform tests: python-hcl2 loading and the Terraform binary
(the one pinned in scripts/terraform.env, like scripts/test-terraform.sh).

python-hcl2 (8.x) comes from requirements.txt. It is imported at module level on
purpose: when it is missing these tests fail, they are not skipped.

No conftest.py here on purpose: tests/conftest.py is imported as `conftest` by the
controller tests (`from conftest import ROOT`), and a second conftest module would
shadow it. Test modules import the fixtures below by name.
"""

import copy
import functools
import json
import os
import subprocess
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
MODULES_DIR = TERRAFORM_DIR / "modules"
ENV_DIR = TERRAFORM_DIR / "environments" / "aws"


def _pins():
    """scripts/terraform.env: KEY=VALUE lines, comments and blank lines skipped."""
    pins = {}
    for line in (ROOT / "scripts" / "terraform.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key] = value
    return pins


PINS = _pins()
TERRAFORM = Path(PINS["TERRAFORM"])
ANSIBLE_INVENTORY = ROOT / ".venv" / "bin" / "ansible-inventory"
YAMLLINT = ROOT / ".venv" / "bin" / "yamllint"

# Every module and environment (not their examples).
CONFIG_DIRS = sorted([p for p in MODULES_DIR.iterdir() if p.is_dir()]) + [ENV_DIR]
# The modules' examples (root configurations planned by the modules' tests).
EXAMPLE_DIRS = sorted(p for p in MODULES_DIR.glob("*/examples/*") if p.is_dir())

_PLAIN = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
_RAW = SerializationOptions(strip_string_quotes=False, explicit_blocks=False, with_comments=False)


@functools.lru_cache(maxsize=None)
def _parse(path, raw):
    with open(path, encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=_RAW if raw else _PLAIN)


def load_tf(path, raw=False):
    """One .tf file as python-hcl2 8 serializes it (raw: HCL literals keep their quotes).

    Parsing is slow (lark); each file is parsed once per session, callers get a copy.
    """
    return copy.deepcopy(_parse(str(path), raw))


def load_config(directory, raw=False):
    """All .tf files of a directory merged by block kind.

    Returns {"variable": {name: body}, "output": {name: body}, "resource": {type: {name: body}},
    "data": {type: {name: body}}, "module": {name: body}, "locals": {name: expr}, "terraform": [body]}.
    """
    merged = {"variable": {}, "output": {}, "resource": {}, "data": {}, "module": {}, "locals": {}, "terraform": []}
    for path in sorted(Path(directory).glob("*.tf")):
        parsed = load_tf(path, raw=raw)
        for kind, blocks in parsed.items():
            for block in blocks:
                if kind in ("variable", "output", "module"):
                    for name, body in block.items():
                        merged[kind][name.strip('"')] = body
                elif kind in ("resource", "data"):
                    for rtype, named in block.items():
                        for name, body in named.items():
                            merged[kind].setdefault(rtype.strip('"'), {})[name.strip('"')] = body
                elif kind == "locals":
                    merged["locals"].update(block)
                elif kind == "terraform":
                    merged["terraform"].append(block)
                else:
                    merged.setdefault(kind, []).append(block)
    return merged


def expr(value):
    """The text of an HCL expression as python-hcl2 serializes it ("${...}" unwrapped)."""
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


def terraform_env(tmp_path):
    return dict(
        os.environ,
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
        TF_DATA_DIR=str(tmp_path / ".terraform-data"),
        TF_CLI_ARGS="-no-color",
    )


class TerraformDir:
    """A Terraform working directory in tmp, driven with the binary set-up installs."""

    def __init__(self, path):
        self.path = path
        self.env = terraform_env(path)

    def run(self, *args, check=True):
        result = subprocess.run(
            [str(TERRAFORM), *args], cwd=self.path, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def init(self):
        return self.run("init", "-input=false", "-backend=false")

    def write_vars(self, name, values):
        path = self.path / name
        path.write_text(json.dumps(values))
        return path


@pytest.fixture(scope="session")
def terraform_bin():
    assert TERRAFORM.is_file(), f"{TERRAFORM} is missing: run scripts/setup-terraform.sh"
    version = subprocess.run(
        [str(TERRAFORM), "version"], capture_output=True, text=True, env=dict(os.environ, CHECKPOINT_DISABLE="1")
    )
    assert version.returncode == 0, version.stderr
    expected = f"Terraform v{PINS['TERRAFORM_VERSION']}"
    assert version.stdout.splitlines()[0] == expected, f"{TERRAFORM} is not {expected}: run scripts/setup-terraform.sh"
    return TERRAFORM
