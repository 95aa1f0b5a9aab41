# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The pyfunc runtime: an MLflow pyfunc model fetched into a local cache and loaded in process,
with a bit-for-bit-checked fast path for scikit-learn models."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

from .messages import to_python
from .runtime import Prediction, Runtime
from .schema import InputSchema, build_frame, parse_instances, validate_records


class _FileLock:
    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def fetch_model(model_uri, cache_dir, version, keep=2, downloader=None):
    """The local directory of the model: `model_uri` itself when it is a local directory, otherwise a
    download (with the process's MLFLOW_TRACKING_* credentials) cached in <cache_dir>/<version>.
    A version already in the cache is not downloaded again; older versions beyond `keep` are removed."""
    if os.path.isdir(model_uri):
        return model_uri
    target = os.path.join(cache_dir, str(version))
    marker = os.path.join(target, ".complete")
    if os.path.exists(marker):
        with open(marker, "r", encoding="utf-8") as handle:
            return os.path.join(target, handle.read().strip())
    if not os.path.isdir(cache_dir):
        os.makedirs(cache_dir, 0o750)
    with _FileLock(os.path.join(cache_dir, ".lock")):
        if os.path.exists(marker):
            with open(marker, "r", encoding="utf-8") as handle:
                return os.path.join(target, handle.read().strip())
        if os.path.exists(target):
            shutil.rmtree(target)
        staging = tempfile.mkdtemp(prefix=".download-", dir=cache_dir)
        try:
            if downloader is None:
                import mlflow.artifacts  # pylint: disable=import-outside-toplevel
                local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=staging)
            else:
                local = downloader(model_uri, staging)
            relative = os.path.relpath(local, staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(relative + "\n")
    prune_cache(cache_dir, keep, current=str(version))
    return os.path.join(target, relative)


def prune_cache(cache_dir, keep, current):
    versions = []
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        versions.append((os.stat(path).st_mtime, name))
    versions.sort(reverse=True)
    others = [name for _mtime, name in versions if name != current]
    for name in others[max(keep - 1, 0):]:
        shutil.rmtree(os.path.join(cache_dir, name), ignore_errors=True)


class LoadedModel:
    """A pyfunc model plus what the server needs from it: the input schema, and the classifier behind
    it (predict_proba and classes) when the flavour exposes one."""

    def __init__(self, path):
        import mlflow.pyfunc  # pylint: disable=import-outside-toplevel
        self.path = path
        self.pyfunc = mlflow.pyfunc.load_model(path)
        metadata = self.pyfunc.metadata
        self.schema = InputSchema.from_mlflow(metadata.get_input_schema())
        self.run_id = getattr(metadata, "run_id", None)
        raw = None
        impl = getattr(self.pyfunc, "_model_impl", None)
        for candidate in (getattr(impl, "sklearn_model", None), getattr(impl, "model", None)):
            if candidate is not None:
                raw = candidate
                break
        if raw is None:
            try:
                raw = self.pyfunc.get_raw_model()
            except Exception:  # pylint: disable=broad-except
                raw = None
        self.classifier = raw if (hasattr(raw, "predict_proba") and hasattr(raw, "classes_")) else None
        self.classes = to_python(self.classifier.classes_) if self.classifier is not None else None
        self.fast = None
        try:
            self.fast = SklearnFastPath.build(self, impl, raw)
        except Exception:  # pylint: disable=broad-except
            self.fast = None  # any doubt: the pyfunc path
        self.frame_path = None  # the all-double fast path (self.fast) first; otherwise this one
        if self.fast is None:
            try:
                self.frame_path = SklearnFramePath.build(self, impl, raw)
            except Exception:  # pylint: disable=broad-except
                self.frame_path = None

    def predict_columns(self, names, columns):
        """Predict validated columns (validate_records' output): the fast path (all-double columns) or the
        frame path (other scikit-learn models) when the model has one, otherwise a DataFrame through
        the pyfunc model. Same results either way."""
        for path in (self.fast, self.frame_path):
            if path is not None:
                result = path.predict(names, columns)
                if result is not None:
                    return result
        return self.predict(build_frame(names, columns, self.schema))

    def predict(self, frame):
        predictions = self.pyfunc.predict(frame)
        if hasattr(predictions, "to_dict") and hasattr(predictions, "columns"):
            predictions = predictions.to_dict(orient="records")
        else:
            predictions = to_python(predictions)
        probabilities = None
        if self.classifier is not None:
            probabilities = to_python(self.classifier.predict_proba(frame))
        return predictions, probabilities


class SklearnFastPath:
    """The pyfunc model's own prediction, without the per-request pandas work, for the common case:
    an MLflow scikit-learn model (pyfunc predict_fn `predict`) whose signature has only required
    `double` columns, the same names the estimator was fitted with, in the same order.

    For such a model, pyfunc `predict(frame)` is: schema enforcement (which changes nothing in a frame
    of float64 columns in schema order, as build_frame makes it), then `sklearn_model.predict(frame)`,
    whose first step turns the frame into the float64 array of its columns. This path builds that
    array directly (same values, same memory layout as pandas' column block) and runs the same
    estimator methods on it; for a Pipeline, the transforms run once and the final step's `predict`
    and `predict_proba` both use the result, exactly as `Pipeline.predict` / `predict_proba` would
    each compute it. It is only used after a self-check at load time: predictions and probabilities
    of both paths on a synthetic batch and a single row must be bit-for-bit equal, or the model keeps
    the pyfunc path."""

    FEATURE_NAMES_WARNING = r"X does not have valid feature names, but \w+ was fitted with feature names"

    def __init__(self, names, transforms, final, classifier):
        import numpy  # pylint: disable=import-outside-toplevel
        import sklearn  # pylint: disable=import-outside-toplevel
        self.np = numpy
        self.sklearn = sklearn
        self.names = names
        self.transforms = transforms
        self.final = final
        self.classifier = classifier

    @staticmethod
    def applies(loaded, impl, raw):
        """(transforms, final step) when the model is an MLflow scikit-learn model served by pyfunc
        `predict` (no params, no type-hint signature) with a column schema, either a scikit-learn
        Pipeline of transforms and a final estimator, or one estimator; None otherwise."""
        pyfunc = loaded.pyfunc
        schema = loaded.schema
        if raw is None or impl is None or schema is None or getattr(impl, "sklearn_model", None) is not raw:
            return None
        if not type(impl).__module__.startswith("mlflow.sklearn") or type(impl).__name__ != "_SklearnModelWrapper":
            return None
        predict_fn = getattr(pyfunc, "_predict_fn", None)
        if getattr(predict_fn, "__func__", None) is not type(impl).predict or getattr(predict_fn, "__self__", None) is not impl:
            return None
        metadata = pyfunc.metadata
        try:
            if metadata._is_signature_from_type_hint() or metadata.get_params_schema() is not None:  # pylint: disable=protected-access
                return None
        except AttributeError:
            return None
        if not schema.columns:
            return None
        steps = getattr(raw, "steps", None)
        if steps is not None:
            if type(raw).__name__ != "Pipeline" or not type(raw).__module__.startswith("sklearn."):
                return None
            transforms = [step for _name, step in steps[:-1] if step is not None and step != "passthrough"]
            final = steps[-1][1]
            if any(not hasattr(step, "transform") for step in transforms) or not hasattr(final, "predict"):
                return None
        else:
            transforms, final = [], raw
        if loaded.classifier is not None and not hasattr(final, "predict_proba"):
            return None
        return transforms, final

    @classmethod
    def build(cls, loaded, impl, raw):
        """The fast path for a LoadedModel, or None when it does not apply or its results differ."""
        found = cls.applies(loaded, impl, raw)
        schema = loaded.schema
        if found is None or any(kind != "double" or not required for _name, kind, required in schema.columns):
            return None
        names = [c[0] for c in schema.columns]
        transforms, final = found
        first = transforms[0] if transforms else final
        fitted = getattr(first, "feature_names_in_", None)
        if fitted is not None and [str(n) for n in fitted] != names:
            return None
        classifier = final if loaded.classifier is not None else None
        if loaded.classifier is not None and not hasattr(final, "predict_proba"):
            return None
        import warnings  # pylint: disable=import-outside-toplevel
        if fitted is not None:
            # the array has no column names; they were checked above, once, instead of per request
            warnings.filterwarnings("ignore", message=cls.FEATURE_NAMES_WARNING, category=UserWarning, module=r"sklearn\.")
        fast = cls(names, transforms, final, classifier)
        return fast if fast.self_check(loaded) else None

    def self_check(self, loaded):
        """Both paths on synthetic inputs (a batch of 9 rows and one row): bit-for-bit equal results."""
        count = len(self.names)
        rows = [[0.0] * count, [1.0] * count, [-1.0] * count, [float(i) for i in range(count)],
                [float(count - i) * 0.5 for i in range(count)], [1e3 * (-1) ** i for i in range(count)],
                [0.1 * i * (-1) ** i for i in range(count)], [1e-3] * count, [123.456] * count]
        for batch in (rows, rows[3:4]):
            columns = dict((name, [row[i] for row in batch]) for i, name in enumerate(self.names))
            fast = self.predict(self.names, columns)
            slow = loaded.predict(build_frame(self.names, columns, loaded.schema))
            if fast is None or fast != slow or any(type(a) is not type(b) for a, b in zip(fast[0], slow[0])):
                return False
        return True

    def predict(self, names, columns):
        """(predictions, probabilities) as LoadedModel.predict gives them for the same columns; None when
        an input or intermediate value is not finite (the caller then takes the pyfunc path, which
        refuses such data exactly as before)."""
        finite = self.np.isfinite
        data = self.np.array([columns[name] for name in names], dtype=self.np.float64).T  # like pandas' 2-D block
        if not finite(data).all():
            return None
        # scikit-learn's own finiteness checks are skipped (a third of its per-call time on one row):
        # every array it gets here is checked above and below instead, with the same outcome
        with self.sklearn.config_context(assume_finite=True):
            for step in self.transforms:
                data = step.transform(data)
                if not isinstance(data, self.np.ndarray) or data.dtype.kind != "f" or not finite(data).all():
                    return None
            predictions = to_python(self.final.predict(data))
            probabilities = to_python(self.final.predict_proba(data)) if self.classifier is not None else None
        return predictions, probabilities


class SklearnFramePath:
    """The pyfunc model's own prediction with half the work, for MLflow scikit-learn models outside
    SklearnFastPath (any column types, e.g. a string column one-hot encoded by a ColumnTransformer).

    LoadedModel.predict runs pyfunc `predict(frame)` (MLflow's schema enforcement, then the Pipeline's
    transforms and the final step's `predict`) and `predict_proba(frame)` (the transforms again, then
    the final step's `predict_proba`). This path takes the same DataFrame (build_frame), runs the
    transforms once and calls the final step's `predict` and `predict_proba` on the result, which is
    what Pipeline.predict / predict_proba each do. MLflow's schema enforcement is skipped: the frame is
    built from values already checked against the same schema. Checked twice before it answers
    anything: at load time on synthetic rows (strings taken from the fitted encoders' categories when
    there are any), then on the first VERIFY real requests, which are answered by the pyfunc path and
    compared with this one; any difference (or an exception in only one path) and the model keeps the
    pyfunc path for good. An exception in this path always falls back to the pyfunc path, so errors
    are the pyfunc path's errors."""

    VERIFY = 16

    def __init__(self, loaded, transforms, final, classifier):
        import threading  # pylint: disable=import-outside-toplevel
        self.loaded = loaded
        self.transforms = transforms
        self.final = final
        self.classifier = classifier
        self.lock = threading.Lock()
        self.to_verify = self.VERIFY
        self.disabled = False
        self.plan = self._column_plan(transforms[0], loaded.schema) if transforms else None
        if self.plan is not None:
            import warnings  # pylint: disable=import-outside-toplevel
            warnings.filterwarnings("ignore", message=SklearnFastPath.FEATURE_NAMES_WARNING, category=UserWarning, module=r"sklearn\.")

    @staticmethod
    def _column_plan(step, schema):
        """For a first step that is a fitted scikit-learn ColumnTransformer with dense output, whose
        transformers each take named columns of one kind (all `double` or all `string`) and whose
        remainder is dropped: [(transformer, columns, numpy dtype)]. ColumnTransformer.transform on a
        DataFrame selects each transformer's columns from the frame (pandas indexing), runs the
        transformers through joblib and stacks the dense results side by side; the plan does the same
        from the validated columns with numpy arrays (float64 for double, object for string: what the
        transformers take out of the frame's columns), most of that step's time. None otherwise."""
        from sklearn.compose import ColumnTransformer  # pylint: disable=import-outside-toplevel
        # exactly ColumnTransformer: a subclass may transform differently
        if type(step) is not ColumnTransformer or getattr(step, "sparse_output_", True):  # pylint: disable=unidiomatic-typecheck
            return None
        if (getattr(step, "_sklearn_output_config", None) or {}).get("transform") not in (None, "default"):
            return None
        plan = []
        for _name, transformer, selected in step.transformers_:
            if isinstance(transformer, str):
                if transformer == "drop":
                    continue
                return None  # passthrough
            if not isinstance(selected, list) or not selected or not all(isinstance(c, str) for c in selected):
                return None
            kinds = set(schema.by_name[c][1] if c in schema.by_name else None for c in selected)
            if kinds == set(["double"]):
                plan.append((transformer, selected, "float64"))
            elif kinds == set(["string"]):
                plan.append((transformer, selected, "object"))
            else:
                return None
        return plan or None

    def _column_transform(self, columns):
        import numpy  # pylint: disable=import-outside-toplevel
        parts = []
        for transformer, selected, dtype in self.plan:
            if dtype == "float64":
                data = numpy.array([columns[c] for c in selected], dtype=numpy.float64).T  # like pandas' 2-D block
            else:
                data = numpy.empty((len(columns[selected[0]]), len(selected)), dtype=object)
                for index, name in enumerate(selected):
                    data[:, index] = columns[name]
            out = transformer.transform(data)
            if hasattr(out, "toarray"):
                out = out.toarray()
            parts.append(out)
        return numpy.hstack(parts)

    @classmethod
    def build(cls, loaded, impl, raw):
        found = SklearnFastPath.applies(loaded, impl, raw)
        if found is None:
            return None
        transforms, final = found
        fast = cls(loaded, transforms, final, final if loaded.classifier is not None else None)
        return fast if fast.self_check() else None

    def _strings(self):
        """Category values known to the fitted encoders of the pipeline (for the synthetic check)."""
        found = []
        stack = list(self.transforms)
        while stack:
            step = stack.pop(0)
            for category in getattr(step, "categories_", None) or []:
                found.extend(str(v) for v in list(category)[:3] if isinstance(v, str))
            for item in getattr(step, "transformers_", None) or []:
                stack.append(item[1])
            for item in getattr(step, "steps", None) or []:
                stack.append(item[1])
        return found or ["a"]

    def self_check(self):
        schema = self.loaded.schema
        strings = self._strings()
        values = {"double": [0.0, 1.0, -1.5, 12.25, 1e3, 0.001, 7.0, 123.456, -0.1],
                  "float": [0.0, 1.0, -1.5, 12.25, 1e3, 0.001, 7.0, 123.456, -0.1],
                  "integer": [0, 1, -1, 12, 1000, 3, 7, 123, 2], "long": [0, 1, -1, 12, 1000, 3, 7, 123, 2],
                  "boolean": [True, False, True, False, True, False, True, False, True]}
        names = schema.names
        columns = {}
        for index, (name, kind, _required) in enumerate(schema.columns):
            if kind == "string":
                pool = [strings[(i + index) % len(strings)] for i in range(9)]
            elif kind in values:
                pool = values[kind]
            else:
                return False  # datetime, binary, anything else: the pyfunc path
            columns[name] = pool[index % 3:] + pool[:index % 3]
        for batch in (columns, dict((n, v[3:4]) for n, v in columns.items())):
            if not self._equal(self._run(names, batch), self.loaded.predict(build_frame(names, batch, schema))):
                return False
        return True

    @staticmethod
    def _equal(fast, slow):
        return fast == slow and all(type(a) is type(b) for a, b in zip(fast[0], slow[0]))

    def _run(self, names, columns):
        if self.plan is not None:
            data = self._column_transform(columns)
            transforms = self.transforms[1:]
        else:
            data = build_frame(names, columns, self.loaded.schema)
            transforms = self.transforms
        for step in transforms:
            data = step.transform(data)
        predictions = to_python(self.final.predict(data))
        probabilities = to_python(self.final.predict_proba(data)) if self.classifier is not None else None
        return predictions, probabilities

    def predict(self, names, columns):
        """(predictions, probabilities) as LoadedModel.predict gives them, or None: the caller then takes
        the pyfunc path (while verifying, after a difference, or when this path raised)."""
        if self.disabled:
            return None
        if self.to_verify > 0:
            with self.lock:
                verifying = self.to_verify > 0
                self.to_verify -= 1
            if verifying:
                try:
                    fast = self._run(names, columns)
                except Exception:  # pylint: disable=broad-except
                    fast = None
                try:
                    slow = self.loaded.predict(build_frame(names, columns, self.loaded.schema))
                except Exception:  # pylint: disable=broad-except
                    if fast is not None:
                        self.disabled = True
                    raise
                if fast is None or not self._equal(fast, slow):
                    self.disabled = True
                return slow
        try:
            return self._run(names, columns)
        except Exception:  # pylint: disable=broad-except
            return None


class PyfuncRuntime(Runtime):
    """An MLflow pyfunc model (any flavour), in process: fetched from the registry into the cache,
    instances validated against its signature's input schema, columns predicted in one call."""

    kind = "pyfunc"

    def load(self):
        config = self.config
        return LoadedModel(fetch_model(config["model_uri"], config["cache_dir"], config["version"], config["cache_keep"]))

    def describe(self, model):
        return {"run_id": model.run_id, "input_schema": model.schema.describe() if model.schema is not None else None,
                "classes": model.classes}

    def prepare(self, model, payload, max_instances):
        records = parse_instances(payload, max_instances)
        return records, validate_records(records, model.schema)

    def predict(self, model, batch):
        names, columns = batch
        predictions, probabilities = model.predict_columns(names, columns)
        return Prediction(predictions, probabilities, model.classes if probabilities is not None else None)
