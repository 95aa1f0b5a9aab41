"""What the roles ask on a host, run here: the runtime role's pin check (module python_venv_info:
pip runs only when it fails) and the mlflow_server role's user administration (`mlflow_admin.py
users`, whose no-change answer skips MLflow)."""

import importlib.util
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from ansible_collections.runlocalai.mlops.plugins.module_utils.host import venv

ROLES = Path(__file__).resolve().parents[1] / "ansible_collections" / "runlocalai" / "mlops" / "roles"


VENV = os.path.dirname(os.path.dirname(sys.executable))


def pinned(*requirements):
    """What the runtime role asks (module python_venv_info) before it runs pip: every requirement
    NAME==VERSION and installed at that version in the virtualenv."""
    return venv.venv_info(VENV, list(requirements))["pinned"]


def test_pin_check_passes_when_every_pin_is_installed():
    assert pinned("pytest==" + version("pytest"), "PyYAML==" + version("PyYAML"))


def test_pin_check_accepts_extras_and_normalised_names():
    assert pinned("pytest[testing]==" + version("pytest"), "pyyaml==" + version("PyYAML"))


def test_pin_check_fails_on_another_version_or_a_missing_distribution():
    assert not pinned("pytest==0.0.1")
    assert not pinned("pytest==" + version("pytest"), "surely-not-installed-dist==1.0")


def test_pin_check_leaves_anything_but_exact_pins_to_pip():
    current = version("pytest")
    for requirement in ("pytest", "pytest>=1", "pytest==%s,<99" % current, "pytest===" + current,
                        "pytest==%s ; python_version > '3'" % current, "pytest @ file:///tmp/x.whl"):
        assert not pinned(requirement), requirement


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
