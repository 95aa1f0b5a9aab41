# -*- coding: utf-8 -*-
"""Filter runlocalai.mlops.llama_build_refusal: the model_server role's driver check of a llama-server
CUDA build against the driver host_facts reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.filter import llama_build_refusal as plugin

CUDA_INFO = "variant=cuda\ncuda=12.4\nmin_driver=550\nflag=-DGGML_CUDA=ON\n"


def facts(driver, cuda=None):
    return {"gpu_count": 1, "nvidia_driver_version": driver, "cuda_version": cuda, "gpus": []}


def test_registered_under_its_name():
    assert plugin.FilterModule().filters() == {"llama_build_refusal": plugin.llama_build_refusal}


def test_refuses_an_old_driver_naming_host_driver_and_needed_driver():
    message = plugin.llama_build_refusal(CUDA_INFO, facts("535.261.03", "12.2"), "gpu1")
    assert "gpu1" in message and "535.261.03" in message and "550 or newer" in message


def test_a_new_enough_driver_gives_an_empty_string():
    assert plugin.llama_build_refusal(CUDA_INFO, facts("550.163.01", "12.4"), "gpu1") == ""
    assert plugin.llama_build_refusal(CUDA_INFO, "580.159.04", "gpu1") == ""


def test_a_host_without_driver_is_refused():
    assert "reports no NVIDIA driver" in plugin.llama_build_refusal(CUDA_INFO, facts(None), "cpu1")
    assert "reports no NVIDIA driver" in plugin.llama_build_refusal(CUDA_INFO, None, "cpu1")


@pytest.mark.parametrize("text", [None, "", "variant=cpu\nflag=-DGGML_NATIVE=OFF\n"])
def test_cpu_builds_and_no_build_info_pass(text):
    assert plugin.llama_build_refusal(text, facts(None), "cpu1") == ""


@pytest.mark.parametrize("info,host_facts", [(["variant=cuda"], facts("550")), (CUDA_INFO, ["550"])])
def test_bad_input_fails_templating(info, host_facts):
    with pytest.raises(AnsibleFilterError, match="llama_build_refusal"):
        plugin.llama_build_refusal(info, host_facts)
