# -*- coding: utf-8 -*-
"""CONTRIBUTING.md says a new drift distance touches the statistics file (stats.py: the function and
its SHARE_DISTANCES entry), one schema entry (options.py), its test and the docs. This holds it to
that: a Hellinger distance added in those two places only is computed, chosen, thresholded and
reported by the unchanged engine and report code."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import engine, options, report, stats


def hellinger(p, q):
    p, q = stats.shares(p), stats.shares(q)
    return float(math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q))))))


@pytest.fixture
def with_hellinger(monkeypatch):
    # stats.py: the function's entry; options.py: the distance with its default threshold (the
    # choices of categorical_distance are derived from that dict when the module is imported).
    monkeypatch.setitem(stats.SHARE_DISTANCES, "hellinger", ("hellinger", lambda ref, cur, opts: hellinger(ref, cur)))
    monkeypatch.setitem(options.CATEGORICAL_DISTANCES, "hellinger", 0.1)
    spec = dict(options.CHECK_OPTIONS["categorical_distance"], choices=tuple(options.CATEGORICAL_DISTANCES))
    monkeypatch.setitem(options.CHECK_OPTIONS, "categorical_distance", spec)


def _write(path, colours):
    with open(str(path), "w") as handle:
        handle.write("colour\n" + "".join("%s\n" % c for c in colours))
    return str(path)


def test_a_new_share_distance_needs_only_stats_and_the_schema(tmp_path, with_hellinger):
    ref = _write(tmp_path / "ref.csv", ["red"] * 5000 + ["blue"] * 5000 + ["green"] * 5000)
    cur = _write(tmp_path / "cur.csv", ["red"] * 9000 + ["blue"] * 3000 + ["green"] * 3000)
    opts = options.make_options(categorical_distance="hellinger", decision="distance")
    result, _profile, _built = engine.run(ref, cur, None, opts)
    feature = result["features"]["colour"]
    assert feature["distance_metric"] == "hellinger"
    assert feature["distance"] == pytest.approx(hellinger([1, 1, 1, 0], [9, 3, 3, 0]))
    assert feature["threshold"] == 0.1 and feature["drifted"] is True
    text = report.render_prometheus(engine.public_result(result), {"model": "m"})
    assert 'mlops_feature_drift_score{feature="colour",metric="hellinger",model="m"}' in text
    assert json.loads(report.render_json(engine.public_result(result)))["result"]["features"]["colour"]["hellinger"] > 0.1
