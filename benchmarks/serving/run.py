"""Serving benchmark: the collection's model server against `mlflow models serve`, same model, same host,
same load generator, same run (issue 8). See README.md next to this file.

    .venv/bin/python benchmarks/serving/run.py [--models bc cat] [--rows 1 100] [--workers 1 2] [--connections 8]
                                               [--duration 15] [--warmup 3] [--rounds 2] [--output PATH]
                                               [--before-module-utils DIR]

Models: bc (all-double pipeline, the scikit-learn fast path) and cat (a ColumnTransformer with a one-hot
encoded string column, outside it), each measured with --rows rows per request, plus raw in-process
predict_proba + predict on one row as the reference.

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

MODEL_NAMES = {"bc": "bench-bc", "cat": "bench-cat"}

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

def _tracking(workdir):
    import mlflow

    tracking_uri = "sqlite:///%s/mlflow.db" % workdir
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        os.environ.pop(name, None)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name("serving-bench")
    if experiment is not None:
        return tracking_uri, experiment.experiment_id
    return tracking_uri, mlflow.create_experiment("serving-bench", artifact_location="file://%s/artifacts" % workdir)


def _features():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    features = data.data.copy()
    features.columns = [c.replace(" ", "_") for c in features.columns]
    return features, data.target


def size_class(radius):
    return "small" if radius < 12.0 else ("medium" if radius < 15.0 else ("large" if radius < 18.0 else "very_large"))


def build_model(kind):
    """(fitted pipeline, feature frame of all 569 rows, training frame, training target) of a benchmark model.

    bc:  the demo's StandardScaler + LogisticRegression on the 30 double columns (the server's
         scikit-learn fast path applies);
    cat: outside the fast path: the 10 `mean_*` double columns plus a categorical string column
         `size_class` (mean radius binned into small/medium/large/very_large), a ColumnTransformer
         (StandardScaler on the numbers, OneHotEncoder on the string) + LogisticRegression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = _features()
    if kind == "cat":
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder

        numeric = [c for c in features.columns if c.startswith("mean_")]
        features = features[numeric].copy()
        features["size_class"] = [size_class(r) for r in features["mean_radius"]]
        pre = ColumnTransformer([("num", StandardScaler(), numeric),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["size_class"])])
        pipe = make_pipeline(pre, LogisticRegression(C=1.0, max_iter=1000))
    else:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    train = features.iloc[::2]
    pipe.fit(train, target.iloc[::2])
    return pipe, features, train


def train_and_register(workdir, kind="bc"):
    """Train and register a benchmark model; returns (tracking_uri, model_uri, feature frame, pipeline)."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    tracking_uri, experiment = _tracking(workdir)
    pipe, features, train = build_model(kind)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(pipe, name="model", registered_model_name=MODEL_NAMES[kind],
                                        signature=infer_signature(train, pipe.predict(train)),
                                        pip_requirements=["scikit-learn==%s" % sklearn.__version__])
    return tracking_uri, "models:/%s/%s" % (MODEL_NAMES[kind], info.registered_model_version), features, pipe


def raw_predict_rate(pipe, features, seconds):
    """The reference: in-process `predict_proba` + `predict` of the fitted pipeline on one row per call,
    cycling through the rows, calls per second over `seconds` (one thread). A numpy row for an
    all-double model; a one-row DataFrame otherwise (a ColumnTransformer selects columns by name)."""
    if all(str(dtype) == "float64" for dtype in features.dtypes):
        rows = [features.values[i:i + 1] for i in range(len(features))]
        what = "numpy float64 array (1, %d)" % features.shape[1]
    else:
        rows = [features.iloc[i:i + 1] for i in range(len(features))]
        what = "one-row pandas DataFrame (%d columns)" % features.shape[1]
    import warnings
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    for row in rows[:50]:
        pipe.predict_proba(row), pipe.predict(row)
    calls = 0
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        row = rows[calls % len(rows)]
        pipe.predict_proba(row)
        pipe.predict(row)
        calls += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {"calls_per_s": calls / elapsed, "calls": calls, "seconds": round(elapsed, 2), "cpu_share": round(cpu / elapsed, 2),
            "cpu_ms_per_call": 1000.0 * cpu / calls, "input": what}


def cpu_ms_per_request(item):
    """The server's CPU per answered request (its CPU over warm-up + measurement, over the requests of
    that span at the measured rate)."""
    span = item["duration_s"] + item["warmup_s"]
    return (1000.0 * item["server_cpu_s"] / (item["rps"] * span)) if item.get("server_cpu_s") is not None and item["rps"] else None


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
    model_name = model_uri.split("/")[1]
    lib = os.path.join(workdir, "lib-" + name)
    if os.path.isdir(lib):
        shutil.rmtree(lib)
    entry_point = install_package(lib, module_utils)
    port = free_port()
    state = os.path.join(workdir, "%s-%s-w%d" % (name, model_name, workers))
    config = {"name": model_name, "version": model_uri.rsplit("/", 1)[1], "model_uri": model_uri, "alias": None,
              "state_dir": os.path.join(state, "state"), "log_dir": os.path.join(state, "log"),
              "listen_address": "127.0.0.1", "port": port, "threads": workers}
    config_path = os.path.join(state, "config.json")
    os.makedirs(state, exist_ok=True)
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    env = dict(env, PYTHONPATH=lib)
    argv = [sys.executable, "-m", entry_point, "--config", config_path]
    return Server(name, argv, env, port, "/ready", workdir), config


def start_mlflow(workdir, model_uri, workers, env, name="mlflow"):
    port = free_port()
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    argv = [mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port)]
    return Server(name, argv, env, port, "/health", workdir)


# ---------------------------------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------------------------------

def row_records(features):
    return [dict((k, v if isinstance(v, str) else float(v)) for k, v in row.items()) for row in features.to_dict(orient="records")]


def is_mlflow(kind):
    return kind == "mlflow"


def bodies(kind, records, rows=1):
    """Request bodies of `rows` consecutive records each (cycling through the data set)."""
    key = "dataframe_records" if is_mlflow(kind) else "records"
    count = len(records) if rows == 1 else max(len(records) // rows, 50)
    return [json.dumps({key: [records[(i * rows + j) % len(records)] for j in range(rows)]}).encode("utf-8")
            for i in range(count)]


def path_of(kind):
    return "/invocations" if is_mlflow(kind) else "/v1/predict"


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
            if not is_mlflow(kind):
                probabilities.extend(answer["probabilities"])
        key = "dataframe_records" if is_mlflow(kind) else "records"
        batch = post(server.port, path_of(kind), json.dumps({key: rows}).encode("utf-8"))
        entry = {"one_row_per_request_equal": single == expected_single, "batch_equal": batch["predictions"] == expected_batch}
        if not is_mlflow(kind):
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
    lines = ["| model | rows/request | workers | round | server | req/s | rows/s | p50 ms | p99 ms | errors | server CPU | CPU ms/request | load 1m before, after |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for item in results["runs"]:
        cpu_ms = cpu_ms_per_request(item)
        lines.append("| %s | %d | %d | %d | %s | %s | %s | %s | %s | %d | %s | %s | %.2f, %.2f |" % (
            item["model"], item["rows"], item["workers"], item["round"], item["server"], fmt(item["rps"]), fmt(item["rps"] * item["rows"]),
            fmt(item["p50_ms"], 2), fmt(item["p99_ms"], 2), item["errors"], fmt(item.get("server_cpu_share"), 2), fmt(cpu_ms, 2),
            item["load_before"], item["load_after"]))
    lines.append("")
    lines.append("| model | rows/request | workers | round | ours / mlflow req/s | mlflow / ours CPU per request | ours p99 / mlflow p99 | ours / before req/s | before / mlflow req/s | ours (1 row) / raw predict, per CPU s (wall) | target (>= 5x req/s) |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for ratio in results["ratios"]:
        lines.append("| %s | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            ratio["model"], ratio["rows"], ratio["workers"], ratio["round"],
            "-" if ratio.get("rps_ratio") is None else "%.1fx" % ratio["rps_ratio"],
            "-" if ratio.get("cpu_ratio") is None else "%.1fx" % ratio["cpu_ratio"],
            "-" if ratio.get("p99_ratio") is None else "%.3f" % ratio["p99_ratio"],
            "-" if ratio.get("vs_before") is None else "%.2f" % ratio["vs_before"],
            "-" if ratio.get("before_ratio") is None else "%.1fx" % ratio["before_ratio"],
            "-" if ratio.get("vs_raw") is None else "%.0f %% (%.0f %%)" % (100 * ratio["vs_raw"], 100 * ratio["vs_raw_wall"]),
            "-" if ratio.get("met") is None else ("met" if ratio["met"] else "not met")))
    lines.append("")
    for model, raw in sorted(results["raw"].items()):
        lines.append("Raw predict (%s, in process, one thread, predict_proba + predict of a %s): %.0f calls/s (CPU %.2f, %.3f ms CPU per call)" % (
            model, raw["input"], raw["calls_per_s"], raw["cpu_share"], raw["cpu_ms_per_call"]))
    lines.append("Generator capacity (%d connections, %.0f s): trivial server %.0f req/s (p99 %.2f ms, generator CPU %.2f)" % (
        results["args"]["connections"], results["args"]["duration"], results["generator"]["rps"], results["generator"]["p99_ms"],
        results["generator"]["generator_cpu_share"]))
    for item in results["health"]:
        lines.append("- /health, %s, workers %d, %s: %.0f req/s, p99 %.2f ms, generator CPU %.2f" % (
            item["model"], item["workers"], item["server"], item["rps"], item["p99_ms"], item["generator_cpu_share"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["bc", "cat"], choices=sorted(MODEL_NAMES),
                        help="bc: all-double StandardScaler + LogisticRegression (the fast path); cat: with a one-hot "
                             "encoded string column (outside it); default both")
    parser.add_argument("--rows", type=int, nargs="+", default=[1], help="rows per request (default 1), e.g. --rows 1 100")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to compare (ours: threads; mlflow: --workers); default 1 2")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per server and round (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per server and worker count, order alternating (default 2)")
    parser.add_argument("--sample", type=int, default=60, help="rows checked against the local pyfunc model (default 60)")
    parser.add_argument("--servers", nargs="+", default=["ours", "mlflow"], choices=["ours", "before", "mlflow"],
                        help="before: the server of --before-module-utils, measured in the same run")
    parser.add_argument("--module-utils", metavar="DIR", default=MODULE_UTILS,
                        help="serve with the plugins/module_utils of another checkout (e.g. an older commit in a git worktree, to compare)")
    parser.add_argument("--before-module-utils", metavar="DIR",
                        help="a second version of ours, served side by side as server 'before' (implies --servers ... before)")
    parser.add_argument("--output", default=os.path.join(REPO, ".cache", "bench-serving", "results.json"))
    parser.add_argument("--keep-latencies", action="store_true", help="store every latency in the JSON output")
    parser.add_argument("--wait-load", type=float, metavar="LOAD",
                        help="first wait until the 1-minute load average has stayed below LOAD for 30 s (the machine is shared)")
    parser.add_argument("--wait-max", type=float, default=1800, help="give up waiting after this many seconds and run anyway (default 1800)")
    parser.add_argument("--workdir", help="keep the MLflow store, server logs and audit logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.before_module_utils and "before" not in args.servers:
        args.servers.append("before")
    if "before" in args.servers and not args.before_module_utils:
        parser.error("--servers before needs --before-module-utils DIR")

    if args.wait_load:
        wait_for_quiet(args.wait_load, args.wait_max)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-serving-")
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)
    started = datetime.datetime.now(datetime.timezone.utc)
    results = {"started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "args": vars(args), "cpu_count": os.cpu_count(),
               "cpu_model": cpu_model(), "versions": versions(), "uptime_load_start": list(os.getloadavg()),
               "runs": [], "ratios": [], "health": [], "checks": [], "raw": {}}
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

    for model in args.models:
        log("training and registering model %s" % MODEL_NAMES[model])
        tracking_uri, model_uri, features, pipe = train_and_register(workdir, model)
        records = row_records(features)
        raw = raw_predict_rate(pipe, features, args.duration)
        results["raw"][model] = raw
        log("raw predict %s: %.0f calls/s" % (model, raw["calls_per_s"]))
        # `mlflow models serve` runs `uvicorn` from PATH: the interpreter's bin directory first
        env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri,
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        for workers in args.workers:
            servers = []
            try:
                if "ours" in args.servers:
                    servers.append(start_ours(workdir, model_uri, workers, env, args.module_utils)[0])
                if "before" in args.servers:
                    servers.append(start_ours(workdir, model_uri, workers, env, args.before_module_utils, name="before")[0])
                if "mlflow" in args.servers:
                    servers.append(start_mlflow(workdir, model_uri, workers, env))
                for server in servers:
                    server.wait_ready()
                    log("%s (%s, workers %d) ready on port %d, %d processes" % (server.kind, model, workers, server.port, server.processes()))
                check = check_predictions(servers, model_uri, features, records, args.sample)
                check.update(workers=workers, model=model)
                results["checks"].append(check)
                log("predictions equal to the local pyfunc model: %s" % check["all_equal"])
                for server in servers:
                    health = measure("/health %s %s w%d" % (server.kind, model, workers), server.port,
                                     [loadgen.build_request("GET", "127.0.0.1", server.port, "/health")], args, server)
                    health.update(server=server.kind, workers=workers, model=model)
                    results["health"].append(health)
                for rows in args.rows:
                    requests = {}
                    for server in servers:
                        requests[server.kind] = [loadgen.build_request("POST", "127.0.0.1", server.port, path_of(server.kind), b)
                                                 for b in bodies(server.kind, records, rows)]
                    for round_no in range(1, args.rounds + 1):
                        order = servers if round_no % 2 else list(reversed(servers))
                        by_kind = {}
                        for server in order:
                            item = measure("predict %s %s rows %d w%d r%d" % (server.kind, model, rows, workers, round_no), server.port,
                                           requests[server.kind], args, server)
                            item.update(server=server.kind, workers=workers, round=round_no, model=model, rows=rows)
                            results["runs"].append(item)
                            by_kind[server.kind] = item
                        ratio = {"model": model, "rows": rows, "workers": workers, "round": round_no}
                        ours_item, theirs, before = by_kind.get("ours"), by_kind.get("mlflow"), by_kind.get("before")
                        if ours_item and theirs and theirs["rps"]:
                            ratio.update(rps_ratio=ours_item["rps"] / theirs["rps"], p99_ratio=ours_item["p99_ms"] / theirs["p99_ms"])
                            ratio["met"] = ratio["rps_ratio"] >= 5 and not ours_item["errors"]
                        if before and theirs and theirs["rps"]:
                            ratio["before_ratio"] = before["rps"] / theirs["rps"]
                        if ours_item and before and before["rps"]:
                            ratio["vs_before"] = ours_item["rps"] / before["rps"]
                        if ours_item and rows == 1:
                            # throughput per CPU second: raw predict's CPU per call over ours per request
                            ratio["vs_raw"] = raw["cpu_ms_per_call"] / cpu_ms_per_request(ours_item)
                            ratio["vs_raw_wall"] = ours_item["rps"] / raw["calls_per_s"]
                        if ours_item and theirs:
                            ratio["cpu_ratio"] = cpu_ms_per_request(theirs) / cpu_ms_per_request(ours_item)
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
