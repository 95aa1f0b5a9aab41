# -*- coding: utf-8 -*-
"""drift_io readers: pyarrow column conversion (chunks, dictionaries, nulls) and the CSV paths."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import os
import subprocess
import sys

import numpy as np
import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as dio


pa = pytest.importorskip("pyarrow")

COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(dio.__file__), "..", "..", "..", "..", ".."))


def decoded(column):
    """A Categories column as the list of its values per row (None for missing)."""
    return [None if code < 0 else column.values[code] for code in column.codes]


def same_floats(a, b):
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


def test_dictionary_chunks_each_with_its_own_dictionary():
    chunked = pa.chunked_array([pa.array(["a", None, "b", "a"]).dictionary_encode(),
                                pa.array(["c", "b", None]).dictionary_encode()])
    column = dio.arrow_to_column(chunked)
    assert decoded(column) == ["a", None, "b", "a", "c", "b", None]
    assert column.counts() == {"a": 2, "b": 2, "c": 1} and column.missing == 2
    assert sorted(column.values) == ["a", "b", "c"] and column.codes.dtype == np.int32


def test_sliced_arrays_respect_their_offset():
    words = pa.array(["a", None, "b", "a", None, "c"]).dictionary_encode()
    assert decoded(dio.arrow_to_column(words.slice(1, 4))) == [None, "b", "a", None]
    numbers = pa.array([1.0, None, 3.0, None, 5.0] * 5)
    assert same_floats(dio.arrow_to_column(numbers.slice(3, 17)), [np.nan, 5.0, 1.0, np.nan, 3.0, np.nan, 5.0] + [1.0, np.nan, 3.0, np.nan, 5.0] * 2)


def test_numbers_of_every_width_become_float64_with_nan_for_nulls():
    chunked = pa.chunked_array([pa.array([1.5, None, 3.0]), pa.array([None, 2.0])])
    assert same_floats(dio.arrow_to_column(chunked), [1.5, np.nan, 3.0, np.nan, 2.0])
    assert same_floats(dio.arrow_to_column(pa.array([1, None, 2 ** 40], pa.int64())), [1, np.nan, 2.0 ** 40])
    assert same_floats(dio.arrow_to_column(pa.array([-3, None, 7], pa.int8())), [-3, np.nan, 7])
    assert same_floats(dio.arrow_to_column(pa.array([255, None], pa.uint8())), [255, np.nan])
    assert same_floats(dio.arrow_to_column(pa.array([0.25, None], pa.float32())), [0.25, np.nan])
    assert same_floats(dio.arrow_to_column(pa.array([decimal.Decimal("1.5"), None])), [1.5, np.nan])
    assert dio.arrow_to_column(pa.array([1.0, 2.0])).dtype == np.float64


def test_booleans_nulls_and_plain_strings_become_categories():
    flags = dio.arrow_to_column(pa.array([True, None, False]))
    assert decoded(flags) == ["true", None, "false"]
    assert decoded(dio.arrow_to_column(pa.chunked_array([pa.array(["x", None]), pa.array(["y", "x"])]))) == ["x", None, "y", "x"]
    assert list(dio.arrow_to_column(pa.array([None, None])).codes) == [-1, -1]


def write_mixed_csv(path, rows):
    """More than one 1 MiB parse block, so the reader returns several chunks per column."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=rows)
    colours = np.array(["red", "green", "blue", "NA", ""])[rng.integers(0, 5, rows)]
    counts = rng.integers(0, 6, rows)
    flags = np.array(["true", "false", ""])[rng.integers(0, 3, rows)]
    with open(str(path), "w") as handle:
        handle.write("x,gaps,colour,count,flag,id\n")
        for i in range(rows):
            gap = "" if i % 7 == 0 else ("null" if i % 11 == 0 else "%.3f" % x[i])
            handle.write("%.6f,%s,%s,%d,%s,id%06d\n" % (x[i], gap, colours[i], counts[i], flags[i], i))


def test_csv_arrow_reader_matches_the_python_reader(tmp_path):
    path = str(tmp_path / "mixed.csv")
    write_mixed_csv(path, 40000)
    header = dio._csv_header(path, "data", ",")
    fast = dio._read_csv_arrow(path, header, header, {}, "data", ",")
    slow = dio._read_csv_python(path, header, header, {}, "data", ",")
    assert fast.rows == slow.rows == 40000
    assert len(fast.columns["x"]) == 40000
    for name in ("x", "gaps", "count"):
        assert same_floats(fast.columns[name], slow.columns[name]), name
    for name in ("colour", "flag", "id"):
        assert decoded(fast.columns[name]) == decoded(slow.columns[name]), name
    assert fast.columns["colour"].missing == slow.columns["colour"].missing > 0
    # 40,000 distinct ids: above the per-chunk dictionary limit, read as strings and encoded after
    assert len(fast.columns["id"].values) == 40000
    # a column declared categorical or numeric reads the same way
    typed = dio.read_csv(path, ["count", "x"], {"count": "categorical", "x": "numeric"}, "data")
    assert same_floats(typed.columns["x"], slow.columns["x"])


def test_reading_a_csv_imports_neither_pandas_nor_pyarrow_compute(tmp_path):
    """Some pyarrow conversions (ChunkedArray.to_numpy, fill_null, pa.array of Python values)
    import pandas, about half a second; the reader stays on buffers instead."""
    path = str(tmp_path / "mixed.csv")
    write_mixed_csv(path, 2000)
    code = ("import sys\n"
            "from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import tables as drift_io\n"
            "t = drift_io.read_table(sys.argv[1], ['x', 'gaps', 'colour', 'count', 'flag'], {'x': 'numeric'})\n"
            "assert t.rows == 2000 and len(t.columns['colour'].values) == 3\n"
            "print(sorted(m for m in ('pandas', 'pyarrow.compute') if m in sys.modules))\n")
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_parse_float_lists_equals_python_floats():
    texts = ["1.5,-2.0,3.25e-05,1e+20", "0.1", "", "-0.0,2.2250738585072014e-308,17.000000000000004"]
    parsed = dio.parse_float_lists(texts)
    assert [p.tolist() for p in parsed] == [[float(v) for v in t.split(",")] if t else [] for t in texts]
    assert dio.parse_float_lists(["1.5,abc"]) is None
    assert dio.parse_float_lists(["1.5,,2"]) is None
