"""The Python the roles run on a host, run here as the roles run it: the runtime role's pin check
(pip runs only when it fails), the model_server role's reader of its installed code (files copied
only where it differs), both `python3 -c` snippets kept in the roles' vars, and the mlflow_server
role's user administration (`mlflow_admin.py users`, whose no-change answer skips MLflow)."""

import grp
import hashlib
import importlib.util
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


ADMIN = ROLES / "mlflow_server" / "files" / "mlflow_admin.py"


def admin_users(db, users, *flags):
    done = subprocess.run([sys.executable, str(ADMIN), "users", *flags], capture_output=True, text=True, check=True,
                          input=json.dumps({"db_uri": "sqlite:///%s" % db, "users": users}))
    return json.loads(done.stdout)["changed"]


def test_admin_users_creates_rotates_and_then_finds_nothing_to_do(tmp_path):
    db = tmp_path / "basic_auth.db"
    admin = {"username": "admin", "password": "first-password-1", "is_admin": True}
    reader = {"username": "reader", "password": "reader-password-1"}
    assert admin_users(db, [admin, reader], "--check") == ["admin: created", "reader: created"]
    assert admin_users(db, [admin, reader]) == ["admin: created", "reader: created"]
    assert admin_users(db, [admin, reader]) == []
    rotated = dict(reader, password="reader-password-2", is_admin=True)
    assert admin_users(db, [admin, rotated], "--check") == ["reader: password rotated", "reader: is_admin set to True"]
    assert admin_users(db, [admin, rotated]) == ["reader: password rotated", "reader: is_admin set to True"]
    assert admin_users(db, [admin, rotated]) == []
    # The old password no longer works: the no-change answer really checks the hash.
    assert admin_users(db, [admin, reader], "--check") == ["reader: password rotated", "reader: is_admin set to False"]


def test_admin_users_no_change_answer_reads_sqlite_without_mlflow(tmp_path):
    # The fast path itself, not only its result: True only when every user, password and admin
    # flag matches; anything else (or no database) goes to MLflow's store.
    spec_of = importlib.util.spec_from_file_location("mlflow_admin", ADMIN)
    mlflow_admin = importlib.util.module_from_spec(spec_of)
    spec_of.loader.exec_module(mlflow_admin)
    db = tmp_path / "basic_auth.db"
    admin = {"username": "admin", "password": "first-password-1", "is_admin": True}
    spec = {"db_uri": "sqlite:///%s" % db, "users": [admin]}
    assert not mlflow_admin.users_unchanged(spec)
    admin_users(db, [admin])
    assert mlflow_admin.users_unchanged(spec)
    assert not mlflow_admin.users_unchanged(dict(spec, users=[dict(admin, password="other-password-1")]))
    assert not mlflow_admin.users_unchanged(dict(spec, users=[dict(admin, is_admin=False)]))
    assert not mlflow_admin.users_unchanged(dict(spec, users=[admin, {"username": "new", "password": "x" * 12}]))
    assert not mlflow_admin.users_unchanged(dict(spec, db_uri="postgresql://db/auth"))
