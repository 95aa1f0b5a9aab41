#!/usr/bin/env python3
"""Where a converge's time goes as hosts are added: no-op module runs on 1, 2, 4, 8 lab hosts.

A playbook of --tasks `stat` tasks (become, as site.yml's are) runs on lab-2 alone, then on
lab-2..3, lab-2..5 and lab-2..9, with each --strategy. Every host runs the same tasks at the same
time, so with hosts of their own the wall time would stay nearly flat; here every lab host is a
container on this machine's cores. Each run reports wall seconds, Ansible's CPU on the controller
(ansible-playbook, its workers and their `docker exec` clients) and the whole machine's busy CPU:
the difference is the lab hosts' side (dockerd, runc, the modules' Python in the containers).

usage: benchmarks/converge/fanout.py [--hosts 1 2 4 8] [--tasks 20]
                                     [--strategy linear mitogen_linear] [--keep]
Needs `make setup`; starts lab-1..lab-N+1 (lab-1 stays idle) and removes them unless --keep.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

from run import LAB, ROOT, lab, timed

PLAYBOOK = ROOT / ".cache" / "bench" / "fanout-playbook.yml"
INVENTORY = LAB / "fanout.yml"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--strategy", nargs="+", default=["linear", "mitogen_linear"])
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts running")
    parser.add_argument("--out", default=str(ROOT / ".cache" / "bench" / "fanout.json"))
    args = parser.parse_args()
    sizes = sorted(set(args.hosts))
    PLAYBOOK.parent.mkdir(parents=True, exist_ok=True)
    PLAYBOOK.write_text(yaml.safe_dump([{
        "name": "No-op module runs", "hosts": "all", "gather_facts": False, "become": True,
        "tasks": [{"name": "stat %d" % n, "ansible.builtin.stat": {"path": "/"}} for n in range(args.tasks)]}],
        sort_keys=False))

    lab("up", 1 + max(sizes))
    results = {}
    try:
        for size in sizes:
            INVENTORY.write_text("---\n# Written by benchmarks/converge/fanout.py; removed when it ends.\n"
                                 + yaml.safe_dump({"all": {"hosts": {"lab-%d" % n: None
                                                                     for n in range(2, size + 2)}}}))
            for strategy in args.strategy:
                log = PLAYBOOK.parent / ("fanout-%d-%s.log" % (size, strategy))
                result, returncode = timed(["ansible-playbook", "-i", str(INVENTORY), str(PLAYBOOK)], log, strategy)
                if returncode:
                    sys.exit("the playbook failed on %d hosts (%s); see %s" % (size, strategy, log))
                results.setdefault(size, {})[strategy] = result
                print("%d hosts, %s: %.1f s, CPU: Ansible %.1f s, whole machine %.1f s" % (
                    size, strategy, result["seconds"], result["controller_cpu_seconds"],
                    result["machine_cpu_seconds"]), flush=True)
    finally:
        INVENTORY.unlink(missing_ok=True)
        if not args.keep:
            lab("down")

    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n%d no-op tasks | hosts | wall s (x 1 host) | Ansible CPU s | machine CPU s | lab hosts' side"
          % args.tasks)
    for strategy in args.strategy:
        for size in sizes:
            r, one = results[size][strategy], results[sizes[0]][strategy]
            print("%15s | %5d | %5.1f (%.2fx) | %5.1f | %5.1f | %3.0f%%" % (
                strategy, size, r["seconds"], r["seconds"] / one["seconds"], r["controller_cpu_seconds"],
                r["machine_cpu_seconds"],
                100 * (r["machine_cpu_seconds"] - r["controller_cpu_seconds"]) / max(r["machine_cpu_seconds"], 0.1)))
    print("(written to %s)" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
