"""MLflow's basic-auth app with and without its credential cache, side by side in one run.

Every request to MLflow's basic-auth app checks the user's password against its stored hash
(werkzeug's scrypt: tens of milliseconds of CPU by design). MLflow 3 can cache a successful check
for `auth_cache_ttl_seconds` (default 0: off); the mlflow_server role sets it
(`mlflow_server_auth_cache_ttl_seconds`). This starts two real MLflow servers from this
virtualenv, one per setting, and sends the same authenticated registry and tracking reads to each,
one client and then several at once, and reports requests per second and the server's CPU per
request (from /proc).

usage: .venv/bin/python benchmarks/mlflow_auth/run.py [--requests 300] [--clients 4] [--ttl 60]
"""

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# The unit tests' MLflow server (basic-auth app, SQLite, one worker, as the role runs it).
from ansible_collections.runlocalai.mlops.tests.unit.plugins.mlflow_server import (  # noqa: E402
    ADMIN, ADMIN_PASSWORD, Server)

PATHS = ("/api/2.0/mlflow/registered-models/search?max_results=10",
         "/api/2.0/mlflow/experiments/search?max_results=10")


def cpu_seconds(pid):
    """CPU time (user + system) of a process and its children, from /proc."""
    total = 0.0
    children = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    for each in children or [str(pid)]:
        try:
            fields = open("/proc/%s/stat" % each).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load(server, count, clients):
    session_per_client = [requests.Session() for _ in range(clients)]
    for session in session_per_client:
        session.auth = (ADMIN, ADMIN_PASSWORD)

    def one(index):
        answer = session_per_client[index % clients].get(server.url + PATHS[index % len(PATHS)], timeout=60)
        answer.raise_for_status()

    before, start_time = cpu_seconds(server.proc.pid), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - start_time
    return count / wall, (cpu_seconds(server.proc.pid) - before) / count * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--ttl", type=int, default=60)
    args = parser.parse_args()
    print("machine: %d CPUs, load %s" % (os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg())))
    servers = {"cache off (MLflow's default)": Server(auth_cache_ttl_seconds=0),
               "cache %d s" % args.ttl: Server(auth_cache_ttl_seconds=args.ttl)}
    try:
        for clients in (1, args.clients):
            for name, server in servers.items():
                load(server, 10, clients)  # warm-up
                rate, cpu = load(server, args.requests, clients)
                print("%-30s %d client(s): %7.1f req/s, server CPU %6.1f ms/request" % (name, clients, rate, cpu))
    finally:
        for server in servers.values():
            server.stop()
    print("load after: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()
