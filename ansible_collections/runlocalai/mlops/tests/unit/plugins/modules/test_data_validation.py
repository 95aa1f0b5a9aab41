# -*- coding: utf-8 -*-
"""data_validation module (and module_utils.data_validation through it)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.modules import data_validation
from ansible_collections.runlocalai.mlops.plugins.modules import drift_check


@pytest.fixture
def csv(tmp_path):
    def write(name, rows):
        path = tmp_path / name
        path.write_text("id,age,region\n" + "".join("%s,%s,%s\n" % r for r in rows))
        return str(path)
    return write


GOOD = [(i, 20 + i % 50, ["north", "south"][i % 2]) for i in range(200)]


def test_all_checks_pass_and_report_is_idempotent(run_module, csv, tmp_path):
    report = str(tmp_path / "v.json")
    args = dict(data=csv("good.csv", GOOD), min_rows=100, max_rows=1000, unique_keys=["id"], allow_extra_columns=False, report_path=report,
                columns={"id": {"type": "numeric", "max_null_rate": 0}, "age": {"type": "numeric", "min": 0, "max": 120},
                         "region": {"allowed_values": ["north", "south"]}})
    result = run_module(data_validation, args)
    assert not result["failed"], result.get("msg")
    assert result["passed"] and result["failures"] == [] and result["rows"] == 200 and result["changed"]
    assert json.load(open(report))["result"]["passed"] is True
    assert run_module(data_validation, args)["changed"] is False


def test_each_failure_is_reported(run_module, csv):
    rows = list(GOOD)
    rows[3] = (3, 130, "north")  # age above max
    rows[4] = (4, "", "west")  # null age, region not allowed
    rows[5] = (2, 25, "south")  # duplicate id 2
    args = dict(data=csv("bad.csv", rows), min_rows=500, unique_keys=["id"], allow_extra_columns=False, fail_on_failure=False,
                columns={"age": {"type": "numeric", "max": 120, "max_null_rate": 0.001}, "region": {"allowed_values": ["north", "south"]},
                         "income": {"type": "numeric"}})
    result = run_module(data_validation, args)
    assert not result["failed"] and not result["passed"]
    by_check = dict((f["check"], f) for f in result["failures"])
    assert set(by_check) == {"min_rows", "max", "null_rate", "allowed_values", "duplicate_keys", "required_column", "extra_columns"}
    assert by_check["max"]["observed"] == 130.0 and by_check["max"]["column"] == "age"
    assert by_check["null_rate"]["observed"] == pytest.approx(1 / 200.0)
    assert by_check["allowed_values"]["observed"] == ["west"]
    assert by_check["duplicate_keys"]["observed"] == 1
    assert by_check["required_column"]["column"] == "income"
    assert by_check["extra_columns"]["observed"] == ["id"]
    failed = run_module(data_validation, dict(args, fail_on_failure=True))
    assert failed["failed"] and failed["msg"].startswith("data validation failed: 200 rows, expected at least 500")


def test_type_check_names_the_value(run_module, csv):
    rows = list(GOOD)
    rows[7] = (7, "old", "north")
    result = run_module(data_validation, dict(data=csv("t.csv", rows), columns={"age": {"type": "numeric"}}, fail_on_failure=False))
    assert result["failures"][0]["check"] == "type"
    assert result["failures"][0]["message"].startswith("column 'age': non-numeric value 'old' (row 9 of ")


def test_drift_check_reuses_the_engine(run_module, csv, tmp_path):
    profile = str(tmp_path / "profile.json")
    ref = csv("ref.csv", [(i, float(np.random.default_rng(i).normal(40, 5)), ["north", "south"][i % 2]) for i in range(600)])
    assert not run_module(drift_check, dict(reference=ref, profile_path=profile, features=["age", "region"]))["failed"]
    shifted = csv("cur.csv", [(i, float(np.random.default_rng(1000 + i).normal(48, 5)), ["north", "south"][i % 2]) for i in range(400)])
    result = run_module(data_validation, dict(data=shifted, drift={"reference": profile}, fail_on_failure=False))
    assert not result["passed"]
    assert [f["column"] for f in result["failures"] if f["check"] == "drift"] == ["age"]
    assert result["drift"]["features"]["age"]["drifted"] and not result["drift"]["features"]["region"]["drifted"]


@pytest.mark.parametrize("args,match", [
    ({"columns": {"age": {"kind": "numeric"}}}, "columns.age: unknown key"),
    ({"columns": {"age": {"max_null_rate": 2}}}, "columns.age.max_null_rate"),
    ({"drift": {"alpha": 0.1}}, "drift.reference: required"),
])
def test_bad_parameters_name_the_parameter(run_module, csv, args, match):
    result = run_module(data_validation, dict(data=csv("g.csv", GOOD), **args))
    assert result["failed"] and match in result["msg"]


def test_missing_data_file(run_module, tmp_path):
    result = run_module(data_validation, dict(data=str(tmp_path / "nope.csv"), report_path=str(tmp_path / "r.json")))
    assert result["failed"] and result["msg"] == "data: no such file or directory: %s" % (tmp_path / "nope.csv")
    assert not os.path.exists(str(tmp_path / "r.json"))
