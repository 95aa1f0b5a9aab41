# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Command-line entry point of the drift engine, for hosts without Ansible (systemd timer).

Run as a module of whatever package the drift files were installed in, for example:

    python -m ansible_collections.runlocalai.mlops.plugins.module_utils.drift.cli check --reference P --current D
    python -m runlocalai_mlops.drift.cli check --reference /srv/models/churn/reference_profile.json \\
        --current /var/lib/model-server/churn/windows --textfile /var/lib/node_exporter/textfile/mlops_drift_churn.prom \\
        --label model=churn

Commands: profile (build a reference profile), check (compare a current window, write the JSON
report, HTML report and Prometheus textfile), model-check (accuracy decay against a reference
accuracy, labels joined from a feedback file; Page-Hinkley / CUSUM over a monitored series),
write-profile-artifact (put a profile at drift/reference_profile.json of an MLflow run or of a directory). Files are rewritten only when
their content changes, atomically. A JSON summary goes to stdout.

Exit status: 0 done (drift or not), 1 drift with --fail-on-drift, 2 bad input, 3 missing library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys
import tempfile

from ..common.errors import MissingDependencyError, MlopsError
from ..common.files import plan_writes, write_plans
from .model import run_model_checks
from .engine import normalize_features, public_result, read_reference, run
from .options import (
    ACCURACY_DEFAULTS, CLI_OPTIONS, SEQUENTIAL_DEFAULTS, SEQUENTIAL_DIRECTIONS, SEQUENTIAL_METHODS, add_cli_arguments,
    make_options,
)
from .profiles import ARTIFACT_PATH, dumps_profile
from .report import (
    MODEL_REPORT_FORMAT, MODEL_RESERVED_LABELS, render_html, render_json, render_model_prometheus, render_prometheus, validate_labels,
)
from .stats import DriftInputError

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT, EXIT_MISSING_LIBRARY = 0, 1, 2, 3


def _feature(text):
    name, _sep, kind = text.partition(":")
    return {"name": name, "type": kind} if kind else name


def _label(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected NAME=VALUE, got %r" % text)
    return key, value


def _add_common(parser):
    parser.add_argument("--reference", required=True, help="reference data file or profile (recognised by content)")
    parser.add_argument("--feature", dest="features", action="append", type=_feature, metavar="NAME[:TYPE]",
                        help="feature to use (repeat); TYPE is numeric or categorical; default: all reference columns")
    add_cli_arguments(parser, ("psi_bins", "sample_size"))


def build_parser():
    parser = argparse.ArgumentParser(prog="drift_cli", description="Drift checks without Ansible (runlocalai.mlops).")
    sub = parser.add_subparsers(dest="command")
    sub.required = True

    prof = sub.add_parser("profile", help="build a reference profile from a data file")
    _add_common(prof)
    prof.add_argument("--output", required=True, help="profile path to write")

    chk = sub.add_parser("check", help="compare a current window with a reference")
    _add_common(chk)
    chk.add_argument("--current", required=True, help="current data file or serving-window directory")
    chk.add_argument("--profile-output", help="also write the reference profile here")
    chk.add_argument("--report", help="JSON report path")
    chk.add_argument("--html", help="HTML report path")
    chk.add_argument("--textfile", help="Prometheus textfile path (node-exporter textfile collector)")
    chk.add_argument("--label", action="append", type=_label, default=[], metavar="NAME=VALUE", help="Prometheus label (repeat)")
    chk.add_argument("--fail-on-drift", action="store_true", help="exit 1 when drift is detected")
    chk.add_argument("--check-only", action="store_true", help="write nothing, report what would change")
    add_cli_arguments(chk, [name for name in CLI_OPTIONS if name not in ("psi_bins", "sample_size")])

    mod = sub.add_parser("model-check", help="accuracy decay and sequential detectors (Page-Hinkley, CUSUM)",
                         description="Accuracy decay of a labelled window and/or one sequential detector over a series; "
                                     "--spec FILE gives the module's accuracy / sequential structure as JSON instead (several detectors).")
    mod.add_argument("--spec", help="JSON file {\"accuracy\": {...}, \"sequential\": [{...}, ...]} with the module's keys")
    acc = mod.add_argument_group("accuracy decay (given --reference-accuracy)")
    acc.add_argument("--predictions", dest="current", metavar="PATH", help="serving-window directory or data file with the predictions")
    acc.add_argument("--feedback", help="feedback JSON-lines file or directory: request_id (+ instance) and label")
    acc.add_argument("--reference-accuracy", type=float)
    acc.add_argument("--reference-rows", type=int, help="labelled rows behind the reference accuracy (default: taken as exact)")
    for key in ("prediction_field", "label_field", "id_field"):
        acc.add_argument("--" + key.replace("_", "-"), default=ACCURACY_DEFAULTS[key])
    acc.add_argument("--max-drop", type=float, default=ACCURACY_DEFAULTS["max_drop"])
    acc.add_argument("--accuracy-alpha", type=float, default=ACCURACY_DEFAULTS["alpha"])
    acc.add_argument("--min-labels", type=int, default=ACCURACY_DEFAULTS["min_labels"])
    seq = mod.add_argument_group("sequential detector (given --series)")
    seq.add_argument("--series", help="data file or serving-window directory holding the monitored series")
    seq.add_argument("--field", help="column of the series, e.g. outputs.confidence")
    seq.add_argument("--name", help="name of the check (default METHOD:FIELD)")
    seq.add_argument("--method", choices=SEQUENTIAL_METHODS, default=SEQUENTIAL_DEFAULTS["method"])
    seq.add_argument("--direction", choices=SEQUENTIAL_DIRECTIONS)
    for key in ("delta", "threshold", "k", "h", "target", "sigma"):
        seq.add_argument("--" + key, type=float, default=SEQUENTIAL_DEFAULTS[key])
    seq.add_argument("--min-instances", type=int, default=SEQUENTIAL_DEFAULTS["min_instances"])
    mod.add_argument("--model-version", help="only the serving-window records of this model version (their model_version)")
    mod.add_argument("--no-data-ok", action="store_true",
                     help="a window or feedback directory without records (of --model-version) or a series without values "
                          "leaves the check undecided instead of failing (a timer on a service that has seen no traffic yet)")
    mod.add_argument("--report", help="JSON report path")
    mod.add_argument("--textfile", help="Prometheus textfile path (node-exporter textfile collector)")
    mod.add_argument("--label", action="append", type=_label, default=[], metavar="NAME=VALUE", help="Prometheus label (repeat)")
    mod.add_argument("--fail-on-drift", action="store_true", help="exit 1 when a check fires")
    mod.add_argument("--check-only", action="store_true", help="write nothing, report what would change")

    art = sub.add_parser("write-profile-artifact", help="store a profile at %s of an MLflow run or a directory" % ARTIFACT_PATH)
    _add_common(art)
    dest = art.add_mutually_exclusive_group(required=True)
    dest.add_argument("--run-id", help="MLflow run to log the profile to")
    dest.add_argument("--output-dir", help="directory under which %s is written" % ARTIFACT_PATH)
    art.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    return parser


def write_profile_artifact(profile, run_id=None, output_dir=None, tracking_uri=None, client=None):
    """Store a profile at drift/reference_profile.json: as an artifact of MLflow run `run_id`
    (through `client`, default an MlflowClient for `tracking_uri`), or under `output_dir`.
    Returns where it went (runs:/<run_id>/drift/reference_profile.json or the file path)."""
    text = dumps_profile(profile)
    if output_dir is not None:
        path = os.path.join(output_dir, ARTIFACT_PATH)
        if not os.path.isdir(output_dir):
            raise DriftInputError("output_dir: directory %s does not exist" % output_dir)
        if not os.path.isdir(os.path.dirname(path)):
            os.mkdir(os.path.dirname(path))
        write_plans(plan_writes([("output_dir", path, text)]))
        return path
    if not run_id:
        raise DriftInputError("run_id or output_dir is required")
    if client is None:
        try:
            from mlflow.tracking import MlflowClient  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise MissingDependencyError("mlflow")
        client = MlflowClient(tracking_uri=tracking_uri)
    folder, name = os.path.split(ARTIFACT_PATH)
    tmp = tempfile.mkdtemp(prefix="drift-profile-")
    try:
        path = os.path.join(tmp, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        client.log_artifact(run_id, path, folder)
    finally:
        for entry in os.listdir(tmp):
            os.unlink(os.path.join(tmp, entry))
        os.rmdir(tmp)
    return "runs:/%s/%s" % (run_id, ARTIFACT_PATH)


def _profile_options(args):
    return make_options(psi_bins=args.psi_bins, sample_size=args.sample_size)


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if args.command == "profile":
            profile, _built = read_reference(args.reference, normalize_features(args.features), _profile_options(args))
            plans = plan_writes([("--output", args.output, dumps_profile(profile))])
            written = write_plans(plans)
            summary = {"profile_hash": profile["content_hash"], "written": written, "changed": bool(written),
                       "features": dict((k, v["type"]) for k, v in profile["features"].items())}
        elif args.command == "write-profile-artifact":
            profile, _built = read_reference(args.reference, normalize_features(args.features), _profile_options(args))
            where = write_profile_artifact(profile, run_id=args.run_id, output_dir=args.output_dir, tracking_uri=args.tracking_uri)
            summary = {"profile_hash": profile["content_hash"], "artifact": where}
        elif args.command == "model-check":
            summary = _model_check(args)
        else:
            summary = _check(args)
    except MissingDependencyError as exc:
        stderr.write("drift_cli: error: %s\n" % exc)
        return EXIT_MISSING_LIBRARY
    except MlopsError as exc:
        stderr.write("drift_cli: error: %s\n" % exc)
        return EXIT_BAD_INPUT
    stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    if args.command in ("check", "model-check") and args.fail_on_drift and summary["drifted"]:
        stderr.write("drift_cli: drift detected: %s\n" % summary["summary"])
        return EXIT_DRIFT
    return EXIT_OK


def _check(args):
    labels = validate_labels(dict(args.label))
    options = make_options(**dict((k, getattr(args, k)) for k in CLI_OPTIONS))
    result, profile, built = run(args.reference, args.current, args.features, options, want_plot=bool(args.html))
    public = public_result(result)
    items = []
    if args.profile_output:
        items.append(("--profile-output", args.profile_output, dumps_profile(profile)))
    if args.report:
        items.append(("--report", args.report, render_json(public)))
    if args.html:
        items.append(("--html", args.html, render_html(result)))
    if args.textfile:
        items.append(("--textfile", args.textfile, render_prometheus(public, labels)))
    plans = plan_writes(items)
    written = [p["path"] for p in plans if p["changed"]] if args.check_only else write_plans(plans)
    return {"drifted": public["drifted"], "drifted_share": public["drifted_share"], "drifted_features": public["drifted_features"],
            "n_features": public["n_features"], "summary": public["summary"], "warnings": public["warnings"],
            "profile_hash": profile["content_hash"], "profile_built": built, "written": written, "changed": bool(written)}


def _model_specs(args):
    accuracy, sequential = None, []
    if args.spec:
        try:
            with open(args.spec, "r", encoding="utf-8") as handle:
                spec = json.load(handle)
        except (OSError, ValueError) as exc:
            raise DriftInputError("--spec: cannot read %s: %s" % (args.spec, exc))
        if not isinstance(spec, dict) or set(spec) - {"accuracy", "sequential"}:
            raise DriftInputError("--spec: %s must hold an object with the keys accuracy and/or sequential" % args.spec)
        accuracy = spec.get("accuracy")
        sequential = spec.get("sequential") or []
        if not isinstance(sequential, list):
            sequential = [sequential]
    if args.reference_accuracy is not None:
        if accuracy is not None:
            raise DriftInputError("--reference-accuracy: the accuracy check is already given in --spec")
        accuracy = {"current": args.current, "feedback": args.feedback, "reference_accuracy": args.reference_accuracy,
                    "reference_rows": args.reference_rows, "prediction_field": args.prediction_field, "label_field": args.label_field,
                    "id_field": args.id_field, "max_drop": args.max_drop, "alpha": args.accuracy_alpha, "min_labels": args.min_labels}
    elif args.current or args.feedback:
        raise DriftInputError("--reference-accuracy: required with --predictions / --feedback")
    if args.series:
        keys = ("name", "field", "method", "direction", "min_instances", "target", "sigma")
        keys += ("delta", "threshold") if args.method == "page_hinkley" else ("k", "h")
        item = dict((k, getattr(args, k)) for k in keys)
        item["series"] = args.series
        sequential = list(sequential) + [item]
    return accuracy, sequential


def _model_check(args):
    labels = validate_labels(dict(args.label), MODEL_RESERVED_LABELS)
    accuracy, sequential = _model_specs(args)
    result = run_model_checks(accuracy, sequential, model_version=args.model_version, no_data_ok=args.no_data_ok)
    items = []
    if args.report:
        items.append(("--report", args.report, render_json(result, MODEL_REPORT_FORMAT)))
    if args.textfile:
        items.append(("--textfile", args.textfile, render_model_prometheus(result, labels)))
    plans = plan_writes(items)
    written = [p["path"] for p in plans if p["changed"]] if args.check_only else write_plans(plans)
    return {"drifted": result["drifted"], "drifted_checks": result["drifted_checks"], "failures": result["failures"],
            "n_checks": result["n_checks"], "summary": result["summary"], "warnings": result["warnings"],
            "checks": dict((name, dict((k, c.get(k)) for k in ("drifted", "decided", "rule", "statistic", "threshold", "rule_detail")))
                           for name, c in result["checks"].items()),
            "written": written, "changed": bool(written)}


if __name__ == "__main__":
    raise SystemExit(main())
