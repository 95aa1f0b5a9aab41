# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The training-vs-serving consistency check: the expected environment (inline, or read from a
model's MLflow files: python_env.yaml, requirements.txt, conda.yaml, MLmodel), validated and
compared with the gathered facts.

Versions, specifiers and requirement lines are read by `packaging` (PEP 440 / PEP 508) and the
YAML files by PyYAML; Debian ships them as python3-packaging and python3-yaml. Both are imported
lazily-guarded: without them, facts are still gathered, and only what needs one raises
MissingDependencyError naming the library and the Debian package.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from .base import HostFactsError, _version_key, missing_library

try:
    import packaging.requirements
    import packaging.specifiers
    import packaging.utils
    import packaging.version
except ImportError:  # pragma: no cover - depends on the host
    packaging = None

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the host
    yaml = None

EXPECTED_KEYS = ("python", "packages", "cuda_available", "min_gpu_memory_mib", "gpu_count_min", "driver_version_min",
                 "cuda_version_min")
MODEL_FILES = ("MLmodel", "python_env.yaml", "requirements.txt", "conda.yaml")


def require_packaging(purpose="version specifiers and package names in expected and expected_from"):
    if packaging is None:
        raise missing_library("packaging", purpose)


def require_yaml(purpose="reading a model's python_env.yaml and conda.yaml (expected_from)"):
    if yaml is None:
        raise missing_library("PyYAML", purpose)


# -- PEP 440 versions and specifiers ------------------------------------------------------------

def canonical_name(name):
    """PEP 503 normalised project name."""
    require_packaging()
    return packaging.utils.canonicalize_name(name)


def _why_invalid(clause):
    if clause.endswith(".*") and not clause.startswith(("==", "!=")):
        return ".* is only allowed with == and !="
    if clause.startswith("~=") and "." not in clause:
        return "~= needs at least two release numbers"
    return "not one of ==, !=, >=, <=, >, <, ~=, === followed by a PEP 440 version"


def parse_specifier(text):
    """A specifier set (',' separated) -> packaging's SpecifierSet; raises ValueError naming the bad clause."""
    require_packaging()
    clauses = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not clauses:
        raise ValueError("empty version specifier")
    for clause in clauses:
        try:
            packaging.specifiers.Specifier(clause)
        except packaging.specifiers.InvalidSpecifier:
            raise ValueError("%r: %s" % (clause, _why_invalid(clause)))
    return packaging.specifiers.SpecifierSet(",".join(clauses))


def version_matches(version, spec):
    """Whether `version` satisfies the specifier set `spec` (pre-releases allowed: it is what is installed).

    Returns True/False, or None when `version` is not a PEP 440 version (then only === can match).
    """
    specifiers = parse_specifier(spec)
    try:
        parsed = packaging.version.Version(version)
    except packaging.version.InvalidVersion:
        if all(item.operator == "===" for item in specifiers):
            return all(version.strip().lower() == item.version.lower() for item in specifiers)
        return None
    return specifiers.contains(parsed, prereleases=True)


def normalize_spec(value, where):
    """'1.2.3' -> '==1.2.3'; specifiers stay; validates. Raises HostFactsError naming `where`."""
    if isinstance(value, bool) or value is None:
        raise HostFactsError("%s: expected a version or specifier string, got %r" % (where, value))
    if isinstance(value, float):
        raise HostFactsError("%s: got the number %r; quote versions so YAML keeps them as text (e.g. '3.10')" % (where, value))
    text = str(value).strip()
    if re.match(r"^v?[0-9]", text):
        text = "==" + text
    try:
        parse_specifier(text)
    except ValueError as exc:
        raise HostFactsError("%s: %r is not a valid version specifier: %s" % (where, value, exc))
    return text


def _python_spec(value, where):
    """'3.11' -> '==3.11.*' (major.minor match); specifiers stay."""
    if isinstance(value, float):
        raise HostFactsError("%s: got the number %r; quote versions so YAML keeps them as text (e.g. '3.10')" % (where, value))
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    if re.match(r"^[0-9]+(\.[0-9]+)?$", text):
        text = "==%s.*" % text
    return normalize_spec(text or value, where)


# -- expected environment -----------------------------------------------------------------------

def _as_bool(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise HostFactsError("%s: expected true or false, got %r" % (where, value))


def _as_int(value, where):
    if isinstance(value, bool):
        raise HostFactsError("%s: expected a whole number, got %r" % (where, value))
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        if number >= 0:
            return number
    raise HostFactsError("%s: expected a whole number >= 0, got %r" % (where, value))


def _as_version(value, where):
    if isinstance(value, bool) or isinstance(value, float) or value is None:
        raise HostFactsError("%s: expected a version string such as '535' or '12.2', got %r%s"
                             % (where, value, " (quote it)" if isinstance(value, float) else ""))
    text = str(value).strip()
    if not re.match(r"^[0-9]+(\.[0-9]+)*$", text):
        raise HostFactsError("%s: %r is not a version such as '535' or '12.2'" % (where, value))
    return text


def normalize_expected(expected, where="expected"):
    """Validate an expected-environment mapping; return it normalised (specifiers, ints, bools)."""
    if expected is None:
        return {}
    if not isinstance(expected, dict):
        raise HostFactsError("%s: must be a mapping with keys among %s, got %s"
                             % (where, ", ".join(EXPECTED_KEYS), type(expected).__name__))
    unknown = sorted(set(expected) - set(EXPECTED_KEYS))
    if unknown:
        raise HostFactsError("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(map(str, unknown)), ", ".join(EXPECTED_KEYS)))
    if expected.get("python") is not None or expected.get("packages"):
        require_packaging()  # before any fact is read, even for packages expected in any version
    out = {}
    if expected.get("python") is not None:
        out["python"] = _python_spec(expected["python"], where + ".python")
    packages = expected.get("packages")
    if packages is not None:
        if not isinstance(packages, dict):
            raise HostFactsError("%s.packages: must be a mapping of package name to version specifier (or null for any "
                                 "version), got %s" % (where, type(packages).__name__))
        out["packages"] = {}
        for name, spec in packages.items():
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
                raise HostFactsError("%s.packages: %r is not a package name" % (where, name))
            key = "%s.packages.%s" % (where, name)
            out["packages"][name] = None if spec is None or spec == "" else normalize_spec(spec, key)
    if expected.get("cuda_available") is not None:
        out["cuda_available"] = _as_bool(expected["cuda_available"], where + ".cuda_available")
    for key in ("min_gpu_memory_mib", "gpu_count_min"):
        if expected.get(key) is not None:
            out[key] = _as_int(expected[key], "%s.%s" % (where, key))
    for key in ("driver_version_min", "cuda_version_min"):
        if expected.get(key) is not None:
            out[key] = _as_version(expected[key], "%s.%s" % (where, key))
    return out


# -- a model's MLflow environment files ---------------------------------------------------------

def load_yaml(text):
    """YAML text -> data (PyYAML's safe_load). Raises ValueError for what is not YAML."""
    require_yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split()))


def parse_requirement(line):
    """'name[extra]==1.0' -> (name, spec or None); raises ValueError for what is not a plain requirement."""
    require_packaging()
    if ";" in line:
        raise ValueError("environment marker not evaluated")
    if re.search(r"(://|^\.|^/|\s@\s|@\s*\S+://)", line) or line.endswith((".whl", ".tar.gz", ".zip")):
        raise ValueError("URL or path requirement")
    try:
        requirement = packaging.requirements.Requirement(line)
    except packaging.requirements.InvalidRequirement as exc:
        raise ValueError("not a requirement (%s)" % " ".join(str(exc).split())[:200])
    if requirement.url or requirement.marker:
        raise ValueError("URL or path requirement" if requirement.url else "environment marker not evaluated")
    # The specifier as written (packaging's str() sorts the clauses): what follows the name and extras.
    spec = re.sub(r"^[A-Za-z0-9._-]+\s*(\[[^\]]*\])?", "", line.strip()).strip()
    if spec.startswith("(") and spec.endswith(")"):
        spec = spec[1:-1].strip()
    if spec:
        try:
            parse_specifier(spec)
        except ValueError as exc:
            raise ValueError("bad version specifier: %s" % exc)
    return requirement.name, spec or None


def read_requirement_lines(lines, base_dir, source, warnings, depth=0, used=None):
    """Requirement strings (requirements.txt lines or python_env.yaml dependencies) -> {name: spec}."""
    packages = {}
    joined, buffer = [], ""
    for raw in lines:
        raw = "" if raw is None else str(raw)
        if raw.rstrip().endswith("\\"):
            buffer += raw.rstrip()[:-1] + " "
            continue
        joined.append(buffer + raw)
        buffer = ""
    if buffer:
        joined.append(buffer)
    for raw in joined:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        line = re.sub(r"\s--hash[= ]\S+", "", line).strip()
        if not line:
            continue
        include = re.match(r"^(?:-r|--requirement)[= ]?\s*(\S+)$", line)
        if include:
            if depth >= 5:
                raise HostFactsError("expected_from: %s: -r nested more than 5 deep (%s)" % (source, line))
            path = os.path.join(base_dir, include.group(1))
            packages.update(read_requirements_file(path, warnings, depth + 1, used))
            continue
        if line.startswith("-"):
            warnings.append("expected_from: %s: option ignored: %s" % (source, line[:120]))
            continue
        try:
            name, spec = parse_requirement(line)
        except ValueError as exc:
            warnings.append("expected_from: %s: %s, ignored: %s" % (source, exc, line[:120]))
            continue
        packages[name] = spec
    return packages


def read_requirements_file(path, warnings, depth=0, used=None):
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        raise HostFactsError("expected_from: cannot read %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise HostFactsError("expected_from: %s is not UTF-8 text" % path)
    if used is not None:
        used.append(path)
    return read_requirement_lines(text.splitlines(), os.path.dirname(path), os.path.basename(path), warnings, depth, used)


def _read_model_file(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise HostFactsError("expected_from: cannot read %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise HostFactsError("expected_from: %s is not UTF-8 text" % path)


def _load_model_yaml(path):
    try:
        data = load_yaml(_read_model_file(path))
    except ValueError as exc:
        raise HostFactsError("expected_from: %s is not valid YAML: %s" % (path, exc))
    if not isinstance(data, dict):
        raise HostFactsError("expected_from: %s must hold a YAML mapping" % path)
    return data


def model_python_version(version):
    """A model's recorded Python (3.11.2) is matched on major.minor: 3.11.9 serves it."""
    match = re.match(r"^([0-9]+\.[0-9]+)", str(version).strip())
    return match.group(1) if match else None


def load_model_environment(directory):
    """Expected environment from a model directory. Returns (expected, files read, warnings).

    Python: python_env.yaml `python`, else conda.yaml `python=`, else MLmodel `python_version`.
    Packages: python_env.yaml `dependencies` (following -r), else requirements.txt, else the pip
    section of conda.yaml. Build dependencies (pip, setuptools, wheel) are not compared.
    """
    text = str(directory or "")
    if re.match(r"^[a-z][a-z0-9+.-]*:/", text):
        raise HostFactsError("expected_from: %r is a URI; give a local directory holding the model's files (download the "
                             "artifacts first)" % text)
    if not os.path.isdir(text):
        raise HostFactsError("expected_from: %r is not a directory%s" % (
            text, " (give the model's directory, the one holding MLmodel)" if os.path.isfile(text) else ""))
    if not os.access(text, os.R_OK | os.X_OK):
        raise HostFactsError("expected_from: %r is not readable" % text)
    present = dict((name, os.path.join(text, name)) for name in MODEL_FILES if os.path.isfile(os.path.join(text, name)))
    if not present:
        raise HostFactsError("expected_from: %r holds none of %s" % (text, ", ".join(MODEL_FILES)))
    warnings, used = [], []
    python, packages = None, None
    if "python_env.yaml" in present:
        data = _load_model_yaml(present["python_env.yaml"])
        used.append(present["python_env.yaml"])
        if isinstance(data.get("python"), float):
            raise HostFactsError("expected_from: %s: python: got the number %r; quote the version so YAML keeps it as text "
                                 "(python: '3.10')" % (present["python_env.yaml"], data["python"]))
        if data.get("python"):
            python = model_python_version(data["python"])
        deps = data.get("dependencies")
        if deps is not None and not isinstance(deps, list):
            raise HostFactsError("expected_from: %s: dependencies must be a list" % present["python_env.yaml"])
        if deps:
            packages = read_requirement_lines(deps, text, "python_env.yaml", warnings, used=used)
    if packages is None and "requirements.txt" in present:
        packages = read_requirements_file(present["requirements.txt"], warnings, used=used)
    if (packages is None or python is None) and "conda.yaml" in present:
        data = _load_model_yaml(present["conda.yaml"])
        used.append(present["conda.yaml"])
        deps = data.get("dependencies") or []
        if not isinstance(deps, list):
            raise HostFactsError("expected_from: %s: dependencies must be a list" % present["conda.yaml"])
        for dep in deps:
            if isinstance(dep, str) and python is None:
                match = re.match(r"^python\s*[=<>]=?\s*([0-9][0-9.]*)", dep.strip())
                if match:
                    python = model_python_version(match.group(1))
            elif isinstance(dep, dict) and isinstance(dep.get("pip"), list) and packages is None:
                packages = read_requirement_lines(dep["pip"], text, "conda.yaml (pip)", warnings, used=used)
    if python is None and "MLmodel" in present:
        match = re.search(r"^\s*python_version:\s*['\"]?([0-9]+\.[0-9]+)", _read_model_file(present["MLmodel"]), re.MULTILINE)
        if match:
            python = match.group(1)
            used.append(present["MLmodel"])
    expected = {}
    if python:
        expected["python"] = python
    if packages:
        expected["packages"] = packages
    if not expected:
        warnings.append("expected_from: %s names no Python version and no packages" % text)
    return expected, sorted(set(used)), warnings


def merge_expected(from_model, inline):
    """Inline expectations override the model's, per key and per package (names compared per PEP 503)."""
    merged = dict(from_model)
    for key, value in inline.items():
        if key == "packages":
            packages = dict(merged.get("packages") or {})
            for name, spec in value.items():
                for other in [n for n in packages if canonical_name(n) == canonical_name(name)]:
                    del packages[other]
                packages[name] = spec
            merged["packages"] = packages
        else:
            merged[key] = value
    return merged


# -- comparison ---------------------------------------------------------------------------------

def _mismatch(item, expected, actual, message):
    return {"item": item, "expected": expected, "actual": actual, "message": message}


def _describe_python_spec(spec):
    match = re.match(r"^==([0-9]+(?:\.[0-9]+)?)\.\*$", spec)
    return "%s (major.minor)" % match.group(1) if match else spec


def _at_least(actual, minimum):
    return _version_key(actual) >= _version_key(minimum)


def compare(facts, expected):
    """Every difference between the gathered facts and the expected environment."""
    mismatches = []
    if "python" in expected:
        version = facts["python"]["version"]
        ok = version_matches(version, expected["python"])
        if not ok:
            mismatches.append(_mismatch("python", expected["python"], version, "python: expected %s, found %s (%s)" % (
                _describe_python_spec(expected["python"]), version, facts["python"]["executable"])))
    for name in sorted(expected.get("packages") or {}, key=canonical_name):
        spec = expected["packages"][name]
        installed = facts["packages"].get(name)
        item = "packages.%s" % name
        if installed is None:
            mismatches.append(_mismatch(item, spec, None, "%s: expected %s, not installed" % (item, spec or "installed")))
            continue
        if spec is None:
            continue
        ok = version_matches(installed, spec)
        if ok is None:
            mismatches.append(_mismatch(item, spec, installed, "%s: expected %s, found %s, which is not a PEP 440 version"
                                        % (item, spec, installed)))
        elif not ok:
            mismatches.append(_mismatch(item, spec, installed, "%s: expected %s, found %s" % (item, spec, installed)))
    if "cuda_available" in expected and expected["cuda_available"] != facts["cuda_available"]:
        if expected["cuda_available"]:
            why = ("no NVIDIA GPU found" if not facts["gpu_count"] else
                   "%d NVIDIA GPU(s) but no NVIDIA driver answers (kernel driver: %s)"
                   % (facts["gpu_count"], ", ".join(sorted(set(str(g["kernel_driver"]) for g in facts["gpus"])))))
        else:
            why = "an NVIDIA GPU with a working driver is present"
        mismatches.append(_mismatch("cuda_available", expected["cuda_available"], facts["cuda_available"],
                                    "cuda_available: expected %s, %s" % (str(expected["cuda_available"]).lower(), why)))
    if "min_gpu_memory_mib" in expected:
        need = expected["min_gpu_memory_mib"]
        count = max(1, expected.get("gpu_count_min") or 1)
        sizes = [g["memory_total_mib"] for g in facts["gpus"]]
        big = [s for s in sizes if s is not None and s >= need]
        if len(big) < count:
            if not sizes:
                seen = "no NVIDIA GPU found"
            elif all(s is None for s in sizes):
                seen = "GPU memory unknown (nvidia-smi did not answer)"
            else:
                seen = "GPU memory: %s" % ", ".join("%s MiB" % s if s is not None else "unknown" for s in sizes)
            mismatches.append(_mismatch("min_gpu_memory_mib", need, max([s for s in sizes if s is not None] or [None]),
                                        "min_gpu_memory_mib: expected %d GPU(s) with at least %d MiB, found %d; %s"
                                        % (count, need, len(big), seen)))
    if "gpu_count_min" in expected and facts["gpu_count"] < expected["gpu_count_min"]:
        mismatches.append(_mismatch("gpu_count_min", expected["gpu_count_min"], facts["gpu_count"],
                                    "gpu_count_min: expected at least %d NVIDIA GPU(s), found %d"
                                    % (expected["gpu_count_min"], facts["gpu_count"])))
    for key, fact, what in (("driver_version_min", "nvidia_driver_version", "NVIDIA driver"),
                            ("cuda_version_min", "cuda_version", "CUDA version supported by the driver")):
        if key in expected:
            actual = facts[fact]
            if actual is None:
                mismatches.append(_mismatch(key, expected[key], None, "%s: expected %s >= %s, none found"
                                            % (key, what, expected[key])))
            elif not _at_least(actual, expected[key]):
                mismatches.append(_mismatch(key, expected[key], actual, "%s: expected %s >= %s, found %s"
                                            % (key, what, expected[key], actual)))
    return mismatches


def mismatch_message(mismatches):
    return "host does not match the expected environment (%d mismatch%s): %s" % (
        len(mismatches), "" if len(mismatches) == 1 else "es", "; ".join(m["message"] for m in mismatches))
