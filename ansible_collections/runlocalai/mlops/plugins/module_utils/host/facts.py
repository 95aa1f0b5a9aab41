# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Host facts: CPU, memory, disks, OS, kernel, Python and package versions, and `gather`, which
adds the NVIDIA GPUs and CUDA (gpu.py) and compares everything with an expected environment
(environment.py: inline, or read from a model's MLflow files).

Reads only; never changes the host. No Ansible imports: every source of data can be redirected
for tests (`Env`: sysfs root, /proc root, os-release path, library globs, a command runner and an
executable finder). Bad input raises HostFactsError naming the parameter and the problem. Plain
fact gathering needs the standard library only; the consistency check needs `packaging` and,
for a model's YAML files, PyYAML (MissingDependencyError when they are missing).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import platform
import re
import subprocess
import sys

from .base import MIB, HostFactsError, _first_line, _read, usable_cpus
from .environment import compare, load_model_environment, merge_expected, normalize_expected
from .gpu import (CUDART_GLOBS, SMI_TIMEOUT, cuda_runtime_versions, kernel_module_driver_version, merge_gpus, query_nvidia_smi,
                  read_pci_gpus)

PYTHON_TIMEOUT = 60
EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/nvidia/bin",
                  "/usr/lib/wsl/lib")
OS_FAMILIES = {
    "debian": "Debian", "ubuntu": "Debian", "linuxmint": "Debian", "raspbian": "Debian", "pop": "Debian",
    "rhel": "RedHat", "centos": "RedHat", "fedora": "RedHat", "rocky": "RedHat", "almalinux": "RedHat", "ol": "RedHat",
    "amzn": "RedHat", "suse": "Suse", "sles": "Suse", "opensuse": "Suse", "opensuse-leap": "Suse", "arch": "Archlinux",
    "alpine": "Alpine", "gentoo": "Gentoo",
}


# -- running commands -------------------------------------------------------------------------

def run_command(argv, timeout=SMI_TIMEOUT):
    """Run argv without a shell; return (rc, stdout, stderr). Never raises for the command's own failure."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, LC_ALL="C", LANG="C"))
    except OSError as exc:
        return 127, "", str(exc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return 124, "", "timed out after %d s" % timeout
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def find_executable(name):
    """Find a command on PATH and in the usual sbin/bin directories (not on a non-root PATH)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d] + list(EXTRA_BIN_DIRS)
    for directory in dirs:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


class Env(object):
    """Where facts come from. Tests point these at recorded data."""

    def __init__(self, sysfs_root="/sys", proc_root="/proc", os_release="/etc/os-release", runner=None, which=None,
                 cudart_globs=CUDART_GLOBS):
        self.sysfs_root = sysfs_root
        self.proc_root = proc_root
        self.os_release = os_release
        self.runner = runner or run_command
        self.which = which or find_executable
        self.cudart_globs = cudart_globs


# -- CPU, memory, disks, OS ---------------------------------------------------------------------

def cpu_facts(env):
    text = _read(os.path.join(env.proc_root, "cpuinfo"), "")
    model, processors, cores = None, 0, set()
    physical = None
    for line in text.splitlines():
        key, _sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            processors += 1
        elif key in ("model name", "cpu model", "hardware", "model") and value and model is None and not value.isdigit():
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
    if not cores:  # no topology in cpuinfo (ARM, some VMs): ask sysfs
        for core_file in glob.glob(os.path.join(env.sysfs_root, "devices", "system", "cpu", "cpu[0-9]*", "topology", "core_id")):
            package = _first_line(_read(os.path.join(os.path.dirname(core_file), "physical_package_id")))
            cores.add((package, _first_line(_read(core_file))))
    threads = processors or os.cpu_count()
    return {"model": model or platform.processor() or platform.machine() or None, "cores": len(cores) or threads,
            "threads": threads, "usable_threads": usable_cpus(threads)}


def memory_facts(env):
    values = {}
    for line in _read(os.path.join(env.proc_root, "meminfo"), "").splitlines():
        match = re.match(r"^(\w+):\s+([0-9]+)\s*kB", line)
        if match:
            values[match.group(1)] = int(match.group(2))
    total = values.get("MemTotal")
    available = values.get("MemAvailable", values.get("MemFree"))
    limit = None
    for rel in (("fs", "cgroup", "memory.max"), ("fs", "cgroup", "memory", "memory.limit_in_bytes")):
        raw = _first_line(_read(os.path.join(env.sysfs_root, *rel)))
        if raw.isdigit():
            limit = int(raw) // MIB
            break
    if limit is not None and total is not None and limit >= total // 1024:
        limit = None  # "no limit" in cgroup v1 is a huge number
    return {"total_mib": total // 1024 if total is not None else None,
            "available_mib": available // 1024 if available is not None else None,
            "cgroup_limit_mib": limit}


def disk_facts(paths):
    disks = {}
    for path in paths:
        if not os.path.exists(path):
            raise HostFactsError("disk_paths: %r does not exist" % path)
        try:
            stat = os.statvfs(path)
        except OSError as exc:
            raise HostFactsError("disk_paths: cannot read free space of %r: %s" % (path, exc.strerror or exc))
        disks[path] = {"free_mib": stat.f_bavail * stat.f_frsize // MIB, "total_mib": stat.f_blocks * stat.f_frsize // MIB}
    return disks


def parse_os_release(text):
    values = {}
    for line in (text or "").splitlines():
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
        if match:
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def os_facts(env):
    text = _read(env.os_release)
    if text is None:
        text = _read("/usr/lib/os-release") if env.os_release == "/etc/os-release" else None
    values = parse_os_release(text)
    os_id = values.get("ID", "").lower() or None
    family = None
    for candidate in [os_id or ""] + values.get("ID_LIKE", "").lower().split():
        if candidate in OS_FAMILIES:
            family = OS_FAMILIES[candidate]
            break
    return {"id": os_id, "version_id": values.get("VERSION_ID") or None,
            "codename": values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME") or None,
            "family": family, "name": values.get("PRETTY_NAME") or values.get("NAME") or None}, \
        ([] if text is not None else ["%s not readable: OS facts are empty" % env.os_release])


# -- Python and packages ------------------------------------------------------------------------

# Runs in the module's own interpreter (exec) or in another one (`python -c`): one copy of the code.
# Keep it Python 3.6-compatible and standard-library only.
PROBE_SOURCE = r'''
import json
import platform
import re
import sys


def probe(names):
    out = {"version": platform.python_version().rstrip("+"), "build": sys.version, "executable": sys.executable, "packages": {}}
    try:
        from importlib import metadata
    except ImportError:
        try:
            import importlib_metadata as metadata
        except ImportError:
            metadata = None
    index = None
    for name in names:
        version = None
        if metadata is not None:
            try:
                version = metadata.version(name)
            except Exception:
                if index is None:
                    index = {}
                    for dist in metadata.distributions():
                        dist_name = dist.metadata["Name"]
                        if dist_name:
                            index.setdefault(re.sub(r"[-_.]+", "-", dist_name).lower(), dist.version)
                version = index.get(re.sub(r"[-_.]+", "-", name).lower())
        out["packages"][name] = version
    return out


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
'''


def _same_file(one, two):
    """The same interpreter, seeing the same packages. A virtualenv's bin/python is a link to its
    base interpreter, the same file, but reads its own site-packages (pyvenv.cfg beside bin/):
    only a link in the same directory is the same interpreter."""
    try:
        same = os.path.samefile(one, two)
    except OSError:
        return False
    return same and os.path.dirname(os.path.abspath(one)) == os.path.dirname(os.path.abspath(two))


def resolve_python(python, env):
    """The interpreter's path (None: this one). Raises HostFactsError when it is not there."""
    if not python:
        return None
    path = python if "/" in python else env.which(python)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise HostFactsError("python: %r is not an executable interpreter on this host" % python)
    return path


def python_facts(python, names, env):
    """Version, executable and package versions of `python` (default: this interpreter)."""
    names = list(names)
    path = resolve_python(python, env)
    if path is None or _same_file(path, sys.executable):
        namespace = {"__name__": "runlocalai_host_facts_probe"}
        exec(compile(PROBE_SOURCE, "<host_facts probe>", "exec"), namespace)  # pylint: disable=exec-used
        return namespace["probe"](names)
    rc, out, err = env.runner([path, "-c", PROBE_SOURCE, json.dumps(names)], timeout=PYTHON_TIMEOUT)
    try:
        data = json.loads(_first_line(out)) if rc == 0 else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or "version" not in data:
        detail = (" ".join((err or out).split()) or "no output")[-300:]
        raise HostFactsError("python: running %s to read its version and packages failed (exit %s): %s" % (path, rc, detail))
    data["packages"] = dict((name, (data.get("packages") or {}).get(name)) for name in names)
    return data


# -- everything ---------------------------------------------------------------------------------

def _check_package_names(packages):
    names = []
    for raw in packages or []:
        # `-a 'packages=[numpy,scipy]'` arrives as '[numpy', 'scipy]': take the names out of the brackets.
        name = raw.strip().strip("[]").strip().strip("'\"") if isinstance(raw, str) else raw
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
            raise HostFactsError("packages: %r is not a package name (put version rules in expected.packages)" % (raw,))
        names.append(name)
    return names


def gather(disk_paths=None, packages=None, python=None, expected=None, expected_from=None, nvidia_smi_path=None, env=None):
    """Gather the facts and compare them with the expected environment. Returns the result dict
    (see the module's RETURN), with `warnings` (a list of text). Raises HostFactsError on bad input.
    """
    env = env or Env()
    warnings = []
    # Validate all input before reading anything.
    names = _check_package_names(packages)
    disk_paths = ["/"] if disk_paths is None else list(disk_paths)
    inline = normalize_expected(expected)
    if not os.path.isdir(env.sysfs_root):
        raise HostFactsError("sysfs_root: %r is not a directory" % env.sysfs_root)
    if nvidia_smi_path and not (os.path.isfile(nvidia_smi_path) and os.access(nvidia_smi_path, os.X_OK)):
        raise HostFactsError("nvidia_smi_path: %r is not an executable file" % nvidia_smi_path)
    python = resolve_python(python, env) or None
    from_model, files = {}, []
    if expected_from:
        raw, files, model_warnings = load_model_environment(expected_from)
        warnings.extend(model_warnings)
        from_model = normalize_expected(raw, "expected_from (%s)" % expected_from)
    wanted = merge_expected(from_model, inline)
    disks = disk_facts(disk_paths)

    pci_gpus, pci_warnings = read_pci_gpus(env.sysfs_root)
    warnings.extend(pci_warnings)
    smi_path = nvidia_smi_path or env.which("nvidia-smi")
    smi = {"gpus": [], "cuda_version": None, "warnings": [], "answered": False}
    if smi_path:
        smi = query_nvidia_smi(smi_path, env.runner)
        warnings.extend(smi["warnings"])
    gpus, merge_warnings = merge_gpus(pci_gpus, smi["gpus"])
    warnings.extend(merge_warnings)
    if pci_gpus and not smi_path:
        bound = [g["pci_address"] for g in pci_gpus if g["kernel_driver"] != "nvidia"]
        warnings.append("nvidia-smi not found: GPU details (name, memory, CUDA) are unknown%s" % (
            "; no NVIDIA driver bound to %s" % ", ".join(bound) if bound else ""))
    driver_version = next((g["driver_version"] for g in gpus if g["driver_version"]), None)
    if driver_version is None and pci_gpus:
        driver_version = kernel_module_driver_version(env.sysfs_root, env.proc_root)

    os_info, os_warnings = os_facts(env)
    warnings.extend(os_warnings)
    python_info = python_facts(python, sorted(set(names) | set((wanted.get("packages") or {}).keys())), env)
    facts = {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "nvidia_smi": smi_path,
        "nvidia_driver_version": driver_version,
        "cuda_version": smi["cuda_version"],
        # nvidia-smi listing a GPU when it is there; else (runtime-only images) a GPU bound to the nvidia driver.
        "cuda_available": bool(smi["gpus"]) if smi_path else any(g["kernel_driver"] == "nvidia" for g in gpus),
        "cuda_runtime_versions": cuda_runtime_versions(env),
        "cpu": cpu_facts(env),
        "memory": memory_facts(env),
        "disks": disks,
        "os": os_info,
        "kernel": platform.release(),
        "architecture": platform.machine(),
        "python": {"version": python_info["version"], "executable": python_info["executable"]},
        "packages": python_info["packages"],
    }
    mismatches = compare(facts, wanted)
    facts.update({"expected": wanted, "expected_files": files, "mismatches": mismatches, "consistent": not mismatches,
                  "warnings": warnings})
    return facts
