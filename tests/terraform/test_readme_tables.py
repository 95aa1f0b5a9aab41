"""Every module's and environment's README lists exactly the inputs (name, type,
default, description) and outputs of its code, in the Inputs and Outputs tables.
`.venv/bin/python tests/terraform/readme_tables.py` rewrites the tables."""

import pytest
from readme_tables import (
    INPUTS_HEADING,
    OUTPUTS_HEADING,
    parse_rows,
    render_inputs,
    render_outputs,
    table,
)
from tf_helpers import CONFIG_DIRS, ROOT, TERRAFORM_DIR

FIX = "run .venv/bin/python tests/terraform/readme_tables.py"


def _ids(dirs):
    return [str(d.relative_to(TERRAFORM_DIR)) for d in dirs]


def _check(directory, heading, rendered):
    readme = directory / "README.md"
    written = table(readme.read_text().split("\n"), heading)
    where = f"{readme.relative_to(ROOT)}, {heading}"
    assert written, f"{where}: no table ({FIX})"
    expected_rows, written_rows = parse_rows(rendered), parse_rows(written)
    missing = [name for name in expected_rows if name not in written_rows]
    extra = [name for name in written_rows if name not in expected_rows]
    assert not missing and not extra, f"{where}: missing {missing}, not in the code {extra} ({FIX})"
    for name, cells in expected_rows.items():
        assert written_rows[name] == cells, f"{where}: {name} is {written_rows[name]}, the code says {cells} ({FIX})"
    assert written == rendered, f"{where}: order or header differs from the code ({FIX})"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_readme_inputs_table_matches_variables(directory):
    _check(directory, INPUTS_HEADING, render_inputs(directory))


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_readme_outputs_table_matches_outputs(directory):
    _check(directory, OUTPUTS_HEADING, render_outputs(directory))


def test_the_check_sees_a_missing_input_and_a_wrong_default(tmp_path):
    """The comparison itself can fail: a README table with a row dropped and a default changed."""
    directory = TERRAFORM_DIR / "modules" / "artifact_store"
    rendered = render_inputs(directory)
    dropped = [line for line in rendered if not line.startswith("| `tags` |")]
    changed = [line.replace('`"mlflow"`', '`"artifacts"`') for line in rendered]
    assert parse_rows(dropped) != parse_rows(rendered)
    assert parse_rows(changed)["artifact_prefix"] != parse_rows(rendered)["artifact_prefix"]
