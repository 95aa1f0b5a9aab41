"""Serving benchmark: the collection's model server against `mlflow models serve`, same model, same host,
same load generator, same run (issue 8). See README.md next to this file.

    .venv/bin/python benchmarks/serving/run.py [--workers 1 2] [--connections 8] [--duration 15]
                                               [--warmup 3] [--rounds 2] [--output PATH]

1. trains the breast-cancer StandardScaler + LogisticRegression pipeline (the demo's v1, as
   playbooks/files/demo/register_models.py makes it) and registers it as version 1 of `bench-bc` in a local MLflow (sqlite
   tracking store + local artifacts in a temporary directory);
2. starts the model server the way the model_server role runs it (the module_utils files copied into
   a `runlocalai_mlops` package, `python -m runlocalai_mlops.serving --config ...`, model_uri
   `models:/bench-bc/1` downloaded through MLflow into its cache), `threads` = N;
3. starts `mlflow models serve -m models:/bench-bc/1 --env-manager local --workers N`;
4. checks that both servers' predictions equal the pyfunc model loaded locally, one row per request,
   for a sample of rows (and the same rows as one batch);
5. measures both with the closed-loop generator in loadgen.py (one row per request: `records` JSON
   for ours, `dataframe_records` for MLflow), alternating which server goes first in each round,
   after measuring the generator's own capacity against a trivial server and each server's /health;
6. prints a markdown table and writes JSON results to --output.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODULE_UTILS = os.path.join(REPO, "ansible_collections", "runlocalai", "mlops", "plugins", "module_utils")
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import loadgen  # noqa: E402

MODEL_NAME = "bench-bc"


def log(text):
    sys.stderr.write("[%s] %s\n" % (datetime.datetime.now().strftime("%H:%M:%S"), text))
    sys.stderr.flush()


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def loadavg():
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------

def train_and_register(workdir):
    """Train and register the molecule demo model; returns (tracking_uri, model_uri, feature frame)."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tracking_uri = "sqlite:///%s/mlflow.db" % workdir
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        os.environ.pop(name, None)
    mlflow.set_tracking_uri(tracking_uri)
    data = load_breast_cancer(as_frame=True)
    features = data.data.copy()
    features.columns = [c.replace(" ", "_") for c in features.columns]
    train = features.iloc[::2]
    target = data.target.iloc[::2]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(train, target)
    experiment = mlflow.create_experiment("serving-bench", artifact_location="file://%s/artifacts" % workdir)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(pipe, name="model", registered_model_name=MODEL_NAME,
                                        signature=infer_signature(train, pipe.predict(train)),
                                        pip_requirements=["scikit-learn==%s" % sklearn.__version__])
    return tracking_uri, "models:/%s/%s" % (MODEL_NAME, info.registered_model_version), features


# ---------------------------------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------------------------------

class Server:
    def __init__(self, kind, argv, env, port, ready_path, workdir):
        self.kind = kind
        self.port = port
        self.ready_path = ready_path
        self.log_path = os.path.join(workdir, "%s-%d.log" % (kind, port))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, limit=240):
        deadline = time.time() + limit
        url = "http://127.0.0.1:%d%s" % (self.port, self.ready_path)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s): %s" % (self.kind, self.proc.returncode, self.tail()))
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("%s not ready after %d s: %s" % (self.kind, limit, self.tail()))

    def tail(self):
        self.log.flush()
        with open(self.log_path, "rb") as handle:
            return handle.read()[-3000:].decode("utf-8", "replace")

    def _session_stats(self):
        """/proc/<pid>/stat fields (after the name) of every process in the server's session."""
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid:  # session id (field 6 of stat; the 4th after the name)
                yield fields

    def cpu_seconds(self):
        """utime + stime of every process in the server's session (uvicorn workers included)."""
        ticks = sum(int(fields[11]) + int(fields[12]) for fields in self._session_stats())
        return ticks / float(os.sysconf("SC_CLK_TCK"))

    def processes(self):
        return sum(1 for _ in self._session_stats())

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: this server and its workers only
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def install_package(lib, module_utils):
    """What the model_server role installs on a serving host: whole packages of module_utils under
    runlocalai_mlops/. A module_utils of the flat layout before 0.2 (model_serving.py and drift_*.py
    side by side, e.g. an older checkout to compare with) is installed as it was then."""
    package = os.path.join(lib, "runlocalai_mlops")
    os.makedirs(package)
    open(os.path.join(package, "__init__.py"), "w").close()
    if os.path.exists(os.path.join(module_utils, "model_serving.py")):
        for path in glob.glob(os.path.join(module_utils, "drift_*.py")) + [os.path.join(module_utils, "model_serving.py")]:
            shutil.copy(path, package)
        return "runlocalai_mlops.model_serving"
    for sub in ("common", "drift", "serving"):
        shutil.copytree(os.path.join(module_utils, sub), os.path.join(package, sub), ignore=shutil.ignore_patterns("__pycache__"))
    return "runlocalai_mlops.serving"


def start_ours(workdir, model_uri, workers, env, module_utils=MODULE_UTILS, name="ours"):
    lib = os.path.join(workdir, "lib-" + name)
    if os.path.isdir(lib):
        shutil.rmtree(lib)
    entry_point = install_package(lib, module_utils)
    port = free_port()
    state = os.path.join(workdir, "%s-w%d" % (name, workers))
    config = {"name": MODEL_NAME, "version": model_uri.rsplit("/", 1)[1], "model_uri": model_uri, "alias": None,
              "state_dir": os.path.join(state, "state"), "log_dir": os.path.join(state, "log"),
              "listen_address": "127.0.0.1", "port": port, "threads": workers}
    config_path = os.path.join(state, "config.json")
    os.makedirs(state, exist_ok=True)
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    env = dict(env, PYTHONPATH=lib)
    argv = [sys.executable, "-m", entry_point, "--config", config_path]
    return Server(name, argv, env, port, "/ready", workdir), config


def start_mlflow(workdir, model_uri, workers, env):
    port = free_port()
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    argv = [mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port)]
    return Server("mlflow", argv, env, port, "/health", workdir)


# ---------------------------------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------------------------------

def row_records(features):
    return [dict((k, float(v)) for k, v in row.items()) for row in features.to_dict(orient="records")]


def bodies(kind, records):
    key = "records" if kind == "ours" else "dataframe_records"
    return [json.dumps({key: [record]}).encode("utf-8") for record in records]


def path_of(kind):
    return "/v1/predict" if kind == "ours" else "/invocations"


def post(port, path, body):
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read().decode("utf-8"))


def check_predictions(servers, model_uri, features, records, sample):
    """Predictions of both servers against the pyfunc model loaded locally: one row per request (each
    compared with pyfunc predict of that one-row frame) and all sample rows in one request (compared
    with pyfunc predict of the whole frame). Our probabilities are compared with the raw model's
    predict_proba of the same frames (maximum absolute difference)."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    raw = pyfunc.get_raw_model()
    index = list(range(0, len(records), max(1, len(records) // sample)))[:sample]
    rows = [records[i] for i in index]
    expected_single = []
    proba_single = []
    for row in rows:
        frame = pd.DataFrame([row])
        expected_single.extend(v.item() for v in pyfunc.predict(frame))
        proba_single.extend(raw.predict_proba(frame).tolist())
    frame = pd.DataFrame(rows)
    expected_batch = [v.item() for v in pyfunc.predict(frame)]
    proba_batch = raw.predict_proba(frame)
    result = {"rows": len(index), "classes_in_sample": sorted(set(expected_batch))}
    for server in servers:
        kind = server.kind
        single = []
        probabilities = []
        for row in rows:
            answer = post(server.port, path_of(kind), bodies(kind, [row])[0])
            single.extend(answer["predictions"])
            if kind == "ours":
                probabilities.extend(answer["probabilities"])
        key = "records" if kind == "ours" else "dataframe_records"
        batch = post(server.port, path_of(kind), json.dumps({key: rows}).encode("utf-8"))
        entry = {"one_row_per_request_equal": single == expected_single, "batch_equal": batch["predictions"] == expected_batch}
        if kind == "ours":
            entry["probabilities_max_abs_diff"] = float(np.max(np.abs(np.array(probabilities) - np.array(proba_single))))
            entry["batch_probabilities_max_abs_diff"] = float(np.max(np.abs(np.array(batch["probabilities"]) - proba_batch)))
        result[kind] = entry
    result["all_equal"] = all(result[s.kind]["one_row_per_request_equal"] and result[s.kind]["batch_equal"] for s in servers)
    return result


# ---------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------

def measure(label, port, requests, args, server=None, extra=None):
    before = loadavg()
    cpu_before = server.cpu_seconds() if server else None
    result = loadgen.run(loadgen.Target("127.0.0.1", port, requests), args.connections, args.duration, args.warmup)
    cpu_after = server.cpu_seconds() if server else None
    result["load_before"] = before
    result["load_after"] = loadavg()
    result["label"] = label
    if server is not None:
        # the server's CPU over warmup + duration, per measured request (approximate: includes warm-up)
        result["server_cpu_s"] = round(cpu_after - cpu_before, 2)
        result["server_cpu_share"] = round((cpu_after - cpu_before) / (args.duration + args.warmup), 2)
    result.update(extra or {})
    if not args.keep_latencies:
        result.pop("latencies_ms")
    log("%-32s %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  load %.2f -> %.2f" % (
        label, result["rps"], result["p50_ms"] or 0, result["p99_ms"] or 0, result["errors"], before, result["load_after"]))
    return result


def wait_for_quiet(limit, wait_max):
    started = time.time()
    quiet_since = None
    while time.time() - started < wait_max:
        if os.getloadavg()[0] < limit:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= 30:
                log("load average below %.2f for 30 s after %.0f s of waiting" % (limit, time.time() - started))
                return True
        else:
            quiet_since = None
        time.sleep(2)
    log("load average still not below %.2f after %.0f s: running anyway" % (limit, wait_max))
    return False


def versions():
    import importlib.metadata as md
    found = {"python": platform.python_version()}
    for name in ("mlflow", "scikit-learn", "pandas", "numpy", "uvicorn", "fastapi", "pyarrow"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fmt(value, digits=1):
    return "-" if value is None else ("%.*f" % (digits, value))


def table(results):
    lines = ["| workers | round | server | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU | generator CPU | load 1m before, after |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for item in results["runs"]:
        lines.append("| %d | %d | %s | %s | %s | %s | %s | %d | %s | %s | %.2f, %.2f |" % (
            item["workers"], item["round"], item["server"], fmt(item["rps"]), fmt(item["p50_ms"], 2), fmt(item["p90_ms"], 2),
            fmt(item["p99_ms"], 2), item["errors"], fmt(item.get("server_cpu_share"), 2), fmt(item["generator_cpu_share"], 2),
            item["load_before"], item["load_after"]))
    lines.append("")
    lines.append("| workers | round | ours / mlflow req/s | ours p99 / mlflow p99 | target (>= 5x, <= 1/3) |")
    lines.append("|---:|---:|---:|---:|---|")
    for ratio in results["ratios"]:
        lines.append("| %d | %d | %.1fx | %.3f | %s |" % (ratio["workers"], ratio["round"], ratio["rps_ratio"], ratio["p99_ratio"],
                                                         "met" if ratio["met"] else "not met"))
    lines.append("")
    lines.append("Generator capacity (%d connections, %.0f s): trivial server %.0f req/s (p99 %.2f ms, generator CPU %.2f)" % (
        results["args"]["connections"], results["args"]["duration"], results["generator"]["rps"], results["generator"]["p99_ms"],
        results["generator"]["generator_cpu_share"]))
    for item in results["health"]:
        lines.append("- /health, workers %d, %s: %.0f req/s, p99 %.2f ms, generator CPU %.2f" % (
            item["workers"], item["server"], item["rps"], item["p99_ms"], item["generator_cpu_share"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to compare (ours: threads; mlflow: --workers); default 1 2")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per server and round (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per server and worker count, order alternating (default 2)")
    parser.add_argument("--sample", type=int, default=60, help="rows checked against the local pyfunc model (default 60)")
    parser.add_argument("--servers", nargs="+", default=["ours", "mlflow"], choices=["ours", "mlflow"])
    parser.add_argument("--module-utils", metavar="DIR", default=MODULE_UTILS,
                        help="serve with the plugins/module_utils of another checkout (e.g. an older commit in a git worktree, to compare)")
    parser.add_argument("--output", default=os.path.join(REPO, ".cache", "bench-serving", "results.json"))
    parser.add_argument("--keep-latencies", action="store_true", help="store every latency in the JSON output")
    parser.add_argument("--wait-load", type=float, metavar="LOAD",
                        help="first wait until the 1-minute load average has stayed below LOAD for 30 s (the machine is shared)")
    parser.add_argument("--wait-max", type=float, default=1800, help="give up waiting after this many seconds and run anyway (default 1800)")
    parser.add_argument("--workdir", help="keep the MLflow store, server logs and audit logs here (default: a temporary directory)")
    args = parser.parse_args(argv)

    if args.wait_load:
        wait_for_quiet(args.wait_load, args.wait_max)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-serving-")
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)
    started = datetime.datetime.now(datetime.timezone.utc)
    results = {"started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "args": vars(args), "cpu_count": os.cpu_count(),
               "cpu_model": cpu_model(), "versions": versions(), "uptime_load_start": list(os.getloadavg()),
               "runs": [], "ratios": [], "health": [], "checks": []}
    log("workdir %s, load average %s" % (workdir, " ".join("%.2f" % v for v in os.getloadavg())))

    # generator capacity against a trivial one-thread server
    port_file = os.path.join(workdir, "trivial.port")
    trivial = subprocess.Popen([sys.executable, os.path.join(HERE, "loadgen.py"), port_file], start_new_session=True)
    try:
        while not os.path.exists(port_file):
            time.sleep(0.05)
        with open(port_file) as handle:
            tport = int(handle.read())
        body = bodies("ours", [{"f": 1.0}])[0]
        results["generator"] = measure("generator (trivial server)", tport,
                                       [loadgen.build_request("POST", "127.0.0.1", tport, "/", body)], args)
    finally:
        os.killpg(trivial.pid, signal.SIGTERM)
        trivial.wait(10)

    log("training and registering the model")
    tracking_uri, model_uri, features = train_and_register(workdir)
    records = row_records(features)
    # `mlflow models serve` runs `uvicorn` from PATH: the interpreter's bin directory first
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for workers in args.workers:
        servers = []
        try:
            if "ours" in args.servers:
                ours, _config = start_ours(workdir, model_uri, workers, env, args.module_utils)
                servers.append(ours)
            if "mlflow" in args.servers:
                servers.append(start_mlflow(workdir, model_uri, workers, env))
            for server in servers:
                server.wait_ready()
                log("%s (workers %d) ready on port %d, %d processes" % (server.kind, workers, server.port, server.processes()))
            check = check_predictions(servers, model_uri, features, records, args.sample)
            check["workers"] = workers
            results["checks"].append(check)
            log("predictions equal to the local pyfunc model: %s" % check["all_equal"])
            requests = {}
            for server in servers:
                requests[server.kind] = [loadgen.build_request("POST", "127.0.0.1", server.port, path_of(server.kind), b)
                                         for b in bodies(server.kind, records)]
                health = measure("/health %s w%d" % (server.kind, workers), server.port,
                                 [loadgen.build_request("GET", "127.0.0.1", server.port, "/health")], args, server)
                health.update(server=server.kind, workers=workers)
                results["health"].append(health)
            for round_no in range(1, args.rounds + 1):
                order = servers if round_no % 2 else list(reversed(servers))
                by_kind = {}
                for server in order:
                    item = measure("predict %s w%d r%d" % (server.kind, workers, round_no), server.port, requests[server.kind],
                                   args, server)
                    item.update(server=server.kind, workers=workers, round=round_no)
                    results["runs"].append(item)
                    by_kind[server.kind] = item
                if "ours" in by_kind and "mlflow" in by_kind and by_kind["mlflow"]["rps"]:
                    ours_item, theirs = by_kind["ours"], by_kind["mlflow"]
                    ratio = {"workers": workers, "round": round_no, "rps_ratio": ours_item["rps"] / theirs["rps"],
                             "p99_ratio": ours_item["p99_ms"] / theirs["p99_ms"]}
                    ratio["met"] = ratio["rps_ratio"] >= 5 and ratio["p99_ratio"] <= 1 / 3.0 and not ours_item["errors"]
                    results["ratios"].append(ratio)
        finally:
            for server in servers:
                server.stop()
    results["uptime_load_end"] = list(os.getloadavg())
    results["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = table(results)
    results["table_markdown"] = text
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
    print(text)
    print("\nchecks: " + json.dumps(results["checks"]))
    print("results: %s" % args.output)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(c["all_equal"] for c in results["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
