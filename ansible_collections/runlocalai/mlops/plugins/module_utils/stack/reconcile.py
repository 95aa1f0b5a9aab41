# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Deployment drift of one serving host (playbooks/reconcile.yml): what git declares
(model_server_models) against where the registry's aliases point and what each service reports,
and instances configured on the host that nobody declares. Filter runlocalai.mlops.deployment_divergences."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ..common.errors import InputError


def _by_name(results, what):
    out = {}
    for result in results or []:
        item = result.get("item") if isinstance(result, dict) else None
        if not isinstance(item, dict) or "name" not in item:
            raise InputError("%s: each result must carry the loop item of its model entry (item.name), got %r" % (what, result))
        out[item["name"]] = result
    return out


def _served_version(result):
    """The version a service's /v1/models answer reports ('' when it answered no 200)."""
    if result is None or result.get("status") != 200:
        return ""
    models = (result.get("json") or {}).get("models") or [{}]
    version = models[0].get("version")
    return "" if version is None else str(version)


# Files of the model_server role's configuration directory that belong to an instance without being
# one (its model-check timer's spec): NAME.json alone names an instance.
INSTANCE_PART_SUFFIXES = (".model-check.json",)


def divergences(entries, alias_results, served_results, configured_paths):
    """The divergences as sentences, in entry order, then the undeclared instances.

    entries: model_server_models; alias_results: mlflow_model_info results of the entries that
    declare an alias (loop results, item = the entry); served_results: uri results of GET
    /v1/models per entry (loop results); configured_paths: the instance files (<name>.json) found
    on the host."""
    aliases = _by_name(alias_results, "alias_results")
    served = _by_name(served_results, "served_results")
    out = []
    for entry in entries:
        name = entry["name"]
        if "version" in entry:
            wanted = str(entry["version"])
        else:
            lookup = aliases.get(name, {})
            wanted = str(lookup["version"]["version"]) if lookup.get("state") == "found" else ""
        answer = served.get(name)
        got = _served_version(answer)
        if not wanted:
            out.append("%s: declared alias %s does not exist in the registry" % (name, entry.get("alias")))
        elif got != wanted:
            declared = "v%s%s" % (wanted, " (alias %s)" % entry["alias"] if "alias" in entry else "")
            reports = ("v" + got) if got else "nothing (HTTP %s)" % (answer or {}).get("status")
            out.append("%s: declared %s, service reports %s" % (name, declared, reports))
    declared_names = set(entry["name"] for entry in entries)
    for path in configured_paths:
        found = os.path.basename(path)
        if found.endswith(INSTANCE_PART_SUFFIXES):
            continue
        if found.endswith(".json"):
            found = found[:-len(".json")]
        if found not in declared_names:
            out.append("%s: configured on the host but not declared" % found)
    return out
