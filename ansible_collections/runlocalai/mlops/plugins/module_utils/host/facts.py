# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Host facts: NVIDIA GPUs from PCI data in sysfs (merged with nvidia-smi when it answers), CUDA,
CPU, memory, disks, OS, kernel, Python and package versions; and the training-vs-serving
consistency check of those facts against an expected environment (inline, or read from a model's
MLflow files: python_env.yaml, requirements.txt, conda.yaml, MLmodel).

Reads only; never changes the host. No Ansible imports: every source of data can be redirected
for tests (`Env`: sysfs root, /proc root, os-release path, library globs, a command runner and an
executable finder). Bad input raises HostFactsError naming the parameter and the problem.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import glob
import json
import os
import platform
import re
import subprocess
import sys

try:  # PEP 440 from `packaging` when the host has it; the fallback below otherwise.
    from packaging.specifiers import InvalidSpecifier as _PkgInvalidSpecifier
    from packaging.specifiers import SpecifierSet as _PkgSpecifierSet
    from packaging.version import InvalidVersion as _PkgInvalidVersion
    from packaging.version import Version as _PkgVersion
    HAS_PACKAGING = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_PACKAGING = False

try:  # Only to read python_env.yaml / conda.yaml; a small reader below otherwise.
    import yaml as _yaml
except ImportError:  # pragma: no cover - depends on the host
    _yaml = None

MIB = 1024 * 1024
NVIDIA_VENDOR_ID = "0x10de"
SMI_FIELDS = ("pci.bus_id", "name", "uuid", "memory.total", "memory.free", "driver_version", "compute_cap",
              "mig.mode.current")
# Drivers older than about 510 reject compute_cap (and some mig.mode): they get the base query.
SMI_BASE_FIELDS = SMI_FIELDS[:6]
SMI_TIMEOUT = 30
PYTHON_TIMEOUT = 60
EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/nvidia/bin",
                  "/usr/lib/wsl/lib")
CUDART_GLOBS = ("/usr/local/cuda*/lib64/libcudart.so*", "/usr/local/cuda*/lib/libcudart.so*",
                "/usr/local/cuda*/targets/*/lib/libcudart.so*",
                "/usr/lib/*-linux-gnu/libcudart.so*", "/usr/lib64/libcudart.so*", "/usr/lib/libcudart.so*")
EXPECTED_KEYS = ("python", "packages", "cuda_available", "min_gpu_memory_mib", "gpu_count_min", "driver_version_min",
                 "cuda_version_min")
MODEL_FILES = ("MLmodel", "python_env.yaml", "requirements.txt", "conda.yaml")
OS_FAMILIES = {
    "debian": "Debian", "ubuntu": "Debian", "linuxmint": "Debian", "raspbian": "Debian", "pop": "Debian",
    "rhel": "RedHat", "centos": "RedHat", "fedora": "RedHat", "rocky": "RedHat", "almalinux": "RedHat", "ol": "RedHat",
    "amzn": "RedHat", "suse": "Suse", "sles": "Suse", "opensuse": "Suse", "opensuse-leap": "Suse", "arch": "Archlinux",
    "alpine": "Alpine", "gentoo": "Gentoo",
}


class HostFactsError(Exception):
    """Bad input; the message names the parameter and what was wrong."""


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


def _read(path, default=None):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return default


def _first_line(text):
    text = (text or "").strip()
    return text.splitlines()[0].strip() if text else ""


# -- GPUs: PCI ----------------------------------------------------------------------------------

_PCI_RE = re.compile(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


def normalize_pci_address(text):
    """'00000000:3B:00.0' (nvidia-smi) and '0000:3b:00.0' (sysfs) -> '0000:3b:00.0'; None when not an address."""
    match = _PCI_RE.match((text or "").strip())
    if not match:
        return None
    domain, bus, dev, func = match.groups()
    return "%04x:%02x:%02x.%x" % (int(domain or "0", 16), int(bus, 16), int(dev, 16), int(func, 16))


def _hex_id(text):
    value = _first_line(text).lower()
    return value if re.match(r"^0x[0-9a-f]+$", value) else None


def read_pci_gpus(sysfs_root):
    """NVIDIA display/3D controllers (vendor 0x10de, class 0x03xxxx) from <sysfs_root>/bus/pci/devices.

    Other NVIDIA functions of the same card (HD audio 0x0403, USB 0x0c03, NVSwitch bridges 0x0680)
    do not count. Returns (gpus, warnings).
    """
    devices_dir = os.path.join(sysfs_root, "bus", "pci", "devices")
    try:
        names = sorted(os.listdir(devices_dir))
    except OSError:
        return [], ["no PCI devices under %s: GPUs are taken from nvidia-smi only" % devices_dir]
    gpus = []
    for name in names:
        device_dir = os.path.join(devices_dir, name)
        vendor = _hex_id(_read(os.path.join(device_dir, "vendor")))
        pci_class = _hex_id(_read(os.path.join(device_dir, "class")))
        if vendor != NVIDIA_VENDOR_ID or not pci_class or not re.match(r"^0x03[0-9a-f]{4}$", pci_class):
            continue
        driver_link = os.path.join(device_dir, "driver")
        driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
        gpus.append({
            "pci_address": normalize_pci_address(name) or name,
            "vendor_id": vendor,
            "device_id": _hex_id(_read(os.path.join(device_dir, "device"))),
            "class": pci_class,
            "kernel_driver": driver,
        })
    return gpus, []


def kernel_module_driver_version(sysfs_root, proc_root):
    """Version of the loaded nvidia kernel module, when it is loaded (no nvidia-smi needed)."""
    version = _first_line(_read(os.path.join(sysfs_root, "module", "nvidia", "version")))
    if version:
        return version
    match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?([0-9]+(?:\.[0-9]+)+)",
                      _read(os.path.join(proc_root, "driver", "nvidia", "version"), ""))
    return match.group(1) if match else None


# -- GPUs: nvidia-smi ---------------------------------------------------------------------------

def _smi_value(text):
    """nvidia-smi cell -> str or None ('[N/A]', '[Not Supported]', 'N/A', '[Unknown Error]', '' are None)."""
    text = (text or "").strip()
    if not text or text.startswith("[") or text.upper() in ("N/A", "NA", "NONE"):
        return None
    return text


def _smi_int(text, field, warnings):
    value = _smi_value(text)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        warnings.append("nvidia-smi: %s %r is not a number" % (field, value))
        return None


def parse_smi_csv(text, fields=SMI_FIELDS):
    """Parse `--format=csv,noheader,nounits` output of the query fields. Returns (gpus, warnings).

    Lines that do not have one cell per field or whose bus id is not a PCI address are skipped
    with a warning (garbage output never raises).
    """
    gpus, warnings = [], []
    lines = [line for line in (text or "").splitlines() if line.strip()]
    for number, row in enumerate(csv.reader(lines, skipinitialspace=True), 1):
        if len(row) != len(fields):
            warnings.append("nvidia-smi: line %d has %d fields, expected %d: %s" % (number, len(row), len(fields),
                                                                                    lines[number - 1][:200]))
            continue
        cells = dict(zip(fields, row))
        address = normalize_pci_address(cells["pci.bus_id"])
        if address is None:
            warnings.append("nvidia-smi: line %d: %r is not a PCI bus id" % (number, cells["pci.bus_id"][:80]))
            continue
        mig = _smi_value(cells.get("mig.mode.current"))
        gpus.append({
            "pci_address": address,
            "name": _smi_value(cells["name"]),
            "uuid": _smi_value(cells["uuid"]),
            "memory_total_mib": _smi_int(cells["memory.total"], "memory.total", warnings),
            "memory_free_mib": _smi_int(cells["memory.free"], "memory.free", warnings),
            "driver_version": _smi_value(cells["driver_version"]),
            "compute_capability": _smi_value(cells.get("compute_cap")),
            "mig_mode": mig.lower() if mig else None,
        })
    return gpus, warnings


_CUDA_RE = re.compile(r"CUDA Version\s*:?\s*([0-9]+\.[0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


def parse_cuda_version(text):
    """The driver's CUDA version from `nvidia-smi --version`, `-q` or the banner; None when absent."""
    match = _CUDA_RE.search(text or "")
    return match.group(1) if match else None


def _smi_failure(rc, out, err):
    text = " ".join((_first_line(err) or _first_line(out) or "no output").split())
    return "nvidia-smi failed (exit %s): %s" % (rc, text[:300])


def query_nvidia_smi(path, runner):
    """Ask nvidia-smi. Returns {gpus, cuda_version, warnings, answered}; failures become warnings."""
    result = {"gpus": [], "cuda_version": None, "warnings": [], "answered": False}
    fields = SMI_FIELDS
    rc, out, err = runner([path, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
    if rc != 0 and "not a valid field" in (out + err):
        fields = SMI_BASE_FIELDS
        rc, out, err = runner([path, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
    if rc != 0:
        result["warnings"].append(_smi_failure(rc, out, err) + "; GPUs are reported from PCI data only")
        return result
    gpus, warnings = parse_smi_csv(out, fields)
    result["gpus"], result["warnings"] = gpus, warnings
    result["answered"] = True
    if out.strip() and not gpus:
        result["warnings"].append("nvidia-smi: no GPU could be read from its output; GPUs are reported from PCI data only")
    for argv in ([path, "--version"], [path]):
        rc, out, err = runner(argv)
        version = parse_cuda_version(out) if rc == 0 else None
        if version:
            result["cuda_version"] = version
            break
    return result


def merge_gpus(pci_gpus, smi_gpus):
    """One entry per PCI GPU, with nvidia-smi's fields added by bus id. GPUs nvidia-smi reports that
    sysfs does not show (WSL, a container without /sys/bus/pci) are added with a warning."""
    smi_keys = ("name", "uuid", "memory_total_mib", "memory_free_mib", "driver_version", "compute_capability", "mig_mode")
    by_address = dict((gpu["pci_address"], gpu) for gpu in smi_gpus)
    merged, warnings = [], []
    for gpu in pci_gpus:
        entry = dict(gpu)
        entry.update(dict((key, None) for key in smi_keys))
        smi = by_address.pop(gpu["pci_address"], None)
        if smi:
            entry.update(dict((key, smi[key]) for key in smi_keys))
        merged.append(entry)
    for address in sorted(by_address):
        entry = {"pci_address": address, "vendor_id": NVIDIA_VENDOR_ID, "device_id": None, "class": None, "kernel_driver": None}
        entry.update(dict((key, by_address[address][key]) for key in smi_keys))
        merged.append(entry)
        warnings.append("nvidia-smi reports GPU %s that is not in sysfs PCI data; it is counted" % address)
    return merged, warnings


def _version_key(text):
    return tuple(int(part) for part in re.findall(r"[0-9]+", text or ""))


def _toolkit_cudart_version(library, major):
    """Full cudart version of the toolkit holding `library` (version.json, or a wheel's dist-info)."""
    match = re.match(r"^(.*/cuda(?:-[0-9.]+)?)/", library)
    if not match:
        return None
    root = match.group(1)
    try:
        with open(os.path.join(root, "version.json")) as handle:
            version = str(json.load(handle).get("cuda_cudart", {}).get("version", ""))
    except (IOError, OSError, ValueError, AttributeError):
        version = ""
    if not version:
        found = glob.glob(os.path.join(root, "dist-info", "nvidia_cuda_runtime*-[0-9]*.dist-info"))
        version = re.sub(r"^.*-([0-9][0-9.]*)\.dist-info$", r"\1", found[0]) if len(found) == 1 else ""
    return version if re.match(r"^%s\.[0-9]+(\.[0-9]+)*$" % re.escape(major), version) else None


def cuda_runtime_versions(env):
    """Versions of libcudart found through `ldconfig -p` and in the usual CUDA library directories."""
    paths = set()
    ldconfig = env.which("ldconfig")
    if ldconfig:
        rc, out, _err = env.runner([ldconfig, "-p"])
        if rc == 0:
            for line in out.splitlines():
                match = re.search(r"(libcudart\.so\S*).*=>\s*(\S+)", line)
                if match:
                    paths.add(match.group(2))
    for pattern in env.cudart_globs:
        paths.update(glob.glob(pattern))
    versions = set()
    for path in paths:
        real = os.path.realpath(path)
        match = re.match(r"^libcudart\.so\.([0-9]+(?:\.[0-9]+)*)$", os.path.basename(real))
        if match:
            version = match.group(1)
            if "." not in version:  # libcudart.so.13 alone: the toolkit may say more
                version = _toolkit_cudart_version(real, version) or version
            versions.add(version)
    # 12 is implied by 12.4.127: keep the most precise form of each.
    precise = [v for v in versions if not any(o != v and o.startswith(v + ".") for o in versions)]
    return sorted(precise, key=_version_key)


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
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = threads
    return {"model": model or platform.processor() or platform.machine() or None, "cores": len(cores) or threads,
            "threads": threads, "usable_threads": usable}


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
    out = {"version": platform.python_version().rstrip("+"), "executable": sys.executable, "packages": {}}
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
    try:
        return os.path.samefile(one, two)
    except OSError:
        return False


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


# -- PEP 440 versions and specifiers ------------------------------------------------------------

def canonical_name(name):
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


_VERSION_RE = re.compile(r"""^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
    (?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$""", re.VERBOSE | re.IGNORECASE)
_PRE_ORDER = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


class FallbackVersion(object):
    """The part of PEP 440 a consistency check needs, for hosts without `packaging`."""

    def __init__(self, text):
        match = _VERSION_RE.match(text or "")
        if not match:
            raise ValueError("invalid version %r" % text)
        self.epoch = int(match.group("epoch") or 0)
        self.release = tuple(int(part) for part in match.group("release").split("."))
        self.pre = (_PRE_ORDER[match.group("pre_l").lower()], int(match.group("pre_n") or 0)) if match.group("pre") else None
        post = match.group("post_n1") or match.group("post_n2")
        self.post = int(post or 0) if match.group("post") else None
        self.dev = int(match.group("dev_n") or 0) if match.group("dev") else None
        local = match.group("local")
        self.local = tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"[-_.]", local)) if local else None

    def key(self, with_local=True):
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        if self.pre is None and self.post is None and self.dev is not None:
            pre = (-1, 0)
        else:
            pre = self.pre if self.pre is not None else (3, 0)
        post = -1 if self.post is None else self.post
        dev = (1, 0) if self.dev is None else (0, self.dev)
        local = (0,)
        if with_local and self.local is not None:
            local = (1,) + tuple((1, part, "") if isinstance(part, int) else (0, 0, part) for part in self.local)
        return (self.epoch, tuple(release), pre, post, dev, local)

    @property
    def is_prerelease(self):
        return self.pre is not None or self.dev is not None

    def base(self):
        return (self.epoch, self.key()[1])


_SPEC_RE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*(\S+)\s*$")


def _fallback_match_one(operator, spec_text, version):
    if operator == "===":
        return version[0] == spec_text.lower()
    cand = version[1]
    if operator in ("==", "!=") and spec_text.endswith(".*"):
        prefix = FallbackVersion(spec_text[:-2])
        width = len(prefix.release)
        release = tuple(cand.release) + (0,) * max(0, width - len(cand.release))
        equal = cand.epoch == prefix.epoch and release[:width] == prefix.release
        return equal if operator == "==" else not equal
    spec = FallbackVersion(spec_text)
    if operator == "~=":
        if len(spec.release) < 2:
            raise ValueError("~= needs at least two release numbers")
        width = len(spec.release) - 1
        release = tuple(cand.release) + (0,) * max(0, width - len(cand.release))
        return cand.key(False) >= spec.key(False) and cand.epoch == spec.epoch and release[:width] == spec.release[:width]
    use_local = spec.local is not None
    ckey, skey = cand.key(use_local), spec.key(use_local)
    if operator == "==":
        return ckey == skey
    if operator == "!=":
        return ckey != skey
    ckey, skey = cand.key(False), spec.key(False)
    if operator == "<=":
        return ckey <= skey
    if operator == ">=":
        return ckey >= skey
    if operator == "<":
        # <V excludes pre-releases of V itself unless V is one.
        return ckey < skey and not (cand.is_prerelease and not spec.is_prerelease and cand.base() == spec.base())
    # >V excludes post-releases of V unless V is one, and local versions of V (PEP 440; packaging 26 reads
    # "post-release of V" the same way: 1.7.post1 > 1.7rc1 holds, older packaging said no).
    if not ckey > skey:
        return False
    if spec.post is None and cand.post is not None and cand.base() == spec.base() and cand.pre == spec.pre:
        return False
    return not (cand.local is not None and cand.key(False) == skey)


def parse_specifier(text):
    """Validate a specifier set (',' separated). Returns the clauses; raises ValueError."""
    clauses = [part for part in (text or "").split(",") if part.strip()]
    if not clauses:
        raise ValueError("empty version specifier")
    parsed = []
    for clause in clauses:
        match = _SPEC_RE.match(clause)
        if not match:
            raise ValueError("%r does not start with one of ==, !=, >=, <=, >, <, ~=, === followed by a version" % clause.strip())
        operator, value = match.groups()
        if operator != "===":
            if value.endswith(".*") and operator not in ("==", "!="):
                raise ValueError("%r: .* is only allowed with == and !=" % clause.strip())
            FallbackVersion(value[:-2] if value.endswith(".*") else value)
            if operator == "~=" and len(FallbackVersion(value).release) < 2:
                raise ValueError("%r: ~= needs at least two release numbers" % clause.strip())
        parsed.append((operator, value))
    if HAS_PACKAGING:
        try:
            _PkgSpecifierSet(text)
        except _PkgInvalidSpecifier as exc:
            raise ValueError(str(exc))
    return parsed


def version_matches(version, spec, use_packaging=None):
    """Whether `version` satisfies the specifier set `spec` (pre-releases allowed: it is what is installed).

    Returns True/False, or None when `version` is not a PEP 440 version (then only === can match).
    """
    use_packaging = HAS_PACKAGING if use_packaging is None else use_packaging
    clauses = parse_specifier(spec)
    if use_packaging:
        try:
            return _PkgSpecifierSet(spec).contains(_PkgVersion(version), prereleases=True)
        except _PkgInvalidVersion:
            pass
    else:
        try:
            parsed = FallbackVersion(version)
        except ValueError:
            parsed = None
        if parsed is not None:
            return all(_fallback_match_one(op, value, (version.strip().lower(), parsed)) for op, value in clauses)
    if all(op == "===" for op, _value in clauses):
        return all(version.strip().lower() == value.lower() for _op, value in clauses)
    return None


def normalize_spec(value, where):
    """'1.2.3' -> '==1.2.3'; specifiers stay; validates. Raises HostFactsError naming `where`."""
    if isinstance(value, bool) or value is None:
        raise HostFactsError("%s: expected a version or specifier string, got %r" % (where, value))
    if isinstance(value, float):
        raise HostFactsError("%s: got the number %r; quote versions so YAML keeps them as text (e.g. '3.10')" % (where, value))
    text = str(value).strip()
    if re.match(r"^v?[0-9]", text):
        text = "==" + text
    try:
        parse_specifier(text)
    except ValueError as exc:
        raise HostFactsError("%s: %r is not a valid version specifier: %s" % (where, value, exc))
    return text


def _python_spec(value, where):
    """'3.11' -> '==3.11.*' (major.minor match); specifiers stay."""
    if isinstance(value, float):
        raise HostFactsError("%s: got the number %r; quote versions so YAML keeps them as text (e.g. '3.10')" % (where, value))
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    if re.match(r"^[0-9]+(\.[0-9]+)?$", text):
        text = "==%s.*" % text
    return normalize_spec(text or value, where)


# -- expected environment -----------------------------------------------------------------------

def _as_bool(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise HostFactsError("%s: expected true or false, got %r" % (where, value))


def _as_int(value, where):
    if isinstance(value, bool):
        raise HostFactsError("%s: expected a whole number, got %r" % (where, value))
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        if number >= 0:
            return number
    raise HostFactsError("%s: expected a whole number >= 0, got %r" % (where, value))


def _as_version(value, where):
    if isinstance(value, bool) or isinstance(value, float) or value is None:
        raise HostFactsError("%s: expected a version string such as '535' or '12.2', got %r%s"
                             % (where, value, " (quote it)" if isinstance(value, float) else ""))
    text = str(value).strip()
    if not re.match(r"^[0-9]+(\.[0-9]+)*$", text):
        raise HostFactsError("%s: %r is not a version such as '535' or '12.2'" % (where, value))
    return text


def normalize_expected(expected, where="expected"):
    """Validate an expected-environment mapping; return it normalised (specifiers, ints, bools)."""
    if expected is None:
        return {}
    if not isinstance(expected, dict):
        raise HostFactsError("%s: must be a mapping with keys among %s, got %s"
                             % (where, ", ".join(EXPECTED_KEYS), type(expected).__name__))
    unknown = sorted(set(expected) - set(EXPECTED_KEYS))
    if unknown:
        raise HostFactsError("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(map(str, unknown)), ", ".join(EXPECTED_KEYS)))
    out = {}
    if expected.get("python") is not None:
        out["python"] = _python_spec(expected["python"], where + ".python")
    packages = expected.get("packages")
    if packages is not None:
        if not isinstance(packages, dict):
            raise HostFactsError("%s.packages: must be a mapping of package name to version specifier (or null for any "
                                 "version), got %s" % (where, type(packages).__name__))
        out["packages"] = {}
        for name, spec in packages.items():
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
                raise HostFactsError("%s.packages: %r is not a package name" % (where, name))
            key = "%s.packages.%s" % (where, name)
            out["packages"][name] = None if spec is None or spec == "" else normalize_spec(spec, key)
    if expected.get("cuda_available") is not None:
        out["cuda_available"] = _as_bool(expected["cuda_available"], where + ".cuda_available")
    for key in ("min_gpu_memory_mib", "gpu_count_min"):
        if expected.get(key) is not None:
            out[key] = _as_int(expected[key], "%s.%s" % (where, key))
    for key in ("driver_version_min", "cuda_version_min"):
        if expected.get(key) is not None:
            out[key] = _as_version(expected[key], "%s.%s" % (where, key))
    return out


# -- a model's MLflow environment files ---------------------------------------------------------

def _scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(part) for part in text[1:-1].split(",") if part.strip()]
    if text == "{}":
        return {}
    return text


def mini_yaml(text):
    """Block mappings and sequences of plain scalars (what MLflow writes to python_env.yaml and
    conda.yaml), scalars kept as text. For hosts without PyYAML. Raises ValueError on what it cannot read."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.split(" #", 1)[0].rstrip() if "'" not in raw and '"' not in raw else raw.rstrip()
        if not stripped.strip() or stripped.lstrip().startswith("#") or stripped.strip() in ("---", "..."):
            continue
        if "\t" in stripped[:len(stripped) - len(stripped.lstrip())]:
            raise ValueError("line %d: tab indentation" % number)
        lines.append([len(stripped) - len(stripped.lstrip()), stripped.strip(), number])

    def block(i, indent):
        if lines[i][1].startswith("- ") or lines[i][1] == "-":
            return sequence(i, indent)
        return mapping(i, indent)

    def value_after(i, indent, inline):
        if inline:
            return _scalar(inline), i + 1
        if i + 1 < len(lines) and (lines[i + 1][0] > indent or (lines[i + 1][0] == indent and lines[i + 1][1].startswith("-"))):
            return block(i + 1, lines[i + 1][0])
        return None, i + 1

    def mapping(i, indent):
        out = {}
        while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
            match = re.match(r"^([^:]+?|\"[^\"]*\"|'[^']*'):(?:\s+(.*))?$", lines[i][1])
            if not match:
                raise ValueError("line %d: expected 'key: value', got %r" % (lines[i][2], lines[i][1]))
            out[_scalar(match.group(1))], i = value_after(i, indent, match.group(2))
        if i < len(lines) and lines[i][0] > indent:
            raise ValueError("line %d: unexpected indentation" % lines[i][2])
        return out, i

    def sequence(i, indent):
        out = []
        while i < len(lines) and lines[i][0] == indent and (lines[i][1].startswith("- ") or lines[i][1] == "-"):
            item = lines[i][1][1:]
            item_indent = indent + 1 + len(item) - len(item.lstrip())
            item = item.strip()
            if not item:
                value, i = value_after(i, indent, None)
            elif re.match(r"^[^\"'\[{][^:]*:(\s|$)", item):  # "- key: ..." starts a mapping inside the item
                lines[i] = [item_indent, item, lines[i][2]]
                value, i = mapping(i, item_indent)
            else:
                value, i = _scalar(item), i + 1
            out.append(value)
        return out, i

    if not lines:
        return None
    value, end = block(0, lines[0][0])
    if end != len(lines):
        raise ValueError("line %d: unexpected content %r" % (lines[end][2], lines[end][1]))
    return value


def load_yaml(text):
    """YAML with every scalar as text (so 3.10 stays '3.10'): PyYAML's BaseLoader when present."""
    if _yaml is not None:
        try:
            return _yaml.load(text, Loader=_yaml.BaseLoader)
        except _yaml.YAMLError as exc:
            raise ValueError(" ".join(str(exc).split()))
    return mini_yaml(text)


_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def parse_requirement(line):
    """'name[extra]==1.0' -> (name, spec or None); raises ValueError for what is not a plain requirement."""
    if ";" in line:
        raise ValueError("environment marker not evaluated")
    if re.search(r"(://|^\.|^/|\s@\s|@\s*\S+://)", line) or line.endswith((".whl", ".tar.gz", ".zip")):
        raise ValueError("URL or path requirement")
    match = _NAME_RE.match(line)
    if not match:
        raise ValueError("not a requirement")
    name, _extras, spec = match.groups()
    spec = spec.strip()
    if spec.startswith("(") and spec.endswith(")"):
        spec = spec[1:-1].strip()
    if spec:
        try:
            parse_specifier(spec)
        except ValueError as exc:
            raise ValueError("bad version specifier: %s" % exc)
    return name, spec or None


def read_requirement_lines(lines, base_dir, source, warnings, depth=0, used=None):
    """Requirement strings (requirements.txt lines or python_env.yaml dependencies) -> {name: spec}."""
    packages = {}
    joined, buffer = [], ""
    for raw in lines:
        raw = "" if raw is None else str(raw)
        if raw.rstrip().endswith("\\"):
            buffer += raw.rstrip()[:-1] + " "
            continue
        joined.append(buffer + raw)
        buffer = ""
    if buffer:
        joined.append(buffer)
    for raw in joined:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        line = re.sub(r"\s--hash[= ]\S+", "", line).strip()
        if not line:
            continue
        include = re.match(r"^(?:-r|--requirement)[= ]?\s*(\S+)$", line)
        if include:
            if depth >= 5:
                raise HostFactsError("expected_from: %s: -r nested more than 5 deep (%s)" % (source, line))
            path = os.path.join(base_dir, include.group(1))
            packages.update(read_requirements_file(path, warnings, depth + 1, used))
            continue
        if line.startswith("-"):
            warnings.append("expected_from: %s: option ignored: %s" % (source, line[:120]))
            continue
        try:
            name, spec = parse_requirement(line)
        except ValueError as exc:
            warnings.append("expected_from: %s: %s, ignored: %s" % (source, exc, line[:120]))
            continue
        packages[name] = spec
    return packages


def read_requirements_file(path, warnings, depth=0, used=None):
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        raise HostFactsError("expected_from: cannot read %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise HostFactsError("expected_from: %s is not UTF-8 text" % path)
    if used is not None:
        used.append(path)
    return read_requirement_lines(text.splitlines(), os.path.dirname(path), os.path.basename(path), warnings, depth, used)


def _read_model_file(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise HostFactsError("expected_from: cannot read %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise HostFactsError("expected_from: %s is not UTF-8 text" % path)


def _load_model_yaml(path):
    try:
        data = load_yaml(_read_model_file(path))
    except ValueError as exc:
        raise HostFactsError("expected_from: %s is not valid YAML: %s" % (path, exc))
    if not isinstance(data, dict):
        raise HostFactsError("expected_from: %s must hold a YAML mapping" % path)
    return data


def model_python_version(version):
    """A model's recorded Python (3.11.2) is matched on major.minor: 3.11.9 serves it."""
    match = re.match(r"^([0-9]+\.[0-9]+)", str(version).strip())
    return match.group(1) if match else None


def load_model_environment(directory):
    """Expected environment from a model directory. Returns (expected, files read, warnings).

    Python: python_env.yaml `python`, else conda.yaml `python=`, else MLmodel `python_version`.
    Packages: python_env.yaml `dependencies` (following -r), else requirements.txt, else the pip
    section of conda.yaml. Build dependencies (pip, setuptools, wheel) are not compared.
    """
    text = str(directory or "")
    if re.match(r"^[a-z][a-z0-9+.-]*:/", text):
        raise HostFactsError("expected_from: %r is a URI; give a local directory holding the model's files (download the "
                             "artifacts first)" % text)
    if not os.path.isdir(text):
        raise HostFactsError("expected_from: %r is not a directory%s" % (
            text, " (give the model's directory, the one holding MLmodel)" if os.path.isfile(text) else ""))
    if not os.access(text, os.R_OK | os.X_OK):
        raise HostFactsError("expected_from: %r is not readable" % text)
    present = dict((name, os.path.join(text, name)) for name in MODEL_FILES if os.path.isfile(os.path.join(text, name)))
    if not present:
        raise HostFactsError("expected_from: %r holds none of %s" % (text, ", ".join(MODEL_FILES)))
    warnings, used = [], []
    python, packages = None, None
    if "python_env.yaml" in present:
        data = _load_model_yaml(present["python_env.yaml"])
        used.append(present["python_env.yaml"])
        if data.get("python"):
            python = model_python_version(data["python"])
        deps = data.get("dependencies")
        if deps is not None and not isinstance(deps, list):
            raise HostFactsError("expected_from: %s: dependencies must be a list" % present["python_env.yaml"])
        if deps:
            packages = read_requirement_lines(deps, text, "python_env.yaml", warnings, used=used)
    if packages is None and "requirements.txt" in present:
        packages = read_requirements_file(present["requirements.txt"], warnings, used=used)
    if (packages is None or python is None) and "conda.yaml" in present:
        data = _load_model_yaml(present["conda.yaml"])
        used.append(present["conda.yaml"])
        deps = data.get("dependencies") or []
        if not isinstance(deps, list):
            raise HostFactsError("expected_from: %s: dependencies must be a list" % present["conda.yaml"])
        for dep in deps:
            if isinstance(dep, str) and python is None:
                match = re.match(r"^python\s*[=<>]=?\s*([0-9][0-9.]*)", dep.strip())
                if match:
                    python = model_python_version(match.group(1))
            elif isinstance(dep, dict) and isinstance(dep.get("pip"), list) and packages is None:
                packages = read_requirement_lines(dep["pip"], text, "conda.yaml (pip)", warnings, used=used)
    if python is None and "MLmodel" in present:
        match = re.search(r"^\s*python_version:\s*['\"]?([0-9]+\.[0-9]+)", _read_model_file(present["MLmodel"]), re.MULTILINE)
        if match:
            python = match.group(1)
            used.append(present["MLmodel"])
    expected = {}
    if python:
        expected["python"] = python
    if packages:
        expected["packages"] = packages
    if not expected:
        warnings.append("expected_from: %s names no Python version and no packages" % text)
    return expected, sorted(set(used)), warnings


def merge_expected(from_model, inline):
    """Inline expectations override the model's, per key and per package (names compared per PEP 503)."""
    merged = dict(from_model)
    for key, value in inline.items():
        if key == "packages":
            packages = dict(merged.get("packages") or {})
            for name, spec in value.items():
                for other in [n for n in packages if canonical_name(n) == canonical_name(name)]:
                    del packages[other]
                packages[name] = spec
            merged["packages"] = packages
        else:
            merged[key] = value
    return merged


# -- comparison ---------------------------------------------------------------------------------

def _mismatch(item, expected, actual, message):
    return {"item": item, "expected": expected, "actual": actual, "message": message}


def _describe_python_spec(spec):
    match = re.match(r"^==([0-9]+(?:\.[0-9]+)?)\.\*$", spec)
    return "%s (major.minor)" % match.group(1) if match else spec


def _at_least(actual, minimum):
    return _version_key(actual) >= _version_key(minimum)


def compare(facts, expected):
    """Every difference between the gathered facts and the expected environment."""
    mismatches = []
    if "python" in expected:
        version = facts["python"]["version"]
        ok = version_matches(version, expected["python"])
        if not ok:
            mismatches.append(_mismatch("python", expected["python"], version, "python: expected %s, found %s (%s)" % (
                _describe_python_spec(expected["python"]), version, facts["python"]["executable"])))
    for name in sorted(expected.get("packages") or {}, key=canonical_name):
        spec = expected["packages"][name]
        installed = facts["packages"].get(name)
        item = "packages.%s" % name
        if installed is None:
            mismatches.append(_mismatch(item, spec, None, "%s: expected %s, not installed" % (item, spec or "installed")))
            continue
        if spec is None:
            continue
        ok = version_matches(installed, spec)
        if ok is None:
            mismatches.append(_mismatch(item, spec, installed, "%s: expected %s, found %s, which is not a PEP 440 version"
                                        % (item, spec, installed)))
        elif not ok:
            mismatches.append(_mismatch(item, spec, installed, "%s: expected %s, found %s" % (item, spec, installed)))
    if "cuda_available" in expected and expected["cuda_available"] != facts["cuda_available"]:
        if expected["cuda_available"]:
            why = ("no NVIDIA GPU found" if not facts["gpu_count"] else
                   "%d NVIDIA GPU(s) but no NVIDIA driver answers (kernel driver: %s)"
                   % (facts["gpu_count"], ", ".join(sorted(set(str(g["kernel_driver"]) for g in facts["gpus"])))))
        else:
            why = "an NVIDIA GPU with a working driver is present"
        mismatches.append(_mismatch("cuda_available", expected["cuda_available"], facts["cuda_available"],
                                    "cuda_available: expected %s, %s" % (str(expected["cuda_available"]).lower(), why)))
    if "min_gpu_memory_mib" in expected:
        need = expected["min_gpu_memory_mib"]
        count = max(1, expected.get("gpu_count_min") or 1)
        sizes = [g["memory_total_mib"] for g in facts["gpus"]]
        big = [s for s in sizes if s is not None and s >= need]
        if len(big) < count:
            if not sizes:
                seen = "no NVIDIA GPU found"
            elif all(s is None for s in sizes):
                seen = "GPU memory unknown (nvidia-smi did not answer)"
            else:
                seen = "GPU memory: %s" % ", ".join("%s MiB" % s if s is not None else "unknown" for s in sizes)
            mismatches.append(_mismatch("min_gpu_memory_mib", need, max([s for s in sizes if s is not None] or [None]),
                                        "min_gpu_memory_mib: expected %d GPU(s) with at least %d MiB, found %d; %s"
                                        % (count, need, len(big), seen)))
    if "gpu_count_min" in expected and facts["gpu_count"] < expected["gpu_count_min"]:
        mismatches.append(_mismatch("gpu_count_min", expected["gpu_count_min"], facts["gpu_count"],
                                    "gpu_count_min: expected at least %d NVIDIA GPU(s), found %d"
                                    % (expected["gpu_count_min"], facts["gpu_count"])))
    for key, fact, what in (("driver_version_min", "nvidia_driver_version", "NVIDIA driver"),
                            ("cuda_version_min", "cuda_version", "CUDA version supported by the driver")):
        if key in expected:
            actual = facts[fact]
            if actual is None:
                mismatches.append(_mismatch(key, expected[key], None, "%s: expected %s >= %s, none found"
                                            % (key, what, expected[key])))
            elif not _at_least(actual, expected[key]):
                mismatches.append(_mismatch(key, expected[key], actual, "%s: expected %s >= %s, found %s"
                                            % (key, what, expected[key], actual)))
    return mismatches


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


def mismatch_message(mismatches):
    return "host does not match the expected environment (%d mismatch%s): %s" % (
        len(mismatches), "" if len(mismatches) == 1 else "es", "; ".join(m["message"] for m in mismatches))
