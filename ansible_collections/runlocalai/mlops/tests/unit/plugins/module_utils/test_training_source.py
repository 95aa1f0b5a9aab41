# -*- coding: utf-8 -*-
"""module_utils/training/source.py (the pipeline code as shipped: a reproducible archive of what git
tracks, with PIPELINE_SOURCE.json) and prefect_api.py's deployment body and comparison, on real git
repositories made here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import subprocess
import tarfile

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError
from ansible_collections.runlocalai.mlops.plugins.module_utils.training import prefect_api, source


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo)] + list(args), check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.org")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "train.py").write_text("def train(f, t, p):\n    return None\n")
    (tmp_path / "other.txt").write_text("not shipped\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return dict((m.name, tar.extractfile(m).read()) for m in tar.getmembers())


def test_a_clean_tree_ships_its_commit_and_the_same_bytes_twice(repo):
    data, info = source.build(str(repo / "pipelines"))
    files = members(data)
    assert sorted(files) == ["PIPELINE_SOURCE.json", "train.py"]
    shipped = json.loads(files["PIPELINE_SOURCE.json"])
    assert shipped == info and info["commit"] == git(repo, "rev-parse", "HEAD") and info["dirty"] is False
    assert info["ref"] == "pipelines" and info["id"] == info["commit"][:12]
    assert source.build(str(repo / "pipelines"))[0] == data
    (repo / "other.txt").write_text("changed outside the pipeline\n")
    assert source.build(str(repo / "pipelines"))[0] == data


def test_a_dirty_tree_is_refused_unless_allowed_then_recorded(repo):
    committed = (repo / "pipelines" / "train.py").read_bytes()
    (repo / "pipelines" / "train.py").write_text("def train(f, t, p):\n    return 1\n")
    with pytest.raises(source.SourceError, match="uncommitted changes.*train.py"):
        source.build(str(repo / "pipelines"))
    data, info = source.build(str(repo / "pipelines"), allow_dirty=True)
    assert info["dirty"] is True and info["id"].startswith(info["commit"][:12] + "-dirty-")
    assert members(data)["train.py"] != committed


def test_untracked_files_do_not_ship(repo):
    (repo / "pipelines" / "scratch.py").write_text("x = 1\n")
    _data, info = source.build(str(repo / "pipelines"), allow_dirty=True)
    assert "scratch.py" not in members(_data) and info["files"] == 1


def test_a_directory_outside_git_is_refused(tmp_path):
    with pytest.raises(source.SourceError, match="src: git rev-parse"):
        source.build(str(tmp_path))
    with pytest.raises(InputError, match="src: .* is not a directory"):
        source.build(str(tmp_path / "missing"))


SPEC = {"name": "bc", "work_pool": "training", "entrypoint": "/lib/flow.py:training_pipeline", "code_dir": "/code/abc",
        "parameters": {"spec": {"model": "bc"}}, "schedule": "0 3 * * *", "concurrency_limit": 1, "tags": ["b", "a"]}


def test_a_deployment_as_the_server_returns_it_compares_equal_to_its_body():
    body = prefect_api.deployment_body("flow-1", SPEC)
    assert body["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "/code/abc"}}]
    served = dict(body, id="d-1", work_pool_name="training", concurrency_limit=None,
                  global_concurrency_limit={"limit": 1}, tags=["a", "b"],
                  schedules=[{"id": "s", "schedule": {"cron": "0 3 * * *", "timezone": "UTC", "day_or": True}, "active": True}])
    assert prefect_api.comparable(served) == prefect_api.comparable(body)
    changed = dict(served, global_concurrency_limit={"limit": 2})
    assert prefect_api.comparable(changed) != prefect_api.comparable(body)
    assert prefect_api.deployment_body("flow-1", dict(SPEC, schedule=""))["schedules"] == []


def test_the_client_refuses_a_bad_url_and_waits_with_a_deadline():
    with pytest.raises(prefect_api.PrefectError, match="api_url"):
        prefect_api.PrefectClient("ftp://x")
    client = prefect_api.PrefectClient("http://127.0.0.1:9/api")
    states = iter(["SCHEDULED", "RUNNING", "COMPLETED"])
    client.flow_run = lambda run_id: {"id": run_id, "state": {"type": next(states)}}
    assert client.wait("r", 60, poll=0, sleep=lambda s: None)["state"]["type"] == "COMPLETED"
    client.flow_run = lambda run_id: {"id": run_id, "state": {"type": "PENDING"}, "work_pool_name": "training"}
    now = iter([0, 10, 100])
    with pytest.raises(prefect_api.PrefectError, match="still PENDING after 30s .*work pool 'training'"):
        client.wait("r", 30, poll=0, clock=lambda: next(now), sleep=lambda s: None)
    with pytest.raises(prefect_api.PrefectError, match="cannot reach"):
        client.call("GET", "/health")


def test_a_run_no_worker_will_take_fails_after_the_grace_not_at_the_deadline():
    client = prefect_api.PrefectClient("http://127.0.0.1:9/api")
    client.flow_run = lambda run_id: {"id": run_id, "state": {"type": "SCHEDULED"}, "work_pool_name": "training"}
    pools = []
    client.work_pool = lambda name: pools.append(name) or {"name": name, "status": "NOT_READY"}
    now = iter([0, 10, 59, 61])
    with pytest.raises(prefect_api.PrefectError, match="work pool 'training' is NOT_READY: no worker polls it"):
        client.wait("r", 1800, poll=0, clock=lambda: next(now), sleep=lambda s: None)
    assert pools == ["training"]  # asked once the grace had passed, not before
    # A ready pool (a worker polls it; the run waits for a concurrency slot, say): wait on.
    client.work_pool = lambda name: {"name": name, "status": "READY"}
    states = iter(["SCHEDULED", "SCHEDULED", "COMPLETED"])
    client.flow_run = lambda run_id: {"id": run_id, "state": {"type": next(states)}, "work_pool_name": "training"}
    now = iter(range(0, 10000, 100))
    assert client.wait("r", 1800, poll=0, clock=lambda: next(now), sleep=lambda s: None)["state"]["type"] == "COMPLETED"


def test_a_busy_server_is_asked_again():
    client = prefect_api.PrefectClient("http://127.0.0.1:9/api")
    answers = iter([(503, '{"exception_message": "Service Unavailable"}'), (503, ""), (200, '{"id": "x"}')])
    client._send = lambda method, path, body: next(answers)
    slept = []
    assert client.call("GET", "/flows/x", sleep=slept.append) == {"id": "x"} and slept == [1, 2]
    client._send = lambda method, path, body: (503, "busy")
    with pytest.raises(prefect_api.PrefectError, match="HTTP 503: busy"):
        client.call("GET", "/flows/x", sleep=slept.append)
