# -*- coding: utf-8 -*-
"""mlflow_artifact_cache module, against the stand-in of MLflow's artifact proxy (ArtifactServer, in
tests/unit/plugins/module_utils/test_mlflow_artifacts.py, where the fetching itself is tested)."""

import hashlib
import os

import pytest
import yaml

from ansible_collections.runlocalai.mlops.plugins.modules import mlflow_artifact_cache
from ansible_collections.runlocalai.mlops.tests.unit.plugins.module_utils.test_mlflow_artifacts import (
    MIB,
    PATH,
    RUN,
    ArtifactServer,
    generated,
)

COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


@pytest.fixture(scope="module")
def content():
    return generated(2 * MIB + 99)


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return str(path)


def args(server, content, cache, **extra):
    value = dict(tracking_uri=server.url, run_id=RUN, artifact_path=PATH, sha256=hashlib.sha256(content).hexdigest().upper(),
                 size=len(content), cache_dir=cache)
    value.update(extra)
    return value


def test_check_mode_then_fetch_then_idempotent(run_module, content, cache):
    final = os.path.join(cache, hashlib.sha256(content).hexdigest() + ".gguf")
    with ArtifactServer(content) as server:
        planned = run_module(mlflow_artifact_cache, args(server, content, cache), check_mode=True)
        assert planned["failed"] is False, planned.get("msg")
        assert planned["changed"] is True and planned["download"] is True and planned["downloaded_bytes"] == 0
        assert planned["disk"]["checked"] is True and planned["disk"]["remaining_bytes"] == len(content)
        assert planned["path"] == final and os.listdir(cache) == []
        assert server.ranges() == ["bytes=0-0"]

        first = run_module(mlflow_artifact_cache, args(server, content, cache))
        assert first["failed"] is False, first.get("msg")
        assert first["changed"] is True and first["download"] is True and first["downloaded_bytes"] == len(content)
        assert first["resumed_from"] == 0 and first["removed"] == [] and first["sha256"] == hashlib.sha256(content).hexdigest()
        assert open(final, "rb").read() == content and os.stat(final).st_mode & 0o777 == 0o640

        requests = len(server.requests)
        second = run_module(mlflow_artifact_cache, args(server, content, cache))
        checked = run_module(mlflow_artifact_cache, args(server, content, cache), check_mode=True)
        assert len(server.requests) == requests  # cached: nothing asked
    assert second["failed"] is False and second["changed"] is False and second["cached"] is True
    assert second["downloaded_bytes"] == 0 and second["path"] == final and second["removed"] == []
    assert checked["changed"] is False and checked["download"] is False


def test_mode_change_of_a_cached_file(run_module, content, cache):
    with ArtifactServer(content) as server:
        run_module(mlflow_artifact_cache, args(server, content, cache))
        changed = run_module(mlflow_artifact_cache, args(server, content, cache, mode="0600"))
        again = run_module(mlflow_artifact_cache, args(server, content, cache, mode="0600"))
    assert changed["changed"] is True and changed["cached"] is True and again["changed"] is False
    assert os.stat(changed["path"]).st_mode & 0o777 == 0o600


def test_resume_after_a_cut_and_pruning(run_module, content, cache):
    old = os.path.join(cache, "c" * 64 + ".gguf")
    with open(old, "wb") as handle:
        handle.write(b"old")
    with ArtifactServer(content, cut_after=MIB, cuts=1) as server:
        result = run_module(mlflow_artifact_cache, args(server, content, cache, keep=1))
    assert result["failed"] is False, result.get("msg")
    assert server.ranges() == [None, "bytes=%d-" % MIB] and result["resumed_from"] == MIB and result["attempts"] == 2
    assert result["removed"] == [old] and not os.path.exists(old)


@pytest.mark.parametrize("value", ["abc", "g" * 64, "a" * 63])
def test_bad_sha256_names_the_parameter(run_module, cache, value):
    result = run_module(mlflow_artifact_cache, dict(tracking_uri="http://127.0.0.1:9", run_id=RUN, artifact_path=PATH, sha256=value,
                                                    cache_dir=cache))
    assert result["failed"] is True
    assert result["msg"] == "sha256: %r is not a SHA-256 digest (64 hexadecimal characters)" % value


def test_failures_are_clean_messages(run_module, content, cache):
    with ArtifactServer(content, username="reader", password="right-pw-1") as server:
        refused = run_module(mlflow_artifact_cache, args(server, content, cache, username="reader", password="wrong-pw-1"))
    assert refused["failed"] is True and "(HTTP 401)" in refused["msg"] and "wrong-pw-1" not in refused["msg"]
    with ArtifactServer(content) as server:
        wrong = run_module(mlflow_artifact_cache, args(server, content, cache, sha256="0" * 64, size=None))
    assert wrong["failed"] is True and wrong["msg"].startswith("sha256: artifact %s of run %s" % (PATH, RUN))
    assert os.listdir(cache) == [".runlocalai-artifact-cache.lock"]
    missing = run_module(mlflow_artifact_cache, dict(tracking_uri="http://127.0.0.1:9", run_id=RUN, artifact_path=PATH,
                                                     sha256="0" * 64, cache_dir=os.path.join(cache, "nope")))
    assert missing["failed"] is True and missing["msg"] == "cache_dir: directory %s does not exist" % os.path.join(cache, "nope")
    both = run_module(mlflow_artifact_cache, dict(tracking_uri="http://127.0.0.1:9", run_id=RUN, artifact_path=PATH,
                                                  sha256="0" * 64, cache_dir=cache, token="t", username="u"))
    assert both["failed"] is True and "mutually exclusive" in both["msg"]


def test_in_the_mlflow_module_defaults_group():
    with open(os.path.join(COLLECTION, "meta", "runtime.yml")) as handle:
        runtime = yaml.safe_load(handle)
    assert "mlflow_artifact_cache" in runtime["action_groups"]["mlflow"]
