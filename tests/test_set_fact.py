"""set_fact tasks in the roles, playbooks and molecule: Ansible templates every fact of one set_fact
task before it sets any, so a fact that names another fact of the same task reads that fact's OLD
value. model_server once set an instance's settings and its directories in one task: with two entries,
the second entry's directories were named after the first. A fact may read its own old value (an
append); it may not read a sibling's."""

import re

import yaml

from conftest import ROOT, task_values

FILES = sorted(list((ROOT / "ansible_collections/runlocalai/mlops/roles").glob("*/tasks/*.yml"))
               + list((ROOT / "ansible_collections/runlocalai/mlops/playbooks").glob("*.yml"))
               + list((ROOT / "playbooks").glob("*.yml")) + list((ROOT / "molecule").glob("*/*.yml"))
               + list((ROOT / "molecule").glob("*/tasks/*.yml")))


def set_facts(node):
    """The fact mappings of every set_fact task in a YAML document."""
    for value in task_values(node, ("ansible.builtin.set_fact", "set_fact")):
        if isinstance(value, dict):
            yield {k: v for k, v in value.items() if k != "cacheable"}


def sibling_reads(facts):
    """(fact, sibling it reads) pairs of one set_fact task."""
    return [(name, other) for name, value in facts.items() for other in facts
            if other != name and re.search(r"(?<![\w.])%s(?!\w)" % re.escape(other), str(value))]


def test_the_check_finds_the_old_model_server_task():
    old = {"__model_server_m": "{{ __model_server_instance.settings }}",
           "__model_server_dir": "{{ model_server_state_dir }}/{{ __model_server_m.name }}",
           "__model_server_list": "{{ __model_server_list + [1] }}"}
    assert sibling_reads(old) == [("__model_server_dir", "__model_server_m")]


def test_no_set_fact_reads_a_sibling_fact():
    found = []
    for path in FILES:
        for facts in set_facts(yaml.safe_load(path.read_text())):
            found += ["%s: %s reads %s" % (path.relative_to(ROOT), name, other) for name, other in sibling_reads(facts)]
    assert len(FILES) > 50
    assert found == []
