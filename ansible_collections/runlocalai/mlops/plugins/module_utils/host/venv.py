# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A Python virtualenv as the runtime role manages it: the base interpreter it is made from, whether
it exists, the installed versions of the distributions a role wants in it, and whether every one of
them is pinned (NAME==VERSION) and installed at that version, so pip need not run at all.
Module runlocalai.mlops.python_venv_info."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from .base import HostFactsError
from .facts import Env, python_facts

# NAME[extras]==VERSION, nothing else (no range, wildcard, URL or marker): what "pinned" means here.
_PIN_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([A-Za-z0-9][A-Za-z0-9._+!-]*)\s*$")
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement):
    """The distribution name of a requirement string ('mlflow[auth]==3.17.2' -> 'mlflow')."""
    match = _NAME_RE.match(requirement or "")
    if not match:
        raise HostFactsError("requirements: %r does not start with a distribution name" % (requirement,))
    return match.group(1)


def venv_python(path):
    return os.path.join(path, "bin", "python")


def venv_info(path, requirements=(), python=None, env=None):
    """{exists, base: {version, build, executable} of `python` (None: not asked), packages: {name:
    installed version or None} (empty when the virtualenv does not exist), pinned: every requirement
    is NAME==VERSION and installed at that version}."""
    env = env or Env()
    names = [requirement_name(r) for r in requirements]
    out = {"exists": os.path.isfile(venv_python(path)) and os.access(venv_python(path), os.X_OK),
           "base": None, "packages": {}, "pinned": False}
    if python:
        facts = python_facts(python, [], env)
        out["base"] = dict((key, facts.get(key)) for key in ("version", "build", "executable"))
    if not out["exists"]:
        return out
    out["packages"] = python_facts(venv_python(path), names, env)["packages"]
    pins = [_PIN_RE.match(r) for r in requirements]
    out["pinned"] = all(pin is not None and out["packages"].get(requirement_name(r)) == pin.group(2)
                        for r, pin in zip(requirements, pins))
    return out
