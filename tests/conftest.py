"""Shared helpers for the controller-level tests."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def task_values(node, keys):
    """The value of every mapping entry whose key is one of keys, anywhere in a YAML document
    (a play, a task list, a block): the arguments of the tasks of those modules."""
    if isinstance(node, list):
        for item in node:
            yield from task_values(item, keys)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                yield value
            else:
                yield from task_values(value, keys)


@pytest.fixture
def run_playbook(tmp_path):
    """Write a playbook and run it against this machine (connection local), or against an
    inventory given as a dict. The result carries `output` (stdout + stderr) and `flat`
    (the output with all whitespace runs as one space, for messages Ansible wraps)."""

    def run(plays, extra_vars=None, check=False, inventory=None, args=()):
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(json.dumps(plays))  # JSON is YAML
        if inventory is None:
            target = ["-i", "localhost,", "-c", "local"]
            # This machine's Python: interpreter discovery may find a broken shim.
            extra_vars = dict(extra_vars or {}, ansible_python_interpreter=sys.executable)
        else:
            (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
            target = ["-i", str(tmp_path / "inventory.yml")]
        cmd = [shutil.which("ansible-playbook") or "ansible-playbook"] + target + [str(playbook)] + list(args)
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        if check:
            cmd.append("--check")
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        result.output = result.stdout + result.stderr
        result.flat = " ".join(result.output.split())
        return result

    return run
