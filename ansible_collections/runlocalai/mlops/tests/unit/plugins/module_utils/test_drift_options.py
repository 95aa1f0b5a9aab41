# -*- coding: utf-8 -*-
"""The drift option sets are defined once (drift/options.py); everything else is derived from them
or held against them here: the modules' argument_spec and DOCUMENTATION, the doc fragment, the
command line, the engine's validation and the role's timer flags."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml

from ansible_collections.runlocalai.mlops.plugins.doc_fragments.drift_options import ModuleDocFragment
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import cli as drift_cli
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import options as opts
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.stats import DriftInputError
from ansible_collections.runlocalai.mlops.plugins.modules import drift_check, model_drift_check


def _documented(doc_text):
    return yaml.safe_load(doc_text)["options"]


def _agrees(name, spec, doc):
    assert doc["type"] == spec["type"], name
    assert doc.get("default") == spec["default"], name
    assert tuple(doc.get("choices", ())) == tuple(spec.get("choices", ())), name


def test_doc_fragment_documents_exactly_the_module_options():
    documented = _documented(ModuleDocFragment.DOCUMENTATION)
    assert sorted(documented) == sorted(opts.MODULE_OPTIONS)
    for name in opts.MODULE_OPTIONS:
        _agrees(name, opts.CHECK_OPTIONS[name], documented[name])


def test_drift_check_argument_spec_is_derived():
    spec = drift_check.argument_spec()
    for name in opts.MODULE_OPTIONS:
        want = opts.CHECK_OPTIONS[name]
        assert spec[name]["type"] == want["type"]
        assert spec[name].get("default") == want["default"]
        assert tuple(spec[name].get("choices", ())) == tuple(want.get("choices", ()))
    assert not set(spec) & {"threads", "psi_epsilon", "max_categories"}


@pytest.mark.parametrize("option,options", [("accuracy", opts.ACCURACY_OPTIONS), ("sequential", opts.SEQUENTIAL_OPTIONS)])
def test_model_drift_check_documents_its_option_sets(option, options):
    documented = _documented(model_drift_check.DOCUMENTATION)[option]["suboptions"]
    assert sorted(documented) == sorted(options)
    for name, spec in options.items():
        _agrees(name, spec, documented[name])
        assert bool(documented[name].get("required")) == bool(spec.get("required")), name
    assert model_drift_check.argument_spec()[option]["options"] == opts.argument_spec(options)


def test_command_line_defaults_and_choices_come_from_the_schema():
    parser = drift_cli.build_parser()
    args = parser.parse_args(["check", "--reference", "r.csv", "--current", "c.csv"])
    for name in opts.CLI_OPTIONS:
        assert getattr(args, name) == opts.CHECK_OPTIONS[name]["default"], name
    args = parser.parse_args(["model-check", "--series", "s.csv"])
    assert args.accuracy_alpha == opts.ACCURACY_OPTIONS["alpha"]["default"]
    assert (args.delta, args.threshold, args.min_instances) == (0.005, 50.0, 30)
    with pytest.raises(SystemExit):
        parser.parse_args(["check", "--reference", "r", "--current", "c", "--numeric-test", "anderson"])


def test_defaults_are_valid_and_validation_names_the_option():
    assert opts.make_options() == opts.DEFAULT_OPTIONS
    for kwargs, message in [
        (dict(alpha=1.0), r"^alpha: must be a number in \(0.0, 1.0\), got 1.0"),
        (dict(novel_category_min_share=1.5), r"^novel_category_min_share: must be a number in \[0.0, 1.0\]"),
        (dict(psi_bins=1), r"^psi_bins: must be an integer >= 2"),
        (dict(numeric_threshold=-1.0), r"^numeric_threshold: must be a positive number"),
        (dict(correction="holm"), r"^correction: must be one of bh, bonferroni, none"),
        (dict(nope=1), r"unknown drift option 'nope'"),
    ]:
        with pytest.raises(DriftInputError, match=message):
            opts.make_options(**kwargs)


def test_timer_flags_from_options_by_name():
    flags = opts.cli_flags({"extra_columns": "ignore", "alpha": 0.01, "min_rows": 5, "numeric_threshold": None})
    assert flags == ["--alpha", "0.01", "--extra-columns", "ignore", "--min-rows", "5"]
    assert opts.cli_flags({"numeric_threshold": 1}) == ["--numeric-threshold", "1.0"]  # YAML 1 for a float option
    parsed = drift_cli.build_parser().parse_args(["check", "--reference", "r", "--current", "c"] + flags)
    assert (parsed.alpha, parsed.extra_columns, parsed.min_rows) == (0.01, "ignore", 5)
    for bad, message in [({"alpha": 2}, r"^alpha: must be a number"), ({"psi_epsilon": 0.1}, "unknown option 'psi_epsilon'"),
                         ({"decision": "vote"}, r"^decision: must be one of"), ("alpha=0.1", "must be a mapping")]:
        with pytest.raises(DriftInputError, match=message):
            opts.cli_flags(bad)


def test_legacy_flags_read_into_options():
    assert opts.options_from_flags(["--alpha", "0.01", "--extra-columns=ignore", "--threads", "1"]) == {
        "alpha": 0.01, "extra_columns": "ignore", "threads": 1}
    for bad, message in [(["--alpha"], "needs a value"), (["--alpha", "low"], r"^alpha: must be a number"),
                         (["--bogus", "1"], "unknown flag '--bogus'"), (["alpha", "1"], "unknown flag 'alpha'")]:
        with pytest.raises(DriftInputError, match=message):
            opts.options_from_flags(bad)
