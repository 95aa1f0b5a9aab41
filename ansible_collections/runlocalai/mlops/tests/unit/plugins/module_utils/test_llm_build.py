# -*- coding: utf-8 -*-
"""module_utils/llm/build.py: the NVIDIA driver a llama-server build needs (BUILD-INFO written by
scripts/build-llama-server.sh) and the refusal of a host whose driver is older."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import build

CPU_INFO = """source=llama-cpp-python==0.3.36 sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
variant=cpu
flag=-DCMAKE_BUILD_TYPE=Release
flag=-DBUILD_SHARED_LIBS=OFF
flag=-DGGML_NATIVE=OFF
"""

CUDA_INFO = """source=llama-cpp-python==0.3.36 sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
variant=cuda
cuda=12.4
min_driver=550
toolkit=debian-trixie nvidia-cuda-toolkit 12.4.131~12.4.1-2
cuda_archs=80;90
needs=libcuda.so.1 libcudart.so.12 libcublas.so.12
flag=-DCMAKE_BUILD_TYPE=Release
flag=-DGGML_CUDA=ON
flag=-DCMAKE_CUDA_ARCHITECTURES=80;90
"""


@pytest.mark.parametrize("cuda,driver", [
    ("12.4", 550), ("12.2", 535), ("11.8", 520), ("13.0", 580),
    ("12.4.131", 550), (12.4, 550), (" 12.2 ", 535), ("12.8", 570),
])
def test_min_driver_of_the_cuda_versions(cuda, driver):
    assert build.min_driver(cuda) == driver


@pytest.mark.parametrize("cuda", ["12.7", "14.0", "", None, "twelve", "12"])
def test_min_driver_is_none_for_what_the_table_does_not_know(cuda):
    assert build.min_driver(cuda) is None


def test_the_table_grows_with_the_cuda_version():
    ordered = sorted(build.MIN_DRIVER, key=lambda v: tuple(int(p) for p in v.split(".")))
    branches = [build.MIN_DRIVER[v] for v in ordered]
    assert branches == sorted(branches)
    # what the nvidia_cuda role installs: Debian 12 (535) runs CUDA 12.2 at most, Debian 13 (550) CUDA 12.4
    assert max(v for v in ordered if build.MIN_DRIVER[v] <= 535) == "12.2"
    assert max(v for v in ordered if build.MIN_DRIVER[v] <= 550) == "12.4"


def test_parse_build_info():
    info = build.parse_build_info(CUDA_INFO + "\n# a comment\nnot a pair\n")
    assert info["variant"] == "cuda" and info["cuda"] == "12.4" and info["min_driver"] == "550"
    assert info["cuda_archs"] == "80;90"
    assert info["flags"] == ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=80;90"]
    assert build.parse_build_info("") == {"flags": []}


@pytest.mark.parametrize("driver", ["550.163.01", "550", "580.159.04", "575.51.03"])
def test_a_new_enough_driver_runs_the_build(driver):
    assert build.check_driver(CUDA_INFO, driver) is None
    assert build.check_driver(CUDA_INFO, driver, "12.4", host="gpu1") is None


def test_an_older_driver_is_refused_naming_host_driver_and_needed_driver():
    message = build.check_driver(CUDA_INFO, "535.261.03", "12.2", host="gpu1")
    assert message is not None
    assert "gpu1" in message and "535.261.03" in message and "550 or newer" in message and "CUDA 12.4" in message
    assert "model_server_llama_server_src" in message and "nvidia_cuda" in message


def test_no_driver_reported_is_refused():
    message = build.check_driver(CUDA_INFO, None, host="gpu1")
    assert "gpu1 reports no NVIDIA driver" in message and "550" in message
    assert "reports no NVIDIA driver" in build.check_driver(CUDA_INFO, "")


def test_the_driver_cuda_version_is_checked_too():
    # a driver branch new enough by number but nvidia-smi says it runs an older CUDA (a table error, a site's declaration)
    message = build.check_driver(CUDA_INFO, "550.40.07", "12.3", host="gpu1")
    assert "runs CUDA 12.3 at most" in message and "CUDA 12.4 build" in message
    assert build.check_driver(CUDA_INFO, "580.159.04", "13.0") is None


@pytest.mark.parametrize("text", [None, "", CPU_INFO, "variant=cpu\n"])
def test_cpu_builds_and_builds_without_build_info_are_never_refused(text):
    assert build.check_driver(text, None) is None
    assert build.check_driver(text, "470.1") is None


def test_the_build_info_min_driver_wins_over_the_table():
    text = "variant=cuda\ncuda=12.4\nmin_driver=560\n"
    assert "560 or newer" in build.check_driver(text, "550.163.01")
    assert build.check_driver("variant=cuda\nmin_driver=535\n", "535.261.03") is None


def test_a_cuda_build_is_recognised_by_its_flag_alone():
    text = "flag=-DGGML_CUDA=ON\ncuda=12.2\n"
    assert build.check_driver(text, "535.1") is None
    assert "520" not in build.check_driver(text, "525.1") and "535 or newer" in build.check_driver(text, "525.1")


@pytest.mark.parametrize("text,words", [
    ("variant=cuda\n", "names neither its CUDA version"),
    ("variant=cuda\ncuda=12.7\n", "not in the table"),
    ("variant=cuda\nmin_driver=latest\n", "not a driver version"),
])
def test_a_cuda_build_that_cannot_say_its_driver_is_refused(text, words):
    message = build.check_driver(text, "580.1")
    assert words in message and "cannot tell which NVIDIA driver" in message


def test_command_line_for_the_build_script(tmp_path):
    script = build.__file__
    out = subprocess.run([sys.executable, script, "min-driver", "12.4"], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "550")
    out = subprocess.run([sys.executable, script, "min-driver", "12.7"], capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "not in MIN_DRIVER" in out.stderr
    info = tmp_path / "BUILD-INFO"
    info.write_text(CUDA_INFO)
    out = subprocess.run([sys.executable, script, "check", str(info), "535.261.03"], capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "550 or newer" in out.stdout
    out = subprocess.run([sys.executable, script, "check", str(info), "550.163.01"], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "ok")
    assert subprocess.run([sys.executable, script], capture_output=True, check=False).returncode == 2


def test_the_build_script_and_the_role_docs_agree_with_the_table():
    root = os.path.join(os.path.dirname(build.__file__), "..", "..", "..")
    with open(os.path.join(root, "roles", "nvidia_cuda", "vars", "Debian-13.yml")) as handle:
        trixie = handle.read()
    # Debian 13's distro source: driver 550 and CUDA 12.4, what a debian-trixie build needs and has
    assert 'driver_branch: "550"' in trixie and 'cuda_version: "12.4"' in trixie
    assert build.min_driver("12.4") == 550
