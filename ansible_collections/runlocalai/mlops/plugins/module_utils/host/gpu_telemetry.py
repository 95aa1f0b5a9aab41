# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""GPU telemetry for node-exporter's textfile collector: asks nvidia-smi once (host/gpu.py reads
its answer) and writes the series below with prometheus_client, atomically (a temporary file in
the same directory, then rename), so node-exporter never reads half a file.

    mlops_gpu_smi_up                                  1 when nvidia-smi answered with at least one GPU, else 0
    mlops_gpu_utilization_ratio{index,uuid,name}      0..1 (absent where nvidia-smi has none, e.g. under MIG)
    mlops_gpu_memory_used_bytes{index,uuid,name}
    mlops_gpu_memory_total_bytes{index,uuid,name}
    mlops_gpu_temperature_celsius{index,uuid,name}
    mlops_gpu_power_draw_watts{index,uuid,name}
    mlops_gpu_power_limit_watts{index,uuid,name}

When nvidia-smi fails, times out or prints nothing readable, the file holds mlops_gpu_smi_up 0 and
nothing else (no stale GPU series). Run by the nvidia_cuda role's timer as

    python -m runlocalai_mlops.host.gpu_telemetry --nvidia-smi /usr/bin/nvidia-smi \\
        --textfile /var/lib/prometheus/node-exporter/mlops_gpu.prom

Not imported by any module (it needs prometheus_client, which modules do not ship)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import subprocess
import sys

try:
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
    HAS_PROMETHEUS_CLIENT = True
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    HAS_PROMETHEUS_CLIENT = False

from .gpu import SMI_TIMEOUT, parse_smi_telemetry, telemetry_argv

MIB = 1024 * 1024
LABELS = ("index", "uuid", "name")
# name, help, key of parse_smi_telemetry's entry, factor to the series' unit
SERIES = (
    ("mlops_gpu_utilization_ratio", "GPU utilization over nvidia-smi's last sample period (0-1).",
     "utilization_percent", 0.01),
    ("mlops_gpu_memory_used_bytes", "GPU memory in use (frame buffer).", "memory_used_mib", MIB),
    ("mlops_gpu_memory_total_bytes", "GPU memory in all (frame buffer).", "memory_total_mib", MIB),
    ("mlops_gpu_temperature_celsius", "GPU core temperature.", "temperature_celsius", 1),
    ("mlops_gpu_power_draw_watts", "GPU power draw.", "power_draw_watts", 1),
    ("mlops_gpu_power_limit_watts", "GPU power limit in force.", "power_limit_watts", 1),
)
UP = "mlops_gpu_smi_up"


def run_command(argv, timeout=SMI_TIMEOUT):
    """(rc, stdout, stderr); a missing program or a timeout is a failure, never an exception."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %ss" % timeout
    except (OSError, ValueError) as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def collect(nvidia_smi, runner=run_command):
    """Ask nvidia-smi. Returns {up, gpus, warnings}: up is True when it exited 0 and at least one
    GPU could be read; gpus is empty whenever up is False."""
    rc, out, err = runner(telemetry_argv(nvidia_smi))
    if rc != 0:
        text = " ".join(((err or "").strip() or (out or "").strip() or "no output").split())
        return {"up": False, "gpus": [], "warnings": ["nvidia-smi failed (exit %s): %s" % (rc, text[:300])]}
    gpus, warnings = parse_smi_telemetry(out)
    if not gpus:
        warnings.append("nvidia-smi: no GPU could be read from its output")
    return {"up": bool(gpus), "gpus": gpus, "warnings": warnings}


def registry_for(result):
    """A prometheus_client registry holding the series of one collect() result."""
    registry = CollectorRegistry()
    up = Gauge(UP, "1 when nvidia-smi answered with at least one GPU at the last run, else 0.", registry=registry)
    up.set(1 if result["up"] else 0)
    if not result["up"]:
        return registry
    for name, documentation, key, factor in SERIES:
        gauge = Gauge(name, documentation, LABELS, registry=registry)
        for gpu in result["gpus"]:
            if gpu.get(key) is not None:
                gauge.labels(index=str(gpu["index"]), uuid=gpu["uuid"], name=gpu["name"]).set(gpu[key] * factor)
    return registry


def write(textfile, result):
    """Write the series of `result` to `textfile` (atomically: prometheus_client's write_to_textfile)."""
    write_to_textfile(textfile, registry_for(result))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpu_telemetry", description="GPU series from nvidia-smi for node-exporter's textfile collector")
    parser.add_argument("--nvidia-smi", required=True, help="path of nvidia-smi")
    parser.add_argument("--textfile", required=True, help="the .prom file to write (in node-exporter's textfile directory)")
    parser.add_argument("--timeout", type=int, default=SMI_TIMEOUT, help="seconds nvidia-smi may take (default %(default)s)")
    args = parser.parse_args(argv)
    if not HAS_PROMETHEUS_CLIENT:
        parser.error("the Python library prometheus_client is missing (the nvidia_cuda role installs it in the timer's virtualenv)")
    if not args.textfile.endswith(".prom"):
        parser.error("--textfile: %r must end in .prom (node-exporter reads only those)" % args.textfile)
    if args.timeout < 1:
        parser.error("--timeout: must be at least 1 second")
    result = collect(args.nvidia_smi, lambda command: run_command(command, timeout=args.timeout))
    for warning in result["warnings"]:
        sys.stderr.write("gpu_telemetry: %s\n" % warning)
    try:
        write(args.textfile, result)
    except (IOError, OSError) as exc:
        sys.stderr.write("gpu_telemetry: cannot write %s: %s\n" % (args.textfile, exc))
        return 1
    # nvidia-smi failing is reported by the series (mlops_gpu_smi_up 0), not by the unit's state.
    sys.stdout.write("gpu_telemetry: %d GPU(s), nvidia-smi %s -> %s\n" % (len(result["gpus"]), "up" if result["up"] else "DOWN", args.textfile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
