# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Can a serving host run a model? The deploy's environment check (lifecycle `environment`).

host_facts (with expected_from, a model's MLflow files) reports what the model was trained with
(`expected`: Python and the pinned packages) and what the host's model-server virtualenv has
(`python`, `packages`, `cuda_available`, `cuda_version`). It compares exactly (1.9.1 is not
1.9.2). Here the same result is judged the way a deployment needs it:

- a required package whose major.minor differs from the installed one (a pin ==1.9.1 is served
  by 1.9.x), or that is not installed, or (a range such as >=1.26,<2) outside the range:
  mismatch;
- a CUDA major the model was built for (a local label such as torch==2.3.1+cu121, a
  nvidia-*-cu12 / cupy-cuda12x / jax-cuda12-* package) that the host cannot run (no NVIDIA
  driver, or a driver whose CUDA is older): mismatch;
- another Python minor (trained on 3.11, served on 3.13): warning; another Python major:
  mismatch.

`verdict` collects the hosts and applies the policy: `fail` (mismatches refuse the version) or
`warn` (they are reported as warnings). Plain Python; `packaging` reads the versions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ..common.errors import InputError
from .environment import canonical_name, parse_specifier, require_packaging

try:
    import packaging.version
except ImportError:  # pragma: no cover - depends on the host
    packaging = None

POLICIES = ("fail", "warn")

# Package names that are builds for one CUDA major: nvidia-cublas-cu12, cupy-cuda12x, jax-cuda12-plugin.
_CUDA_NAME_RE = re.compile(r"(?:^|-)cu(?:da)?([0-9]{2})x?(?:-|$)")
# Local version labels of CUDA builds: +cu121 (12.1), +cu118 (11.8), +cu130 (13.0).
_CUDA_LABEL_RE = re.compile(r"^cu([0-9]{1,2})([0-9])$")
_PYTHON_SPEC_RE = re.compile(r"^==([0-9]+)\.([0-9]+)\.\*$")


class EnvironmentCheckError(InputError):
    """Bad input to the check (a policy, a host result that is not host_facts')."""


def _version(text):
    require_packaging()
    try:
        return packaging.version.Version(str(text))
    except packaging.version.InvalidVersion:
        return None


def _major_minor(version):
    release = tuple(version.release) + (0, 0)
    return "%d.%d" % release[:2]


def pinned_version(spec):
    """The version a specifier pins (==1.9.1, ===1.9.1, ==1.9.*), else None (a range, or no spec)."""
    if not spec:
        return None
    clauses = list(parse_specifier(spec))
    if len(clauses) != 1 or clauses[0].operator not in ("==", "==="):
        return None
    return _version(clauses[0].version[:-2] if clauses[0].version.endswith(".*") else clauses[0].version)


def cuda_major_of(name, spec):
    """The CUDA major a requirement is built for (12 for torch==2.3.1+cu121 or nvidia-cublas-cu12), else None."""
    match = _CUDA_NAME_RE.search(canonical_name(name))
    if match:
        return int(match.group(1))
    pinned = pinned_version(spec)
    if pinned is not None and pinned.local:
        label = _CUDA_LABEL_RE.match(pinned.local)
        if label:
            return int(label.group(1))
    return None


def required_cuda(packages):
    """(major, [the requirements that say so]) for the highest CUDA major any requirement is built for, or (None, [])."""
    found = {}
    for name, spec in sorted((packages or {}).items()):
        major = cuda_major_of(name, spec)
        if major is not None:
            found.setdefault(major, []).append("%s%s" % (name, spec or ""))
    if not found:
        return None, []
    top = max(found)
    return top, found[top]


def _entry(host, item, wanted, found, message):
    return {"host": host, "item": item, "wanted": wanted, "found": found, "message": "%s: %s" % (host, message)}


def _check_package(host, name, spec, installed):
    """A mismatch entry for one required package, or None."""
    item = "packages.%s" % name
    if installed is None:
        return _entry(host, item, spec or "installed", None, "%s wanted %s, not installed in the serving environment"
                      % (name, spec or "(any version)"))
    if not spec:
        return None
    have = _version(installed)
    if have is None:
        return _entry(host, item, spec, installed, "%s wanted %s, found %s (not a PEP 440 version)" % (name, spec, installed))
    pinned = pinned_version(spec)
    if pinned is not None:
        if _major_minor(pinned) != _major_minor(have):
            return _entry(host, item, spec, installed, "%s wanted %s (%s), found %s"
                          % (name, _major_minor(pinned), spec, installed))
        return None
    if not parse_specifier(spec).contains(have, prereleases=True):
        return _entry(host, item, spec, installed, "%s wanted %s, found %s" % (name, spec, installed))
    return None


def _check_python(host, spec, python):
    """(mismatch or None, warning or None) for the interpreter of the serving environment."""
    version = (python or {}).get("version")
    have = _version(version) if version else None
    if not spec or have is None:
        return None, None
    match = _PYTHON_SPEC_RE.match(spec)
    if match:
        wanted_major, wanted_minor = int(match.group(1)), int(match.group(2))
        wanted = "%d.%d" % (wanted_major, wanted_minor)
    else:
        if parse_specifier(spec).contains(have, prereleases=True):
            return None, None
        wanted_major, wanted_minor, wanted = None, None, spec
    if wanted_major is not None and (have.major, have.minor) == (wanted_major, wanted_minor):
        return None, None
    if wanted_major is not None and have.major != wanted_major:
        return _entry(host, "python", wanted, version, "Python wanted %s, found %s (%s)"
                      % (wanted, version, python.get("executable"))), None
    return None, "%s: Python %s trained the model, the serving environment runs %s (%s); a different minor only warns" % (
        host, wanted, version, python.get("executable"))


def _check_cuda(host, packages, facts):
    major, sources = required_cuda(packages)
    if major is None:
        return None
    wanted = "CUDA %d" % major
    why = "built for %s (%s)" % (wanted, ", ".join(sources))
    if not facts.get("cuda_available"):
        return _entry(host, "cuda", wanted, None, "%s, the host has no working NVIDIA driver" % why)
    have = facts.get("cuda_version")
    have_version = _version(have) if have else None
    if have_version is None:
        return _entry(host, "cuda", wanted, have, "%s, the host's driver does not say which CUDA it supports" % why)
    if have_version.major < major:
        return _entry(host, "cuda", wanted, "CUDA %s" % have, "%s, the host's driver supports CUDA %s at most" % (why, have))
    return None


def classify(host, facts):
    """Judge one host's host_facts result (with expected_from). Returns {host, mismatches, warnings, compared}."""
    if not isinstance(facts, dict) or not isinstance(facts.get("expected"), dict) or "packages" not in facts:
        raise EnvironmentCheckError("%s: not a host_facts result with expected and packages" % host)
    expected = facts["expected"]
    wanted = expected.get("packages") or {}
    installed = facts.get("packages") or {}
    mismatches, warnings = [], []
    for name in sorted(wanted, key=canonical_name):
        found = _check_package(host, name, wanted[name], installed.get(name))
        if found:
            mismatches.append(found)
    python_mismatch, python_warning = _check_python(host, expected.get("python"), facts.get("python"))
    if python_mismatch:
        mismatches.append(python_mismatch)
    if python_warning:
        warnings.append(python_warning)
    cuda = _check_cuda(host, wanted, facts)
    if cuda:
        mismatches.append(cuda)
    return {"host": host, "mismatches": mismatches, "warnings": warnings, "compared": sorted(wanted, key=canonical_name),
            "python": (facts.get("python") or {}).get("version")}


def verdict(hosts, policy="fail", files_found=True):
    """The deploy's decision over every target.

    hosts: list of {host, facts (a host_facts result) or None, note (why it was not compared)}.
    files_found: whether the candidate had environment files at all (else nothing is compared).
    Returns {passed, policy, mismatches, warnings, failures (messages that refuse), summary, hosts}.
    """
    if policy not in POLICIES:
        raise EnvironmentCheckError("lifecycle_environment_mismatch: %r is not one of %s" % (policy, ", ".join(POLICIES)))
    mismatches, warnings, per_host = [], [], {}
    if not files_found:
        warnings.append("the version has none of MLmodel, python_env.yaml, requirements.txt, conda.yaml in the registry: "
                        "its training environment was not compared with the serving hosts")
    for entry in hosts or []:
        host = entry.get("host")
        if entry.get("facts") is None:
            warnings.append("%s: not compared: %s" % (host, entry.get("note") or "no facts"))
            per_host[host] = {"compared": False, "note": entry.get("note")}
            continue
        judged = classify(host, entry["facts"])
        mismatches.extend(judged["mismatches"])
        warnings.extend(judged["warnings"])
        per_host[host] = {"compared": True, "python": judged["python"], "packages": judged["compared"],
                          "mismatches": len(judged["mismatches"])}
    failures = [m["message"] for m in mismatches] if policy == "fail" else []
    if policy == "warn":
        warnings.extend("%s (lifecycle_environment_mismatch=warn)" % m["message"] for m in mismatches)
    summary = ("environment mismatch: %s" % "; ".join(m["message"] for m in mismatches)) if mismatches else (
        "environment matches on %d host(s)" % sum(1 for h in per_host.values() if h["compared"]))
    return {"passed": not failures, "policy": policy, "mismatches": mismatches, "warnings": warnings,
            "failures": failures, "summary": summary, "hosts": per_host}
