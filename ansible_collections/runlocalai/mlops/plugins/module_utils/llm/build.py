# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Which NVIDIA driver a llama-server build needs, and whether a host's driver runs it.

scripts/build-llama-server.sh writes a BUILD-INFO file next to the binary it builds: `key=value`
lines (source, variant, flag, and for a CUDA build cuda=12.4 and min_driver=550). The
model_server role reads it (filter runlocalai.mlops.llama_build_refusal) and refuses an entry
with device cuda on a host whose driver, as nvidia-smi reports it, is older than the build needs:
a CUDA 12.4 build on Debian 12's driver 535 would fail at its first CUDA call with "CUDA driver
version is insufficient for CUDA runtime version", after the role had already configured it.

Plain Python, standard library only, no Ansible. Also a command for the build script:
`python3 build.py min-driver 12.4` prints 550 (exit 1 for a CUDA version not in the table).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import sys

# The oldest Linux driver branch of each CUDA toolkit release (NVIDIA's CUDA release notes,
# "CUDA Toolkit and Corresponding Driver Versions", Linux x86_64, the GA release's driver). A
# build with CUDA X.Y runs on that branch or newer. (CUDA 12's "minor version compatibility"
# lets some 12.x programs run on any driver >= 525, but not every feature: not relied on here.)
# What the nvidia_cuda role installs from Debian's archive: 535 on Debian 12 (runs CUDA <= 12.2),
# 550 on Debian 13 (CUDA <= 12.4); NVIDIA's repository's 580 runs CUDA 13.0.
MIN_DRIVER = {
    "11.0": 450, "11.1": 455, "11.2": 460, "11.3": 465, "11.4": 470, "11.5": 495, "11.6": 510,
    "11.7": 515, "11.8": 520,
    "12.0": 525, "12.1": 530, "12.2": 535, "12.3": 545, "12.4": 550, "12.5": 555, "12.6": 560,
    "12.8": 570, "12.9": 575,
    "13.0": 580,
}

_CUDA_RE = re.compile(r"^\s*([0-9]+)\.([0-9]+)(?:\.[0-9]+)*\s*$")
_DRIVER_RE = re.compile(r"^\s*([0-9]+)(?:\.[0-9]+)*\s*$")


def _major_minor(cuda_version):
    match = _CUDA_RE.match(str(cuda_version if cuda_version is not None else ""))
    return "%d.%d" % (int(match.group(1)), int(match.group(2))) if match else None


def min_driver(cuda_version):
    """The oldest driver branch (an int, e.g. 550) for a CUDA version ('12.4', '12.4.131', 12.4);
    None when the version is not in MIN_DRIVER or not a version at all."""
    return MIN_DRIVER.get(_major_minor(cuda_version))


def driver_branch(driver_version):
    """535 for '535.261.03' (nvidia-smi's driver_version) or '535'; None when not a version."""
    match = _DRIVER_RE.match(str(driver_version if driver_version is not None else ""))
    return int(match.group(1)) if match else None


def parse_build_info(text):
    """BUILD-INFO text -> dict of its key=value lines; `flag` lines become a list under 'flags'.
    Blank lines, comments (#) and lines without '=' are ignored; a repeated key keeps the last."""
    info = {"flags": []}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if key == "flag":
            info["flags"].append(value)
        else:
            info[key] = value
    return info


def is_cuda_build(info):
    """Whether a parsed BUILD-INFO describes a CUDA build (variant=cuda, a cuda= line or GGML_CUDA=ON)."""
    return (info.get("variant") == "cuda" or bool(info.get("cuda"))
            or any(re.match(r"^-DGGML_CUDA=(ON|1|TRUE|YES)$", flag, re.IGNORECASE) for flag in info.get("flags", [])))


def needed_driver(info):
    """(branch, why) the build needs: its min_driver= line when it has one (a site's own build can
    state it), else the table's entry for its cuda= line; (None, reason) when neither says."""
    declared = info.get("min_driver")
    if declared:
        branch = driver_branch(declared)
        if branch is None:
            return None, "its min_driver=%s is not a driver version" % declared
        return branch, "CUDA %s" % info["cuda"] if info.get("cuda") else "min_driver=%s" % declared
    cuda = info.get("cuda")
    if not cuda:
        return None, "it names neither its CUDA version (cuda=) nor the driver it needs (min_driver=)"
    branch = min_driver(cuda)
    if branch is None:
        return None, ("its CUDA version %s is not in the table of drivers (plugins/module_utils/llm/build.py "
                      "MIN_DRIVER): add min_driver=<branch> to its BUILD-INFO" % cuda)
    return branch, "CUDA %s" % cuda


def check_driver(build_info_text, driver_version, driver_cuda=None, host=None):
    """None when the build runs with this driver, else a message saying why not.

    build_info_text: the BUILD-INFO next to the binary (None or '' for a build without one, such
    as a distribution's package: not checked). driver_version: the host's driver as nvidia-smi
    reports it ('550.163.01'); None when the host reports none. driver_cuda: the highest CUDA
    the driver runs (nvidia-smi's "CUDA Version"), checked too when given. A CPU build is never
    refused.
    """
    if not build_info_text:
        return None
    info = parse_build_info(build_info_text)
    if not is_cuda_build(info):
        return None
    where = "host %s" % host if host else "this host"
    branch, why = needed_driver(info)
    if branch is None:
        return "llama-server is a CUDA build, but its BUILD-INFO cannot tell which NVIDIA driver it needs: %s" % why
    have = driver_branch(driver_version)
    if have is None:
        return ("llama-server is a CUDA build (%s) that needs NVIDIA driver %d or newer, but %s reports no NVIDIA driver "
                "(nvidia-smi did not answer%s): install the driver (role nvidia_cuda) first"
                % (why, branch, where, "; reported %r" % driver_version if driver_version else ""))
    advice = ("install driver %d or newer (role nvidia_cuda: nvidia_cuda_driver_branch, nvidia_cuda_replace_driver), or "
              "point model_server_llama_server_src at a build made for this driver (docs/gpu.md, \"LLMs on GPU hosts\")"
              % branch)
    if have < branch:
        return ("llama-server is a CUDA build (%s) that needs NVIDIA driver %d or newer; %s has driver %s%s: %s"
                % (why, branch, where, driver_version, " (CUDA %s)" % driver_cuda if driver_cuda else "", advice))
    build_cuda, host_cuda = _major_minor(info.get("cuda")), _major_minor(driver_cuda)
    if build_cuda and host_cuda and _key(host_cuda) < _key(build_cuda):
        return ("llama-server is a CUDA %s build; %s has driver %s, which runs CUDA %s at most (nvidia-smi): %s"
                % (build_cuda, where, driver_version, host_cuda, advice))
    return None


def _key(major_minor):
    return tuple(int(part) for part in major_minor.split("."))


def main(argv):
    if len(argv) == 2 and argv[0] == "min-driver":
        branch = min_driver(argv[1])
        if branch is None:
            sys.stderr.write("CUDA %s: not in MIN_DRIVER (%s)\n" % (argv[1], ", ".join(sorted(MIN_DRIVER, key=_key))))
            return 1
        sys.stdout.write("%s\n" % branch)
        return 0
    if len(argv) in (2, 3) and argv[0] == "check":
        with open(argv[1]) as handle:
            message = check_driver(handle.read(), argv[2] if len(argv) == 3 else None)
        sys.stdout.write("%s\n" % (message or "ok"))
        return 1 if message else 0
    sys.stderr.write("usage: build.py min-driver CUDA_VERSION | build.py check BUILD-INFO [DRIVER_VERSION]\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
