# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The one definition of every drift option set: name, type, default, allowed values or range.

Derived from it: the engine's defaults and validation (engine.make_options), drift_check's and
model_drift_check's argument_spec, the command-line parser of cli.py, and the model_server role's
timer flags (filter runlocalai.mlops.drift_cli_flags, validated at converge). The doc fragment
runlocalai.mlops.drift_options and the modules' DOCUMENTATION are tested against it
(tests/unit/plugins/module_utils/test_drift_options.py). A new option is one entry here.

Each entry: type (float, int, str), default (None: no default), and one of choices (allowed
values), low/high/closed (a number in the range; closed: the ends are allowed), minimum (an
integer at least this), positive (a number above 0); module (drift_check takes it), cli (the
command line takes it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from .stats import CORRECTIONS, DriftInputError

# Default threshold of each distance (numeric: wasserstein in reference standard deviations).
NUMERIC_DISTANCES = {"wasserstein": 0.1, "psi": 0.2, "js": 0.1, "ks": 0.1}
CATEGORICAL_DISTANCES = {"js": 0.1, "psi": 0.2, "tvd": 0.1}

_BOTH = dict(module=True, cli=True)

CHECK_OPTIONS = {
    "alpha": dict(type="float", default=0.05, low=0.0, high=1.0, closed=False, **_BOTH),
    "correction": dict(type="str", default="bh", choices=CORRECTIONS, **_BOTH),
    "decision": dict(type="str", default="auto", choices=("auto", "p_value", "distance"), **_BOTH),
    "large_sample_rows": dict(type="int", default=1000, minimum=0, **_BOTH),
    "numeric_test": dict(type="str", default="ks", choices=("ks", "cvm"), **_BOTH),
    "numeric_distance": dict(type="str", default="wasserstein", choices=tuple(NUMERIC_DISTANCES), **_BOTH),
    "categorical_distance": dict(type="str", default="js", choices=tuple(CATEGORICAL_DISTANCES), **_BOTH),
    "numeric_threshold": dict(type="float", default=None, positive=True, **_BOTH),
    "categorical_threshold": dict(type="float", default=None, positive=True, **_BOTH),
    "psi_bins": dict(type="int", default=10, minimum=2, **_BOTH),
    "sample_size": dict(type="int", default=10000, minimum=100, **_BOTH),
    "novel_category_min_share": dict(type="float", default=0.01, low=0.0, high=1.0, closed=True, **_BOTH),
    "missing_share_threshold": dict(type="float", default=0.05, low=0.0, high=1.0, closed=True, **_BOTH),
    "min_rows": dict(type="int", default=30, minimum=1, **_BOTH),
    "extra_columns": dict(type="str", default="fail", choices=("fail", "ignore"), **_BOTH),
    # Threads of one check run: a host setting, not a module option.
    "threads": dict(type="int", default=2, minimum=1, module=False, cli=True),
    # Internal tuning, validated like the rest.
    "psi_epsilon": dict(type="float", default=1e-4, low=0.0, high=0.1, closed=False, module=False, cli=False),
    "categorical_max_distinct": dict(type="int", default=20, minimum=1, module=False, cli=False),
    "max_categories": dict(type="int", default=10000, minimum=2, module=False, cli=False),
}

# model_drift_check's accuracy check and sequential detectors (drift/model.py, cli.py model-check).
ACCURACY_OPTIONS = {
    "current": dict(type="path", default=None),
    "feedback": dict(type="path", default=None),
    "predictions": dict(type="list", elements="raw", default=None),
    "labels": dict(type="list", elements="raw", default=None),
    "prediction_field": dict(type="str", default="outputs.prediction"),
    "label_field": dict(type="str", default="label"),
    "id_field": dict(type="str", default="request_id"),
    "reference_accuracy": dict(type="float", default=None, required=True),
    "reference_rows": dict(type="int", default=None),
    "max_drop": dict(type="float", default=0.05),
    "alpha": CHECK_OPTIONS["alpha"],
    "min_labels": dict(type="int", default=30),
}
SEQUENTIAL_METHODS = ("page_hinkley", "cusum")
SEQUENTIAL_DIRECTIONS = ("up", "down", "both")
SEQUENTIAL_OPTIONS = {
    "name": dict(type="str", default=None),
    "series": dict(type="raw", default=None, required=True),
    "field": dict(type="str", default=None),
    "method": dict(type="str", default="page_hinkley", choices=SEQUENTIAL_METHODS),
    "direction": dict(type="str", default=None, choices=SEQUENTIAL_DIRECTIONS),
    "delta": dict(type="float", default=0.005),
    "threshold": dict(type="float", default=50.0),
    "k": dict(type="float", default=0.5),
    "h": dict(type="float", default=5.0),
    "target": dict(type="float", default=None),
    "sigma": dict(type="float", default=None),
    "min_instances": dict(type="int", default=30),
}

# The model_server role's model-check timer (model_server_model_check, a model entry's model_check):
# part -> the keys an operator may set (entries of the option sets above: same types and checks)
# and the timer's own defaults. A part given as false is off. drift/model.timer_spec builds the
# --spec file of `drift_cli model-check` from it; the role validates it at converge.
# Page-Hinkley's own defaults (delta 0.005, threshold 50) suit series in larger units; on a
# confidence in [0, 1] a drop of 0.35 accumulates only about 36 over the 150 values after it, so
# the timer tolerates changes of 0.02 and alarms at 10 (a drop of 0.3 alarms within about 40
# values; an in-control excursion to 10 is exp(-2 delta threshold / var) ~ 1e-8 at sd 0.15).
# CUSUM's textbook k 0.5, h 5 assume a normal series: on the skewed confidence of a real classifier
# (breast-cancer, sd 0.11) they raise about 12 false alarms per 1000 in-control values; target and
# sigma from 200 values, k 1.5, h 10 raised none in 5 x 20000 and still alarm within about 15 values
# of a drop to the model's unsure predictions (tests/unit/plugins/filter/test_model_check_spec.py).
TIMER_PARTS = {
    "accuracy": dict(options=ACCURACY_OPTIONS, keys=("max_drop", "alpha", "min_labels", "prediction_field", "label_field"),
                     defaults={}),
    "page_hinkley": dict(options=SEQUENTIAL_OPTIONS, keys=("field", "direction", "delta", "threshold", "min_instances"),
                         defaults={"field": "outputs.confidence", "direction": "both", "delta": 0.02, "threshold": 10.0}),
    "cusum": dict(options=SEQUENTIAL_OPTIONS, keys=("field", "direction", "k", "h", "target", "sigma", "min_instances"),
                  defaults={"field": "outputs.confidence", "k": 1.5, "h": 10.0, "min_instances": 200}),
}

DEFAULT_OPTIONS = dict((name, spec["default"]) for name, spec in CHECK_OPTIONS.items())
ACCURACY_DEFAULTS = dict((name, spec["default"]) for name, spec in ACCURACY_OPTIONS.items())
SEQUENTIAL_DEFAULTS = dict((name, spec["default"]) for name, spec in SEQUENTIAL_OPTIONS.items())
MODULE_OPTIONS = tuple(name for name, spec in CHECK_OPTIONS.items() if spec["module"])
CLI_OPTIONS = tuple(name for name, spec in CHECK_OPTIONS.items() if spec["cli"])


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_option(name, value):
    """value if it is valid for the check option name, else DriftInputError naming it."""
    spec = CHECK_OPTIONS[name]
    if "choices" in spec:
        if value not in spec["choices"]:
            raise DriftInputError("%s: must be one of %s, got %r" % (name, ", ".join(spec["choices"]), value))
    elif "low" in spec:
        low, high, closed = spec["low"], spec["high"], spec["closed"]
        if not _is_number(value) or not (low < value < high or (closed and value in (low, high))):
            opening, closing = ("[", "]") if closed else ("(", ")")
            raise DriftInputError("%s: must be a number in %s%s, %s%s, got %r" % (name, opening, low, high, closing, value))
    elif "minimum" in spec:
        if not isinstance(value, int) or isinstance(value, bool) or value < spec["minimum"]:
            raise DriftInputError("%s: must be an integer >= %d, got %r" % (name, spec["minimum"], value))
    elif spec.get("positive") and value is not None:
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise DriftInputError("%s: must be a positive number, got %r" % (name, value))
    return value


def make_options(**overrides):
    """Validated check options: the defaults updated with overrides (None leaves a default)."""
    options = dict(DEFAULT_OPTIONS)
    for key, value in overrides.items():
        if key not in CHECK_OPTIONS:
            raise DriftInputError("unknown drift option '%s'" % key)
        if value is not None:
            options[key] = value
    for key, value in options.items():
        check_option(key, value)
    return options


def _argument(spec, with_default=True):
    out = dict(type=spec["type"])
    if spec.get("elements"):
        out["elements"] = spec["elements"]
    if spec.get("choices"):
        out["choices"] = list(spec["choices"])
    if spec.get("required"):
        out["required"] = True
    elif with_default and spec["default"] is not None:
        out["default"] = spec["default"]
    return out


def argument_spec(options=None):
    """Ansible argument_spec entries of drift_check's options (or of another option set)."""
    if options is None:
        return dict((name, _argument(CHECK_OPTIONS[name])) for name in MODULE_OPTIONS)
    return dict((name, _argument(spec)) for name, spec in options.items())


def cli_flag(name):
    return "--" + name.replace("_", "-")


def add_cli_arguments(parser, names=CLI_OPTIONS):
    """argparse arguments of the check options names: --alpha, --numeric-test, ..."""
    kinds = {"float": float, "int": int}
    for name in names:
        spec = CHECK_OPTIONS[name]
        if spec.get("choices"):
            parser.add_argument(cli_flag(name), choices=spec["choices"], default=spec["default"])
        else:
            parser.add_argument(cli_flag(name), type=kinds[spec["type"]], default=spec["default"])


def cli_flags(options):
    """Command-line flags of a mapping of check options, validated (for the role's drift timer):
    {"alpha": 0.01, "extra_columns": "ignore"} -> ["--alpha", "0.01", "--extra-columns", "ignore"]."""
    if not isinstance(options, dict):
        raise DriftInputError("drift options: must be a mapping of option names to values, got %r" % (options,))
    flags = []
    for name in sorted(options):
        if name not in CHECK_OPTIONS or not CHECK_OPTIONS[name]["cli"]:
            allowed = ", ".join(sorted(CLI_OPTIONS))
            raise DriftInputError("drift options: unknown option '%s' (allowed: %s)" % (name, allowed))
        value = options[name]
        if value is None:
            continue
        spec = CHECK_OPTIONS[name]
        if spec["type"] == "float" and _is_number(value):
            value = float(value)
        check_option(name, value)
        flags += [cli_flag(name), repr(value) if isinstance(value, float) else str(value)]
    return flags


def options_from_flags(flags):
    """The mapping of a list of command-line flags of the check options (the deprecated form of
    the model_server role's timer options): ["--alpha", "0.01", "--extra-columns=ignore"] ->
    {"alpha": 0.01, "extra_columns": "ignore"}. Unknown flags and values of the wrong type fail."""
    if not isinstance(flags, (list, tuple)) or not all(isinstance(flag, str) for flag in flags):
        raise DriftInputError("drift flags: must be a list of strings, got %r" % (flags,))
    kinds = {"float": float, "int": int, "str": str}
    out, rest = {}, list(flags)
    while rest:
        flag = rest.pop(0)
        name, sep, value = flag.partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else None
        if key not in CLI_OPTIONS:
            raise DriftInputError("drift flags: unknown flag %r (allowed: %s)" % (flag, ", ".join(cli_flag(n) for n in CLI_OPTIONS)))
        if not sep:
            if not rest:
                raise DriftInputError("drift flags: %s needs a value" % name)
            value = rest.pop(0)
        try:
            out[key] = kinds[CHECK_OPTIONS[key]["type"]](value)
        except ValueError:
            raise DriftInputError("%s: must be %s, got %r" % (key, "a number" if CHECK_OPTIONS[key]["type"] == "float" else "an integer", value))
    return out


def timer_part_settings(part, given):
    """The settings of one part of the model-check timer (TIMER_PARTS): the timer's defaults updated
    with given (None keeps a default); unknown keys and values of the wrong type fail naming them.
    Ranges are checked by drift/model.py (accuracy_params, sequential_params)."""
    where = "model_check.%s" % part
    entry = TIMER_PARTS[part]
    if not isinstance(given, dict):
        raise DriftInputError("%s: must be a mapping of settings, or false to switch it off, got %r" % (where, given))
    unknown = sorted(set(given) - set(entry["keys"]))
    if unknown:
        raise DriftInputError("%s: unknown setting(s) %s (allowed: %s)" % (where, ", ".join(map(str, unknown)), ", ".join(entry["keys"])))
    out = dict(entry["defaults"])
    for key, value in given.items():
        if value is None:
            continue
        spec = entry["options"][key]
        if spec["type"] == "float" and _is_number(value):
            value = float(value)
        ok = {"float": isinstance(value, float), "int": isinstance(value, int) and not isinstance(value, bool),
              "str": isinstance(value, str) and bool(value)}[spec["type"]]
        if not ok:
            kind = {"float": "a number", "int": "an integer", "str": "a non-empty string"}[spec["type"]]
            raise DriftInputError("%s.%s: must be %s, got %r" % (where, key, kind, value))
        if spec.get("choices") and value not in spec["choices"]:
            raise DriftInputError("%s.%s: must be one of %s, got %r" % (where, key, ", ".join(spec["choices"]), value))
        out[key] = value
    return out
