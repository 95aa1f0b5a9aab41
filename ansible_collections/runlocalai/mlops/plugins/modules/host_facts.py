#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_facts
short_description: Hardware and environment facts of an ML host, and the training-vs-serving consistency check
version_added: "0.1.0"
description:
  - Reports NVIDIA GPUs from PCI data in sysfs (vendor 0x10de, display/3D class), so they are found before any driver
    is installed; when C(nvidia-smi) answers, adds per GPU its name, UUID, memory, driver version, compute capability
    and MIG mode, and the CUDA version the driver supports. Also CUDA runtime libraries, CPU, memory, disk space,
    OS, kernel, Python and the versions of named packages.
  - With O(expected) and/or O(expected_from) (a model's MLflow environment files), compares the host with the
    environment the model was trained in and returns every mismatch; fails when O(fail_on_mismatch=true).
  - Reads only; never changes anything (RV(ignore:changed) is always false).
author:
  - runlocalai contributors (@runlocalai)
requirements:
  - Linux with sysfs (gathering facts needs nothing else)
  - C(packaging) in the Python that runs the module, for the C(python) and C(packages) keys of O(expected) and for
    O(expected_from) (Debian/Ubuntu package C(python3-packaging))
  - PyYAML in the Python that runs the module, for O(expected_from) with C(python_env.yaml) or C(conda.yaml)
    (Debian/Ubuntu package C(python3-yaml); the role runlocalai.mlops.runtime installs both)
attributes:
  check_mode:
    description: Gathers and compares exactly as in a normal run; nothing is ever written.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
options:
  disk_paths:
    description: Paths whose file system free and total space to report. A path that does not exist fails the task.
    type: list
    elements: path
    default: ["/"]
  packages:
    description: Python distribution names whose installed versions to report (names compared per PEP 503).
    type: list
    elements: str
    default: []
  python:
    description:
      - Interpreter whose version and packages to report (a path, or a command name looked up on PATH), for
        example the model service's virtualenv C(/opt/models/churn/venv/bin/python).
      - Default is the interpreter running the module.
    type: str
  expected:
    description:
      - The expected environment. Keys (all optional)
      - C(python) - V(3.11) matches any 3.11.x (major.minor); a specifier such as V(>=3.10,<3.13) is applied as is.
      - C(packages) - mapping of name to a specifier (V(==1.5.2), V(>=2.0,<3)), a plain version (V(1.5.2) means
        V(==1.5.2)) or null (installed, any version). PEP 440 rules (a local label such as C(+cu121) is ignored
        unless the specifier names one).
      - C(cuda_available) - whether an NVIDIA GPU with a working driver must be present (true) or absent (false).
      - C(min_gpu_memory_mib) - at least one GPU (or C(gpu_count_min) GPUs) with this much memory in total.
      - C(gpu_count_min) - least number of NVIDIA GPUs.
      - C(driver_version_min) - least NVIDIA driver version, e.g. V(535) or V(550.54).
      - C(cuda_version_min) - least CUDA version the driver supports, e.g. V(12.2).
      - Quote versions in YAML (V('3.10')); a number is refused because YAML would read 3.10 as 3.1.
      - Entries here override those read from O(expected_from), per key and per package.
    type: dict
  expected_from:
    description:
      - Local directory holding a model's MLflow files (C(MLmodel), C(python_env.yaml), C(requirements.txt),
        C(conda.yaml)), e.g. downloaded model artifacts. Python comes from C(python_env.yaml) (else C(conda.yaml),
        else C(MLmodel)) and is matched on major.minor; packages from the C(python_env.yaml) dependencies (following
        C(-r requirements.txt)), else C(requirements.txt), else the pip section of C(conda.yaml).
      - Options, URLs, paths and requirements with environment markers are skipped with a warning.
    type: path
  fail_on_mismatch:
    description: Fail the task when there is any mismatch; the message lists all of them.
    type: bool
    default: false
  sysfs_root:
    description: Where sysfs is mounted (for tests and chroots).
    type: path
    default: /sys
  nvidia_smi_path:
    description: The nvidia-smi to run. Default is C(nvidia-smi) from PATH or the usual directories; none found means
      PCI data only.
    type: path
notes:
  - When C(nvidia-smi) is missing or fails (no driver loaded yet, driver/library mismatch), GPUs are still reported
    from PCI data with C(kernel_driver) null or the bound driver, and the reason is returned as a warning.
  - C(memory_total_mib) of a GPU is its total frame buffer; C(min_gpu_memory_mib) is compared with it, not with free
    memory.
seealso:
  - module: runlocalai.mlops.model_validation
"""

EXAMPLES = r"""
- name: Read the host's GPUs and the serving venv's packages
  runlocalai.mlops.host_facts:
    python: /opt/models/churn/venv/bin/python
    packages: [numpy, scikit-learn, torch]
    disk_paths: [/, /var/lib/mlflow]
  register: host

- name: Show the GPUs
  ansible.builtin.debug:
    msg: "{{ host.gpu_count }} GPU(s): {{ host.gpus | map(attribute='name') | list }}, CUDA {{ host.cuda_version }}"

- name: The serving environment must match the one the model was trained in
  runlocalai.mlops.host_facts:
    python: /opt/models/churn/venv/bin/python
    expected_from: /opt/models/churn/model
    expected:
      cuda_available: true
      min_gpu_memory_mib: 16000
      driver_version_min: "535"
    fail_on_mismatch: true

- name: Inline expectations only
  runlocalai.mlops.host_facts:
    expected:
      python: "3.11"
      packages:
        numpy: ">=1.26,<2"
        scikit-learn: "1.5.2"
        mlflow: null
"""

RETURN = r"""
gpus:
  description:
    - One entry per NVIDIA display/3D PCI function (other functions of the card, such as HD audio, do not count).
    - C(pci_address) (V(0000:3b:00.0)), C(vendor_id) (V(0x10de)), C(device_id), C(class), C(kernel_driver) (bound driver
      or null); from nvidia-smi when it answers (else null) C(name), C(uuid), C(memory_total_mib), C(memory_free_mib),
      C(driver_version), C(compute_capability) (V(9.0)), C(mig_mode) (V(enabled), V(disabled) or null).
  returned: always
  type: list
  elements: dict
  sample:
    - pci_address: "0000:3b:00.0"
      vendor_id: "0x10de"
      device_id: "0x2330"
      class: "0x030200"
      kernel_driver: nvidia
      name: NVIDIA H100 80GB HBM3
      uuid: GPU-5d3a9c6e-1c4b-4a8e-9f7e-2b1c0d9e8f70
      memory_total_mib: 81559
      memory_free_mib: 81003
      driver_version: 550.54.15
      compute_capability: "9.0"
      mig_mode: enabled
gpu_count:
  description: Number of entries in RV(gpus).
  returned: always
  type: int
  sample: 1
nvidia_smi:
  description: Path of the nvidia-smi that was run, or null.
  returned: always
  type: str
  sample: /usr/bin/nvidia-smi
nvidia_driver_version:
  description: NVIDIA driver version (from nvidia-smi, else from the loaded kernel module), or null.
  returned: always
  type: str
  sample: 550.54.15
cuda_version:
  description: Highest CUDA version the driver supports (from nvidia-smi), or null.
  returned: always
  type: str
  sample: "12.4"
cuda_available:
  description: Whether CUDA can run here - nvidia-smi lists a GPU, or (no nvidia-smi) a GPU is bound to the nvidia driver.
  returned: always
  type: bool
cuda_runtime_versions:
  description: Versions of the CUDA runtime library (libcudart) found through ldconfig and in the usual CUDA directories.
  returned: always
  type: list
  elements: str
  sample: ["12.4.127"]
cpu:
  description: C(model), C(cores) (physical), C(threads) (logical CPUs), C(usable_threads) (this process's CPU affinity).
  returned: always
  type: dict
  sample: {model: AMD EPYC 7R13 Processor, cores: 48, threads: 96, usable_threads: 96}
memory:
  description: C(total_mib), C(available_mib) (from /proc/meminfo) and C(cgroup_limit_mib) (a container's limit, or null).
  returned: always
  type: dict
  sample: {total_mib: 385610, available_mib: 370112, cgroup_limit_mib: null}
disks:
  description: Per path of O(disk_paths), C(free_mib) (available to unprivileged users) and C(total_mib).
  returned: always
  type: dict
  sample: {"/": {free_mib: 70892, total_mib: 258019}}
os:
  description: From /etc/os-release - C(id), C(version_id), C(codename), C(family) (Debian, RedHat, ...), C(name).
  returned: always
  type: dict
  sample: {id: debian, version_id: "12", codename: bookworm, family: Debian, name: Debian GNU/Linux 12 (bookworm)}
kernel:
  description: Kernel release.
  returned: always
  type: str
  sample: 6.1.0-28-amd64
architecture:
  description: Machine architecture.
  returned: always
  type: str
  sample: x86_64
python:
  description: C(version) and C(executable) of the interpreter inspected (O(python), or the module's own).
  returned: always
  type: dict
  sample: {version: 3.11.2, executable: /usr/bin/python3}
packages:
  description: Installed version per package named in O(packages) or in the expected environment; null when not installed.
  returned: always
  type: dict
  sample: {numpy: 1.26.4, torch: 2.3.1+cu121, mlflow: null}
expected:
  description: The expected environment compared with (O(expected_from) merged with O(expected), specifiers normalised).
  returned: always
  type: dict
  sample: {python: "==3.11.*", packages: {numpy: "==1.26.4"}, cuda_available: true}
expected_files:
  description: The model files read for O(expected_from).
  returned: always
  type: list
  elements: str
mismatches:
  description: Every difference, each with C(item) (V(python), V(packages.NAME), V(cuda_available), V(min_gpu_memory_mib),
    V(gpu_count_min), V(driver_version_min), V(cuda_version_min)), C(expected), C(actual) and C(message).
  returned: always
  type: list
  elements: dict
  sample:
    - item: packages.numpy
      expected: "==1.26.4"
      actual: 2.0.1
      message: "packages.numpy: expected ==1.26.4, found 2.0.1"
consistent:
  description: Whether there is no mismatch (true when nothing is expected).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MissingDependencyError
from ansible_collections.runlocalai.mlops.plugins.module_utils.host.base import HostFactsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.host.environment import mismatch_message
from ansible_collections.runlocalai.mlops.plugins.module_utils.host.facts import Env, gather


def main():
    module = AnsibleModule(
        argument_spec=dict(
            disk_paths=dict(type="list", elements="path", default=["/"]),
            packages=dict(type="list", elements="str", default=[]),
            python=dict(type="str"),
            expected=dict(type="dict"),
            expected_from=dict(type="path"),
            fail_on_mismatch=dict(type="bool", default=False),
            sysfs_root=dict(type="path", default="/sys"),
            nvidia_smi_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = gather(disk_paths=params["disk_paths"], packages=params["packages"], python=params["python"],
                        expected=params["expected"], expected_from=params["expected_from"],
                        nvidia_smi_path=params["nvidia_smi_path"], env=Env(sysfs_root=params["sysfs_root"]))
    except HostFactsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except MissingDependencyError as exc:
        # What needs the library and the Debian package that provides it.
        hint = ". %s%s." % (str(exc)[:1].upper(), str(exc)[1:])
        module.fail_json(msg=missing_required_lib(exc.library) + hint, changed=False)
    for warning in result.pop("warnings"):
        module.warn(warning)
    if params["fail_on_mismatch"] and result["mismatches"]:
        module.fail_json(msg=mismatch_message(result["mismatches"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
