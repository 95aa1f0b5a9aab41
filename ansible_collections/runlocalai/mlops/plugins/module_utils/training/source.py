# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The pipeline code as the controller ships it to the training hosts: a reproducible tar.gz of the
files git tracks under a directory, at HEAD (or, when allowed, as they are in the working tree), with
PIPELINE_SOURCE.json inside saying the commit, whether the tree was dirty, and a digest of the content.
Same content, same bytes: a second run writes nothing."""

from __future__ import absolute_import, division, print_function

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

from ..common.errors import InputError, MlopsError

SOURCE_FILE = "PIPELINE_SOURCE.json"


class SourceError(MlopsError):
    pass


def _git(root, *args):
    try:
        out = subprocess.run(["git", "-C", root] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        raise SourceError("src: git is not available on the controller: %s" % exc)
    if out.returncode != 0:
        raise SourceError("src: git %s failed in %s: %s" % (" ".join(args), root, out.stderr.decode("utf-8", "replace").strip()))
    return out.stdout


def describe(src):
    """commit, dirty, the directory relative to the repository, and the tracked files (relative to src)."""
    if not os.path.isdir(src):
        raise InputError("src: %s is not a directory" % src)
    root = _git(src, "rev-parse", "--show-toplevel").decode("utf-8").strip()
    rel = os.path.relpath(os.path.realpath(src), os.path.realpath(root))
    rel = "" if rel == "." else rel
    commit = _git(root, "rev-parse", "HEAD").decode("ascii").strip()
    status = _git(root, "status", "--porcelain", "--", rel or ".").decode("utf-8", "replace")
    files = [f for f in _git(root, "ls-files", "-z", "--", rel or ".").decode("utf-8").split("\0") if f]
    if not files:
        raise SourceError("src: git tracks no files under %s" % src)
    return {"root": root, "rel": rel, "commit": commit, "dirty": bool(status.strip()),
            "changes": [line[3:] for line in status.splitlines() if line.strip()], "files": sorted(files)}


def _content(info, path, from_worktree):
    if from_worktree:
        full = os.path.join(info["root"], path)
        if not os.path.exists(full):
            return None  # deleted in the working tree
        with open(full, "rb") as handle:
            return handle.read()
    return _git(info["root"], "show", "%s:%s" % (info["commit"], path))


def build(src, allow_dirty=False):
    """(archive bytes, source dict). A dirty tree is refused unless allow_dirty (then its files ship as they are)."""
    info = describe(src)
    if info["dirty"] and not allow_dirty:
        raise SourceError("src: %s has uncommitted changes (%s): commit them, or set allow_dirty to ship the working tree "
                          "(recorded as git_dirty=true)" % (src, ", ".join(info["changes"][:5])))
    members, digest = [], hashlib.sha256()
    for path in info["files"]:
        data = _content(info, path, info["dirty"])
        if data is None:
            continue
        name = os.path.relpath(path, info["rel"]) if info["rel"] else path
        members.append((name, data))
        digest.update(("%s %s\n" % (name, hashlib.sha256(data).hexdigest())).encode("utf-8"))
    source = {"commit": info["commit"], "dirty": info["dirty"], "content_sha256": digest.hexdigest(),
              "ref": info["rel"] or ".", "files": len(members)}
    source["id"] = info["commit"][:12] + ("-dirty-" + source["content_sha256"][:8] if info["dirty"] else "")
    members.append((SOURCE_FILE, (json.dumps(source, sort_keys=True, indent=2) + "\n").encode("utf-8")))
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(members):
                entry = tarfile.TarInfo(name)
                entry.size, entry.mtime, entry.mode, entry.uid, entry.gid = len(data), 0, 0o644, 0, 0
                entry.uname = entry.gname = "root"
                tar.addfile(entry, io.BytesIO(data))
    return raw.getvalue(), source
