# -*- coding: utf-8 -*-
"""python_venv_info on real virtualenvs: the one running the tests and one made here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import pytest

from ansible_collections.runlocalai.mlops.plugins.modules import python_venv_info
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import venv

VENV = os.path.dirname(os.path.dirname(sys.executable))
PYTEST = __import__("importlib.metadata", fromlist=["version"]).version("pytest")


def test_pins_installed_at_their_version(run_module):
    result = run_module(python_venv_info, dict(path=VENV, requirements=["pytest==%s" % PYTEST], python=sys.executable))
    assert not result["failed"] and not result["changed"]
    assert result["exists"] and result["pinned"] and result["packages"] == {"pytest": PYTEST}
    assert result["base"]["build"] == sys.version and result["base"]["version"].startswith("%d.%d." % sys.version_info[:2])


@pytest.mark.parametrize("requirements", [["pytest==0.0.1"], ["pytest>=1"], ["pytest"], ["no-such-dist==1.0"],
                                          ["pytest[extra]==%s" % PYTEST, "no-such-dist==1.0"]])
def test_anything_but_installed_pins_leaves_it_to_pip(run_module, requirements):
    result = run_module(python_venv_info, dict(path=VENV, requirements=requirements), check_mode=True)
    assert not result["failed"] and result["pinned"] is False


def test_extras_are_the_same_distribution():
    assert venv.venv_info(VENV, ["pytest[testing]==%s" % PYTEST])["pinned"] is True
    assert venv.requirement_name("mlflow[auth]==3.17.2") == "mlflow"


def test_a_missing_virtualenv_and_a_new_empty_one(run_module, tmp_path):
    missing = run_module(python_venv_info, dict(path=str(tmp_path / "none"), requirements=["pytest==1"]))
    assert missing["exists"] is False and missing["packages"] == {} and missing["pinned"] is False and missing["base"] is None
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    empty = run_module(python_venv_info, dict(path=str(tmp_path / "v"), requirements=["pytest==%s" % PYTEST]))
    assert empty["exists"] is True and empty["packages"] == {"pytest": None} and empty["pinned"] is False


def test_bad_input_fails_naming_it(run_module, tmp_path):
    result = run_module(python_venv_info, dict(path=VENV, requirements=["==1.0"]))
    assert result["failed"] and result["msg"].startswith("requirements:")
    result = run_module(python_venv_info, dict(path=VENV, python=str(tmp_path / "nope")))
    assert result["failed"] and result["msg"].startswith("python:")
