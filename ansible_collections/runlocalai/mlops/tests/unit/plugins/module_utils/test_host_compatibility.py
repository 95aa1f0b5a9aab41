# -*- coding: utf-8 -*-
"""module_utils/host/compatibility (the deploy's environment check) on model files shaped as MLflow
writes them, and the filter environment_verdict on host_facts loop results."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.filter.environment_verdict import environment_verdict
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import compatibility as compat
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import environment as hf_env
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import facts as hf
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.host_facts.helpers import MODELS

# What the lab's model-server virtualenv holds: `pip install --no-index --find-links .cache/wheelhouse
# mlflow==3.17.2` (what the model_server role installs) measured with Python 3.11 (Debian 12) and 3.13 (Debian 13).
DEBIAN12 = {"python": "3.11.2", "packages": {"mlflow": "3.17.2", "scikit-learn": "1.9.1", "numpy": "2.4.6",
                                             "scipy": "1.17.1", "pandas": "3.1.1", "skops": "0.16.0"}}
DEBIAN13 = {"python": "3.13.5", "packages": {"mlflow": "3.17.2", "scikit-learn": "1.9.1", "numpy": "2.5.5",
                                             "scipy": "1.18.1", "pandas": "3.1.1", "skops": "0.16.0"}}


def host_result(model, host, cuda_version=None, cuda_available=False, executable="/opt/runlocalai/venvs/model-server/bin/python"):
    """The host_facts result for `model`'s files against `host`'s virtualenv, as gather() builds it."""
    raw, files, _warnings = hf_env.load_model_environment(os.path.join(MODELS, model))
    expected = hf_env.normalize_expected(raw, "expected_from")
    installed = dict((name, host["packages"].get(hf_env.canonical_name(name))) for name in expected.get("packages", {}))
    return {"expected": expected, "expected_files": files, "packages": installed,
            "python": {"version": host["python"], "executable": executable},
            "cuda_available": cuda_available, "cuda_version": cuda_version, "mismatches": [], "consistent": True}


def test_demo_model_matches_both_lab_hosts_python_minor_only_warns():
    on12 = compat.classify("srv12", host_result("mlflow_demo_pinned", DEBIAN12))
    assert on12["mismatches"] == [] and on12["warnings"] == []
    assert on12["compared"] == ["mlflow", "scikit-learn"] and on12["python"] == "3.11.2"
    on13 = compat.classify("srv13", host_result("mlflow_demo_pinned", DEBIAN13))
    assert on13["mismatches"] == []
    assert on13["warnings"] == [
        "srv13: Python 3.11 trained the model, the serving environment runs 3.13.5 "
        "(/opt/runlocalai/venvs/model-server/bin/python); a different minor only warns"]


def test_patch_level_differences_are_no_mismatch():
    host = {"python": "3.11.9", "packages": dict(DEBIAN12["packages"], **{"scikit-learn": "1.9.3", "mlflow": "3.17.0"})}
    assert compat.classify("h", host_result("mlflow_demo_pinned", host))["mismatches"] == []


def test_minor_difference_of_a_required_package_is_a_mismatch_naming_host_package_wanted_found():
    host = {"python": "3.11.2", "packages": dict(DEBIAN12["packages"], **{"scikit-learn": "1.8.0"})}
    judged = compat.classify("srv12", host_result("mlflow_demo_pinned", host))
    assert judged["mismatches"] == [{
        "host": "srv12", "item": "packages.scikit-learn", "wanted": "==1.9.1", "found": "1.8.0",
        "message": "srv12: scikit-learn wanted 1.9 (==1.9.1), found 1.8.0"}]


def test_mlflow_inferred_requirements_against_the_lab_hosts():
    """What MLflow infers for a plain sklearn model trained in the controller's .venv (numpy, scipy, pytest, rich,
    skops ...): pytest and rich are in no serving environment, and the Debian 13 wheelhouse's numpy 2.5 and
    scipy 1.18 differ in minor from the 2.4 and 1.17 of Python 3.11."""
    on12 = compat.classify("srv12", host_result("mlflow_sklearn", DEBIAN12))
    assert [m["item"] for m in on12["mismatches"]] == ["packages.pytest", "packages.rich"]
    judged = compat.classify("srv13", host_result("mlflow_sklearn", DEBIAN13))
    by_item = dict((m["item"], m) for m in judged["mismatches"])
    assert sorted(by_item) == ["packages.numpy", "packages.pytest", "packages.rich", "packages.scipy"]
    assert by_item["packages.numpy"]["message"] == "srv13: numpy wanted 2.4 (==2.4.6), found 2.5.5"
    assert by_item["packages.scipy"]["found"] == "1.18.1"
    assert by_item["packages.rich"] == {
        "host": "srv13", "item": "packages.rich", "wanted": "==15.0.0", "found": None,
        "message": "srv13: rich wanted ==15.0.0, not installed in the serving environment"}
    assert len(judged["warnings"]) == 1  # Python 3.11 -> 3.13


def test_ranges_are_judged_as_written():
    raw, _files, _warnings = hf_env.load_model_environment(os.path.join(MODELS, "torch_inline"))
    expected = hf_env.normalize_expected(raw)
    facts = {"expected": expected, "python": {"version": "3.11.4", "executable": "/v/bin/python"}, "cuda_available": False,
             "cuda_version": None, "packages": {"torch": "2.3.0", "numpy": "2.0.1", "transformers": "4.44.2"}}
    judged = compat.classify("h", facts)
    assert [m["message"] for m in judged["mismatches"]] == ["h: numpy wanted >=1.26,<2, found 2.0.1"]
    facts["packages"].update(numpy="1.26.4", transformers="4.45.0")
    assert [m["item"] for m in compat.classify("h", facts)["mismatches"]] == ["packages.transformers"]


@pytest.mark.parametrize("name, spec, major", [
    ("torch", "==2.3.1+cu121", 12), ("torch", "==2.1.0+cu118", 11), ("torch", "==2.9.0+cu130", 13),
    ("torch", "==2.3.1+cpu", None), ("torch", "==2.3.1", None), ("torch", ">=2.3", None),
    ("nvidia-cublas-cu12", "==12.1.3.1", 12), ("nvidia_cudnn_cu11", None, 11), ("cupy-cuda12x", "==13.3.0", 12),
    ("jax-cuda12-plugin", "==0.4.30", 12), ("scikit-learn", "==1.9.1", None), ("cuml", None, None),
])
def test_cuda_major_of_a_requirement(name, spec, major):
    assert compat.cuda_major_of(name, spec) == major


def test_cuda_major_the_host_cannot_run_is_a_mismatch():
    host = {"python": "3.11.2", "packages": {"mlflow": "3.17.2", "numpy": "2.4.6", "torch": "2.3.1+cu121",
                                             "nvidia-cublas-cu12": "12.1.3.1"}}
    sources = "built for CUDA 12 (nvidia-cublas-cu12==12.1.3.1, torch==2.3.1+cu121)"
    no_gpu = compat.classify("cpu1", host_result("mlflow_torch_cuda", host))
    assert no_gpu["mismatches"] == [{"host": "cpu1", "item": "cuda", "wanted": "CUDA 12", "found": None,
                                     "message": "cpu1: %s, the host has no working NVIDIA driver" % sources}]
    old = compat.classify("gpu1", host_result("mlflow_torch_cuda", host, cuda_version="11.8", cuda_available=True))
    assert [m["message"] for m in old["mismatches"]] == [
        "gpu1: %s, the host's driver supports CUDA 11.8 at most" % sources]
    for newer in ("12.0", "12.4", "13.0"):
        fine = compat.classify("gpu2", host_result("mlflow_torch_cuda", host, cuda_version=newer, cuda_available=True))
        assert fine["mismatches"] == [], newer


def test_python_major_is_a_mismatch_and_inline_python_specifiers():
    facts = host_result("mlflow_demo_pinned", dict(DEBIAN12, python="4.0.1"))
    assert [m["item"] for m in compat.classify("h", facts)["mismatches"]] == ["python"]
    facts["expected"]["python"] = ">=3.10,<3.13"
    facts["python"]["version"] = "3.12.1"
    assert compat.classify("h", facts)["warnings"] == []
    facts["python"]["version"] = "3.13.0"
    assert compat.classify("h", facts)["warnings"][0].startswith("h: Python >=3.10,<3.13 trained the model")


def test_verdict_policy_fail_and_warn():
    bad = host_result("mlflow_demo_pinned", {"python": "3.13.5", "packages": dict(DEBIAN13["packages"], **{"mlflow": "3.16.1"})})
    good = host_result("mlflow_demo_pinned", DEBIAN12)
    hosts = [{"host": "srv12", "facts": good}, {"host": "srv13", "facts": bad}]
    refused = compat.verdict(hosts, "fail")
    assert refused["passed"] is False and refused["policy"] == "fail"
    assert refused["failures"] == ["srv13: mlflow wanted 3.17 (==3.17.2), found 3.16.1"]
    assert refused["summary"] == "environment mismatch: srv13: mlflow wanted 3.17 (==3.17.2), found 3.16.1"
    assert refused["hosts"]["srv12"] == {"compared": True, "python": "3.11.2", "packages": ["mlflow", "scikit-learn"],
                                         "mismatches": 0}
    assert refused["hosts"]["srv13"]["mismatches"] == 1
    warned = compat.verdict(hosts, "warn")
    assert warned["passed"] is True and warned["failures"] == [] and len(warned["mismatches"]) == 1
    assert warned["warnings"][-1] == "srv13: mlflow wanted 3.17 (==3.17.2), found 3.16.1 (lifecycle_environment_mismatch=warn)"
    matched = compat.verdict([hosts[0]], "fail")
    assert matched["passed"] is True and matched["summary"] == "environment matches on 1 host(s)" and matched["warnings"] == []


def test_verdict_hosts_not_compared_and_bad_input():
    nothing = compat.verdict([{"host": "new1", "facts": None, "note": "no virtualenv yet"}], "fail", files_found=False)
    assert nothing["passed"] is True and nothing["hosts"] == {"new1": {"compared": False, "note": "no virtualenv yet"}}
    assert nothing["warnings"][0].startswith("the version has none of MLmodel")
    assert nothing["warnings"][1] == "new1: not compared: no virtualenv yet"
    with pytest.raises(compat.EnvironmentCheckError, match="lifecycle_environment_mismatch: 'refuse' is not one of fail, warn"):
        compat.verdict([], "refuse")
    with pytest.raises(compat.EnvironmentCheckError, match="h: not a host_facts result"):
        compat.classify("h", {"gpus": []})


def test_filter_on_loop_results():
    good = dict(host_result("mlflow_demo_pinned", DEBIAN12), item="srv12", changed=False, failed=False)
    skipped = {"item": "srv13", "skipped": True, "changed": False, "false_condition": "item.stat.exists"}
    result = environment_verdict([good, skipped], "fail")
    assert result["passed"] is True and result["hosts"]["srv13"]["compared"] is False
    assert result["warnings"] == ["srv13: not compared: no model-server virtualenv on the host yet (the roll-out creates it "
                                  "from the pinned packages)"]
    with pytest.raises(AnsibleFilterError, match="host_facts failed on srv12: boom"):
        environment_verdict([dict(good, failed=True, msg="boom")])
    with pytest.raises(AnsibleFilterError, match="not one of fail, warn"):
        environment_verdict([good], "maybe")
    with pytest.raises(AnsibleFilterError, match="expected the loop results of host_facts"):
        environment_verdict(["srv12"])


def test_gather_on_this_interpreter_end_to_end():
    """host_facts' own gather() on the interpreter running the tests (the controller's .venv, where the demo models are
    trained) against the demo model's files: no mismatch."""
    import sklearn

    result = hf.gather(expected_from=os.path.join(MODELS, "mlflow_demo_pinned"), python=sys.executable)
    judged = compat.classify("controller", result)
    if sklearn.__version__.startswith("1.9.") and result["packages"].get("mlflow", "").startswith("3.17."):
        assert judged["mismatches"] == []
    else:  # another .venv: the check must name what differs
        assert judged["mismatches"] and all(m["message"].startswith("controller: ") for m in judged["mismatches"])
