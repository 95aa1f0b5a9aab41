"""Serve the MLflow server's Prometheus metrics on loopback.

MLflow's basic-auth app is fail-closed: its own /metrics answers admins only.
Giving Prometheus an admin account would be far more than it needs, so the
role serves the same metrics (the multiprocess files MLflow's workers write
to --expose-prometheus) from this small process instead; nginx puts them
behind the metrics user's own password.

usage: mlflow_metrics.py HOST PORT METRICS_DIR
"""

import sys
import time

from prometheus_client import CollectorRegistry, multiprocess, start_http_server


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    host, port, directory = argv[1], int(argv[2]), argv[3]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    start_http_server(port, addr=host, registry=registry)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv)
