"""The Python the roles run on a host with `python3 -c` (kept in the roles' vars), run here as the
roles run it: the runtime role's pin check (pip runs only when it fails) and the model_server
role's reader of its installed code (files copied only where it differs)."""

import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[1] / "ansible_collections" / "runlocalai" / "mlops" / "roles"


def snippet(role, name):
    return yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text())[name]


def run(code, *args):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)


PINS = snippet("runtime", "__runtime_venv_pins_check")


def test_pin_check_passes_when_every_pin_is_installed():
    assert run(PINS, "pytest==" + version("pytest"), "PyYAML==" + version("PyYAML")).returncode == 0


def test_pin_check_accepts_extras_and_normalised_names():
    assert run(PINS, "pytest[testing]==" + version("pytest"), "pyyaml==" + version("PyYAML")).returncode == 0


def test_pin_check_fails_on_another_version_or_a_missing_distribution():
    assert run(PINS, "pytest==0.0.1").returncode == 1
    assert run(PINS, "pytest==" + version("pytest"), "surely-not-installed-dist==1.0").returncode == 1


def test_pin_check_leaves_anything_but_exact_pins_to_pip():
    current = version("pytest")
    for requirement in ("pytest", "pytest>=1", "pytest==%s,<99" % current, "pytest===" + current,
                        "pytest==%s ; python_version > '3'" % current, "pytest @ file:///tmp/x.whl"):
        assert run(PINS, requirement).returncode == 1, requirement


READER = snippet("model_server", "__model_server_code_reader")


def test_code_reader_prints_checksum_mode_and_owner_of_the_files_that_exist(tmp_path):
    (tmp_path / "a.py").write_bytes(b"print('a')\n")
    (tmp_path / "b.py").write_bytes(b"")
    os.chmod(tmp_path / "a.py", 0o644)
    os.chmod(tmp_path / "b.py", 0o600)
    done = run(READER, str(tmp_path), "a.py", "b.py", "missing.py")
    assert done.returncode == 0, done.stderr
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    assert json.loads(done.stdout) == {
        "a.py": "%s 644 %s %s" % (hashlib.sha1(b"print('a')\n").hexdigest(), user, group),
        "b.py": "%s 600 %s %s" % (hashlib.sha1(b"").hexdigest(), user, group),
    }
