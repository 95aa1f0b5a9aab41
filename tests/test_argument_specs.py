"""Argument specs of the roles (meta/argument_specs.yml). ansible-core validates the variables of an
entry point when a play includes it, with the spec named exactly as the include's `tasks_from` (a
`tasks_from: foo.yml` looks up a spec named `foo.yml`, not `foo`), and ansible-doc documents the roles
from them. So: every `tasks_from` the playbooks, the molecule scenarios and the roles use names an
entry point with a spec; every option is described; every variable of a role's defaults is an option
of one of its entry points, documented with its default; and the specs accept what the playbooks
pass (extra vars from the command line arrive as strings)."""


import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from conftest import ROOT, task_values

COLLECTION = ROOT / "ansible_collections/runlocalai/mlops"
ROLES = COLLECTION / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir())
FILES = sorted({p for d in (ROOT / "playbooks", ROOT / "molecule", COLLECTION / "playbooks", ROLES)
                for pattern in ("**/*.yml", "**/*.yaml") for p in d.glob(pattern)})
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")

# Task files included with tasks_from that are no entry point: they read the role's internal
# variables and facts a converge set, so only the role itself and its own tests call them.
INTERNAL = {
    # molecule/default/side_effect.yml's check of one registry lookup (__model_server_entry, with the
    # facts of the converge before it); the role runs tasks/model.yml with include_tasks.
    ("model_server", "model.yml"),
}

# Options documented with the resolved value of a templated default.
RESOLVED_DEFAULTS = {
    "runtime": {"runtime_venvs_dir", "runtime_pip_wheelhouse_dir"},
}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that reads Ansible's tags (!vault, !unsafe) as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def load(path):
    return list(yaml.load_all(path.read_text(), Loader=_Loader))


def specs(role):
    path = ROLES / role / "meta" / "argument_specs.yml"
    return (load(path)[0] or {}).get("argument_specs") or {} if path.exists() else {}


def defaults(role):
    path = ROLES / role / "defaults" / "main.yml"
    return (load(path)[0] or {}) if path.exists() else {}


def includes(node):
    """(role, tasks_from) of every include_role / import_role with tasks_from in a YAML document."""
    for value in task_values(node, INCLUDES):
        if isinstance(value, dict) and "tasks_from" in value:
            yield value.get("name", value.get("role")), value["tasks_from"]


def entry_points_used():
    used = []
    for path in FILES:
        for document in load(path):
            for name, tasks_from in includes(document):
                used.append((str(path.relative_to(ROOT)), name, tasks_from))
    return used


USED = entry_points_used()


def options(spec, prefix=""):
    """(dotted name, option) of every option of an entry point, suboptions included."""
    for name, option in (spec.get("options") or {}).items():
        yield prefix + name, option
        yield from options(option, prefix + name + ".")


def test_the_scan_finds_the_playbooks_includes():
    found = {(name, tasks_from) for _, name, tasks_from in USED}
    assert ("runlocalai.mlops.lifecycle", "rollout") in found
    assert ("runlocalai.mlops.model_server", "restart_pending") in found
    assert ("runlocalai.mlops.runtime", "venv") in found


@pytest.mark.parametrize("where,name,tasks_from", USED, ids=[f"{w}:{t}" for w, _, t in USED])
def test_every_tasks_from_names_an_entry_point_with_a_spec(where, name, tasks_from):
    assert "{{" not in str(name) + str(tasks_from), f"{where}: a templated include cannot be checked"
    assert name.startswith("runlocalai.mlops."), f"{where}: {name} is not a role of this collection"
    role = name.removeprefix("runlocalai.mlops.")
    task_file = tasks_from if tasks_from.endswith((".yml", ".yaml")) else tasks_from + ".yml"
    assert (ROLES / role / "tasks" / task_file).is_file(), f"{where}: {role} has no tasks/{task_file}"
    if (role, tasks_from) in INTERNAL:
        return
    entry_points = sorted(specs(role))
    assert tasks_from in entry_points, (
        f"{where}: tasks_from {tasks_from} of {role} has no entry point in roles/{role}/meta/argument_specs.yml"
        f" (it has {entry_points})"
        + ("; name it without .yml: ansible-core looks the spec up by the name as given"
           if tasks_from.endswith(".yml") and tasks_from.removesuffix(".yml") in entry_points else ""))


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_role_has_a_main_entry_point(role):
    assert "main" in specs(role)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_entry_point_and_option_is_described(role):
    undescribed = []
    for entry_point, spec in specs(role).items():
        if not spec.get("short_description"):
            undescribed.append(entry_point)
        undescribed += [f"{entry_point}: {name}" for name, option in options(spec) if not option.get("description")]
    assert not undescribed, f"{role}: no description: {undescribed}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_a_required_option_has_no_default(role):
    both = [f"{entry_point}: {name}" for entry_point, spec in specs(role).items()
            for name, option in options(spec) if option.get("required") and "default" in option]
    assert not both, f"{role}: required and with a default: {both}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_is_an_option_of_an_entry_point(role):
    documented = {name for spec in specs(role).values() for name in (spec.get("options") or {})}
    missing = [name for name in defaults(role) if not name.startswith("__") and name not in documented]
    assert not missing, f"{role}: defaults/main.yml variables in no entry point of its argument spec: {missing}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_the_documented_defaults_are_those_of_defaults_main(role):
    values = defaults(role)
    wrong = [(entry_point, name, option["default"], values[name])
             for entry_point, spec in specs(role).items()
             for name, option in (spec.get("options") or {}).items()
             if "default" in option and name in values and name not in RESOLVED_DEFAULTS.get(role, ())
             and option["default"] != values[name]]
    assert not wrong, f"{role}: (entry point, option, documented, defaults/main.yml): {wrong}"


def test_every_lifecycle_task_file_is_an_entry_point_or_a_part_of_gate():
    task_files = {p.stem for p in (ROLES / "lifecycle" / "tasks").glob("*.yml")}
    assert task_files - set(specs("lifecycle")) == {"gate_llm", "gate_pyfunc"}


def validate(role, entry_point, values):
    """What ansible-core's role validation (validate_argument_spec) reports for these variables."""
    validator = ArgumentSpecValidator(specs(role)[entry_point].get("options") or {})
    return validator.validate(values, validate_role_argument_spec=True).error_messages


# As the playbooks and molecule/default pass them: version and model from -e (strings), the
# inventory's lifecycle_models, approvals as JSON extra vars, a registry version as an int.
MODELS = {
    "breast-cancer": {"eval_data": "/srv/demo/eval.csv", "label_column": "target", "data_min_rows": 100,
                      "gate_environment": {"PYTHONPATH": "/srv/demo"},
                      "sensitive_column": "derived_texture_group", "fairness_metric": "accuracy",
                      "thresholds": {"accuracy": ">=0.9", "latency_p95_ms": "<=200", "max_disparity": "<=0.1"},
                      "smoke_input": {"dataframe_records": [{"mean_radius": 14.1}]}},
    "smollm2": {"eval_set": "/srv/eval/smollm2.yml", "thresholds": {"score": ">=0.6", "tokens_per_second": ">=5"}},
}
REGISTRY = {"lifecycle_tracking_uri": "https://10.0.0.5", "lifecycle_username": "admin",
            "lifecycle_password": "secret", "lifecycle_ca_path": "/srv/ca.pem", "lifecycle_validate_certs": True}
ENTRY = {"entry_id": "deploy-breast-cancer-v3-20261207T000000Z-gate", "event_type": "model_promotion",
         "actor": "alice", "resource": "model:breast-cancer/3", "action": "alias production 2 -> 3",
         "details": {"previous_version": None, "gate_failures": [], "approvals": ["ml-lead"], "targets": ["s1"]}}
ACCEPTED = [
    ("lifecycle", "main", {}),
    ("lifecycle", "settings", {"lifecycle_drift_fail": "true", "lifecycle_rollback_force": "false",
                               "lifecycle_audit_heads_dir": "/srv/project/audit-heads"}),
    ("lifecycle", "targets", {"lifecycle_model": "breast-cancer", "lifecycle_alias": "production"}),
    ("lifecycle", "targets", {"lifecycle_model": ""}),
    ("lifecycle", "gate", dict(REGISTRY, lifecycle_model="smollm2", lifecycle_version="1", lifecycle_models=MODELS,
                               lifecycle_runtime_overhead_mb=300, lifecycle_llama_server="",
                               lifecycle_llm_cache_dir="/root/.cache/runlocalai-mlops/models")),
    ("lifecycle", "promote", dict(REGISTRY, lifecycle_model="breast-cancer", lifecycle_version="3",
                                  lifecycle_approvals=[{"approver": "ml-lead", "comment": "molecule"}],
                                  lifecycle_required_approvers=["ml-lead"], lifecycle_required_metadata=["owner"],
                                  lifecycle_actor="alice")),
    ("lifecycle", "rollout", {"lifecycle_model": "breast-cancer", "lifecycle_expected_version": 2,
                              "lifecycle_deployment_id": "rollback-breast-cancer-20261207T000000Z",
                              "lifecycle_rollout_step": "rollback", "lifecycle_models": MODELS,
                              "lifecycle_ready_timeout": "120"}),
    ("lifecycle", "audit", {"lifecycle_audit_entries": [ENTRY], "lifecycle_audit_host": "mlflow1"}),
    ("model_server", "restart_pending", {"model_server_models": [{"name": "breast-cancer", "alias": "production",
                                                                  "port": 8080}],
                                         "model_server_ready_timeout": "300"}),
]
REFUSED = [
    ("lifecycle", "audit", {}, "lifecycle_audit_entries"),
    ("lifecycle", "gate", {"lifecycle_model": "m", "lifecycle_version": "1", "lifecycle_models": "m"},
     "lifecycle_models"),
    ("lifecycle", "promote", {"lifecycle_model": "m", "lifecycle_version": "1",
                              "lifecycle_approvals": [{"comment": "no approver"}]}, "approver"),
    ("lifecycle", "rollout", {"lifecycle_model": "m", "lifecycle_expected_version": "1",
                              "lifecycle_deployment_id": "d", "lifecycle_rollout_step": "rollout",
                              "lifecycle_ready_timeout": "two minutes"}, "lifecycle_ready_timeout"),
]


@pytest.mark.parametrize("role,entry_point,values", ACCEPTED, ids=[f"{r}:{e}" for r, e, _ in ACCEPTED])
def test_the_spec_accepts_what_the_playbooks_pass(role, entry_point, values):
    assert validate(role, entry_point, values) == []


@pytest.mark.parametrize("role,entry_point,values,option", REFUSED, ids=[f"{r}:{e}:{o}" for r, e, _, o in REFUSED])
def test_the_spec_refuses_what_the_tasks_cannot_use(role, entry_point, values, option):
    errors = validate(role, entry_point, values)
    assert errors and any(option in message for message in errors), errors
