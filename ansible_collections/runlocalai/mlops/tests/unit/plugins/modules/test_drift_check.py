# -*- coding: utf-8 -*-
"""drift_check module: files in and out, idempotence, check mode, diff, bad input."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import json
import sys
import os

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.modules import drift_check
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as drift_io
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import profiles as drift_profile


def write_csv(path, columns, rows=None):
    names = list(columns)
    rows = rows if rows is not None else len(columns[names[0]])
    with open(path, "w") as handle:
        handle.write(",".join(names) + "\n")
        for i in range(rows):
            cells = []
            for name in names:
                value = columns[name][i]
                if value is None or (isinstance(value, float) and np.isnan(value)):
                    cells.append("")
                elif isinstance(value, (float, np.floating)):
                    cells.append("%.6g" % value)
                else:
                    cells.append(str(value))
            handle.write(",".join(cells) + "\n")
    return str(path)


def data(seed, rows=600, shift=0.0, mix=(0.5, 0.3, 0.2)):
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40 + shift * 10, 10, rows),
        "income": rng.lognormal(10, 0.5, rows),
        "region": list(rng.choice(["north", "south", "east"], rows, p=list(mix))),
    }


@pytest.fixture
def files(tmp_path):
    ref = write_csv(tmp_path / "ref.csv", data(1, rows=3000))
    same = write_csv(tmp_path / "same.csv", data(2))
    shifted = write_csv(tmp_path / "shifted.csv", data(3, shift=0.8, mix=(0.2, 0.3, 0.5)))
    out = tmp_path / "out"
    out.mkdir()
    return {"dir": tmp_path, "ref": ref, "same": same, "shifted": shifted, "out": out}


def outputs(files):
    out = files["out"]
    return {
        "report_path": str(out / "report.json"),
        "html_report_path": str(out / "report.html"),
        "prometheus_textfile": str(out / "drift.prom"),
        "profile_path": str(out / "profile.json"),
    }


def test_no_drift_then_idempotent_second_run(run_module, files):
    args = dict(reference=files["ref"], current=files["same"], **outputs(files))
    first = run_module(drift_check, args)
    assert not first["failed"], first.get("msg")
    assert first["changed"] and not first["drifted"] and first["drifted_share"] == 0.0
    assert sorted(first["written"]) == sorted(outputs(files).values())
    assert set(first["features"]) == {"age", "income", "region"}
    feat = first["features"]["age"]
    for key in ("drifted", "test", "statistic", "p_value", "threshold", "rule", "n_reference", "n_current"):
        assert key in feat
    assert feat["n_reference"] == 3000 and feat["n_current"] == 600
    second = run_module(drift_check, args)
    assert not second["failed"] and not second["changed"] and second["written"] == []
    report = json.load(open(args["report_path"]))
    assert report["format"] == "runlocalai.mlops/drift-report"
    assert report["result"]["features"]["age"]["p_value"] == first["features"]["age"]["p_value"]
    html = open(args["html_report_path"]).read()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "<script" not in html


def test_drift_detected_and_reported(run_module, files):
    args = dict(reference=files["ref"], current=files["shifted"], prometheus_textfile=outputs(files)["prometheus_textfile"],
                prometheus_labels={"model": "churn"})
    result = run_module(drift_check, args)
    assert not result["failed"]
    assert result["drifted"] and set(result["drifted_features"]) == {"age", "region"}
    assert result["drifted_share"] == pytest.approx(2 / 3.0)
    assert result["features"]["region"]["test"] == "chi2"
    prom = open(args["prometheus_textfile"]).read()
    assert 'mlops_drift_detected{model="churn"} 1' in prom
    assert 'mlops_feature_drifted{feature="age",model="churn"} 1' in prom
    assert 'mlops_feature_drifted{feature="income",model="churn"} 0' in prom
    assert "# TYPE mlops_drift_share gauge" in prom


def test_fail_on_drift_writes_reports_then_fails_readably(run_module, files):
    report = outputs(files)["report_path"]
    result = run_module(drift_check, dict(reference=files["ref"], current=files["shifted"], report_path=report, fail_on_drift=True))
    assert result["failed"]
    assert result["msg"].startswith("drift detected: drift in 2 of 3 features: age (")
    assert os.path.exists(report)
    assert run_module(drift_check, dict(reference=files["ref"], current=files["same"], fail_on_drift=True))["failed"] is False


def test_check_mode_writes_nothing_and_diff_shows_changes(run_module, files):
    args = dict(reference=files["ref"], current=files["same"], **outputs(files))
    result = run_module(drift_check, args, check_mode=True, diff=True)
    assert not result["failed"] and result["changed"]
    assert os.listdir(str(files["out"])) == []
    by_path = dict((d["after_header"], d) for d in result["diff"])
    assert by_path[args["report_path"]]["before"] == "" and '"format": "runlocalai.mlops/drift-report"' in by_path[args["report_path"]]["after"]
    assert by_path[args["profile_path"]]["after"].startswith("sha256:")


def test_profile_is_reused_and_recognised_by_content(run_module, files):
    profile_path = str(files["dir"] / "churn-reference.data")  # any name: recognised by content
    built = run_module(drift_check, dict(reference=files["ref"], profile_path=profile_path))
    assert not built["failed"] and built["changed"] and built["profile_built"]
    assert built["features"]["region"]["type"] == "categorical"
    with_data = run_module(drift_check, dict(reference=files["ref"], current=files["shifted"]))
    with_profile = run_module(drift_check, dict(reference=profile_path, current=files["shifted"]))
    assert with_profile["profile_built"] is False
    assert with_profile["profile_hash"] == built["profile_hash"] == with_data["profile_hash"]
    assert with_profile["features"] == with_data["features"]
    again = run_module(drift_check, dict(reference=files["ref"], profile_path=profile_path))
    assert not again["changed"]


def test_profile_document_format(run_module, files):
    path = str(files["out"] / "p.json")
    run_module(drift_check, dict(reference=files["ref"], profile_path=path, features=["age", {"name": "region", "type": "categorical"}]))
    text = open(path).read()
    assert text.startswith('{"format":"runlocalai.mlops/drift-profile","format_version":1,"content_hash":"sha256:')
    doc = json.loads(text)
    assert doc["content_hash"] == drift_profile.profile_hash(doc)
    assert doc["features"]["age"]["sample"]["kind"] == "exact" and len(doc["features"]["age"]["sample"]["values"]) == 3000
    assert len(doc["features"]["age"]["bins"]["edges"]) == 9
    assert sum(doc["features"]["region"]["categories"].values()) == 3000
    assert doc["features"]["region"]["type_source"] == "declared"


def test_tampered_profile_is_rejected(run_module, files):
    path = str(files["out"] / "p.json")
    run_module(drift_check, dict(reference=files["ref"], profile_path=path))
    doc = json.loads(open(path).read())
    doc["features"]["age"]["std"] = 99.0
    with open(path, "w") as handle:
        json.dump(doc, handle)
    result = run_module(drift_check, dict(reference=path, current=files["same"]))
    assert result["failed"] and "content hash mismatch" in result["msg"] and path in result["msg"]


def test_serving_window_directory(run_module, files):
    rng = np.random.default_rng(5)
    window = files["dir"] / "window"
    window.mkdir()
    records = []
    for i in range(500):
        records.append(drift_io.serving_record(
            inputs={"age": float(rng.normal(40, 10)), "income": float(rng.lognormal(10, 0.5)),
                    "region": str(rng.choice(["north", "south", "east"], p=[0.5, 0.3, 0.2]))},
            outputs={"prediction": int(rng.random() < 0.3), "confidence": float(rng.random())},
            ts="2026-11-27T10:%02d:00Z" % (i % 60), request_id="r%d" % i, model="churn", model_version="3"))
    with open(str(window / "window-2026112710.jsonl"), "w") as handle:
        handle.writelines(drift_io.format_serving_record(r) for r in records[:250])
    with gzip.open(str(window / "window-2026112711.jsonl.gz"), "wt") as handle:
        handle.writelines(drift_io.format_serving_record(r) for r in records[250:])
    # a record being written when the window was read: no trailing newline, cut short
    with open(str(window / "window-2026112712.jsonl"), "w") as handle:
        handle.write('{"inputs": {"age": 41.0, "inc')
    result = run_module(drift_check, dict(reference=files["ref"], current=str(window)))
    assert not result["failed"], result.get("msg")
    assert result["current"]["rows"] == 500 and result["current"]["files"] == 3 and result["current"]["skipped_lines"] == 1
    assert not result["drifted"]


def test_jsonl_and_parquet_inputs(run_module, files):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq
    cols = data(8)
    pq.write_table(pa.table(cols), str(files["dir"] / "cur.parquet"))
    jsonl = files["dir"] / "cur.jsonl"
    with open(str(jsonl), "w") as handle:
        for i in range(len(cols["age"])):
            handle.write(json.dumps(dict((k, (float(v[i]) if k != "region" else v[i])) for k, v in cols.items())) + "\n")
    for current in (str(files["dir"] / "cur.parquet"), str(jsonl)):
        result = run_module(drift_check, dict(reference=files["ref"], current=current))
        assert not result["failed"], result.get("msg")
        assert result["current"]["rows"] == 600 and not result["drifted"]


def test_csv_without_pyarrow_gives_same_result(run_module, files, monkeypatch):
    with_arrow = run_module(drift_check, dict(reference=files["ref"], current=files["shifted"]))
    monkeypatch.setattr(drift_io, "HAS_PYARROW", False)
    without = run_module(drift_check, dict(reference=files["ref"], current=files["shifted"]))
    assert with_arrow["features"] == without["features"]


# ----------------------------------------------------------------------------------------------
# Bad input: a clear message naming the parameter, feature or file, and nothing written.
# ----------------------------------------------------------------------------------------------

def bad(run_module, files, current_columns=None, current_path=None, **extra):
    if current_path is None:
        current_path = write_csv(files["dir"] / "bad.csv", current_columns)
    args = dict(reference=files["ref"], current=current_path, **outputs(files))
    args.update(extra)
    result = run_module(drift_check, args)
    assert result["failed"]
    assert os.listdir(str(files["out"])) == [], "nothing may be written on bad input"
    assert "Traceback" not in result["msg"]
    return result["msg"]


def test_bad_missing_file(run_module, files):
    msg = bad(run_module, files, current_path=str(files["dir"] / "nope.csv"))
    assert msg == "current: no such file or directory: %s" % (files["dir"] / "nope.csv")
    args = dict(reference=str(files["dir"] / "absent.csv"), current=files["same"])
    assert run_module(drift_check, args)["msg"].startswith("reference: no such file or directory")


def test_bad_missing_column(run_module, files):
    cols = data(2)
    del cols["income"]
    msg = bad(run_module, files, cols)
    assert "column 'income' not found in" in msg and "bad.csv" in msg


def test_bad_extra_column(run_module, files):
    cols = data(2)
    cols["surprise"] = list(range(600))
    msg = bad(run_module, files, cols)
    assert "'surprise'" in msg and "not in the reference" in msg
    result = run_module(drift_check, dict(reference=files["ref"], current=str(files["dir"] / "bad.csv"), extra_columns="ignore"))
    assert not result["failed"]
    result = run_module(drift_check, dict(reference=files["ref"], current=str(files["dir"] / "bad.csv"), features=["age"]))
    assert not result["failed"] and list(result["features"]) == ["age"]


@pytest.mark.parametrize("arrow", [True, False])
def test_bad_non_numeric_value_in_numeric_feature(run_module, files, monkeypatch, arrow):
    if not arrow:
        monkeypatch.setattr(drift_io, "HAS_PYARROW", False)
    cols = data(2)
    cols["age"] = list(cols["age"])
    cols["age"][41] = "forty"
    msg = bad(run_module, files, cols)
    assert msg.startswith("feature 'age': non-numeric value 'forty' in ")
    assert "row 43" in msg  # header is row 1, the 42nd data row is row 43


def test_bad_non_numeric_value_in_reference(run_module, files):
    cols = data(1, rows=400)
    cols["age"] = list(cols["age"])
    cols["age"][5] = "n/a?"
    ref = write_csv(files["dir"] / "badref.csv", cols)
    result = run_module(drift_check, dict(reference=ref, current=files["same"], **outputs(files)))
    assert result["failed"] and result["msg"].startswith("feature 'age': non-numeric value 'n/a?'")
    assert os.listdir(str(files["out"])) == []


def test_bad_empty_window(run_module, files):
    empty = files["dir"] / "empty.csv"
    empty.write_text("age,income,region\n")
    assert bad(run_module, files, current_path=str(empty)) == "current: no rows in %s" % empty
    nothing = files["dir"] / "nothing.csv"
    nothing.write_text("")
    assert "is empty" in bad(run_module, files, current_path=str(nothing))
    window = files["dir"] / "emptydir"
    window.mkdir()
    assert "has no serving-window files" in bad(run_module, files, current_path=str(window))


def test_bad_all_missing_column(run_module, files):
    cols = data(2)
    cols["income"] = [None] * 600
    assert bad(run_module, files, cols).startswith("feature 'income': all 600 values are missing in the current window")


def test_bad_constant_reference_column(run_module, files):
    cols = data(1, rows=400)
    cols["income"] = np.full(400, 1234.5)
    ref = write_csv(files["dir"] / "constref.csv", cols)
    result = run_module(drift_check, dict(reference=ref, current=files["same"], **outputs(files)))
    assert result["failed"] and result["msg"].startswith("feature 'income': constant in the reference")
    assert os.listdir(str(files["out"])) == []


def test_bad_output_directory_and_labels(run_module, files):
    result = run_module(drift_check, dict(reference=files["ref"], current=files["same"], report_path=str(files["dir"] / "no" / "r.json")))
    assert result["failed"] and result["msg"].startswith("report_path: directory")
    result = run_module(drift_check, dict(reference=files["ref"], current=files["same"], prometheus_labels={"bad-name": "x"}))
    assert result["failed"] and result["msg"].startswith("prometheus_labels:")
    result = run_module(drift_check, dict(reference=files["ref"], current=files["same"], features=["age", "nope"]))
    assert result["failed"] and "nope" in result["msg"]
    result = run_module(drift_check, dict(reference=files["ref"], current=files["same"], alpha=2.0))
    assert result["failed"] and result["msg"].startswith("alpha:")


def test_missing_numpy_gives_missing_required_lib(run_module, files, monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy raises ImportError
    result = run_module(drift_check, dict(reference=files["ref"], current=files["same"]))
    assert result["failed"] and "numpy" in result["msg"]
