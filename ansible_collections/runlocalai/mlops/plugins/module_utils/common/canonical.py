# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Canonical JSON: the one text form that hashes, audit records and request logs are built on."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value):
    """Sorted keys, no whitespace, UTF-8 characters kept, NaN/Infinity refused (ValueError);
    the same text as json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)."""
    return _CANONICAL.encode(value)
