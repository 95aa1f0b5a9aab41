# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A model_server_models entry as the role reads it: the entry's own keys over the role's defaults
(model_server_<key>), with the names that changed still honoured and reported.

One name per setting from group_vars to the running process: an entry's `threads` (default
model_server_threads) is the instance configuration's `threads` (config.DEFAULTS), and so on.
Filter runlocalai.mlops.model_server_entry wraps entry_settings for the role.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ..common.errors import InputError

# Entry keys and role variables renamed: old name -> new name. The old ones keep working for now.
RENAMED_KEYS = {"workers": "threads"}
RENAMED_VARS = {"model_server_workers": "model_server_threads"}
VAR_PREFIX = "model_server_"


def entry_settings(entry, defaults, deprecated_vars=None):
    """(settings, deprecations): entry merged over defaults ({key: value of model_server_<key>}).
    deprecated_vars: {old role variable: value} for the renamed role variables an inventory sets;
    each replaces its new name's default. Every old name used is one line in deprecations."""
    if not isinstance(entry, dict):
        raise InputError("model_server_models: each entry must be a mapping, got %r" % (entry,))
    name = entry.get("name", "?")
    notes = []
    settings = dict(defaults)
    for old, value in sorted((deprecated_vars or {}).items()):
        if old not in RENAMED_VARS:
            raise InputError("deprecated_vars: %s is not a renamed variable (known: %s)" % (old, ", ".join(sorted(RENAMED_VARS))))
        new = RENAMED_VARS[old]
        notes.append("%s is deprecated: name it %s" % (old, new))
        settings[new[len(VAR_PREFIX):]] = value
    for key, value in entry.items():
        if key in RENAMED_KEYS:
            new = RENAMED_KEYS[key]
            if new in entry:
                raise InputError("model_server_models entry %s: give %s or its old name %s, not both" % (name, new, key))
            notes.append("model_server_models entry %s: the key %s is deprecated: name it %s" % (name, key, new))
            key = new
        settings[key] = value
    return settings, notes
