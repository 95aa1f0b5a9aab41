# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Requests and answers: the refusal error, request ids, JSON bodies, hashes and plain values."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import math
import re
import threading
import time

from ..common.canonical import canonical_json


REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ServingError(Exception):
    """A request the app refuses: HTTP status, message, and the field it names (if any)."""

    def __init__(self, status, message, field=None):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.field = field


def utc_now_text(now=None):
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-27T10:00:00.123Z."""
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


# parse_json_body makes the canonical text of what it parsed anyway (to find numbers out of range); the
# request's input_hash, on the same thread, takes it from here instead of encoding the body again.
_PARSED = threading.local()


def input_hash(body, parsed=None):
    """SHA-256 of the canonical input: the canonical JSON (sorted keys, compact, UTF-8) of the parsed
    body, or of the raw bytes when the body is not JSON. The same input in any key order or spacing
    gives the same hash."""
    if parsed is not None:
        if getattr(_PARSED, "value", None) is parsed:
            data = _PARSED.canonical.encode("utf-8")
            _PARSED.value = _PARSED.canonical = None
        else:
            data = canonical_json(parsed).encode("utf-8")
    else:
        data = body or b""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _finite_float(text):
    # 1e999 parses to inf: refused like the NaN/Infinity constants, before anything hashes the input.
    value = float(text)
    if math.isinf(value):
        raise ValueError("number %s is out of range" % text)
    return value


def parse_json_body(body):
    if not body:
        raise ServingError(400, "the request body is empty; send a JSON object")
    _PARSED.value = _PARSED.canonical = None
    try:
        text = body.decode("utf-8")
        # numbers parsed by the C parser; a number out of range (1e999) parses to inf, which the
        # canonical encoding refuses: then the body is parsed again number by number, for the message
        parsed = json.loads(text, parse_constant=_reject_constant)
        try:
            canonical = canonical_json(parsed)
        except (ValueError, TypeError, RecursionError):
            return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        _PARSED.value, _PARSED.canonical = parsed, canonical
        return parsed
    except (UnicodeDecodeError, ValueError) as exc:
        raise ServingError(400, "the request body is not valid JSON: %s" % exc)


def to_python(value):
    """numpy scalars and arrays -> plain Python (JSON-serialisable)."""
    if hasattr(value, "tolist"):
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if kind in ("b", "i", "u", "f") and getattr(value, "ndim", 0) > 0:
            # a numeric array: .tolist() gives plain numbers; only NaN/inf floats need replacing
            import numpy  # pylint: disable=import-outside-toplevel
            if kind != "f" or numpy.isfinite(value).all():
                return value.tolist()
        value = value.tolist()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return value


def class_key(value):
    """Canonical text of a class label (1, 1.0 and "1" are the same class)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
