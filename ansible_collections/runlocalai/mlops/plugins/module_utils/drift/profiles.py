# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reference profiles: build, serialise, hash, recognise and load (format version 1).

A profile holds what the drift tests need from the reference data, so that later checks read
only the profile and the current window. The format is documented in docs/drift.md and owned
here. No Ansible imports (installed on serving hosts as well).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

from ..common.canonical import canonical_json
from .tables import parse_float_lists
from .stats import DriftInputError, quantile_edges, quantile_sketch, bin_counts, require_numpy

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

PROFILE_FORMAT = "runlocalai.mlops/drift-profile"
PROFILE_VERSION = 1
ARTIFACT_PATH = "drift/reference_profile.json"
_MARKER = '"format":"%s"' % PROFILE_FORMAT
_HEAD_KEYS = ("format", "format_version", "content_hash")


def numeric_profile(values, sample_size, psi_bins):
    """Profile of a numeric column (float64 array, NaN = missing; finite, not all missing)."""
    require_numpy()
    rows = int(values.size)
    present = np.sort(values[~np.isnan(values)])
    count = int(present.size)
    sketch, kind = quantile_sketch(present, sample_size)
    edges = quantile_edges(present, psi_bins)
    return {
        "type": "numeric",
        "rows": rows,
        "count": count,
        "missing": rows - count,
        "mean": float(np.mean(present)),
        "std": float(np.std(present)),
        "min": float(present[0]),
        "max": float(present[-1]),
        "sample": {"kind": kind, "values": sketch.tolist()},
        "bins": {"edges": edges.tolist(), "counts": bin_counts(present, edges).tolist()},
    }


def categorical_profile(cats):
    """Profile of a Categories column."""
    rows = len(cats)
    counts = cats.counts()
    missing = cats.missing
    return {
        "type": "categorical",
        "rows": rows,
        "count": rows - missing,
        "missing": missing,
        "categories": counts,
        "numeric_labels": bool(cats.numeric_labels),
    }


def profile_hash(profile):
    """sha256 of the canonical JSON (sorted keys, no spaces) of the profile without its head
    fields (format, format_version, content_hash), which are checked on their own."""
    body = dict((k, v) for k, v in profile.items() if k not in _HEAD_KEYS)
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _fast_hash(text):
    """The content hash of a profile file as dumps_profile wrote it, from its text alone (no
    re-serialisation); None when the text is laid out differently."""
    end = text.find('"content_hash":"sha256:')
    if end < 0:
        return None
    start_body = end + len('"content_hash":"sha256:') + 64 + 2  # hash, closing quote, comma
    head = text[:start_body]
    expected_head = "{%s,%s," % ('"format":"%s"' % PROFILE_FORMAT, '"format_version":%d' % PROFILE_VERSION)
    if not head.startswith(expected_head) or head[-2:] != '",':
        return None
    body = "{" + text[start_body:].rstrip("\n")
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def make_profile(features, rows, settings):
    """Assemble a profile document from per-feature profiles and stamp its content hash."""
    profile = {
        "format": PROFILE_FORMAT,
        "format_version": PROFILE_VERSION,
        "rows": int(rows),
        "settings": dict(settings),
        "features": features,
    }
    profile["content_hash"] = profile_hash(profile)
    return profile


def dumps_profile(profile):
    """Serialise a profile: format, version and hash first (so a reader recognises it from the
    first bytes), then the rest as canonical JSON; a trailing newline."""
    head = ",".join("%s:%s" % (json.dumps(k), canonical_json(profile[k])) for k in _HEAD_KEYS)
    body = dict((k, v) for k, v in profile.items() if k not in _HEAD_KEYS)
    rest = canonical_json(body)
    return "{" + head + ("," + rest[1:] if rest != "{}" else "}") + "\n"


def looks_like_profile(path):
    """True when the file at path is a drift profile (recognised by its content, not its name)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    text = head.decode("utf-8", "replace").lstrip()
    if not text.startswith("{"):
        return False
    if _MARKER in text.replace(" ", "").replace("\n", ""):
        return True
    # A profile re-formatted by another tool (keys reordered): a .json file holding one object
    # with a "format" key. JSON-lines data fails to parse as a single document.
    if path.lower().endswith(".json") and os.path.getsize(path) < 512 * 1024 * 1024:
        try:
            with open(path, "r", encoding="utf-8") as handle:
                doc = json.load(handle)
        except ValueError:
            return False
        return isinstance(doc, dict) and "format" in doc and "features" in doc
    return False


# A numeric feature's sample as dumps_profile writes it (keys sorted, no spaces).
_SAMPLE_HEADS = tuple('"sample":{"kind":"%s","values":[' % kind for kind in ("exact", "quantiles"))
_PLACEHOLDER = "\\u0000sample:%d"  # JSON text; decodes to NUL + "sample:<index>"


def _loads_profile(text):
    """json.loads of a profile, with the numeric samples (most of the document: sample_size
    numbers per numeric feature) parsed in C++ (drift_io.parse_float_lists) rather than one
    Python float at a time. Same result as json.loads: a sample holding any integral value is
    parsed by json (which keeps an integer token an int), and anything unexpected falls back
    to json.loads of the whole text."""
    spans = []
    pos = text.find('"values":[')
    while pos >= 0:
        start = pos + len('"values":[')
        end = text.find("]", start)
        if end < 0:
            break
        if text.endswith(_SAMPLE_HEADS, 0, start) and text.startswith("]}", end) and text.find('"', start, end) < 0:
            spans.append((start, end))
        pos = text.find('"values":[', end)
    arrays = parse_float_lists([text[a:b] for a, b in spans]) if spans else None
    if arrays is None:
        return json.loads(text)
    parts = []
    pos = 0
    for i, (a, b) in enumerate(spans):
        parts.append(text[pos:a - 1])  # up to the opening bracket
        parts.append('"%s"' % (_PLACEHOLDER % i))
        pos = b + 1  # after the closing bracket
    parts.append(text[pos:])
    doc = json.loads("".join(parts))
    filled = 0
    features = doc.get("features") if isinstance(doc, dict) else None
    for feat in (features.values() if isinstance(features, dict) else ()):
        sample = feat.get("sample") if isinstance(feat, dict) else None
        marker = sample.get("values") if isinstance(sample, dict) else None
        if not (isinstance(marker, str) and marker.startswith("\u0000sample:")):
            continue
        i = int(marker.split(":", 1)[1])
        a, b = spans[i]
        values = arrays[i]
        if values.size and np.any(values == np.floor(values)):
            sample["values"] = json.loads("[%s]" % text[a:b])
        else:
            sample["values"] = values.tolist()
        filled += 1
    if filled != len(spans):
        return json.loads(text)
    return doc


def parse_profile(text, source="reference"):
    """Parse and validate a profile document; DriftInputError naming the source on any problem."""
    try:
        profile = _loads_profile(text)
    except ValueError as exc:
        raise DriftInputError("reference: %s is not valid JSON: %s" % (source, exc))
    return validate_profile(profile, source, _fast_hash(text))


def validate_profile(profile, source="reference", computed_hash=None):
    if not isinstance(profile, dict) or profile.get("format") != PROFILE_FORMAT:
        raise DriftInputError("reference: %s is not a drift reference profile (format %r)" % (
            source, profile.get("format") if isinstance(profile, dict) else None))
    version = profile.get("format_version")
    if version != PROFILE_VERSION:
        raise DriftInputError("reference: profile %s has format_version %r; this code reads version %d" % (source, version, PROFILE_VERSION))
    expected = profile.get("content_hash")
    actual = computed_hash if computed_hash == expected else profile_hash(profile)
    if expected != actual:
        raise DriftInputError("reference: profile %s content hash mismatch (stored %s, computed %s): edited or corrupted" % (source, expected, actual))
    features = profile.get("features")
    if not isinstance(features, dict) or not features:
        raise DriftInputError("reference: profile %s has no features" % source)
    for name, feat in features.items():
        kind = feat.get("type") if isinstance(feat, dict) else None
        if kind == "numeric":
            needed = ("count", "rows", "missing", "std", "sample", "bins")
        elif kind == "categorical":
            needed = ("count", "rows", "missing", "categories")
        else:
            raise DriftInputError("reference: profile %s: feature '%s' has unknown type %r" % (source, name, kind))
        absent = [k for k in needed if k not in feat]
        if absent:
            raise DriftInputError("reference: profile %s: feature '%s' lacks %s" % (source, name, ", ".join(absent)))
    return profile


def load_profile(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DriftInputError("reference: cannot read profile %s: %s" % (path, exc))
    return parse_profile(text, path)


def sketch_array(feature):
    """The reference sample (exact or quantile sketch) of a numeric profile entry, as float64."""
    require_numpy()
    return np.asarray(feature["sample"]["values"], dtype=np.float64)
