# -*- coding: utf-8 -*-
"""host_facts module on recorded sysfs trees and a fake nvidia-smi executable.

Named *_module: pytest (rootdir imports, no __init__.py) needs a basename that differs from
module_utils/test_host_facts.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.host import environment as engine_environment
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import facts as engine
from ansible_collections.runlocalai.mlops.plugins.modules import host_facts
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.host_facts.helpers import (
    MODELS, broken_yaml_model, build_sysfs, make_fake_smi)


@pytest.fixture(autouse=True)
def no_real_nvidia_smi(monkeypatch):
    """On a GPU machine the real nvidia-smi would be found: tests name their own or none."""
    real = engine.find_executable
    monkeypatch.setattr(engine, "find_executable", lambda name: None if name == "nvidia-smi" else real(name))


@pytest.fixture
def host(tmp_path):
    def make(tree, scenario=None):
        args = {"sysfs_root": build_sysfs(tmp_path / tree, tree), "disk_paths": [str(tmp_path)]}
        if scenario:
            directory = tmp_path / ("smi-" + scenario)
            directory.mkdir()
            args["nvidia_smi_path"] = make_fake_smi(directory, scenario)
        return args
    return make


def test_facts_in_check_mode_equal_a_normal_run_and_never_change(run_module, host):
    args = dict(host("four_gpus", "four_h100_mig"), packages=["numpy"])
    normal = run_module(host_facts, args)
    checked = run_module(host_facts, args, check_mode=True)
    assert not normal["failed"], normal.get("msg")
    assert normal["changed"] is False and checked["changed"] is False
    for key in ("gpus", "gpu_count", "nvidia_driver_version", "cuda_version", "packages", "python", "os", "kernel", "mismatches"):
        assert normal[key] == checked[key], key
    assert normal["gpu_count"] == 4 and normal["cuda_version"] == "12.4" and normal["nvidia_driver_version"] == "550.54.15"
    assert normal["gpus"][0]["mig_mode"] == "enabled" and normal["gpus"][0]["memory_total_mib"] == 81559
    assert normal["consistent"] is True and normal["mismatches"] == [] and "warnings" not in normal
    expected_keys = {"gpus", "gpu_count", "nvidia_smi", "nvidia_driver_version", "cuda_version", "cuda_runtime_versions", "cpu",
                     "memory", "disks", "os", "kernel", "python", "packages", "mismatches", "consistent"}
    assert expected_keys <= set(normal)
    assert set(normal["cpu"]) >= {"model", "cores", "threads"} and set(normal["memory"]) >= {"total_mib", "available_mib"}
    assert set(normal["os"]) >= {"id", "version_id", "codename", "family"}
    assert normal["python"]["executable"] == sys.executable


def test_gpu_without_driver_is_reported_with_a_warning(run_module, host, monkeypatch):
    warnings = []
    monkeypatch.setattr(host_facts.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    result = run_module(host_facts, host("gpu_no_driver", "driver_not_loaded"))
    assert not result["failed"] and result["gpu_count"] == 1 and result["gpus"][0]["kernel_driver"] is None
    assert result["cuda_available"] is False
    assert len(warnings) == 1 and warnings[0].startswith("nvidia-smi failed (exit 9): NVIDIA-SMI has failed")


def test_no_gpu_and_no_nvidia_smi(run_module, host):
    result = run_module(host_facts, host("no_gpu"))
    assert not result["failed"] and result["gpu_count"] == 0 and result["nvidia_smi"] is None and result["cuda_version"] is None


def test_mismatches_are_returned_and_fail_only_when_asked(run_module, host):
    args = dict(host("one_gpu", "one_gpu"), expected_from=os.path.join(MODELS, "conda_only"),
                expected={"min_gpu_memory_mib": 40000, "packages": {"mlflow": None}})
    result = run_module(host_facts, args)
    assert not result["failed"] and result["consistent"] is False
    items = [m["item"] for m in result["mismatches"]]
    assert "min_gpu_memory_mib" in items and "packages.cloudpickle" in items or "packages.numpy" in items
    failed = run_module(host_facts, dict(args, fail_on_mismatch=True))
    assert failed["failed"] and failed["changed"] is False
    assert failed["msg"].startswith("host does not match the expected environment (%d mismatch" % len(result["mismatches"]))
    for mismatch in result["mismatches"]:
        assert mismatch["message"] in failed["msg"]
    assert failed["mismatches"] == result["mismatches"]


def test_matching_expectations_pass_with_fail_on_mismatch(run_module, host):
    import numpy
    args = dict(host("one_gpu", "one_gpu"), fail_on_mismatch=True, expected={
        "python": "%d.%d" % sys.version_info[:2], "packages": {"numpy": ">=%s" % numpy.__version__}, "cuda_available": True,
        "min_gpu_memory_mib": 24000, "driver_version_min": "535", "cuda_version_min": "12.2"})
    result = run_module(host_facts, args)
    assert not result["failed"], result.get("msg")
    assert result["consistent"] is True and result["packages"]["numpy"] == numpy.__version__


def test_packages_given_as_key_value_shorthand(run_module, host):
    """`ansible localhost -m runlocalai.mlops.host_facts -a 'packages=[numpy]'` passes the string '[numpy]'."""
    result = run_module(host_facts, dict(host("no_gpu"), packages="[numpy]"))
    assert not result["failed"], result.get("msg")
    assert list(result["packages"]) == ["numpy"]


@pytest.mark.parametrize("args, message", [
    ({"disk_paths": ["/nonexistent/models"]}, "disk_paths: '/nonexistent/models' does not exist"),
    ({"expected": {"python": 3.1}}, "expected.python: got the number 3.1; quote versions so YAML keeps them as text (e.g. '3.10')"),
    ({"expected": {"packages": {"numpy": "=>1"}}}, "expected.packages.numpy: '=>1' is not a valid version specifier: "),
    ({"expected": {"gpus": 1}}, "expected: unknown key(s) gpus (allowed: python, packages, cuda_available, min_gpu_memory_mib, "
                                "gpu_count_min, driver_version_min, cuda_version_min)"),
    ({"expected_from": "/nonexistent/model"}, "expected_from: '/nonexistent/model' is not a directory"),
    ({"expected_from": os.path.join(MODELS, "missing_include")}, "expected_from: cannot read "),
    ({"expected_from": "BROKEN_YAML_MODEL"}, "expected_from: "),
    ({"python": "/nonexistent/bin/python"}, "python: '/nonexistent/bin/python' is not an executable interpreter on this host"),
    ({"nvidia_smi_path": "/nonexistent/nvidia-smi"}, "nvidia_smi_path: '/nonexistent/nvidia-smi' is not an executable file"),
    ({"sysfs_root": "/nonexistent/sys"}, "sysfs_root: '/nonexistent/sys' is not a directory"),
    ({"packages": ["numpy>=1.0"]}, "packages: 'numpy>=1.0' is not a package name (put version rules in expected.packages)"),
    ({"expected": ["python"]}, "argument 'expected' is of type"),
])
def test_bad_input_fails_with_a_message_naming_the_parameter(run_module, host, tmp_path, args, message):
    if args.get("expected_from") == "BROKEN_YAML_MODEL":
        args = dict(args, expected_from=broken_yaml_model(tmp_path))
        message = "expected_from: %s/python_env.yaml is not valid YAML: " % args["expected_from"]
    result = run_module(host_facts, dict(host("no_gpu"), **args))
    assert result["failed"] and result.get("changed", False) is False
    assert result["msg"].startswith(message), result["msg"]
    assert "Traceback" not in result["msg"]


@pytest.mark.parametrize("missing, args, library, package", [
    ("packaging", {"expected": {"packages": {"numpy": ">=1.26"}}}, "packaging", "python3-packaging"),
    ("packaging", {"expected": {"python": "3.11"}}, "packaging", "python3-packaging"),
    ("packaging", {"expected_from": os.path.join(MODELS, "requirements_only")}, "packaging", "python3-packaging"),
    ("yaml", {"expected_from": os.path.join(MODELS, "conda_only")}, "PyYAML", "python3-yaml"),
])
def test_missing_library_fails_naming_it(run_module, host, monkeypatch, missing, args, library, package):
    monkeypatch.setattr(engine_environment, missing, None)
    result = run_module(host_facts, dict(host("no_gpu"), **args))
    assert result["failed"] and result.get("changed", False) is False
    assert result["msg"].startswith("Failed to import the required Python library (%s) on " % library), result["msg"]
    assert ". The Python library %s is required for " % library in result["msg"]
    assert result["msg"].endswith("(on Debian/Ubuntu install the package %s)." % package)
    assert "Traceback" not in result["msg"]


def test_facts_need_neither_packaging_nor_pyyaml(run_module, host, monkeypatch):
    monkeypatch.setattr(engine_environment, "packaging", None)
    monkeypatch.setattr(engine_environment, "yaml", None)
    result = run_module(host_facts, dict(host("four_gpus", "four_h100_mig"), packages=["numpy"],
                                         expected={"cuda_available": True, "gpu_count_min": 4}))
    assert not result["failed"], result.get("msg")
    assert result["gpu_count"] == 4 and result["packages"]["numpy"] and result["consistent"] is True
