# -*- coding: utf-8 -*-
"""Reference profile format: hash, recognition, versioning."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import engine as de
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as dio
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import profiles as dp
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.stats import DriftInputError


@pytest.fixture
def profile():
    rng = np.random.default_rng(0)
    cols = {"x": rng.normal(size=20000), "c": dio.categories_from_values(list(rng.choice(["a", "b", "c"], 20000)))}
    return de.build_profile(dio.Table(cols, 20000, "mem", ["x", "c"]), None, de.make_options(sample_size=1000, psi_bins=5))


def test_hash_is_sha256_of_canonical_body(profile):
    body = dict((k, v) for k, v in profile.items() if k not in ("format", "format_version", "content_hash"))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert profile["content_hash"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def test_sketch_and_bins(profile):
    x = profile["features"]["x"]
    assert x["sample"]["kind"] == "quantiles" and len(x["sample"]["values"]) == 1000
    assert x["sample"]["values"] == sorted(x["sample"]["values"])
    assert len(x["bins"]["edges"]) == 4 and sum(x["bins"]["counts"]) == 20000
    assert all(abs(c - 4000) <= 1 for c in x["bins"]["counts"])
    assert sum(profile["features"]["c"]["categories"].values()) == 20000


def test_round_trip_fast_and_slow_hash_paths(profile, tmp_path):
    text = dp.dumps_profile(profile)
    assert dp._fast_hash(text) == profile["content_hash"]
    path = tmp_path / "p.bin"
    path.write_text(text)
    assert dp.looks_like_profile(str(path))
    assert dp.load_profile(str(path)) == profile
    # re-formatted by another tool: still recognised (a .json document) and verified the slow way
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(text), indent=2, sort_keys=True))
    assert dp._fast_hash(pretty.read_text()) is None
    assert dp.looks_like_profile(str(pretty))
    assert dp.load_profile(str(pretty)) == profile


def test_tampering_and_versions_are_rejected(profile, tmp_path):
    text = dp.dumps_profile(profile)
    path = tmp_path / "p.json"
    path.write_text(text.replace('"rows":20000', '"rows":20001', 1))
    with pytest.raises(DriftInputError, match="content hash mismatch"):
        dp.load_profile(str(path))
    path.write_text(text.replace('"format_version":1', '"format_version":2', 1))
    with pytest.raises(DriftInputError, match="format_version 2"):
        dp.load_profile(str(path))
    path.write_text("{not json")
    with pytest.raises(DriftInputError, match="not valid JSON"):
        dp.load_profile(str(path))


def test_data_files_are_not_profiles(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"x": 1}\n{"x": 2}\n')
    csv = tmp_path / "d.csv"
    csv.write_text("x\n1\n")
    single = tmp_path / "one.json"
    single.write_text('{"x": 1}')
    assert not dp.looks_like_profile(str(jsonl))
    assert not dp.looks_like_profile(str(csv))
    assert not dp.looks_like_profile(str(single))


def test_fast_load_equals_json_loads(tmp_path):
    """Samples are parsed in C++ (drift_io.parse_float_lists): the document must equal json.loads'
    to the bit and in type, for continuous, discrete (integral floats), exact and tiny samples."""
    rng = np.random.default_rng(4)
    cols = {"normal": rng.normal(size=5000) * 1e-3, "wide": rng.lognormal(5, 4, size=5000), "counts": rng.poisson(3, 5000).astype(float),
            "few": np.array([1.25, 2.5, np.nan] * 10), "c": dio.categories_from_values(list(rng.choice(["values", "sample"], 5000)))}
    cols["few"] = np.concatenate([cols["few"], np.full(4970, np.nan)])
    table = dio.Table(cols, 5000, "mem", list(cols))
    profile = de.build_profile(table, [("normal", None), ("wide", None), ("counts", "numeric"), ("few", "numeric"), ("c", None)],
                               de.make_options(sample_size=500))
    assert profile["features"]["few"]["sample"]["kind"] == "exact"
    text = dp.dumps_profile(profile)
    fast = dp._loads_profile(text)
    assert fast == json.loads(text) == profile
    assert json.dumps(fast, sort_keys=True) == json.dumps(json.loads(text), sort_keys=True)
    path = tmp_path / "p.json"
    path.write_text(text)
    assert dp.load_profile(str(path)) == profile


def test_fast_load_keeps_integer_tokens_and_odd_layouts():
    # a hand-made sample with integer tokens: json.loads keeps them ints, and so must the loader
    text = ('{"features":{"a":{"sample":{"kind":"exact","values":[1,2.5,3]},"type":"numeric"},'
            '"b":{"sample":{"kind":"exact","values":[0.5,1e-7]},"type":"numeric"}}}')
    assert dp._loads_profile(text) == json.loads(text)
    assert [type(v) for v in dp._loads_profile(text)["features"]["a"]["sample"]["values"]] == [int, float, int]
    # values that are not a plain list of numbers: whole-document json
    for odd in ('{"sample":{"kind":"exact","values":[1,"x"]}}', '{"sample":{"kind":"exact","values":[]}}',
                '{"sample":{"kind":"exact","values":[1.5,[2]]}}', '{"x":{"sample":{"kind":"exact","values":[1.5]}}}'):
        assert dp._loads_profile(odd) == json.loads(odd)
