# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Readers for drift checks: CSV, JSON lines, Parquet (when pyarrow is installed) and serving-window
directories (see docs/drift.md for the serving-window format, which this file owns).

No Ansible imports: installed on serving hosts as well. A table is read into columns of two kinds:

- numeric: a float64 numpy array, NaN for missing values;
- Categories: distinct category strings plus an int32 code per row (-1 for missing).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import gzip
import io
import json
import math
import os
import re

from .stats import DriftInputError, require_numpy

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

try:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    HAS_PYARROW = True
except ImportError:  # pragma: no cover
    pa = None
    pa_csv = None
    HAS_PYARROW = False

# Field values read as missing, in CSV files and as JSON strings.
NULL_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "none")
CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
WINDOW_SUFFIXES = (".jsonl", ".jsonl.gz")
SERVING_WINDOW_FORMAT = "runlocalai.mlops/serving-window"
SERVING_WINDOW_VERSION = 1
OUTPUT_PREFIX = "outputs."


class Categories:
    """A categorical column: `values` (list of distinct str) and `codes` (int32 per row, -1 = missing).

    `numeric_labels` is True when the categories came from numbers (canonical form, see
    canonical_category)."""

    def __init__(self, values, codes, numeric_labels=False):
        self.values = list(values)
        self.codes = codes
        self.numeric_labels = numeric_labels

    def __len__(self):
        return int(self.codes.size)

    @property
    def missing(self):
        return int(np.count_nonzero(self.codes < 0))

    def counts(self):
        """Dict category -> count (categories with zero rows left out)."""
        if self.codes.size == 0 or not self.values:
            return {}
        counted = np.bincount(self.codes[self.codes >= 0], minlength=len(self.values))
        return dict((self.values[i], int(c)) for i, c in enumerate(counted) if c > 0)


class Table:
    """Columns read from a file or a serving-window directory.

    columns: name -> numpy float64 array or Categories; rows: row count; source: the path read;
    input_columns: the names that count as features (every column of a data file; the `inputs`
    of a serving window); row_offset: line number of the first data row (for messages)."""

    def __init__(self, columns, rows, source, input_columns, files=None, row_offset=1, skipped_lines=0):
        self.columns = columns
        self.rows = rows
        self.source = source
        self.input_columns = list(input_columns)
        self.files = files or [source]
        self.row_offset = row_offset
        self.skipped_lines = skipped_lines


def canonical_category(value):
    """The category string of a scalar: None for missing; numbers in canonical form (3.0 -> '3');
    booleans 'true'/'false'; other JSON values as compact sorted JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return None if value in NULL_TOKENS else value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def categories_from_values(values):
    """Categories from a list of Python scalars (canonicalised)."""
    require_numpy()
    index = {}
    codes = np.empty(len(values), dtype=np.int32)
    numeric = True
    for i, value in enumerate(values):
        if value is not None and not isinstance(value, (int, float)) or isinstance(value, bool):
            numeric = False
        key = canonical_category(value)
        if key is None:
            codes[i] = -1
            continue
        code = index.get(key)
        if code is None:
            code = index[key] = len(index)
        codes[i] = code
    ordered = sorted(index, key=index.get)
    return Categories(ordered, codes, numeric_labels=numeric and bool(index))


def categories_from_numeric(array):
    """Categories from a float64 array (canonical number strings)."""
    require_numpy()
    array = np.asarray(array, dtype=np.float64)
    valid = ~np.isnan(array)
    uniq, inverse = np.unique(array[valid], return_inverse=True)
    codes = np.full(array.size, -1, dtype=np.int32)
    codes[valid] = inverse.astype(np.int32)
    return Categories([canonical_category(float(v)) for v in uniq], codes, numeric_labels=True)


def _parse_float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value


def numeric_from_categories(cats, feature, source, row_offset=1):
    """Convert a Categories column to float64; DriftInputError naming the first non-numeric value."""
    require_numpy()
    table = np.empty(len(cats.values) + 1, dtype=np.float64)
    table[-1] = np.nan
    for i, text in enumerate(cats.values):
        value = _parse_float(text)
        if value is None:
            rows = np.flatnonzero(cats.codes == i)
            raise DriftInputError(
                "feature '%s': non-numeric value %r in %s (row %d; %d such rows); fix the data or declare the feature categorical"
                % (feature, text, source, int(rows[0]) + row_offset, rows.size))
        table[i] = value
    return table[cats.codes]  # code -1 picks the trailing NaN


def numeric_share(cats):
    """Share of the non-missing rows whose value parses as a number."""
    if not cats.values:
        return 0.0
    ok = np.array([_parse_float(v) is not None for v in cats.values])
    counted = np.bincount(cats.codes[cats.codes >= 0], minlength=len(cats.values))
    total = counted.sum()
    return float(counted[ok].sum()) / total if total else 0.0


def parse_float_lists(texts):
    """Parse JSON arrays of numbers given without their brackets ("1.5,-2.0e-3,7.25") into float64
    arrays with pyarrow's C++ CSV float parser (one value per line), which rounds correctly as
    Python's float() does, so the values are identical to json.loads'. Returns None (the caller
    falls back to json) without pyarrow or when any text is not a plain list of numbers."""
    if not HAS_PYARROW or not texts:
        return None
    sizes = [text.count(",") + 1 if text else 0 for text in texts]
    blob = "\n".join(text for text in texts if text).replace(",", "\n").encode("ascii", "replace")
    try:
        table = pa_csv.read_csv(
            io.BytesIO(blob), read_options=pa_csv.ReadOptions(column_names=["v"], use_threads=True, block_size=1 << 19),
            parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={"v": pa.float64()}, null_values=[], strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError):
        return None
    column = table.column("v")
    if column.null_count or len(column) != sum(sizes):
        return None
    values = _arrow_to_float(column, np.dtype("=f8"))
    out = []
    pos = 0
    for size in sizes:
        out.append(values[pos:pos + size])
        pos += size
    return out


# ---------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------

def _suffix_in(path, suffixes):
    lower = path.lower()
    return any(lower.endswith(s) for s in suffixes)


def read_table(path, columns=None, types=None, what="file"):
    """Read a data file or a serving-window directory.

    columns: names to read (None: all); types: name -> 'numeric' | 'categorical' for columns
    whose type is known (others are inferred from the data); what: the parameter name used in
    messages ('reference', 'current').
    """
    require_numpy()
    if not path or not os.path.exists(path):
        raise DriftInputError("%s: no such file or directory: %s" % (what, path))
    if os.path.isdir(path):
        return read_serving_window(path, columns, types, what)
    if _suffix_in(path, PARQUET_SUFFIXES):
        return read_parquet(path, columns, types, what)
    if _suffix_in(path, JSONL_SUFFIXES) or path.lower().endswith(".json"):
        return read_jsonl([path], columns, types, what, source=path)
    if _suffix_in(path, CSV_SUFFIXES) or path.lower().endswith((".tsv", ".txt")):
        return read_csv(path, columns, types, what)
    raise DriftInputError("%s: unknown file type of %s (expected .csv, .jsonl, .ndjson, .parquet or a directory)" % (what, path))


def _check_columns(wanted, available, what, path):
    if wanted is None:
        return list(available)
    present = set(available)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DriftInputError("%s: column%s %s not found in %s (it has: %s)" % (
            what, "s" if len(missing) > 1 else "", ", ".join("'%s'" % c for c in missing), path,
            ", ".join(available) or "no columns"))
    return list(wanted)


def _open_text(path):
    if path.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

def _csv_header(path, what, delimiter):
    try:
        with _open_text(path) as handle:
            header = next(csv.reader(handle, delimiter=delimiter), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise DriftInputError("%s: cannot read %s: %s" % (what, path, exc))
    if not header or all(not h.strip() for h in header):
        raise DriftInputError("%s: %s is empty (no header row)" % (what, path))
    header = [h.strip() for h in header]
    seen = set()
    for name in header:
        if name in seen:
            raise DriftInputError("%s: duplicate column '%s' in %s" % (what, name, path))
        seen.add(name)
    return header


def read_csv(path, columns=None, types=None, what="file"):
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    header = _csv_header(path, what, delimiter)
    names = _check_columns(columns, header, what, path)
    types = types or {}
    if HAS_PYARROW:
        return _read_csv_arrow(path, header, names, types, what, delimiter)
    return _read_csv_python(path, header, names, types, what, delimiter)


_ARROW_COLUMN_ERROR = re.compile(r"column #(\d+).*?invalid value '([^']*)'", re.S)


def _read_csv_arrow(path, header, names, types, what, delimiter):
    column_types = {}
    for name in names:
        if types.get(name) == "numeric":
            column_types[name] = pa.float64()
    parse = pa_csv.ParseOptions(delimiter=delimiter)
    read = pa_csv.ReadOptions(use_threads=True, block_size=1 << 20)

    def load(include, kinds):
        convert = pa_csv.ConvertOptions(
            include_columns=include, column_types=kinds, null_values=list(NULL_TOKENS),
            strings_can_be_null=True, quoted_strings_can_be_null=True,
            auto_dict_encode=True, auto_dict_max_cardinality=AUTO_DICT_MAX_CARDINALITY)
        return pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)

    try:
        table = load(names, column_types)
    except pa.ArrowInvalid as exc:
        text = str(exc)
        match = _ARROW_COLUMN_ERROR.search(text)
        if match and column_types:
            # Find feature and row: read the numeric columns as text, convert the slow way (raises).
            index = int(match.group(1))
            suspects = sorted(column_types, key=lambda n: n != (header[index] if index < len(header) else None))
            for name in suspects:
                column = arrow_to_column(load([name], {name: pa.string()}).column(name))
                numeric_from_categories(column, name, path, row_offset=2)
        raise DriftInputError("%s: cannot parse %s: %s" % (what, path, text.splitlines()[0] if text else exc))
    except OSError as exc:
        raise DriftInputError("%s: cannot read %s: %s" % (what, path, exc))
    columns = dict((name, arrow_to_column(table.column(name))) for name in names)
    return Table(columns, table.num_rows, path, header, row_offset=2)


# Per-chunk limit of distinct strings up to which the CSV reader dictionary-encodes a text column
# while it parses (a column above it in any chunk is read as plain strings and encoded afterwards).
AUTO_DICT_MAX_CARDINALITY = 10000


def _chunks(array):
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def _present_mask(chunk):
    """bool array, True where the chunk has a value; None when it has no nulls. Read from the
    validity bitmap: no pyarrow.compute (and none of the pandas import that some pyarrow
    conversions trigger)."""
    if chunk.null_count == 0:
        return None
    bitmap = chunk.buffers()[0]
    start = chunk.offset
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=start + len(chunk), bitorder="little")
    return bits[start:].astype(bool)


def _chunk_values(chunk, dtype):
    """The value buffer of a fixed-width chunk as a numpy view (slots under nulls undefined)."""
    return np.frombuffer(chunk.buffers()[1], dtype=dtype, count=chunk.offset + len(chunk))[chunk.offset:]


def _numpy_dtype(kind):
    """numpy dtype of a pyarrow integer or floating type (None for other types)."""
    if pa.types.is_floating(kind):
        return np.dtype("=f%d" % (kind.bit_width // 8))
    if pa.types.is_integer(kind):
        return np.dtype("=%s%d" % ("i" if pa.types.is_signed_integer(kind) else "u", kind.bit_width // 8))
    return None


def _arrow_to_float(array, dtype):
    chunks = _chunks(array)
    out = np.empty(sum(len(c) for c in chunks), dtype=np.float64)
    pos = 0
    for chunk in chunks:
        size = len(chunk)
        if size:
            part = out[pos:pos + size]
            part[...] = _chunk_values(chunk, dtype)
            present = _present_mask(chunk)
            if present is not None:
                part[~present] = np.nan
        pos += size
    return out


def _arrow_dictionary_to_categories(array):
    """Dictionary-encoded chunks (each with its own dictionary) -> one Categories column."""
    chunks = _chunks(array)
    codes = np.empty(sum(len(c) for c in chunks), dtype=np.int32)
    index = {}
    pos = 0
    for chunk in chunks:
        size = len(chunk)
        if not size:
            continue
        lookup = np.array([-1 if value is None else index.setdefault(value, len(index)) for value in chunk.dictionary.to_pylist()] + [-1],
                          dtype=np.int32)
        indices = chunk.indices
        local = np.asarray(_chunk_values(indices, _numpy_dtype(indices.type)), dtype=np.int64)
        present = _present_mask(indices)
        if present is not None:
            local = np.where(present, local, lookup.size - 1)
        codes[pos:pos + size] = lookup[local]
        pos += size
    return Categories(list(index), codes)


def arrow_to_column(chunked):
    """A pyarrow (Chunked)Array -> float64 array or Categories."""
    kind = chunked.type
    dtype = _numpy_dtype(kind)
    if dtype is not None:
        return _arrow_to_float(chunked, dtype)
    if pa.types.is_decimal(kind):
        return _arrow_to_float(chunked.cast(pa.float64()), np.dtype("=f8"))
    if pa.types.is_null(kind):
        return Categories([], np.full(len(chunked), -1, dtype=np.int32))
    if pa.types.is_boolean(kind):
        values = chunked.to_pylist()
        return categories_from_values(values)
    if pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
        return _arrow_dictionary_to_categories(chunked)
    if pa.types.is_dictionary(kind):
        chunked = chunked.cast(kind.value_type)
    if not (pa.types.is_string(chunked.type) or pa.types.is_large_string(chunked.type)):
        chunked = chunked.cast(pa.string())
    if isinstance(chunked, pa.ChunkedArray):
        chunked = chunked.combine_chunks()
    return _arrow_dictionary_to_categories(chunked.dictionary_encode())


def _read_csv_python(path, header, names, types, what, delimiter):
    index = dict((name, header.index(name)) for name in names)
    raw = dict((name, []) for name in names)
    rows = 0
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DriftInputError("%s: row %d of %s has %d fields, the header has %d" % (what, line_no, path, len(row), len(header)))
            rows += 1
            for name in names:
                raw[name].append(row[index[name]])
    columns = {}
    for name in names:
        values = [None if v.strip() in NULL_TOKENS else v.strip() for v in raw[name]]
        numeric = _try_numeric(values)
        if numeric is not None:
            columns[name] = numeric
        else:
            cats = categories_from_values(values)
            if types.get(name) == "numeric":
                numeric_from_categories(cats, name, path, row_offset=2)  # raises with the row
            columns[name] = cats
    return Table(columns, rows, path, header, row_offset=2)


def _try_numeric(values):
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            out[i] = np.nan
            continue
        parsed = _parse_float(value)
        if parsed is None:
            return None
        out[i] = parsed
    return out


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------

def read_parquet(path, columns=None, types=None, what="file"):
    if not HAS_PYARROW:
        raise DriftInputError("%s: reading Parquet (%s) needs the Python library pyarrow" % (what, path))
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    try:
        schema_names = list(pq.read_schema(path).names)
        names = _check_columns(columns, schema_names, what, path)
        table = pq.read_table(path, columns=names)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DriftInputError("%s: cannot read Parquet file %s: %s" % (what, path, exc))
    columns_out = dict((name, arrow_to_column(table.column(name))) for name in names)
    return Table(columns_out, table.num_rows, path, schema_names, row_offset=0)


# ---------------------------------------------------------------------------------------------
# JSON lines and serving windows
# ---------------------------------------------------------------------------------------------

def window_files(directory, what="current"):
    """The serving-window files of a directory: *.jsonl and *.jsonl.gz, sorted by name."""
    names = sorted(n for n in os.listdir(directory) if _suffix_in(n, WINDOW_SUFFIXES) and not n.startswith("."))
    if not names:
        raise DriftInputError("%s: directory %s has no serving-window files (*.jsonl, *.jsonl.gz)" % (what, directory))
    return [os.path.join(directory, n) for n in names]


def read_serving_window(directory, columns=None, types=None, what="current"):
    return read_jsonl(window_files(directory, what), columns, types, what, source=directory)


def iter_records(paths, what):
    """Yield (path, line number, record dict) from JSON-lines files.

    A last line without its newline is a record still being written: it is skipped (and counted)
    when it does not parse. Any other line that is not a JSON object is an error naming file and line.
    """
    for path in paths:
        try:
            handle = _open_text(path)
        except OSError as exc:
            raise DriftInputError("%s: cannot read %s: %s" % (what, path, exc))
        with handle:
            try:
                lines = handle.read().split("\n")
            except (OSError, UnicodeDecodeError, EOFError) as exc:
                raise DriftInputError("%s: cannot read %s: %s" % (what, path, exc))
        last = len(lines) - 1
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if number - 1 == last:
                    yield path, number, None
                    continue
                raise DriftInputError("%s: line %d of %s is not valid JSON" % (what, number, path))
            if not isinstance(record, dict):
                raise DriftInputError("%s: line %d of %s is not a JSON object" % (what, number, path))
            yield path, number, record


def _flatten(record):
    """Serving-window record -> flat dict (inputs bare, outputs as 'outputs.<name>', plus 'label')."""
    if isinstance(record.get("inputs"), dict):
        flat = dict(record["inputs"])
        outputs = record.get("outputs")
        if isinstance(outputs, dict):
            for key, value in outputs.items():
                flat[OUTPUT_PREFIX + key] = value
        for key in ("label", "request_id", "ts", "model", "model_version"):
            if key in record:
                flat.setdefault(key, record[key])
        return flat, list(record["inputs"])
    return record, list(record)


def read_jsonl(paths, columns=None, types=None, what="file", source=None):
    require_numpy()
    types = types or {}
    raw = {}
    input_names = {}
    rows = 0
    skipped = 0
    wanted = None if columns is None else set(columns)
    for _path, _number, record in iter_records(paths, what):
        if record is None:
            skipped += 1
            continue
        flat, inputs = _flatten(record)
        for name in inputs:
            input_names.setdefault(name, None)
        for name, value in flat.items():
            if wanted is not None and name not in wanted:
                continue
            col = raw.get(name)
            if col is None:
                col = raw[name] = [None] * rows
            col.append(value)
        rows += 1
        for col in raw.values():
            if len(col) < rows:
                col.append(None)
    source = source or paths[0]
    available = list(input_names) + sorted(n for n in raw if n not in input_names)
    names = _check_columns(columns, available, what, source)
    out = {}
    for name in names:
        values = raw.get(name, [None] * rows)
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            values = [None if isinstance(v, str) and v in NULL_TOKENS else v for v in values]
            cats = categories_from_values(values)
            if types.get(name) == "numeric":
                out[name] = numeric_from_categories(cats, name, source, row_offset=1)
            else:
                out[name] = cats
    return Table(out, rows, source, list(input_names), files=list(paths), row_offset=1, skipped_lines=skipped)


def serving_record(inputs, outputs=None, ts=None, request_id=None, model=None, model_version=None, label=None):
    """One serving-window record (the model server writes one per request, as one JSON line)."""
    record = {"inputs": dict(inputs)}
    if outputs is not None:
        record["outputs"] = dict(outputs)
    for key, value in (("ts", ts), ("request_id", request_id), ("model", model), ("model_version", model_version), ("label", label)):
        if value is not None:
            record[key] = value
    return record


def format_serving_record(record):
    """The JSON line for a serving-window record (compact, keys sorted, newline-terminated)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
