# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: llama_build_refusal
short_description: Why a llama-server CUDA build cannot run with a host's NVIDIA driver (empty when it can)
version_added: "0.2.0"
description:
  - Reads the C(BUILD-INFO) of a llama-server build (written by C(scripts/build-llama-server.sh) next to the binary;
    a CUDA build records C(cuda=12.4) and C(min_driver=550)) and compares the driver the build needs with the host's
    driver as M(runlocalai.mlops.host_facts) reports it (C(nvidia_driver_version), and C(cuda_version), the highest
    CUDA the driver runs).
  - Returns an empty string when the build runs there, else a message naming the host, its driver and the driver
    the build needs. A CPU build, and a build without C(BUILD-INFO) (an empty O(_input)), are never refused.
  - The model_server role uses it before it installs llama-server for an entry with C(device=cuda).
  - The logic and the table of CUDA versions and drivers are C(module_utils/llm/build.py).
options:
  _input:
    description: The text of C(BUILD-INFO); empty or null when the build has none.
    type: str
    required: true
  host_facts:
    description:
      - The result of M(runlocalai.mlops.host_facts) (its C(nvidia_driver_version) and C(cuda_version) are read),
        or the driver version alone as a string (C(550.163.01)).
    type: raw
    required: true
  host:
    description: The host's name, for the message.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Refuse a CUDA 12.4 build on a driver 535 host
  ansible.builtin.fail:
    msg: "{{ __refusal }}"
  vars:
    __refusal: "{{ lookup('ansible.builtin.file', 'llama-server-cuda/BUILD-INFO')
                   | runlocalai.mlops.llama_build_refusal(host_facts_result, inventory_hostname) }}"
  when: __refusal | length > 0
"""

RETURN = r"""
_value:
  description: The refusal, or an empty string when the build runs with this driver.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.runlocalai.mlops.plugins.module_utils.llm.build import check_driver


def llama_build_refusal(build_info, host_facts, host=""):
    if build_info is not None and not isinstance(build_info, (str, bytes)):
        raise AnsibleFilterError("llama_build_refusal: the input must be the text of BUILD-INFO, got %s" % type(build_info).__name__)
    if isinstance(host_facts, dict):
        driver, cuda = host_facts.get("nvidia_driver_version"), host_facts.get("cuda_version")
    elif host_facts is None or isinstance(host_facts, (str, bytes, int, float)):
        driver, cuda = (to_text(host_facts) if host_facts not in (None, "") else None), None
    else:
        raise AnsibleFilterError("llama_build_refusal: host_facts must be the result of host_facts or a driver version, "
                                 "got %s" % type(host_facts).__name__)
    return check_driver(to_text(build_info or ""), driver, cuda, to_text(host or "") or None) or ""


class FilterModule(object):
    def filters(self):
        return {"llama_build_refusal": llama_build_refusal}
