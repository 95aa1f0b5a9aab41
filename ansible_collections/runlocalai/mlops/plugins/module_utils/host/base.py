# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the host_facts files share: the error for bad input, the error for a missing library
(with the Debian package that provides it), and small readers of text files."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ..common.errors import InputError, MissingDependencyError

MIB = 1024 * 1024

# The Debian (and Ubuntu) packages of the libraries the consistency check needs on the managed host.
DEBIAN_PACKAGES = {"packaging": "python3-packaging", "PyYAML": "python3-yaml"}


class HostFactsError(InputError):
    """Bad input; the message names the parameter and what was wrong."""


def usable_cpus(default=None):
    """How many CPUs this process may run on: its affinity (taskset, a cpuset, or Mitogen, which pins
    what its local tasks start to one CPU of a 2-core controller); default, or os.cpu_count(), where
    the platform cannot say."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return default or os.cpu_count() or 1


def missing_library(library, purpose):
    """MissingDependencyError for `library`, its message naming what needs it and the Debian package."""
    return MissingDependencyError(library, "%s (on Debian/Ubuntu install the package %s)" % (purpose, DEBIAN_PACKAGES[library]))


def _read(path, default=None):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return default


def _first_line(text):
    text = (text or "").strip()
    return text.splitlines()[0].strip() if text else ""


def _version_key(text):
    """Numeric key of a dotted version such as a driver's 550.54.15 (not PEP 440)."""
    return tuple(int(part) for part in re.findall(r"[0-9]+", text or ""))
