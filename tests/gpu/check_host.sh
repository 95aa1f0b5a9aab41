#!/usr/bin/env bash
# Compare what runlocalai.mlops.host_facts reports about this machine's NVIDIA GPUs with what
# nvidia-smi says when asked directly, and print both side by side.
#
# Needs only python3 (standard library) and this repository: it imports the module's engine
# (plugins/module_utils/host/facts.py, with host/gpu.py) from the checkout; fact gathering needs
# neither packaging nor PyYAML. When `ansible` is on PATH it also runs the module itself
# (`ansible localhost -m runlocalai.mlops.host_facts`) and checks the module returns the same GPUs
# as the engine.
#
# nvidia-smi is read here through other outputs than the module uses (the XML of `nvidia-smi -q -x`,
# and a CSV query with header and units for the compute capability), parsed by separate code.
# When prometheus_client is importable it also runs the GPU telemetry timer's code once
# (module_utils/host/gpu_telemetry.py: nvidia-smi -> textfile), reads the textfile back and checks
# mlops_gpu_smi_up is 1 and each GPU's total memory (by uuid) agrees with the XML.
#
# usage: tests/gpu/check_host.sh [--nvidia-smi PATH] [--sysfs-root DIR] [--no-ansible]
# exit:  0 all fields agree, 1 a difference, 2 nothing to compare (no nvidia-smi, or it failed).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"
script="$(mktemp)"
trap 'rm -f "$script"' EXIT
cat >"$script" <<'PY'
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

root = sys.argv[1]
parser = argparse.ArgumentParser(prog="check_host.sh")
parser.add_argument("--nvidia-smi", default=None)
parser.add_argument("--sysfs-root", default="/sys")
parser.add_argument("--no-ansible", action="store_true")
args = parser.parse_args(sys.argv[2:])

sys.path.insert(0, root)
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import facts as host_facts  # noqa: E402

smi = args.nvidia_smi or shutil.which("nvidia-smi")
if not smi:
    print("check_host: nvidia-smi not found; nothing to compare against")
    sys.exit(2)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    if proc.returncode != 0:
        print("check_host: %s failed (exit %d): %s" % (" ".join(argv), proc.returncode, (proc.stdout + proc.stderr).strip()[:500]))
        sys.exit(2)
    return proc.stdout


def bus_key(text):
    # nvidia-smi writes 00000000:3B:00.0, sysfs 0000:3b:00.0: both become 0000:3b:00.0
    parts = text.strip().lower().split(":")
    return "%04x:%s" % (int(parts[0], 16), ":".join(parts[1:])) if len(parts) == 3 else text.strip().lower()


# -- nvidia-smi, directly ------------------------------------------------------------------------
try:
    log = ET.fromstring(run([smi, "-q", "-x"]))
except ET.ParseError as exc:
    print("check_host: cannot parse the XML of nvidia-smi -q -x: %s" % exc)
    sys.exit(2)
direct = {"driver_version": (log.findtext("driver_version") or "").strip() or None,
          "cuda_version": (log.findtext("cuda_version") or "").strip() or None,
          "gpus": {}}
for gpu in log.findall("gpu"):
    total = (gpu.findtext("fb_memory_usage/total") or "").split()
    direct["gpus"][bus_key(gpu.get("id", ""))] = {
        "name": (gpu.findtext("product_name") or "").strip() or None,
        "uuid": (gpu.findtext("uuid") or "").strip() or None,
        "memory_total_mib": int(total[0]) if total and total[0].isdigit() else None,
        "driver_version": direct["driver_version"],
        "compute_capability": None,
    }
rows = list(csv.reader(run([smi, "--query-gpu=pci.bus_id,compute_cap", "--format=csv"]).splitlines(), skipinitialspace=True))
for row in rows[1:]:
    if len(row) == 2 and bus_key(row[0]) in direct["gpus"]:
        direct["gpus"][bus_key(row[0])]["compute_capability"] = row[1].strip() or None

# -- host_facts -----------------------------------------------------------------------------------
facts = host_facts.gather(disk_paths=[], nvidia_smi_path=smi, env=host_facts.Env(sysfs_root=args.sysfs_root))
module_gpus = None
if not args.no_ansible and shutil.which("ansible"):
    module_args = json.dumps({"disk_paths": [], "nvidia_smi_path": smi, "sysfs_root": args.sysfs_root})
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=root, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run(["ansible", "localhost", "-i", "localhost,", "-c", "local", "-o", "-m", "runlocalai.mlops.host_facts",
                           "-a", module_args, "-e", "ansible_python_interpreter=%s" % sys.executable],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, env=env)
    line = next((l for l in proc.stdout.splitlines() if "=>" in l), "")
    try:
        answer = json.loads(line.split("=>", 1)[1])
        module_gpus = answer["gpus"]
    except (IndexError, ValueError, KeyError):
        print("check_host: the module run did not answer as expected (exit %d): %s" % (proc.returncode, (proc.stdout + proc.stderr)[-800:]))
        sys.exit(1)

# -- compare and print ---------------------------------------------------------------------------
table = [("field", "host_facts", "nvidia-smi", "")]
differences = 0


def row(field, mine, theirs):
    global differences
    same = mine == theirs
    differences += not same
    table.append((field, "-" if mine is None else str(mine), "-" if theirs is None else str(theirs), "ok" if same else "DIFF"))


row("gpu_count", facts["gpu_count"], len(direct["gpus"]))
row("driver_version", facts["nvidia_driver_version"], direct["driver_version"])
row("cuda_version", facts["cuda_version"], direct["cuda_version"])
mine_by_bus = dict((bus_key(g["pci_address"]), g) for g in facts["gpus"])
for bus in sorted(set(mine_by_bus) | set(direct["gpus"])):
    mine, theirs = mine_by_bus.get(bus, {}), direct["gpus"].get(bus, {})
    for field in ("name", "uuid", "memory_total_mib", "driver_version", "compute_capability"):
        row("%s %s" % (bus, field), mine.get(field), theirs.get(field))
if module_gpus is not None:  # free memory moves between the two runs: leave it out
    def steady(gpus):
        return json.dumps([dict(g, memory_free_mib=None) for g in gpus], sort_keys=True)
    row("module gpus == engine gpus", steady(module_gpus) == steady(facts["gpus"]), True)

# -- GPU telemetry (the nvidia_cuda role's timer): its textfile, read back, against the XML ----------
try:
    from ansible_collections.runlocalai.mlops.plugins.module_utils.host import gpu_telemetry
    from prometheus_client.parser import text_string_to_metric_families
    telemetry_checked = gpu_telemetry.HAS_PROMETHEUS_CLIENT
except ImportError:
    telemetry_checked = False
if telemetry_checked:
    import tempfile
    textfile = os.path.join(tempfile.mkdtemp(), "mlops_gpu.prom")
    gpu_telemetry.write(textfile, gpu_telemetry.collect(smi))
    with open(textfile) as handle:
        samples = dict(((s.name, s.labels.get("uuid")), s.value)
                       for family in text_string_to_metric_families(handle.read()) for s in family.samples)
    os.remove(textfile)
    os.rmdir(os.path.dirname(textfile))
    row("telemetry mlops_gpu_smi_up", samples.get(("mlops_gpu_smi_up", None)), 1.0)
    for bus in sorted(direct["gpus"]):
        theirs = direct["gpus"][bus]
        total = samples.get(("mlops_gpu_memory_total_bytes", theirs["uuid"]))
        row("%s telemetry memory_total_mib" % bus, None if total is None else int(total) // (1024 * 1024), theirs["memory_total_mib"])

widths = [max(len(r[i]) for r in table) for i in range(4)]
for r in table:
    print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
for gpu in facts["gpus"]:
    print("gpu %s: device %s, kernel driver %s, MIG %s, memory free %s MiB" % (gpu["pci_address"], gpu["device_id"], gpu["kernel_driver"],
                                                                            gpu["mig_mode"], gpu["memory_free_mib"]))
print("cuda_runtime_versions: %s" % (", ".join(facts["cuda_runtime_versions"]) or "none"))
for warning in facts["warnings"]:
    print("warning: %s" % warning)
print("module run through ansible: %s" % ("yes" if module_gpus is not None else "no"))
print("gpu telemetry textfile checked: %s" % ("yes" if telemetry_checked else "no (prometheus_client missing)"))
print("result: %s" % ("all fields agree" if not differences else "%d difference(s)" % differences))
sys.exit(1 if differences else 0)
PY
"$python" "$script" "$root" "$@"
