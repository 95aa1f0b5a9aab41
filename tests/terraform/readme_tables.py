"""The Inputs and Outputs tables of the Terraform READMEs, rendered from
variables.tf and outputs.tf with python-hcl2 (this repository's terraform-docs).

test_readme_tables.py fails when a README's tables differ from the code;
`.venv/bin/python tests/terraform/readme_tables.py` rewrites them. Each table
is the first block of `|` lines under the README's `## Inputs` / `## Outputs`
heading; prose around it is kept.
"""

import json
import re
import sys

from tf_helpers import CONFIG_DIRS, expr, load_config

INPUTS_HEADING = "## Inputs"
OUTPUTS_HEADING = "## Outputs"


def _cell(text):
    """One table cell: a heredoc's body, on one line, with Markdown's special characters escaped."""
    text = str(text)
    heredoc = re.fullmatch(r"<<-?(\w+)\n(.*)\n\s*\1\s*", text, re.DOTALL)
    if heredoc:
        text = heredoc.group(2)
    text = " ".join(text.split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def input_rows(directory):
    """name -> (type, default, description) cells, in declaration order."""
    plain = load_config(directory)["variable"]
    raw = load_config(directory, raw=True)["variable"]
    rows = {}
    for name, body in plain.items():
        var_type = f"`{_cell(expr(raw[name]['type']))}`"
        default = f"`{_cell(json.dumps(body['default']))}`" if "default" in body else "required"
        rows[name] = (var_type, default, _cell(body.get("description", "")))
    return rows


def output_rows(directory):
    """name -> (description,) cells, in declaration order."""
    return {name: (_cell(body.get("description", "")),) for name, body in load_config(directory)["output"].items()}


def render_inputs(directory):
    lines = ["| name | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {' | '.join(cells)} |" for name, cells in input_rows(directory).items()]
    return lines


def render_outputs(directory):
    lines = ["| name | description |", "|---|---|"]
    lines += [f"| `{name}` | {cells[0]} |" for name, cells in output_rows(directory).items()]
    return lines


def table_span(lines, heading):
    """(start, end) of the first table under `heading` (end exclusive); start == end: no table yet."""
    if heading not in lines:
        raise ValueError(f"no '{heading}' heading")
    index = lines.index(heading) + 1
    while index < len(lines) and not lines[index].startswith("|"):
        if lines[index].startswith("#"):  # the next section: no table here
            return index, index
        index += 1
    end = index
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return index, end


def table(lines, heading):
    start, end = table_span(lines, heading)
    return lines[start:end]


def parse_rows(table_lines):
    """name -> cells after the name, from a rendered or written table (header rows skipped)."""
    rows = {}
    for line in table_lines[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows[cells[0].strip("`")] = tuple(cells[1:])
    return rows


def rewrite(directory):
    """Rewrite the README's tables from the code; returns True when it changed."""
    path = directory / "README.md"
    text = path.read_text()
    lines = text.split("\n")
    for heading, rendered in ((INPUTS_HEADING, render_inputs(directory)), (OUTPUTS_HEADING, render_outputs(directory))):
        start, end = table_span(lines, heading)
        if start == end:  # a new table right under the heading
            start = end = lines.index(heading) + 1
            rendered = [""] + rendered + ([""] if lines[start : start + 1] != [""] else [])
        lines[start:end] = rendered
    new = "\n".join(lines)
    if new != text:
        path.write_text(new)
        return True
    return False


if __name__ == "__main__":
    for config_dir in CONFIG_DIRS:
        if rewrite(config_dir):
            print(f"rewrote the tables of {config_dir / 'README.md'}")
    sys.exit(0)
