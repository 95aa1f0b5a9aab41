"""Stand-in metrics for the monitoring scenario, written by the project's own code (so their names and
labels are the ones the real exporters write), into the directory given:

  model-iris.metrics      a pyfunc model service's /metrics (serving/metrics.py Metrics, after requests,
                          predictions and feedback)
  model-smollm2.metrics   an LLM model service's /metrics (the same, llm=True, after generations)
  mlops_drift_iris.prom   the drift timer's textfile (drift/report.py render_prometheus) and the model
                          drift checks' (render_model_prometheus), labels model and model_version
  mlops_gpu.prom          the GPU telemetry timer's textfile (host/gpu_telemetry.py) from the recorded
                          nvidia-smi answer of one RTX 4090 (tests' fixtures)
  mlops_pipeline_iris.prom  the training pipeline's series (the contract of monitoring/evaluation.py:
                          PIPELINE_SERIES), written with prometheus_client: the pipeline itself is not
                          part of this scenario
  mlops_gate_iris.prom    the validation gate's series (monitoring/evaluation.py gate_series), with the
                          pipeline's evaluation of the same candidate (stage="pipeline")

usage: standin_metrics.py OUTDIR
Run on the controller by prepare.yml with ansible-playbook's Python (prometheus_client installed)."""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile  # noqa: E402

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import report  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import gpu_telemetry  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.monitoring import evaluation  # noqa: E402
from ansible_collections.runlocalai.mlops.plugins.module_utils.serving.metrics import Metrics  # noqa: E402

SMI = ROOT / "ansible_collections/runlocalai/mlops/tests/unit/plugins/fixtures/host_facts/nvidia_smi/telemetry_one_gpu.csv"
RUN_ID = "0123456789abcdef"


def model_service():
    m = Metrics("iris", "1", RUN_ID, "champion")
    m.set_ready(True)
    for seconds in (0.004, 0.012, 0.03):
        m.request("predict", 200, seconds)
    m.request("predict", 422, 0.002)
    m.predicted(["setosa", "versicolor", "setosa"], [0.97, 0.81, 0.93])
    m.feedback_received(3, 0.9)
    m.request("feedback", 200, 0.003)
    return m.render()


def llm_service():
    m = Metrics("smollm2", "2", "fedcba9876543210", "champion", llm=True)
    m.set_ready(True)
    m.gauge_source = lambda: {"waiting": 0, "busy": 1}
    for ttft, tps in ((0.08, 60.0), (0.12, 55.0)):
        m.request("chat_completions", 200, 1.4)
        m.generated(24, 64, ttft, tps)
    return m.render()


def drift():
    features = {}
    for name, distance in (("petal_length", 0.04), ("sepal_width", 0.02)):
        features[name] = {"drifted": False, "distance": distance, "distance_metric": "wasserstein_norm", "distance_threshold": 0.1,
                          "p_value": 0.6, "test": "ks", "psi": 0.01, "missing_share_reference": 0.0, "missing_share_current": 0.0}
    result = {"drifted": False, "drifted_share": 0.0, "n_features": 2, "drifted_features": [], "reference": {"rows": 150},
              "current": {"rows": 40}, "features": features}
    checks = {
        "accuracy": {"kind": "accuracy", "drifted": False, "decided": True, "statistic": 0.4, "threshold": 0.05,
                     "reference_accuracy": 0.95, "current_accuracy": 0.93, "n_current": 40},
        "page_hinkley": {"kind": "detector", "method": "page_hinkley", "drifted": False, "decided": True, "statistic": 1.2,
                         "threshold": 5.0, "alarms": []},
    }
    labels = {"model": "iris", "model_version": "1"}
    return (report.render_prometheus(result, labels)
            + report.render_model_prometheus({"drifted": False, "n_checks": 2, "checks": checks}, labels))


def gpu(path):
    text = SMI.read_text()
    gpu_telemetry.write(str(path), gpu_telemetry.collect("/usr/bin/nvidia-smi", lambda argv: (0, text, "")))


def pipeline(path, now):
    registry = CollectorRegistry()
    series = {}
    for name, kind, labels, documentation in evaluation.PIPELINE_SERIES:
        metric = Counter if kind == "counter" else Gauge
        # prometheus_client adds _total to a counter's name itself.
        series[name] = metric(name[:-len("_total")] if kind == "counter" else name, documentation, labels, registry=registry)
    for outcome, runs in (("success", 3), ("skipped_unchanged", 1), ("failed", 1)):
        series["mlops_pipeline_runs_total"].labels(model="iris", outcome=outcome).inc(runs)
    series["mlops_pipeline_last_run_timestamp_seconds"].labels(model="iris").set(now - 600)
    series["mlops_pipeline_last_success_timestamp_seconds"].labels(model="iris").set(now - 600)
    series["mlops_pipeline_last_run_failed"].labels(model="iris").set(0)
    series["mlops_pipeline_last_run_duration_seconds"].labels(model="iris").set(42.5)
    write_to_textfile(str(path), registry)


def gate(now):
    groups = {"long_petals": {"count": 20, "accuracy": 0.95}, "short_petals": {"count": 20, "accuracy": 0.9}}
    metrics = {"accuracy": 0.925, "f1": 0.92, "max_disparity": 0.05, "latency_p95_ms": 3.1}
    rows, _skipped = evaluation.gate_series("iris", "2", RUN_ID, True, now - 300, metrics, groups)
    # The pipeline's own evaluation of the same candidate (its stage label).
    rows += [row for row in evaluation.gate_series("iris", "2", RUN_ID, True, now - 900, metrics, groups, stage="pipeline")[0]
             if row[0] == evaluation.EVALUATION_METRIC]
    return evaluation.render(rows)


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    (out / "model-iris.metrics").write_text(model_service())
    (out / "model-smollm2.metrics").write_text(llm_service())
    (out / "mlops_drift_iris.prom").write_text(drift())
    gpu(out / "mlops_gpu.prom")
    pipeline(out / "mlops_pipeline_iris.prom", now)
    (out / "mlops_gate_iris.prom").write_text(gate(now))
    for path in sorted(out.iterdir()):
        os.chmod(path, 0o644)
        print(path.name)


if __name__ == "__main__":
    main(sys.argv)
