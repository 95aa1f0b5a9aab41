"""Shared helpers for the controller-level tests."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_playbook(tmp_path):
    """Write a playbook and run it against this machine (connection local)."""

    def run(plays, extra_vars=None, check=False):
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(json.dumps(plays))  # JSON is YAML
        cmd = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)]
        # This machine's Python: interpreter discovery may find a broken shim.
        cmd += ["-e", json.dumps(dict(extra_vars or {}, ansible_python_interpreter=sys.executable))]
        if check:
            cmd.append("--check")
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    return run
