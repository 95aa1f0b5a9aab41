# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""NVIDIA GPUs and CUDA: PCI data in sysfs (found before any driver is installed), nvidia-smi
(merged by bus id when it answers), the loaded kernel module's driver version and the CUDA
runtime libraries. Standard library only; failures of nvidia-smi become warnings."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import glob
import json
import os
import re

from .base import _first_line, _read, _version_key

NVIDIA_VENDOR_ID = "0x10de"
SMI_FIELDS = ("pci.bus_id", "name", "uuid", "memory.total", "memory.free", "driver_version", "compute_cap",
              "mig.mode.current")
# Drivers older than about 510 reject compute_cap (and some mig.mode): they get the base query.
SMI_BASE_FIELDS = SMI_FIELDS[:6]
SMI_TIMEOUT = 30
CUDART_GLOBS = ("/usr/local/cuda*/lib64/libcudart.so*", "/usr/local/cuda*/lib/libcudart.so*",
                "/usr/local/cuda*/targets/*/lib/libcudart.so*",
                "/usr/lib/*-linux-gnu/libcudart.so*", "/usr/lib64/libcudart.so*", "/usr/lib/libcudart.so*")


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


def _smi_float(text, field, warnings):
    value = _smi_value(text)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        warnings.append("nvidia-smi: %s %r is not a number" % (field, value))
        return None


def _smi_rows(text, fields):
    """The one reader of `--query-gpu=<fields> --format=csv,noheader,nounits` output: one cell dict per
    line that has one cell per field and a PCI bus id (normalized, as 'pci_address'). Other lines are
    skipped with a warning (garbage output never raises). Returns (rows, warnings)."""
    rows, warnings = [], []
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
        cells["pci_address"] = address
        rows.append(cells)
    return rows, warnings


def parse_smi_csv(text, fields=SMI_FIELDS):
    """Parse `--format=csv,noheader,nounits` output of the query fields. Returns (gpus, warnings).

    Lines that do not have one cell per field or whose bus id is not a PCI address are skipped
    with a warning (garbage output never raises).
    """
    rows, warnings = _smi_rows(text, fields)
    gpus = []
    for cells in rows:
        mig = _smi_value(cells.get("mig.mode.current"))
        gpus.append({
            "pci_address": cells["pci_address"],
            "name": _smi_value(cells["name"]),
            "uuid": _smi_value(cells["uuid"]),
            "memory_total_mib": _smi_int(cells["memory.total"], "memory.total", warnings),
            "memory_free_mib": _smi_int(cells["memory.free"], "memory.free", warnings),
            "driver_version": _smi_value(cells["driver_version"]),
            "compute_capability": _smi_value(cells.get("compute_cap")),
            "mig_mode": mig.lower() if mig else None,
        })
    return gpus, warnings


# -- GPU telemetry (the nvidia_cuda role's timer, host/gpu_telemetry.py) -------------------------

# What the telemetry timer asks: fields every driver since long before 470 knows.
SMI_TELEMETRY_FIELDS = ("index", "pci.bus_id", "uuid", "name", "utilization.gpu", "memory.used", "memory.total",
                        "temperature.gpu", "power.draw", "power.limit")
# Numeric fields -> key of the parsed entry (units: %, MiB, degrees C, W as nvidia-smi's nounits gives them).
SMI_TELEMETRY_NUMBERS = (("utilization.gpu", "utilization_percent"), ("memory.used", "memory_used_mib"),
                         ("memory.total", "memory_total_mib"), ("temperature.gpu", "temperature_celsius"),
                         ("power.draw", "power_draw_watts"), ("power.limit", "power_limit_watts"))


def telemetry_argv(path):
    """The nvidia-smi command line whose output parse_smi_telemetry reads."""
    return [path, "--query-gpu=" + ",".join(SMI_TELEMETRY_FIELDS), "--format=csv,noheader,nounits"]


def parse_smi_telemetry(text):
    """Parse the telemetry query's output (telemetry_argv). Returns (gpus, warnings): per GPU its index,
    pci_address, uuid, name and the numbers of SMI_TELEMETRY_NUMBERS, None where nvidia-smi has no
    value ('[N/A]', '[Not Supported]': utilization under MIG, power on some boards) or a bad one.
    A GPU without an index or a uuid (its labels) is skipped with a warning."""
    rows, warnings = _smi_rows(text, SMI_TELEMETRY_FIELDS)
    gpus = []
    for cells in rows:
        index, uuid = _smi_int(cells["index"], "index", warnings), _smi_value(cells["uuid"])
        if index is None or uuid is None:
            warnings.append("nvidia-smi: GPU %s has no index or uuid; left out" % cells["pci_address"])
            continue
        gpu = {"index": index, "pci_address": cells["pci_address"], "uuid": uuid, "name": _smi_value(cells["name"]) or ""}
        for field, key in SMI_TELEMETRY_NUMBERS:
            gpu[key] = _smi_float(cells[field], field, warnings)
        gpus.append(gpu)
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
