"""Shell commands in the roles and playbooks: a folded YAML scalar (`cmd: >-`) keeps the line
break after a more-indented line, and a break before `>`, `<`, `|` or `&&` ends the command there
(pg_dump once wrote its dump to stdout and an empty file to the backup path that way)."""

import re

import pytest
import yaml

from conftest import ROOT, task_values

FILES = sorted(list((ROOT / "ansible_collections/runlocalai/mlops/roles").glob("*/tasks/*.yml"))
               + list((ROOT / "ansible_collections/runlocalai/mlops/playbooks").glob("*.yml"))
               + list((ROOT / "playbooks").glob("*.yml")) + list((ROOT / "molecule").glob("*/*.yml")))
BROKEN = re.compile(r"\n\s*(>|<|\||&&)")


def shell_commands(node):
    """Every shell command string in a YAML document: `shell` tasks' cmd (or free form)."""
    for value in task_values(node, ("ansible.builtin.shell", "shell")):
        yield value["cmd"] if isinstance(value, dict) else value


def test_the_files_hold_shell_commands():
    assert sum(1 for path in FILES for _ in shell_commands(yaml.safe_load(path.read_text()))) >= 5


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_line_break_before_a_redirect_or_operator(path):
    for command in shell_commands(yaml.safe_load(path.read_text())):
        assert not BROKEN.search(command), "%s: a line break ends this command early: %r" % (path, command)


def test_the_check_finds_the_folded_scalar_bug():
    folded = yaml.safe_load("cmd: >-\n  set -o pipefail;\n  {{ a\n     if b else c }}\n  > /tmp/out\n")["cmd"]
    assert BROKEN.search(folded)
