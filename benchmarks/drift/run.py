#!/usr/bin/env python3
"""Drift benchmark: runlocalai.mlops drift engine vs a plain scipy loop vs Evidently DataDriftPreset.

Same generated data for every tool, in one run: 100,000 and 1,000,000 rows, 20 numeric and 5
categorical features, 5 of them drifted (num_00 mean +0.25 sd, num_01 scale x1.3, num_02 3% of
values moved 6 sd out, cat_0 category mix, cat_1 a novel category at 5%). Each measurement runs
in a fresh subprocess (median wall time of --repeats runs, timed after imports; peak RSS of the
process). See benchmarks/drift/README.md.

    .venv/bin/python benchmarks/drift/run.py                       # everything
    .venv/bin/python benchmarks/drift/run.py --rows 100000 --repeats 1

Evidently runs in its own virtualenv (.cache/bench-venvs/evidently, see the README); this
file is also its worker script, so the module level imports only the standard library.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
NUMERIC = ["num_%02d" % i for i in range(20)]
CATEGORICAL = ["cat_%d" % i for i in range(5)]
DRIFTED = ["num_00", "num_01", "num_02", "cat_0", "cat_1"]
LEVELS = [3, 5, 8, 12, 20]


def generate(rows, seed, drift):
    import numpy as np  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)
    cols = {}
    for i, name in enumerate(NUMERIC):
        kind = i % 5
        if kind == 0:
            x = rng.normal(10 * i, 1 + i, rows)
        elif kind == 1:
            x = rng.lognormal(1, 0.6, rows)
        elif kind == 2:
            x = rng.exponential(2 + i, rows)
        elif kind == 3:
            x = rng.uniform(-i, i + 5, rows)
        else:
            x = rng.gamma(2 + i / 5.0, 3, rows)
        if drift and name == "num_00":
            x = x + 0.25 * (1 + i)
        elif drift and name == "num_01":
            x = x.mean() + (x - x.mean()) * 1.3
        elif drift and name == "num_02":
            moved = rng.random(rows) < 0.03
            x = np.where(moved, x + 6 * x.std(), x)
        cols[name] = x.astype(np.float32)
    for j, name in enumerate(CATEGORICAL):
        levels = LEVELS[j]
        p = np.arange(levels, 0, -1, dtype=float)
        p /= p.sum()
        labels = np.array(["%s_v%02d" % (name, k) for k in range(levels)] + ["%s_new" % name], dtype=object)
        if drift and name == "cat_0":
            p = p[::-1].copy()
        if drift and name == "cat_1":
            p = np.append(p * 0.95, 0.05)
        else:
            p = np.append(p, 0.0)
        cols[name] = labels[rng.choice(levels + 1, rows, p=p)]
    return cols


def write_csv(cols, path):
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    import pyarrow.csv as pa_csv  # pylint: disable=import-outside-toplevel
    pa_csv.write_csv(pa.table(dict((k, pa.array(v)) for k, v in cols.items())), path)


def prepare(workdir, rows):
    ref = os.path.join(workdir, "ref_%d.csv" % rows)
    cur = os.path.join(workdir, "cur_%d.csv" % rows)
    profile = os.path.join(workdir, "profile_%d.json" % rows)
    if not os.path.exists(ref):
        write_csv(generate(rows, 1, False), ref)
    if not os.path.exists(cur):
        write_csv(generate(rows, 2, True), cur)
    if not os.path.exists(profile):
        sys.path.insert(0, REPO)
        from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import cli as drift_cli  # pylint: disable=import-outside-toplevel
        args = ["profile", "--reference", ref, "--output", profile]
        for name in CATEGORICAL:
            args += ["--feature", name + ":categorical"]
        for name in NUMERIC:
            args += ["--feature", name + ":numeric"]
        assert drift_cli.main(args, stdout=open(os.devnull, "w")) == 0
    return ref, cur, profile


# ----------------------------------------------------------------------------------------------
# Workers: each prints one JSON line {seconds, peak_rss_mb, baseline_rss_mb, flagged}.
# ----------------------------------------------------------------------------------------------

def _rss_mb():
    """Peak resident memory of this process in MiB: VmHWM (reset by exec, unlike ru_maxrss, which
    a child inherits from the parent's size at fork)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_engine(ref, cur, profile, raw):
    sys.path.insert(0, REPO)
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import engine as drift_engine
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as drift_io
    from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import profiles as drift_profile  # noqa
    import numpy  # noqa: F401  pylint: disable=unused-import
    baseline = _rss_mb()
    start = time.perf_counter()
    options = drift_engine.make_options()
    if raw:
        result, _p, _b = drift_engine.run(ref, cur, [{"name": n, "type": "numeric"} for n in NUMERIC]
                                          + [{"name": n, "type": "categorical"} for n in CATEGORICAL], options)
    else:
        prof = drift_profile.load_profile(profile)
        names, types = drift_engine.current_columns(prof, None)
        table = drift_io.read_table(cur, names, types, what="current")
        result = drift_engine.check_drift(prof, table, None, options)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline, "flagged": sorted(result["drifted_features"])}


def worker_scipy(ref, cur):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import pyarrow.csv as pa_csv  # pylint: disable=import-outside-toplevel
    from scipy import stats  # pylint: disable=import-outside-toplevel
    baseline = _rss_mb()
    start = time.perf_counter()
    a = pa_csv.read_csv(ref)
    b = pa_csv.read_csv(cur)
    flagged = []
    for name in NUMERIC:
        x = a.column(name).to_numpy()
        y = b.column(name).to_numpy()
        if stats.ks_2samp(x, y).pvalue < 0.05:
            flagged.append(name)
    for name in CATEGORICAL:
        x = np.asarray(a.column(name).to_pylist(), dtype=object)
        y = np.asarray(b.column(name).to_pylist(), dtype=object)
        cats = sorted(set(x) | set(y))
        index = dict((c, i) for i, c in enumerate(cats))
        table = np.array([np.bincount([index[v] for v in x], minlength=len(cats)),
                          np.bincount([index[v] for v in y], minlength=len(cats))])
        if stats.chi2_contingency(table).pvalue < 0.05:
            flagged.append(name)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline, "flagged": sorted(flagged)}


def worker_evidently(ref, cur):
    import pandas as pd  # pylint: disable=import-outside-toplevel,import-error
    from evidently import DataDefinition, Dataset, Report  # pylint: disable=import-outside-toplevel,import-error
    from evidently.presets import DataDriftPreset  # pylint: disable=import-outside-toplevel,import-error
    baseline = _rss_mb()
    start = time.perf_counter()
    ref_df = pd.read_csv(ref)
    cur_df = pd.read_csv(cur)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur_df, data_definition=definition),
                                               reference_data=Dataset.from_pandas(ref_df, data_definition=definition))
    flagged = []
    methods = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method = config["method"]
        value = metric["value"]
        drifted = value < config["threshold"] if "p_value" in method else value >= config["threshold"]
        methods[config["column"]] = method
        if drifted:
            flagged.append(config["column"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline, "flagged": sorted(flagged),
            "methods": sorted(set(methods.values()))}


# ----------------------------------------------------------------------------------------------

def measure(python, tool, ref, cur, profile, repeats, timeout):
    load_before = os.getloadavg()[0]
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([python, os.path.abspath(__file__), "--worker", tool, ref, cur, profile],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "exit %d" % proc.returncode}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "all_seconds": [round(r["seconds"], 3) for r in runs],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "baseline_rss_mb": max(r["baseline_rss_mb"] for r in runs),
        "flagged": runs[-1]["flagged"],
        "methods": runs[-1].get("methods"),
        "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100000, 1000000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=os.path.join(REPO, ".cache", "bench-drift"))
    parser.add_argument("--evidently-python", default=os.path.join(REPO, ".cache", "bench-venvs", "evidently", "bin", "python"))
    parser.add_argument("--evidently-max-rows", type=int, default=1000000)
    parser.add_argument("--tools", nargs="+", default=["engine", "engine-raw", "scipy", "evidently"])
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--worker", nargs=4, metavar=("TOOL", "REF", "CUR", "PROFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        tool, ref, cur, profile = args.worker
        if tool == "engine":
            out = worker_engine(ref, cur, profile, raw=False)
        elif tool == "engine-raw":
            out = worker_engine(ref, cur, profile, raw=True)
        elif tool == "scipy":
            out = worker_scipy(ref, cur)
        else:
            out = worker_evidently(ref, cur)
        print(json.dumps(out))
        return 0
    os.makedirs(args.workdir, exist_ok=True)
    results = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "sizes": {}}
    for rows in args.rows:
        ref, cur, profile = prepare(args.workdir, rows)
        size = results["sizes"][str(rows)] = {}
        for tool in args.tools:
            if tool == "evidently" and (rows > args.evidently_max_rows or not os.path.exists(args.evidently_python)):
                continue
            python = args.evidently_python if tool == "evidently" else sys.executable
            size[tool] = measure(python, tool, ref, cur, profile, args.repeats, args.timeout)
            print("%8d rows  %-10s %s" % (rows, tool, json.dumps(size[tool])), flush=True)
    results["load_average_at_end"] = os.getloadavg()
    print()
    print("| rows | tool | median s | runs s | peak RSS MB (after imports) | flagged | false positives | missed | load 1m before, after |")
    print("|---:|---|---:|---|---:|---|---:|---:|---|")
    for rows, size in results["sizes"].items():
        for tool, r in size.items():
            if "error" in r:
                print("| %s | %s | error: %s | | | | | | |" % (rows, tool, r["error"]))
                continue
            fp = [f for f in r["flagged"] if f not in DRIFTED]
            missed = [f for f in DRIFTED if f not in r["flagged"]]
            print("| %s | %s | %.3f | %s | %.0f (%.0f) | %s | %d | %d | %s |" % (
                rows, tool, r["median_seconds"], ", ".join("%.2f" % s for s in r["all_seconds"]), r["peak_rss_mb"],
                r["baseline_rss_mb"], ", ".join(r["flagged"]), len(fp), len(missed), ", ".join("%.2f" % v for v in r["load_1m"])))
        if "evidently" in size and "error" not in size["evidently"]:
            ratios = ["%s %.1fx" % (tool, size["evidently"]["median_seconds"] / size[tool]["median_seconds"])
                      for tool in ("engine", "engine-raw") if tool in size and "error" not in size[tool]]
            print("| %s | speed-up vs Evidently | %s | | | | | | |" % (rows, ", ".join(ratios)))
    print("\nload average: start %s, end %s; cpus %s" % (results["load_average_at_start"], results["load_average_at_end"], results["cpus"]))
    with open(os.path.join(args.workdir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
