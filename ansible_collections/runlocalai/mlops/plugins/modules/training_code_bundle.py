#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: training_code_bundle
short_description: Pack the training pipeline's code from git, pinned to a commit, for the training hosts
version_added: "0.2.0"
description:
  - Writes O(dest), a reproducible tar.gz of the files git tracks under O(src) as they are at C(HEAD), with
    C(PIPELINE_SOURCE.json) inside (commit, dirty flag, a digest of the content, the directory in the repository).
    The training pipeline reads that file and records it on every version it registers.
  - Refuses a directory with uncommitted changes unless O(allow_dirty) (then the working tree ships, recorded as dirty).
  - The same content gives the same bytes, so O(dest) is rewritten only when the code changed.
  - Runs on the controller (with C(delegate_to) V(localhost)); needs C(git).
author:
  - runlocalai contributors (@runlocalai)
attributes:
  check_mode:
    support: full
    description: Builds the archive in memory and reports whether O(dest) would change; writes nothing.
  diff_mode:
    support: full
    description: The source description before and after.
options:
  src:
    description: Directory of the pipeline code, inside a git working tree.
    type: path
    required: true
  dest:
    description: Path of the archive to write.
    type: path
    required: true
  allow_dirty:
    description: Ship uncommitted changes (recorded as C(git_dirty=true) on the versions it trains).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Pack the pipeline code at HEAD
  runlocalai.mlops.training_code_bundle:
    src: "{{ playbook_dir }}/../pipelines"
    dest: "{{ playbook_dir }}/../.cache/pipeline-code.tar.gz"
  delegate_to: localhost
  run_once: true
  register: code
"""

RETURN = r"""
source:
  description: What the archive holds (commit, dirty, content_sha256, ref, files, and id, the directory name hosts unpack it to).
  returned: always
  type: dict
  sample: {commit: 6c1e6015b0c0d0e1f2a3b4c5d6e7f8091a2b3c4d, dirty: false, content_sha256: 9f86d0..., ref: pipelines, files: 2, id: 6c1e6015b0c0}
"""

import hashlib
import os

from ansible_collections.runlocalai.mlops.plugins.module_utils.modules import MlopsModule
from ansible_collections.runlocalai.mlops.plugins.module_utils.training.source import build


def main():
    module = MlopsModule(dict(src=dict(type="path", required=True), dest=dict(type="path", required=True),
                              allow_dirty=dict(type="bool", default=False)))
    p = module.params
    with module.reporting_errors():
        data, source = build(p["src"], p["allow_dirty"])
    before = None
    if os.path.isfile(p["dest"]):
        with open(p["dest"], "rb") as handle:
            before = hashlib.sha256(handle.read()).hexdigest()
    after = hashlib.sha256(data).hexdigest()
    changed = before != after
    if changed and not module.check_mode:
        if not os.path.isdir(os.path.dirname(p["dest"]) or "."):
            module.fail_json(msg="dest: directory %s does not exist" % os.path.dirname(p["dest"]))
        tmp = p["dest"] + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        module.atomic_move(tmp, p["dest"])
    module.exit_json(changed=changed, source=source, dest=p["dest"],
                     diff=dict(before="sha256 %s\n" % before if before else "", after="sha256 %s (%s)\n" % (after, source["id"])))


if __name__ == "__main__":
    main()
