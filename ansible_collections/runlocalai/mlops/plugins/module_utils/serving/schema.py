# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model's input schema and the validation of request instances against it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import operator

from .messages import ServingError


NUMERIC_TYPES = ("integer", "long", "float", "double")
DTYPES = {"integer": "int32", "long": "int64", "float": "float32", "double": "float64", "boolean": "bool"}


class InputSchema:
    """The model signature's column schema: names, types and which are required."""

    def __init__(self, columns):
        self.columns = columns                    # list of (name, type, required)
        self.by_name = dict((c[0], c) for c in columns)
        self.names = [c[0] for c in columns]
        self.name_set = frozenset(self.names)
        self.getter = operator.itemgetter(*self.names) if self.names else None

    @classmethod
    def from_mlflow(cls, schema):
        if schema is None:
            return None
        try:
            if not schema.has_input_names():
                return None
        except AttributeError:
            return None
        columns = []
        for spec in schema.inputs:
            kind = getattr(spec, "type", None)
            kind = getattr(kind, "name", str(kind))
            columns.append((spec.name, kind, bool(getattr(spec, "required", True))))
        return cls(columns)

    def describe(self):
        return [{"name": n, "type": t, "required": r} for n, t, r in self.columns]


def _type_error(field, index, kind, value):
    shown = json.dumps(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return ServingError(422, "field %r (instance %d): expected %s, got %s %s" % (field, index, kind, type(value).__name__, shown), field)


def check_value(field, index, kind, value):
    """A JSON scalar checked (and normalised) against a signature column type."""
    if kind in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(field, index, kind, value)
        if kind in ("integer", "long"):
            if isinstance(value, float):
                if not value.is_integer():
                    raise _type_error(field, index, kind, value)
                value = int(value)
            if kind == "integer" and not -2 ** 31 <= value < 2 ** 31:
                raise ServingError(422, "field %r (instance %d): %d does not fit a 32-bit integer" % (field, index, value), field)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(field, index, kind, value)
        return value
    if kind in ("string", "datetime", "binary"):
        if not isinstance(value, str):
            raise _type_error(field, index, kind, value)
        return value
    if isinstance(value, (dict, list)):
        raise _type_error(field, index, "a scalar", value)
    return value


def parse_instances(payload, max_instances):
    """The instances of a predict request as a list of dicts. Accepted bodies:
    {"records": [{...}, ...]} / {"dataframe_records": [...]} (rows), {"columns": {"f": [...], ...}}
    (columns), {"dataframe_split": {"columns": [...], "data": [[...], ...]}} (MLflow's split form)."""
    if not isinstance(payload, dict):
        raise ServingError(400, "the body must be a JSON object with 'records', 'columns', 'dataframe_records' or 'dataframe_split'")
    keys = [k for k in ("records", "dataframe_records", "columns", "dataframe_split") if k in payload]
    if len(keys) != 1:
        raise ServingError(400, "give exactly one of 'records', 'columns', 'dataframe_records', 'dataframe_split' (got %s)"
                           % (", ".join(sorted(payload)) or "none"))
    key = keys[0]
    value = payload[key]
    if key in ("records", "dataframe_records"):
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise ServingError(400, "%s: must be a list of objects (one per instance)" % key, key)
        records = value
    elif key == "columns":
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise ServingError(400, "columns: must be an object of field name -> list of values", key)
        lengths = set(len(v) for v in value.values())
        if len(lengths) > 1:
            raise ServingError(400, "columns: the lists have different lengths (%s)" % ", ".join(
                "%s: %d" % (k, len(v)) for k, v in sorted(value.items())), key)
        count = lengths.pop() if lengths else 0
        names = list(value)
        records = [dict((n, value[n][i]) for n in names) for i in range(count)]
    else:
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) or not isinstance(value.get("data"), list):
            raise ServingError(400, "dataframe_split: must be an object with 'columns' (list) and 'data' (list of rows)", key)
        names = value["columns"]
        records = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(names):
                raise ServingError(400, "dataframe_split.data[%d]: must be a list of %d values" % (i, len(names)), key)
            records.append(dict(zip(names, row)))
    if not records:
        raise ServingError(400, "%s: no instances to score" % key, key)
    if len(records) > max_instances:
        raise ServingError(413, "%s: %d instances in one request; the limit is %d" % (key, len(records), max_instances), key)
    return records


# The types a whole column may consist of to pass check_value unchanged, by signature type (exact
# types: a bool is not an int here, and anything else takes the per-value path).
_COLUMN_TYPES = {
    "integer": frozenset((int,)), "long": frozenset((int,)),
    "float": frozenset((int, float)), "double": frozenset((int, float)),
    "boolean": frozenset((bool,)),
    "string": frozenset((str,)), "datetime": frozenset((str,)), "binary": frozenset((str,)),
}
_SCALAR_TYPES = frozenset((int, float, str, bool))
_NONE = type(None)


def _validate_columns(records, schema):
    """validate_records for the common case, a column at a time: every record has exactly the schema's
    fields and every column passes check_value unchanged (checked on the set of the column's value
    types, and the range of 32-bit integer columns). None when that is not so: the caller then runs
    the per-value checks, which give the same result, or the refusal naming the field and instance."""
    names = schema.names
    count = len(names)
    known = schema.name_set
    for record in records:
        if len(record) != count or not record.keys() <= known:
            return None
    if count == 1:
        only = names[0]
        values = [[record[only] for record in records]]
    else:
        values = list(zip(*map(schema.getter, records)))
    columns = {}
    for (name, kind, required), column in zip(schema.columns, values):
        types = set(map(type, column))
        nulls = _NONE in types
        if nulls:
            if required:
                return None
            types.discard(_NONE)
        if not types <= _COLUMN_TYPES.get(kind, _SCALAR_TYPES):
            return None
        if kind == "integer" and types:
            present = [v for v in column if v is not None] if nulls else column
            if min(present) < -2 ** 31 or max(present) >= 2 ** 31:
                return None
        columns[name] = list(column)
    return names, columns


def validate_records(records, schema):
    """Check every instance against the schema: a missing required field, an unknown field, a null in a
    required field or a value of the wrong type is a 422 naming the field. Returns column -> values.

    Whole columns are checked at once first (_validate_columns); only a request that fails there (or
    has optional fields left out) goes through the per-value checks below, which name the first bad
    field and instance exactly as they always have."""
    if schema is not None and records:
        fast = _validate_columns(records, schema)
        if fast is not None:
            return fast
    if schema is None:
        names = []
        for record in records:
            for name in record:
                if name not in names:
                    names.append(name)
        columns = dict((n, []) for n in names)
        for index, record in enumerate(records):
            for name in names:
                columns[name].append(check_value(name, index, None, record.get(name)))
        return names, columns
    names = [c[0] for c in schema.columns]
    columns = dict((n, []) for n in names)
    for index, record in enumerate(records):
        for field in record:
            if field not in schema.by_name:
                raise ServingError(422, "field %r (instance %d) is not in the model's input schema (it has: %s)"
                                   % (field, index, ", ".join(names)), field)
        for name, kind, required in schema.columns:
            value = record.get(name)
            if value is None:
                if required:
                    what = "missing required field" if name not in record else "null in required field"
                    raise ServingError(422, "%s %r (instance %d)" % (what, name, index), name)
                columns[name].append(None)
            else:
                columns[name].append(check_value(name, index, kind, value))
    return names, columns


def build_frame(names, columns, schema):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import pandas as pd  # pylint: disable=import-outside-toplevel
    data = collections.OrderedDict()
    for name in names:
        values = columns[name]
        kind = schema.by_name[name][1] if schema is not None else None
        dtype = DTYPES.get(kind)
        if dtype and None not in values:
            data[name] = np.asarray(values, dtype=dtype)
        elif kind in ("float", "double") or (kind in ("integer", "long") and None in values):
            data[name] = np.asarray([np.nan if v is None else v for v in values], dtype="float64")
        else:
            data[name] = pd.Series(values, dtype="object")
    return pd.DataFrame(data)
