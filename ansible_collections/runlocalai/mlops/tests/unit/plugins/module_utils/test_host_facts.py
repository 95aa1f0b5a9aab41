# -*- coding: utf-8 -*-
"""module_utils/host (facts, gpu, environment) on recorded sysfs trees, nvidia-smi outputs, /proc files and MLflow model files."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MissingDependencyError
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import environment as hf_env
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import facts as hf
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import gpu as hf_gpu
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.host_facts import fake_nvidia_smi
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.host_facts.helpers import (
    MODELS, broken_yaml_model, build_sysfs, fixture, make_fake_smi, smi_answers)

SMI = "/usr/bin/nvidia-smi"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 7))


class FakeHost(object):
    """Runner and finder for Env: nvidia-smi answers from a scenario, ldconfig from text, the rest for real."""

    def __init__(self, scenario=None, ldconfig=""):
        self.answers = smi_answers(scenario) if scenario else {}
        self.ldconfig = ldconfig
        self.calls = []

    def which(self, name):
        if name == "nvidia-smi":
            return SMI if self.answers else None
        if name == "ldconfig":
            return "/sbin/ldconfig"
        return hf.find_executable(name)

    def run(self, argv, timeout=30):
        self.calls.append(list(argv))
        if argv[0] == SMI:
            text, rc = self.answers.get(fake_nvidia_smi.answer_key(list(argv[1:])), ("", 127))
            return rc, text, ""
        if argv[0] == "/sbin/ldconfig":
            return 0, self.ldconfig, ""
        return hf.run_command(argv, timeout)


def host_env(tmp_path, tree, scenario=None, drivers=None, proc="vm_2cpu", os_release="debian12", ldconfig="", cudart_globs=()):
    fake = FakeHost(scenario, ldconfig)
    sysfs = build_sysfs(tmp_path / "sys", tree, drivers) if tree else str(tmp_path)
    env = hf.Env(sysfs_root=sysfs, proc_root=fixture("proc", proc), os_release=fixture("os_release", os_release), runner=fake.run,
                 which=fake.which, cudart_globs=cudart_globs)
    return env, fake


def gather(tmp_path, tree, scenario=None, drivers=None, **kwargs):
    env, fake = host_env(tmp_path, tree, scenario, drivers)
    result = hf.gather(disk_paths=[str(tmp_path)], env=env, **kwargs)
    return result, fake


# -- PCI ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("00000000:3B:00.0", "0000:3b:00.0"),
    ("0000:3b:00.0", "0000:3b:00.0"),
    ("3B:00.0", "0000:3b:00.0"),
    ("00000001:C5:1F.7", "0001:c5:1f.7"),
    ("GPU 0", None),
    ("00000000:3B:00.9", None),
    ("", None),
])
def test_pci_addresses_are_normalised(text, expected):
    assert hf_gpu.normalize_pci_address(text) == expected


@pytest.mark.parametrize("tree, expected", [
    ("no_gpu", []),
    ("one_gpu", [("0000:01:00.0", "0x2684", "0x030000", "nvidia")]),  # its HD audio function and the Intel iGPU do not count
    ("four_gpus", [(a, "0x2330", "0x030200", "nvidia") for a in ("0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0")]),
    ("gpu_no_driver", [("0000:00:1e.0", "0x1eb8", "0x030200", None)]),
    ("non_nvidia_display", []),
    ("nvidia_audio_only", []),
    ("nouveau", [("0000:01:00.0", "0x1b80", "0x030000", "nouveau")]),
])
def test_gpus_come_from_pci_display_functions_of_vendor_10de(tmp_path, tree, expected):
    gpus, warnings = hf_gpu.read_pci_gpus(build_sysfs(tmp_path, tree))
    assert [(g["pci_address"], g["device_id"], g["class"], g["kernel_driver"]) for g in gpus] == expected
    assert all(g["vendor_id"] == "0x10de" for g in gpus) and warnings == []


def test_sysfs_without_pci_is_a_warning_not_a_failure(tmp_path):
    gpus, warnings = hf_gpu.read_pci_gpus(str(tmp_path))
    assert gpus == [] and "no PCI devices under" in warnings[0]


# -- nvidia-smi output ----------------------------------------------------------------------------

def smi_text(name):
    with open(fixture("nvidia_smi", name)) as handle:
        return handle.read()


def test_csv_of_four_h100_with_mig_enabled_on_one():
    gpus, warnings = hf_gpu.parse_smi_csv(smi_text("four_h100_mig.csv"))
    assert warnings == []
    assert [g["pci_address"] for g in gpus] == ["0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0"]
    assert [g["mig_mode"] for g in gpus] == ["enabled", "disabled", "disabled", "disabled"]
    assert gpus[0] == {"pci_address": "0000:18:00.0", "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-5d3a9c6e-1c4b-4a8e-9f7e-2b1c0d9e8f70",
                       "memory_total_mib": 81559, "memory_free_mib": 81002, "driver_version": "550.54.15",
                       "compute_capability": "9.0", "mig_mode": "enabled"}
    assert gpus[3]["memory_free_mib"] == 2047


def test_csv_na_and_not_supported_cells_are_null():
    gpus, warnings = hf_gpu.parse_smi_csv(smi_text("na_fields.csv"))
    assert warnings == []
    assert gpus[0]["name"] == "NVIDIA GeForce RTX 4090" and gpus[0]["driver_version"] == "550.54.15"
    for key in ("uuid", "memory_total_mib", "memory_free_mib", "compute_capability", "mig_mode"):
        assert gpus[0][key] is None, key


def test_csv_garbage_lines_are_skipped_with_warnings():
    gpus, warnings = hf_gpu.parse_smi_csv(smi_text("garbage_mixed.txt"))
    assert len(gpus) == 1 and gpus[0]["uuid"] == "GPU-0c8c2b1e-5b2a-7d43-9a61-3f2e9d6c1b40"
    assert gpus[0]["memory_free_mib"] is None  # "lots"
    assert any("line 1 has 1 fields, expected 8" in w for w in warnings)
    assert any("memory.free 'lots' is not a number" in w for w in warnings)
    assert any("line 3: 'GPU 1' is not a PCI bus id" in w for w in warnings)
    gpus, warnings = hf_gpu.parse_smi_csv(smi_text("garbage_only.txt"))
    assert gpus == [] and len(warnings) == 2


@pytest.mark.parametrize("name, expected", [
    ("version_550.txt", "12.4"), ("banner_470.txt", "11.4"), ("garbage_only.txt", None), ("driver_not_loaded.txt", None)])
def test_cuda_version_from_version_or_banner(name, expected):
    assert hf_gpu.parse_cuda_version(smi_text(name)) == expected


def test_cuda_version_from_q_output():
    assert hf_gpu.parse_cuda_version("Driver Version                            : 535.183.01\nCUDA Version                              : 12.2\n") == "12.2"


# -- gather: GPU scenarios ------------------------------------------------------------------------

def test_one_gpu_merged_with_nvidia_smi(tmp_path):
    result, _fake = gather(tmp_path, "one_gpu", "one_gpu")
    assert result["gpu_count"] == 1 and result["nvidia_smi"] == SMI
    assert result["gpus"] == [{
        "pci_address": "0000:01:00.0", "vendor_id": "0x10de", "device_id": "0x2684", "class": "0x030000", "kernel_driver": "nvidia",
        "name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-0c8c2b1e-5b2a-7d43-9a61-3f2e9d6c1b40", "memory_total_mib": 24564,
        "memory_free_mib": 23980, "driver_version": "550.54.15", "compute_capability": "8.9", "mig_mode": None}]
    assert result["nvidia_driver_version"] == "550.54.15" and result["cuda_version"] == "12.4"
    assert result["cuda_available"] is True and result["warnings"] == []
    assert result["consistent"] is True and result["mismatches"] == []


def test_four_h100_one_in_mig_mode(tmp_path):
    result, _fake = gather(tmp_path, "four_gpus", "four_h100_mig")
    assert result["gpu_count"] == 4  # the NVSwitch bridge and the BMC's VGA are not GPUs
    assert [g["mig_mode"] for g in result["gpus"]] == ["enabled", "disabled", "disabled", "disabled"]
    assert all(g["name"] == "NVIDIA H100 80GB HBM3" and g["compute_capability"] == "9.0" for g in result["gpus"])
    assert len(set(g["uuid"] for g in result["gpus"])) == 4


def test_gpu_without_driver_and_without_nvidia_smi(tmp_path):
    result, _fake = gather(tmp_path, "gpu_no_driver")
    assert result["gpu_count"] == 1 and result["gpus"][0]["kernel_driver"] is None and result["gpus"][0]["name"] is None
    assert result["nvidia_smi"] is None and result["nvidia_driver_version"] is None and result["cuda_available"] is False
    assert result["warnings"] == ["nvidia-smi not found: GPU details (name, memory, CUDA) are unknown; "
                                  "no NVIDIA driver bound to 0000:00:1e.0"]


def test_nvidia_smi_failing_leaves_pci_data_and_a_warning(tmp_path):
    result, fake = gather(tmp_path, "gpu_no_driver", "driver_not_loaded")
    assert result["gpu_count"] == 1 and result["gpus"][0]["device_id"] == "0x1eb8" and result["gpus"][0]["kernel_driver"] is None
    assert result["gpus"][0]["uuid"] is None and result["cuda_available"] is False and result["cuda_version"] is None
    assert result["warnings"] == ["nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                                  "driver. Make sure that the latest NVIDIA driver is installed and running.; GPUs are reported from "
                                  "PCI data only"]
    assert len([c for c in fake.calls if c[0] == SMI]) == 1  # no --version after a failed query


def test_driver_library_mismatch_takes_the_driver_version_from_the_kernel_module(tmp_path):
    result, _fake = gather(tmp_path, "one_gpu", "library_mismatch")
    assert result["nvidia_driver_version"] == "550.54.15"  # sysfs module/nvidia/version
    assert result["cuda_available"] is False and "Driver/library version mismatch" in result["warnings"][0]


def test_old_driver_without_compute_cap_is_asked_again_with_the_base_fields(tmp_path):
    result, fake = gather(tmp_path, "gpu_no_driver", "old_driver", drivers={"0000:00:1e.0": "nvidia"})
    gpu = result["gpus"][0]
    assert gpu["name"] == "Tesla T4" and gpu["memory_total_mib"] == 15109 and gpu["driver_version"] == "470.256.02"
    assert gpu["compute_capability"] is None and gpu["mig_mode"] is None
    assert result["cuda_version"] == "11.4"  # from the banner: this driver knows no --version
    smi_calls = [c[1:] for c in fake.calls if c[0] == SMI]
    assert "compute_cap" in smi_calls[0][0] and "compute_cap" not in smi_calls[1][0]
    assert smi_calls[2:] == [["--version"], []]
    assert result["warnings"] == []


def test_garbage_from_nvidia_smi_never_fails(tmp_path):
    result, _fake = gather(tmp_path, "one_gpu", "garbage_only")
    assert result["gpu_count"] == 1 and result["gpus"][0]["name"] is None and result["cuda_version"] is None
    assert result["cuda_available"] is False
    assert any("no GPU could be read from its output" in w for w in result["warnings"])
    result, _fake = gather(tmp_path / "b", "one_gpu", "garbage_mixed")
    assert result["gpus"][0]["uuid"] == "GPU-0c8c2b1e-5b2a-7d43-9a61-3f2e9d6c1b40" and result["gpus"][0]["memory_free_mib"] is None
    assert result["cuda_version"] is None and result["cuda_available"] is True


def test_gpu_seen_by_nvidia_smi_but_not_in_sysfs_is_counted_with_a_warning(tmp_path):
    result, _fake = gather(tmp_path, "no_gpu", "wsl")
    assert result["gpu_count"] == 1 and result["gpus"][0]["name"] == "NVIDIA GeForce RTX 3080"
    assert result["gpus"][0]["device_id"] is None and result["cuda_available"] is True
    assert result["warnings"] == ["nvidia-smi reports GPU 0000:01:00.0 that is not in sysfs PCI data; it is counted"]


@pytest.mark.parametrize("tree", ["no_gpu", "non_nvidia_display", "nvidia_audio_only"])
def test_hosts_without_nvidia_gpu(tmp_path, tree):
    result, _fake = gather(tmp_path, tree)
    assert result["gpu_count"] == 0 and result["gpus"] == [] and result["cuda_available"] is False
    assert result["nvidia_driver_version"] is None and result["warnings"] == []


def test_cuda_runtime_versions_from_ldconfig_and_library_dirs(tmp_path):
    lib = tmp_path / "usr" / "local" / "cuda-12.4" / "lib64"
    lib.mkdir(parents=True)
    (lib / "libcudart.so.12.4.127").write_text("")
    os.symlink("libcudart.so.12.4.127", str(lib / "libcudart.so.12"))
    deb = tmp_path / "usr" / "lib" / "x86_64-linux-gnu"
    deb.mkdir(parents=True)
    (deb / "libcudart.so.11.8.89").write_text("")
    os.symlink("libcudart.so.11.8.89", str(deb / "libcudart.so.11.0"))
    wheel = tmp_path / "opt" / "cuda-13.0"
    (wheel / "lib").mkdir(parents=True)
    (wheel / "lib" / "libcudart.so.13").write_text("")
    (wheel / "dist-info" / "nvidia_cuda_runtime-13.0.96.dist-info").mkdir(parents=True)
    ldconfig = ("3 libs found in cache `/etc/ld.so.cache'\n"
                "\tlibcudart.so.11.0 (libc6,x86-64) => %s/libcudart.so.11.0\n"
                "\tlibcudart.so.13 (libc6,x86-64) => %s/lib/libcudart.so.13\n"
                "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n" % (deb, wheel))
    env, _fake = host_env(tmp_path, "no_gpu", ldconfig=ldconfig, cudart_globs=(str(tmp_path / "usr/local/cuda*/lib64/libcudart.so*"),))
    assert hf_gpu.cuda_runtime_versions(env) == ["11.8.89", "12.4.127", "13.0.96"]


# -- CPU, memory, disks, OS -----------------------------------------------------------------------

def test_cpu_of_this_ci_vm_recorded():
    cpu = hf.cpu_facts(hf.Env(proc_root=fixture("proc", "vm_2cpu"), sysfs_root="/nonexistent"))
    assert cpu["model"] == "AMD EPYC" and cpu["cores"] == 2 and cpu["threads"] == 2
    assert isinstance(cpu["usable_threads"], int) and cpu["usable_threads"] >= 1


def test_cpu_dual_socket_counts_physical_cores_per_socket():
    cpu = hf.cpu_facts(hf.Env(proc_root=fixture("proc", "dual_socket"), sysfs_root="/nonexistent"))
    assert cpu == dict(cpu, model="Intel(R) Xeon(R) Platinum 8480+", cores=4, threads=8)


def test_cpu_arm_without_topology_in_cpuinfo_reads_sysfs(tmp_path):
    for n in range(4):
        topology = tmp_path / "devices" / "system" / "cpu" / ("cpu%d" % n) / "topology"
        topology.mkdir(parents=True)
        (topology / "core_id").write_text("%d\n" % n)
        (topology / "physical_package_id").write_text("0\n")
    cpu = hf.cpu_facts(hf.Env(proc_root=fixture("proc", "arm64"), sysfs_root=str(tmp_path)))
    assert cpu["cores"] == 4 and cpu["threads"] == 4 and cpu["model"]


def test_memory_from_meminfo_and_cgroup_limit(tmp_path):
    env = hf.Env(proc_root=fixture("proc", "vm_2cpu"), sysfs_root=str(tmp_path))
    assert hf.memory_facts(env) == {"total_mib": 24684092 // 1024, "available_mib": 19933756 // 1024, "cgroup_limit_mib": None}
    (tmp_path / "fs" / "cgroup").mkdir(parents=True)
    (tmp_path / "fs" / "cgroup" / "memory.max").write_text("4294967296\n")
    assert hf.memory_facts(env)["cgroup_limit_mib"] == 4096
    (tmp_path / "fs" / "cgroup" / "memory.max").write_text("max\n")
    assert hf.memory_facts(env)["cgroup_limit_mib"] is None
    env = hf.Env(proc_root=fixture("proc", "arm64"), sysfs_root=str(tmp_path))
    assert hf.memory_facts(env)["available_mib"] == 6012340 // 1024  # old kernels: MemFree


def test_disks_and_a_missing_path(tmp_path):
    disks = hf.disk_facts([str(tmp_path)])
    assert 0 < disks[str(tmp_path)]["free_mib"] <= disks[str(tmp_path)]["total_mib"]
    with pytest.raises(hf.HostFactsError, match=r"^disk_paths: '/nonexistent/data' does not exist$"):
        hf.disk_facts([str(tmp_path), "/nonexistent/data"])


@pytest.mark.parametrize("name, expected", [
    ("debian12", {"id": "debian", "version_id": "12", "codename": "bookworm", "family": "Debian", "name": "Debian GNU/Linux 12 (bookworm)"}),
    ("debian13", {"id": "debian", "version_id": "13", "codename": "trixie", "family": "Debian", "name": "Debian GNU/Linux 13 (trixie)"}),
    ("ubuntu2204", {"id": "ubuntu", "version_id": "22.04", "codename": "jammy", "family": "Debian", "name": "Ubuntu 22.04.4 LTS"}),
    ("rocky9", {"id": "rocky", "version_id": "9.4", "codename": None, "family": "RedHat", "name": "Rocky Linux 9.4 (Blue Onyx)"}),
])
def test_os_release(name, expected):
    assert hf.os_facts(hf.Env(os_release=fixture("os_release", name))) == (expected, [])


def test_missing_os_release_is_a_warning():
    info, warnings = hf.os_facts(hf.Env(os_release="/nonexistent/os-release"))
    assert info["id"] is None and warnings == ["/nonexistent/os-release not readable: OS facts are empty"]


# -- Python and packages --------------------------------------------------------------------------

def test_own_interpreter_packages_are_read_in_process():
    import numpy
    fake = FakeHost()
    info = hf.python_facts(None, ["numpy", "NumPy", "no-such-package-xyz"], hf.Env(runner=fake.run, which=fake.which))
    assert info["executable"] == sys.executable and info["version"].startswith("%d.%d." % sys.version_info[:2])
    assert info["packages"] == {"numpy": numpy.__version__, "NumPy": numpy.__version__, "no-such-package-xyz": None}
    assert fake.calls == []


def test_other_interpreter_is_run_with_the_probe(tmp_path):
    import numpy
    wrapper = tmp_path / "python"
    wrapper.write_text("#!/bin/sh\nexec %s \"$@\"\n" % sys.executable)
    wrapper.chmod(0o755)
    fake = FakeHost()
    info = hf.python_facts(str(wrapper), ["numpy", "scikit_learn"], hf.Env(runner=fake.run, which=fake.which))
    assert fake.calls and fake.calls[0][:2] == [str(wrapper), "-c"]
    assert info["packages"]["numpy"] == numpy.__version__ and info["packages"]["scikit_learn"]  # found under scikit-learn


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3")
def test_system_python3_by_name():
    info = hf.python_facts("python3", [], hf.Env(which=lambda name: "/usr/bin/python3"))
    assert info["executable"].startswith("/usr/bin/python3") and info["version"].count(".") == 2


def test_bad_interpreters(tmp_path):
    with pytest.raises(hf.HostFactsError, match=r"^python: '/nonexistent/python' is not an executable interpreter on this host$"):
        hf.python_facts("/nonexistent/python", [], hf.Env())
    liar = tmp_path / "liar"
    liar.write_text("#!/bin/sh\necho hello; echo broken >&2; exit 3\n")
    liar.chmod(0o755)
    with pytest.raises(hf.HostFactsError, match=r"^python: running .*/liar to read its version and packages failed \(exit 3\): broken$"):
        hf.python_facts(str(liar), [], hf.Env())


# -- versions -------------------------------------------------------------------------------------

CASES = [
    ("1.26.4", "==1.26.4", True), ("1.26.4", "==1.26", False), ("1.26.0", "==1.26", True), ("1.26.4", "==1.26.*", True),
    ("1.27.0", "==1.26.*", False), ("2.3.1+cu121", "==2.3.1", True), ("2.3.1+cu121", "==2.3.1+cu118", False),
    ("2.3.1+cu121", "==2.3.1+cu121", True), ("2.3.1", "!=2.3.1", False), ("2.3.2", "!=2.3.1", True),
    ("2.0.0", ">=1.26,<2", False), ("1.26.4", ">=1.26,<2", True), ("2.0.0rc1", "<2", False), ("2.0.0rc1", "<2rc2", True),
    ("1.7.post1", ">1.7", False), ("1.7.1", ">1.7", True), ("1.7+local", ">1.7", False), ("1.7.post1.dev1", ">1.7", False),
    ("4.44.2", "~=4.44.0", True), ("4.45.0", "~=4.44.0", False), ("4.45.0", "~=4.44", True), ("5.0", "~=4.44", False),
    ("1.0.dev3", "<1.0", False), ("0.9", "<1.0", True), ("1.0a1", ">=1.0.dev1", True), ("1.0", "<=1.0", True), ("1.0.post2", "<=1.0", False),
    ("3.11.2", "==3.11.*", True), ("3.12.0", "==3.11.*", False), ("3.13.5", ">=3.10", True), ("1!1.0", ">=2.0", True),
    ("1.0", "===1.0", True), ("1.0.0", "===1.0", False), ("2.0", ">1.0,!=2.0", False), ("1.2.3", "==1.2.3.0", True),
]


@pytest.mark.parametrize("version, spec, expected", CASES)
def test_version_matching_follows_pep_440(version, spec, expected):
    assert hf_env.version_matches(version, spec) is expected


def test_non_pep440_installed_version():
    assert hf_env.version_matches("1.0-custom build", ">=1.0") is None
    assert hf_env.version_matches("weird_1", "===weird_1") is True


@pytest.mark.parametrize("spec", ["=>1.0", ">=1.0.*", "~=1", "==", "1.0", "", "== banana", ">=1.0;python_version<'3'"])
def test_bad_specifiers(spec):
    with pytest.raises(ValueError):
        hf_env.parse_specifier(spec)
    with pytest.raises(hf.HostFactsError, match=r"^expected.packages.x: .* is not a valid version specifier"):
        hf_env.normalize_spec(spec if spec != "1.0" else "1.0 1", "expected.packages.x")


def test_bad_specifier_messages_name_the_clause():
    with pytest.raises(ValueError, match=r"^'>=2.0.\*': .\* is only allowed with == and !=$"):
        hf_env.parse_specifier(">=1.0, >=2.0.*")
    with pytest.raises(ValueError, match=r"^'~=1': ~= needs at least two release numbers$"):
        hf_env.parse_specifier("~=1")
    with pytest.raises(ValueError, match=r"^'three': not one of ==, !=, >=, <=, >, <, ~=, === followed by a PEP 440 version$"):
        hf_env.parse_specifier("three")


# -- without packaging or PyYAML on the host ---------------------------------------------------------

@pytest.fixture
def no_packaging(monkeypatch):
    monkeypatch.setattr(hf_env, "packaging", None)


@pytest.fixture
def no_yaml(monkeypatch):
    monkeypatch.setattr(hf_env, "yaml", None)


@pytest.mark.parametrize("call", [
    lambda: hf_env.version_matches("1.0", ">=1"),
    lambda: hf_env.normalize_expected({"python": "3.11"}),
    lambda: hf_env.normalize_expected({"packages": {"numpy": ">=1.26"}}),
    lambda: hf_env.normalize_expected({"packages": {"mlflow": None}}),
    lambda: hf_env.parse_requirement("numpy==1.26.4"),
    lambda: hf_env.merge_expected({"packages": {"NumPy": "==1.26.4"}}, {"packages": {"numpy": None}}),
    lambda: hf_env.load_model_environment(os.path.join(MODELS, "requirements_only")),
])
def test_missing_packaging_on_a_path_that_needs_it(no_packaging, call):
    with pytest.raises(MissingDependencyError) as exc:
        call()
    assert exc.value.library == "packaging"
    assert str(exc.value).startswith("the Python library packaging is required for ")
    assert str(exc.value).endswith("(on Debian/Ubuntu install the package python3-packaging)")


def test_missing_pyyaml_when_a_model_yaml_file_is_read(no_yaml):
    with pytest.raises(MissingDependencyError) as exc:
        hf_env.load_model_environment(os.path.join(MODELS, "torch_inline"))
    assert exc.value.library == "PyYAML" and "python3-yaml" in str(exc.value)
    # requirements.txt and MLmodel are not YAML files read through PyYAML
    assert hf_env.load_model_environment(os.path.join(MODELS, "mlmodel_only"))[0] == {"python": "3.12"}


def test_missing_packaging_through_gather(tmp_path, no_packaging):
    with pytest.raises(MissingDependencyError, match="python3-packaging"):
        gather(tmp_path, "one_gpu", "one_gpu", expected={"packages": {"numpy": ">=1"}})


def test_facts_without_packaging_and_pyyaml(tmp_path, no_packaging, no_yaml):
    """Plain fact gathering, and expectations that name no version, need neither library."""
    result, _fake = gather(tmp_path, "one_gpu", "one_gpu", packages=["numpy"], expected={"cuda_available": True, "gpu_count_min": 1})
    assert result["gpu_count"] == 1 and result["packages"]["numpy"] and result["consistent"] is True


def test_importing_without_packaging_and_pyyaml_installed(tmp_path):
    """On a host without python3-packaging / python3-yaml the files import and gather facts."""
    code = ("import sys; sys.modules['packaging'] = None; sys.modules['yaml'] = None\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from ansible_collections.runlocalai.mlops.plugins.module_utils.host import environment, facts\n"
            "assert environment.packaging is None and environment.yaml is None\n"
            "env = facts.Env(sysfs_root=sys.argv[2], which=lambda name: None)\n"
            "result = facts.gather(disk_paths=[], packages=['pip'], expected={'gpu_count_min': 0}, env=env)\n"
            "print('gpus %d consistent %s' % (result['gpu_count'], result['consistent']))\n")
    proc = subprocess.run([sys.executable, "-c", code, REPO_ROOT, build_sysfs(tmp_path / "sys", "one_gpu")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "gpus 1 consistent True", proc.stdout


# -- expected -------------------------------------------------------------------------------------

def test_expected_is_normalised():
    out = hf_env.normalize_expected({"python": "3.11", "packages": {"numpy": "1.26.4", "torch": ">=2.3,<2.4", "mlflow": None},
                                     "cuda_available": "yes", "min_gpu_memory_mib": "16000", "gpu_count_min": 2,
                                     "driver_version_min": 535, "cuda_version_min": "12.2"})
    assert out == {"python": "==3.11.*", "packages": {"numpy": "==1.26.4", "torch": ">=2.3,<2.4", "mlflow": None},
                   "cuda_available": True, "min_gpu_memory_mib": 16000, "gpu_count_min": 2, "driver_version_min": "535",
                   "cuda_version_min": "12.2"}
    assert hf_env.normalize_expected({"python": ">=3.10,<3.13"})["python"] == ">=3.10,<3.13"
    assert hf_env.normalize_expected({"python": "3.11.4"})["python"] == "==3.11.4"


@pytest.mark.parametrize("expected, message", [
    ("python=3.11", "expected: must be a mapping with keys among python, packages, cuda_available, min_gpu_memory_mib, "
                    "gpu_count_min, driver_version_min, cuda_version_min, got str"),
    ({"pyhton": "3.11"}, "expected: unknown key(s) pyhton (allowed: python, packages, "),
    ({"python": 3.10}, "expected.python: got the number 3.1; quote versions so YAML keeps them as text (e.g. '3.10')"),
    ({"python": "three"}, "expected.python: 'three' is not a valid version specifier"),
    ({"packages": ["numpy==1.0"]}, "expected.packages: must be a mapping of package name to version specifier (or null for any "
                                   "version), got list"),
    ({"packages": {"numpy": "=>1.0"}}, "expected.packages.numpy: '=>1.0' is not a valid version specifier"),
    ({"packages": {"numpy": 1.26}}, "expected.packages.numpy: got the number 1.26; quote versions"),
    ({"packages": {"num py": "1"}}, "expected.packages: 'num py' is not a package name"),
    ({"cuda_available": "maybe"}, "expected.cuda_available: expected true or false, got 'maybe'"),
    ({"min_gpu_memory_mib": -1}, "expected.min_gpu_memory_mib: expected a whole number >= 0, got -1"),
    ({"gpu_count_min": True}, "expected.gpu_count_min: expected a whole number, got True"),
    ({"driver_version_min": 550.40}, "expected.driver_version_min: expected a version string such as '535' or '12.2', got 550.4 (quote it)"),
    ({"cuda_version_min": "twelve"}, "expected.cuda_version_min: 'twelve' is not a version such as '535' or '12.2'"),
])
def test_malformed_expected(expected, message):
    with pytest.raises(hf.HostFactsError) as exc:
        hf_env.normalize_expected(expected)
    assert str(exc.value).startswith(message)


# -- expected_from: MLflow model files ------------------------------------------------------------

def model(name):
    return os.path.join(MODELS, name)


def test_mlflow_written_model_files():
    expected, files, warnings = hf_env.load_model_environment(model("mlflow_sklearn"))
    assert expected == {"python": "3.11", "packages": {
        "mlflow": "==3.17.2", "numpy": "==2.4.6", "pandas": "==3.1.1", "pytest": "==9.2.0", "rich": "==15.0.0",
        "scikit-learn": "==1.9.1", "scipy": "==1.17.1", "skops": "==0.16.0"}}
    assert files == [model("mlflow_sklearn/python_env.yaml"), model("mlflow_sklearn/requirements.txt")] and warnings == []


def test_conda_only_model():
    expected, files, warnings = hf_env.load_model_environment(model("conda_only"))
    assert expected == {"python": "3.10",
                        "packages": {"mlflow": "==2.17.2", "cloudpickle": "==3.1.0", "numpy": "==1.26.4", "scikit-learn": "==1.5.2"}}
    assert files == [model("conda_only/conda.yaml")] and warnings == []


def test_requirements_only_skips_options_urls_and_markers_with_warnings():
    expected, files, warnings = hf_env.load_model_environment(model("requirements_only"))
    assert expected == {"packages": {"cloudpickle": "==3.1.0", "numpy": "==1.26.4", "Scikit_Learn": "==1.5.2", "pandas": ">=2.0,<3",
                                     "uvicorn": "==0.30.1", "requests": None, "torch": "==2.3.1+cu121"}}
    assert files == [model("requirements_only/base.txt"), model("requirements_only/requirements.txt")]
    assert [w.split(": ", 2)[2].split(",")[0] for w in warnings] == [
        "option ignored: --index-url https://pypi.internal.example/simple",
        "option ignored: --extra-index-url https://wheels.internal.example/cu121",
        "environment marker not evaluated", "URL or path requirement", "URL or path requirement", "URL or path requirement",
        "option ignored: -e ./src"]


def test_inline_dependencies_and_mlmodel_fallback():
    assert hf_env.load_model_environment(model("torch_inline"))[0] == {
        "python": "3.11", "packages": {"torch": "==2.3.1", "numpy": ">=1.26,<2", "transformers": "~=4.44.0"}}
    assert hf_env.load_model_environment(model("mlmodel_only"))[:2] == ({"python": "3.12"}, [model("mlmodel_only/MLmodel")])


def test_unquoted_python_version_in_a_model_file_is_refused(tmp_path):
    """YAML reads `python: 3.10` as the number 3.1: refused rather than compared with the wrong version."""
    (tmp_path / "python_env.yaml").write_text("python: 3.10\ndependencies:\n- numpy==1.26.4\n")
    with pytest.raises(hf.HostFactsError, match=r"python_env.yaml: python: got the number 3.1; quote the version"):
        hf_env.load_model_environment(str(tmp_path))


def test_bad_model_directories(tmp_path):
    cases = [
        ("/nonexistent/model", r"^expected_from: '/nonexistent/model' is not a directory$"),
        (model("mlflow_sklearn/MLmodel"), r"is not a directory \(give the model's directory, the one holding MLmodel\)$"),
        ("models:/churn/3", r"^expected_from: 'models:/churn/3' is a URI; give a local directory"),
        (str(tmp_path), r"^expected_from: '.*' holds none of MLmodel, python_env.yaml, requirements.txt, conda.yaml$"),
        (broken_yaml_model(tmp_path), r"^expected_from: .*/bad_yaml/python_env.yaml is not valid YAML: "),
        (model("missing_include"), r"^expected_from: cannot read .*/missing_include/requirements.txt: No such file or directory$"),
    ]
    for directory, message in cases:
        with pytest.raises(hf.HostFactsError, match=message):
            hf_env.load_model_environment(directory)
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "requirements.txt").write_bytes(b"numpy==1.0\n\xff\xfe\n")
    with pytest.raises(hf.HostFactsError, match=r"^expected_from: .*/binary/requirements.txt is not UTF-8 text$"):
        hf_env.load_model_environment(str(binary))
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "python_env.yaml").write_text("python: 3.11.2\ndependencies: numpy\n")
    with pytest.raises(hf.HostFactsError, match=r"python_env.yaml: dependencies must be a list$"):
        hf_env.load_model_environment(str(deps))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads everything")
def test_unreadable_model_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "requirements.txt").write_text("numpy\n")
    locked.chmod(0)
    try:
        with pytest.raises(hf.HostFactsError, match=r"^expected_from: '.*/locked' is not readable$"):
            hf_env.load_model_environment(str(locked))
    finally:
        locked.chmod(0o755)


def test_unreadable_model_file(tmp_path):
    """A model file that cannot be opened (here a directory where the file should be; also what root gets)."""
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "requirements.txt").mkdir()  # isfile() is false: skipped; python_env.yaml -r to it cannot be read
    (tmp_path / "python_env.yaml").write_text("python: 3.11.2\ndependencies:\n- -r requirements.txt\n")
    with pytest.raises(hf.HostFactsError, match=r"^expected_from: cannot read .*/requirements.txt: Is a directory$"):
        hf_env.load_model_environment(str(tmp_path))


# -- comparison -----------------------------------------------------------------------------------

def test_every_mismatch_is_reported(tmp_path):
    import numpy
    result, _fake = gather(tmp_path, "one_gpu", "one_gpu", packages=["numpy"], expected_from=model("mlflow_sklearn"), expected={
        "python": "2.7", "packages": {"NumPy": "<1", "no-such-package-xyz": None, "Scikit_Learn": None},
        "cuda_available": False, "min_gpu_memory_mib": 40000, "gpu_count_min": 2, "driver_version_min": "555",
        "cuda_version_min": "12.6"})
    assert result["consistent"] is False
    items = dict((m["item"], m) for m in result["mismatches"])
    assert items["python"]["message"] == "python: expected 2.7 (major.minor), found %s (%s)" % (result["python"]["version"], sys.executable)
    # inline NumPy replaced the model's numpy==2.4.6; scikit-learn from the model was replaced by Scikit_Learn (any version)
    assert "packages.numpy" not in items and "packages.scikit-learn" not in items
    assert items["packages.NumPy"]["message"] == "packages.NumPy: expected <1, found %s" % numpy.__version__
    assert items["packages.no-such-package-xyz"]["message"] == "packages.no-such-package-xyz: expected installed, not installed"
    assert items["cuda_available"]["message"] == "cuda_available: expected false, an NVIDIA GPU with a working driver is present"
    assert items["min_gpu_memory_mib"]["message"] == ("min_gpu_memory_mib: expected 2 GPU(s) with at least 40000 MiB, found 0; "
                                                      "GPU memory: 24564 MiB")
    assert items["gpu_count_min"]["message"] == "gpu_count_min: expected at least 2 NVIDIA GPU(s), found 1"
    assert items["driver_version_min"]["message"] == "driver_version_min: expected NVIDIA driver >= 555, found 550.54.15"
    assert items["cuda_version_min"]["message"] == ("cuda_version_min: expected CUDA version supported by the driver >= 12.6, "
                                                    "found 12.4")
    assert result["expected"]["packages"]["Scikit_Learn"] is None and result["expected_files"][0].endswith("python_env.yaml")
    for mismatch in result["mismatches"]:
        assert set(mismatch) == {"item", "expected", "actual", "message"}
    assert "no-such-package-xyz" in result["packages"] and result["packages"]["numpy"] == numpy.__version__


def test_gpu_expectations_without_nvidia_smi(tmp_path):
    result, _fake = gather(tmp_path, "gpu_no_driver", expected={"cuda_available": True, "min_gpu_memory_mib": 8000,
                                                                "driver_version_min": "535"})
    messages = [m["message"] for m in result["mismatches"]]
    assert messages == ["cuda_available: expected true, 1 NVIDIA GPU(s) but no NVIDIA driver answers (kernel driver: None)",
                        "min_gpu_memory_mib: expected 1 GPU(s) with at least 8000 MiB, found 0; GPU memory unknown "
                        "(nvidia-smi did not answer)",
                        "driver_version_min: expected NVIDIA driver >= 535, none found"]
    result, _fake = gather(tmp_path / "b", "no_gpu", expected={"cuda_available": True, "min_gpu_memory_mib": 8000})
    assert [m["message"] for m in result["mismatches"]] == [
        "cuda_available: expected true, no NVIDIA GPU found",
        "min_gpu_memory_mib: expected 1 GPU(s) with at least 8000 MiB, found 0; no NVIDIA GPU found"]


def test_matching_host_is_consistent(tmp_path):
    import numpy
    result, _fake = gather(tmp_path, "four_gpus", "four_h100_mig", expected={
        "python": "%d.%d" % sys.version_info[:2], "packages": {"numpy": numpy.__version__}, "cuda_available": True,
        "min_gpu_memory_mib": 80000, "gpu_count_min": 4, "driver_version_min": "535", "cuda_version_min": "12.4"})
    assert result["consistent"] is True and result["mismatches"] == []


def test_bad_input_is_refused_before_anything_is_read(tmp_path):
    env, fake = host_env(tmp_path, "one_gpu", "one_gpu")
    with pytest.raises(hf.HostFactsError, match=r"^packages: 'numpy>=1' is not a package name"):
        hf.gather(packages=["numpy>=1"], env=env)
    with pytest.raises(hf.HostFactsError, match=r"^nvidia_smi_path: '/nonexistent/nvidia-smi' is not an executable file$"):
        hf.gather(nvidia_smi_path="/nonexistent/nvidia-smi", env=env)
    with pytest.raises(hf.HostFactsError, match=r"^sysfs_root: '/nonexistent/sys' is not a directory$"):
        hf.gather(env=hf.Env(sysfs_root="/nonexistent/sys"))
    with pytest.raises(hf.HostFactsError, match=r"^disk_paths: '/nonexistent' does not exist$"):
        hf.gather(disk_paths=["/", "/nonexistent"], env=env)
    with pytest.raises(hf.HostFactsError, match=r"^python: '/nonexistent/python' is not an executable interpreter on this host$"):
        hf.gather(python="/nonexistent/python", env=env)
    assert fake.calls == []
    assert hf.gather(packages=["[numpy", " scipy]"], disk_paths=[], env=env)["packages"].keys() == {"numpy", "scipy"}


def test_real_nvidia_smi_executable_through_the_default_runner(tmp_path):
    smi = make_fake_smi(tmp_path, "four_h100_mig")
    result = hf.gather(disk_paths=[], nvidia_smi_path=smi, env=hf.Env(sysfs_root=build_sysfs(tmp_path / "sys", "four_gpus")))
    assert result["gpu_count"] == 4 and result["cuda_version"] == "12.4" and result["nvidia_smi"] == smi
    assert result["gpus"][0]["mig_mode"] == "enabled"


def test_run_command_failures_are_results_not_exceptions(tmp_path):
    assert hf.run_command(["/nonexistent/tool"])[0] == 127
    rc, _out, err = hf.run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert rc == 124 and "timed out" in err


# -- the GPU check script (tests/gpu/check_host.sh) on recorded answers ----------------------------

@pytest.mark.parametrize("scenario, rc, text", [
    ("four_h100_mig", 0, "result: all fields agree"),
    ("four_h100_mig_disagree", 1, "result: 4 difference(s)"),
])
def test_check_host_script(tmp_path, scenario, rc, text):
    smi = make_fake_smi(tmp_path, scenario)
    sysfs = build_sysfs(tmp_path / "sys", "four_gpus")
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run([os.path.join(REPO_ROOT, "tests", "gpu", "check_host.sh"), "--nvidia-smi", smi, "--sysfs-root", sysfs,
                           "--no-ansible"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == rc, proc.stdout
    assert text in proc.stdout
    assert "0000:18:00.0" in proc.stdout and "module run through ansible: no" in proc.stdout
    if rc:
        lines = [line for line in proc.stdout.splitlines() if line.rstrip().endswith("DIFF")]
        assert [line.split()[0:4] for line in lines] == [
            ["0000:18:00.0", "memory_total_mib", "81559", "81920"],
            ["0000:5d:00.0", "uuid", "GPU-c0ffee00-1234-4abc-8def-0123456789ab", "GPU-c0ffee00-1234-4abc-8def-0123456789ac"],
            # the GPU telemetry textfile, by the XML's uuids: the same two disagreements
            ["0000:18:00.0", "telemetry", "memory_total_mib", "81559"],
            ["0000:5d:00.0", "telemetry", "memory_total_mib", "-"]]
    else:
        assert re.search(r"^telemetry mlops_gpu_smi_up +1.0 +1.0 +ok$", proc.stdout, re.MULTILINE), proc.stdout
        assert re.search(r"^0000:5d:00.0 telemetry memory_total_mib +81559 +81559 +ok$", proc.stdout, re.MULTILINE), proc.stdout
        assert "gpu telemetry textfile checked: yes" in proc.stdout


def test_check_host_script_without_nvidia_smi(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "mktemp", "cat", "rm", "dirname"):
        os.symlink(shutil.which(tool), str(tools / tool))
    env = dict(os.environ, PYTHON=sys.executable, PATH=str(tools))  # a PATH without nvidia-smi
    proc = subprocess.run([str(tools / "bash"), os.path.join(REPO_ROOT, "tests", "gpu", "check_host.sh"), "--no-ansible"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2 and "nvidia-smi not found" in proc.stdout


@pytest.mark.skipif(shutil.which("ansible") is None, reason="ansible not on PATH")
def test_check_host_script_runs_the_module_through_ansible(tmp_path):
    smi = make_fake_smi(tmp_path, "four_h100_mig")
    sysfs = build_sysfs(tmp_path / "sys", "four_gpus")
    proc = subprocess.run([os.path.join(REPO_ROOT, "tests", "gpu", "check_host.sh"), "--nvidia-smi", smi, "--sysfs-root", sysfs],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          env=dict(os.environ, PYTHON=sys.executable), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout
    assert re.search(r"^module gpus == engine gpus +True +True +ok$", proc.stdout, re.MULTILINE), proc.stdout
    assert "module run through ansible: yes" in proc.stdout
