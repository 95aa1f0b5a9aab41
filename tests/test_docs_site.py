"""The collection's docs site, built by antsibull-docs and Sphinx from this checkout, offline,
with any warning failing. `pytest tests/test_docs_site.py` (or `make test-docs`) builds it into
.cache/docs-site: open .cache/docs-site/build/html/index.html; the build's output is in
.cache/docs-site/build.log, the lint's in .cache/docs-site/lint.log.

- every Markdown guide in docs/ is listed on the site's Guides page
  (docs/docsite/rst/guides.rst: antsibull-docs renders reStructuredText extra docs only);
- `antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs`: every module's and
  filter's DOCUMENTATION/EXAMPLES/RETURN and every role's meta/argument_specs.yml against
  antsibull-docs' schema and markup rules, every O(), RV(), M() reference resolved, and the extra
  docs (docs/docsite/extra-docs.yml, docs/docsite/rst/) with their references. Its rstcheck pass is
  skipped: the site build renders the same RST with Sphinx itself, -W. It runs in the background,
  beside the site build;
- `antsibull-docs sphinx-init --use-current --fail-on-error` and the build.sh it writes: the RST of
  every plugin and role (a page that cannot be rendered fails instead of becoming an error page),
  then `sphinx-build -W --keep-going` (every warning fails); the site has a page per module, filter
  and role.

Offline: the generated conf.py would download intersphinx inventories of the Python, Jinja and
Ansible docs. Here intersphinx reads one local inventory instead (write_ansible_inventory), with
the Ansible docs labels that antsibull-docs' pages link to (return values, configuration
settings, ...) and one label per ansible.builtin plugin of the installed ansible-core; links still
point to the Ansible devel docs. Nothing is downloaded.
"""

import os
import shutil
import subprocess
import sys
import zlib

import pytest

from conftest import ROOT

COLLECTION = ROOT / "ansible_collections" / "runlocalai" / "mlops"
DEST = ROOT / ".cache" / "docs-site"
HTML = DEST / "build" / "html"
ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"
# Linked from antsibull-docs' page templates: label -> (URI relative to the Ansible docs, title).
ANSIBLE_LABELS = {
    "action_plugins": ("plugins/action.html#action-plugins", "Action plugins"),
    "ansible_configuration_settings": ("reference_appendices/config.html#ansible-configuration-settings",
                                       "Ansible Configuration Settings"),
    "callback_plugins": ("plugins/callback.html#callback-plugins", "Callback plugins"),
    "collections_keyword": ("collections_guide/collections_using_playbooks.html#collections-keyword",
                            "Simplifying module names with the collections keyword"),
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values",
                             "Return Values"),
    "list_of_callback_plugins": ("collections/index_callback.html#list-of-callback-plugins",
                                 "Index of all Callback Plugins"),
    "list_of_collections": ("collections/index.html#list-of-collections", "Collection Index"),
}
BUILTIN_PLUGIN_KINDS = ("become", "cache", "callback", "cliconf", "connection", "httpapi", "inventory",
                        "lookup", "netconf", "shell", "strategy", "vars")


def env():
    """This Python's scripts first on PATH; the repository's ansible.cfg resolves runlocalai.mlops
    from this checkout; no bytecode written into the checkout."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PYTHONDONTWRITEBYTECODE="1")


def write_ansible_inventory(path):
    """Write a Sphinx inventory (version 2) of the Ansible docs labels the site links to: those of
    antsibull-docs' page templates, and one per ansible.builtin plugin of the installed ansible-core
    (M(ansible.builtin.uri), seealso entries, ...)."""
    import ansible

    labels = dict(ANSIBLE_LABELS)
    core = os.path.dirname(ansible.__file__)
    # Modules are modules/*.py, filters and tests are documented in *.yml files, other plugins are *.py.
    folders = [("module", os.path.join(core, "modules"), ".py")]
    folders += [(kind, os.path.join(core, "plugins", kind), ".yml") for kind in ("filter", "test")]
    folders += [(kind, os.path.join(core, "plugins", kind), ".py") for kind in BUILTIN_PLUGIN_KINDS]
    for kind, folder, extension in folders:
        for filename in sorted(os.listdir(folder)):
            name, ext = os.path.splitext(filename)
            if ext == extension and not name.startswith("_"):
                label = f"ansible_collections.ansible.builtin.{name}_{kind}"
                anchor = label.replace(".", "-").replace("_", "-")
                labels[label] = (f"collections/ansible/builtin/{name}_{kind}.html#{anchor}",
                                 f"ansible.builtin.{name} {kind}")
    body = "".join(f"{label} std:label -1 {uri} {title}\n" for label, (uri, title) in sorted(labels.items()))
    with open(path, "wb") as f:
        f.write(b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
                b"# The remainder of this file is compressed using zlib.\n")
        f.write(zlib.compress(body.encode("utf-8")))


def run(cmd, log):
    """Run a step of the build, appending its output to log; return the CompletedProcess."""
    result = subprocess.run([str(part) for part in cmd], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=900)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"=== {' '.join(map(str, cmd))} (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result


def tail(text, size=8000):
    return text if len(text) <= size else "...\n" + text[-size:]


@pytest.fixture(scope="module")
def dest():
    """.cache/docs-site, emptied; antsibull-docs wants a destination only its owner can write to."""
    shutil.rmtree(DEST, ignore_errors=True)
    DEST.mkdir(parents=True)
    DEST.chmod(0o755)
    return DEST


@pytest.fixture(scope="module")
def lint(dest):
    """antsibull-docs lint-collection-docs, started in the background (output in lint.log)."""
    with open(dest / "lint.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            ["antsibull-docs", "lint-collection-docs", "--plugin-docs", "--check-extra-docs-refs", "--skip-rstcheck",
             str(COLLECTION)], cwd=ROOT, env=env(), stdout=log, stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def site(dest, lint):  # lint: started first, so that it runs beside the build
    """The site build's steps, stopping at the first that fails: [(step, CompletedProcess)]."""
    log = dest / "build.log"
    steps = []
    init = run(["antsibull-docs", "sphinx-init", "--use-current", "--squash-hierarchy", "--fail-on-error",
                "--no-add-antsibull-docs-version", "--dest-dir", dest, "--project", "runlocalai.mlops",
                "--title", "runlocalai.mlops", "--copyright", "runlocalai contributors", "runlocalai.mlops"], log)
    steps.append(("antsibull-docs sphinx-init", init))
    if init.returncode == 0:
        write_ansible_inventory(dest / "ansible_devel.inv")
        with open(dest / "conf.py", "a", encoding="utf-8") as f:
            f.write("\n# tests/test_docs_site.py: an offline build. Intersphinx reads a local inventory of the\n"
                    "# Ansible docs labels the pages link to; nothing is downloaded.\n"
                    f"intersphinx_mapping = {{\n    'ansible_devel': ({ANSIBLE_DOCS!r}, "
                    f"{str(dest / 'ansible_devel.inv')!r}),\n}}\n")
        # build.sh: antsibull-docs writes the RST of every plugin and role into rst/, then
        # sphinx-build -M html rst build -c . -W --keep-going
        steps.append(("build.sh (antsibull-docs collection, sphinx-build -W)", run([dest / "build.sh"], log)))
    return steps


def test_every_markdown_guide_is_listed_on_the_guides_page():
    guides = (COLLECTION / "docs" / "docsite" / "rst" / "guides.rst").read_text(encoding="utf-8")
    markdown = sorted(path.name for path in (COLLECTION / "docs").glob("*.md"))
    assert markdown, "no Markdown guide in docs/"
    missing = [name for name in markdown if f"``docs/{name}``" not in guides]
    assert not missing, f"docs/docsite/rst/guides.rst does not list {missing}"


def test_sphinx_build_passes_without_warnings(site):
    for step, result in site:
        assert result.returncode == 0, f"{step} exited {result.returncode}:\n{tail(result.stdout + result.stderr)}"
    assert (HTML / "index.html").is_file()


# kind -> (its names in this checkout, a few real ones: an empty or misread folder does not pass)
PAGES = {
    "module": (lambda: [path.stem for path in (COLLECTION / "plugins" / "modules").glob("*.py")
                        if not path.name.startswith("_")],
               {"mlflow_model", "drift_check", "stack_preflight"}),
    "role": (lambda: [path.name for path in (COLLECTION / "roles").iterdir() if path.is_dir()],
             {"model_server", "monitoring", "preflight"}),
}


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_site_has_a_page_per_module_and_role(site, kind):
    assert all(result.returncode == 0 for _, result in site), "the site was not built"
    listed, real = PAGES[kind]
    names = sorted(listed())
    assert real <= set(names)
    missing = [name for name in names if not (HTML / f"{name}_{kind}.html").is_file()]
    assert not missing, f"no page for the {kind}s {missing} in {HTML}"
    for name in sorted(real):
        assert f"runlocalai.mlops.{name}" in (HTML / f"{name}_{kind}.html").read_text(encoding="utf-8")


def test_antsibull_docs_lint_passes(lint):
    returncode = lint.wait(timeout=900)
    output = (DEST / "lint.log").read_text(encoding="utf-8")
    assert returncode == 0, f"antsibull-docs lint-collection-docs exited {returncode}:\n{tail(output)}"
