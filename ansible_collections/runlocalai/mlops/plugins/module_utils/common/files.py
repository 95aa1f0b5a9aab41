# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Planned file writes: check every destination, then write only what changed, atomically.

The one check -> plan -> write -> diff sequence of the modules (module_utils/modules.py) and of
the command-line tools on hosts (drift/cli.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tempfile

from .errors import InputError

CHUNK = 1 << 20


def hash_file(path, hasher=None, chunk=None):
    """(hasher updated with the file's content, bytes read), read in CHUNK blocks: files of many GiB
    never sit in memory; an existing hasher continues (a resumed download)."""
    hasher = hasher or hashlib.sha256()
    chunk = chunk or CHUNK
    count = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            hasher.update(block)
            count += len(block)
    return hasher, count


def file_sha256(path):
    """SHA-256 (hex) of a file's content."""
    return hash_file(path)[0].hexdigest()


def diff_entry(plan, summarize=False):
    """An Ansible --diff entry for a planned write; large files as a digest only."""
    if summarize:
        def digest(text):
            return "" if text is None else "sha256:%s (%d bytes)\n" % (hashlib.sha256(text.encode("utf-8")).hexdigest(), len(text))
        return {"before_header": plan["path"], "after_header": plan["path"], "before": digest(plan["before"]), "after": digest(plan["content"])}
    return {"before_header": plan["path"], "after_header": plan["path"], "before": plan["before"] or "", "after": plan["content"]}


def plan_writes(items):
    """items: list of (parameter name, path, new text). Checks every destination before anything
    is written and returns a list of dicts: param, path, content, before (None: no file),
    changed. InputError names the parameter of an unusable destination."""
    plans = []
    for param, path, content in items:
        if not path:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise InputError("%s: %s is a directory, expected a file path" % (param, path))
        if not os.path.isdir(parent):
            raise InputError("%s: directory %s does not exist" % (param, parent))
        if not os.access(parent, os.W_OK):
            raise InputError("%s: directory %s is not writable" % (param, parent))
        before = None
        if os.path.exists(path):
            try:
                with open(path, "r", encoding="utf-8") as handle:
                    before = handle.read()
            except (OSError, UnicodeDecodeError):
                before = ""
        plans.append({"param": param, "path": path, "content": content, "before": before, "changed": before != content})
    return plans


def write_plans(plans, mover=None):
    """Write the changed plans: every temporary file first (same directory), then the moves.
    mover(src, dest) defaults to os.replace (the Ansible modules pass module.atomic_move)."""
    staged = []
    try:
        for plan in plans:
            if not plan["changed"]:
                continue
            directory = os.path.dirname(os.path.abspath(plan["path"]))
            fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(plan["path"]), dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(plan["content"])
            staged.append((tmp, plan["path"]))
    except OSError as exc:
        for tmp, _dest in staged:
            os.unlink(tmp)
        raise InputError("cannot write %s: %s" % (plan["param"], exc))
    for tmp, dest in staged:
        if mover is None:
            if os.path.exists(dest):
                os.chmod(tmp, os.stat(dest).st_mode & 0o7777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        else:
            mover(tmp, dest)
    return [p["path"] for p in plans if p["changed"]]
