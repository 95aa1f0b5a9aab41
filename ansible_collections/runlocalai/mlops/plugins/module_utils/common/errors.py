# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The base errors of the collection's logic. A module turns MlopsError into fail_json(msg) and
MissingDependencyError into missing_required_lib(library) (module_utils/modules.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class MlopsError(Exception):
    """Base class of the errors the collection's logic raises on purpose; the message is for the user."""


class InputError(MlopsError, ValueError):
    """Bad input: the message names the parameter, key or file and what was wrong."""


class MissingDependencyError(MlopsError, ImportError):
    """A required third-party Python library is not installed."""

    def __init__(self, library, purpose=None):
        super(MissingDependencyError, self).__init__(
            "the Python library %s is required%s" % (library, " for " + purpose if purpose else ""))
        self.library = library
