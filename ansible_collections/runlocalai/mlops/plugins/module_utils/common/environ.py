# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Environment variables set for the duration of a block (the mlflow library reads its server and
credentials from the environment), restored afterwards."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os


def _apply(values):
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def scoped_environ(values):
    """Set each key to its value (None: unset) inside the block; put the old values back after."""
    saved = dict((key, os.environ.get(key)) for key in values)
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)
