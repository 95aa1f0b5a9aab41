#!/usr/bin/env python3
"""Converge time of playbooks/site.yml on lab hosts, and how it grows with the serving hosts.

One lab: lab-1 carries the mlflow and monitoring groups, and disjoint sets of fresh serving hosts
(1, 2, 4, 8 by default: lab-2; lab-3..4; lab-5..8; lab-9..16) each get an inventory of their own
beside the lab's group_vars; size 0 is lab-1 alone, serving too (the all-in-one host). For each
size, smallest first:
  first run  - site.yml on lab-1 + that set of fresh serving hosts (lab-1 is fresh only for the
               first size; after it the tracking host is already converged), with the first
               strategy given;
  second run - site.yml again on the same hosts, once with each strategy (default: Ansible's
               linear, the baseline, then Mitogen's mitogen_linear): must report changed=0.
(Prometheus on lab-1 scrapes the serving hosts of the inventory it was last converged with, so
a size's second run must follow its own first run.)
With --second-only the lab of an earlier --keep run is reused: each size gets a settling run
(lab-1's scrape targets follow the new inventory) in place of the first run, then the second.
Prints a table (seconds, load average before each run) and writes it, with the CPU time of
Ansible on the controller and of the whole machine per run, as JSON.

usage: benchmarks/converge/run.py [--serving 0 1 2 4 8] [--strategy linear mitogen_linear]
                                  [--release bookworm] [--keep] [--second-only]
Needs `make setup` (the venv, the lab images, the wheelhouse). Removes the lab when done
unless --keep. Run it on a quiet machine: every number is wall-clock time.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def env(strategy="linear"):
    out = dict(os.environ)
    out["PATH"] = "%s:%s" % (ROOT / ".venv" / "bin", out.get("PATH", ""))
    out["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    out["ANSIBLE_STRATEGY"] = strategy
    return out


def lab(state, count=1, release="bookworm"):
    subprocess.run(["ansible-playbook", "playbooks/lab.yml", "-e", "lab_state=" + state,
                    "-e", "lab_host_count=%d" % count, "-e", "lab_release=" + release],
                   cwd=ROOT, env=env(), check=True, stdout=subprocess.DEVNULL)


def serving_sets(sizes):
    """Disjoint host names per size: lab-2.. in order, smallest size first; 0 is lab-1 itself."""
    sets, next_host = {0: ["lab-1"]}, 2
    for size in [size for size in sizes if size]:
        sets[size] = ["lab-%d" % n for n in range(next_host, next_host + size)]
        next_host += size
    return sets


def write_inventory(size, serving, addresses):
    """inventories/lab/bench-N.yml: the lab's structure with this set as the serving group."""
    hosts = ["lab-1"] + [name for name in serving if name != "lab-1"]
    inventory = {"all": {
        "hosts": {name: {"lab_address": addresses[name]} for name in hosts},
        "children": {
            "mlflow": {"hosts": {"lab-1": None}},
            "monitoring": {"hosts": {"lab-1": None}},
            "serving": {"hosts": {name: None for name in serving}},
            "cpu": {"hosts": {name: None for name in hosts}},
            "gpu": {"hosts": {}},
        }}}
    path = LAB / ("bench-%d.yml" % size)
    path.write_text("---\n# Written by benchmarks/converge/run.py; removed when it ends.\n"
                    + yaml.safe_dump(inventory, sort_keys=False))
    return path


def machine_busy_seconds():
    """CPU seconds this machine has spent busy, all cores and processes (/proc/stat)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def timed(argv, log, strategy):
    """Run argv with Ansible's environment, its output to log: wall seconds, Ansible's own CPU
    seconds on the controller, the whole machine's busy CPU seconds, the load before, the rc."""
    load = os.getloadavg()[0]
    start, busy = time.monotonic(), machine_busy_seconds()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as out:
        done = subprocess.run(argv, cwd=ROOT, env=env(strategy), stdout=out, stderr=subprocess.STDOUT, check=False)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Ansible's CPU: ansible-playbook, its workers and their `docker exec` clients. The rest of the
    # machine's (dockerd, runc, the modules' Python in the containers) is the lab hosts' side, work
    # that hosts of their own would do on their own CPUs.
    controller_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"seconds": round(time.monotonic() - start, 1), "controller_cpu_seconds": round(controller_cpu, 1),
            "machine_cpu_seconds": round(machine_busy_seconds() - busy, 1),
            "load_before": round(load, 2)}, done.returncode


def converge(inventory, log, strategy):
    result, returncode = timed(["ansible-playbook", "-i", str(inventory), "playbooks/site.yml"], log, strategy)
    recap = {m[0]: [int(n) for n in m[1:]] for m in RECAP.findall(Path(log).read_text())}
    if returncode != 0 or any(counts[2] or counts[3] for counts in recap.values()):
        sys.exit("site.yml failed on %s (rc %d); see %s" % (inventory.name, returncode, log))
    result.update(changed=sum(counts[1] for counts in recap.values()), hosts=len(recap))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serving", type=int, nargs="+", default=[0, 1, 2, 4, 8],
                        help="serving host counts; 0 is lab-1 alone (all-in-one)")
    parser.add_argument("--strategy", nargs="+", default=["linear", "mitogen_linear"],
                        help="strategies of the second runs; the first one also makes the first runs")
    parser.add_argument("--release", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts running")
    parser.add_argument("--second-only", action="store_true",
                        help="reuse the converged lab of an earlier --keep run; measure second runs only")
    parser.add_argument("--out", default=str(ROOT / ".cache" / "bench" / "converge.json"))
    args = parser.parse_args()
    sizes = sorted(set(args.serving))
    sets = serving_sets(sizes)
    logs = Path(args.out).parent
    logs.mkdir(parents=True, exist_ok=True)

    if not args.second_only:
        lab("down")
        lab("up", 1 + sum(sizes), args.release)
    lab_hosts = yaml.safe_load((LAB / "hosts.yml").read_text())["all"]["hosts"]
    addresses = {name: values["lab_address"] for name, values in lab_hosts.items()}
    inventories = {size: write_inventory(size, sets[size], addresses) for size in sizes}
    results = {size: {"serving_hosts": sets[size]} for size in sizes}
    first = "settle" if args.second_only else "first"
    try:
        for size in sizes:
            results[size][first] = converge(inventories[size], logs / ("converge-%d-%s.log" % (size, first)),
                                            args.strategy[0])
            print("%d serving: %s run %.0f s (%s)" % (size, first, results[size][first]["seconds"], args.strategy[0]),
                  flush=True)
            for strategy in args.strategy:
                second = converge(inventories[size], logs / ("converge-%d-second-%s.log" % (size, strategy)), strategy)
                if second["changed"]:
                    sys.exit("second run (%s) on %d serving hosts changed %d tasks" % (strategy, size, second["changed"]))
                results[size]["second_" + strategy] = second
                print("%d serving: second run %.0f s, CPU: Ansible %.0f s, whole machine %.0f s (%s)" % (
                    size, second["seconds"], second["controller_cpu_seconds"], second["machine_cpu_seconds"],
                    strategy), flush=True)
    finally:
        for path in inventories.values():
            path.unlink()
        if not args.keep:
            lab("down")

    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    one = 1 if 1 in sizes else sizes[0]
    print("\nserving hosts (0: lab-1 alone) | %s run s (%s) | second run s, x second(%d): %s | load before runs" % (
        first, args.strategy[0], one, ", ".join(args.strategy)))
    for size in sizes:
        r = results[size]
        seconds = [r["second_" + strategy]["seconds"] for strategy in args.strategy]
        ratios = [r["second_" + strategy]["seconds"] / results[one]["second_" + strategy]["seconds"]
                  for strategy in args.strategy]
        print("%30d | %s | %s | %s" % (
            size, "%.0f" % r[first]["seconds"],
            ", ".join("%.0f (%.2fx)" % pair for pair in zip(seconds, ratios)),
            ", ".join("%.1f" % r[key]["load_before"] for key in [first] + ["second_" + st for st in args.strategy])))
    print("targets: second run on one lab host <= 60 s; 8 serving hosts <= 2x the time of 1 (written to %s)" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
