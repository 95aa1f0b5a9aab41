"""The `terraform test` files (tests/*.tftest.hcl in every module and environment,
run by scripts/test-terraform.sh) checked against the code with python-hcl2, so
that a new validation rule, precondition or example cannot go untested:

- every validation block of every variable has a run expecting that variable to
  fail (at least as many runs as blocks), and every resource precondition one
  expecting that resource to fail;
- every run plans (command = plan) and can fail: it asserts or expects failures;
- every example under examples/ is planned by a run of its module's tests;
- the environment's test plans the values of terraform.tfvars.example.
"""

import re

import pytest
from tf_helpers import CONFIG_DIRS, ENV_DIR, EXAMPLE_DIRS, MODULES_DIR, TERRAFORM_DIR, expr, load_config, load_tf


def _ids(dirs):
    return [str(d.relative_to(TERRAFORM_DIR)) for d in dirs]


def runs(directory):
    """[(file name, run name, body)] of every run block in directory/tests/*.tftest.hcl."""
    found = []
    for path in sorted((directory / "tests").glob("*.tftest.hcl")):
        for block in load_tf(path).get("run", []):
            for name, body in block.items():
                found.append((path.name, name.strip('"'), body))
    return found


def expected_failures(directory):
    """Checkable object (var.NAME, TYPE.NAME) -> number of runs that expect it to fail."""
    counts = {}
    for _, _, body in runs(directory):
        for target in body.get("expect_failures", []):
            target = expr(target)
            counts[target] = counts.get(target, 0) + 1
    return counts


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_every_configuration_has_terraform_tests(directory):
    assert list((directory / "tests").glob("*.tftest.hcl")), f"{directory.relative_to(TERRAFORM_DIR)} has no tests/*.tftest.hcl"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_every_validation_rule_has_a_failing_run(directory):
    counts = expected_failures(directory)
    untested = {}
    for name, body in load_config(directory)["variable"].items():
        rules = len(body.get("validation", []))
        if counts.get(f"var.{name}", 0) < rules:
            untested[name] = f"{rules} rules, {counts.get(f'var.{name}', 0)} failing runs"
    assert not untested, f"validation rules without a run that breaks them: {untested}"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_every_precondition_has_a_failing_run(directory):
    counts = expected_failures(directory)
    untested = {}
    for rtype, named in load_config(directory)["resource"].items():
        for name, body in named.items():
            preconditions = sum(len(lifecycle.get("precondition", [])) for lifecycle in body.get("lifecycle", []))
            if counts.get(f"{rtype}.{name}", 0) < preconditions:
                untested[f"{rtype}.{name}"] = f"{preconditions} preconditions, {counts.get(f'{rtype}.{name}', 0)} failing runs"
    assert not untested, f"preconditions without a run that breaks them: {untested}"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_every_run_plans_and_can_fail(directory):
    for file_name, name, body in runs(directory):
        assert body.get("command") == "plan", f"{file_name} run {name}: command = plan (nothing is applied)"
        assert body.get("assert") or body.get("expect_failures"), f"{file_name} run {name} neither asserts nor expects a failure"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=_ids(CONFIG_DIRS))
def test_aws_tests_mock_the_provider(directory):
    """No test may reach AWS: every test file of a configuration that uses the AWS provider mocks it."""
    requires = [block.get("required_providers", []) for block in load_config(directory)["terraform"]]
    if not any(providers for providers in requires):
        return  # provider-free (ansible_inventory)
    for path in sorted((directory / "tests").glob("*.tftest.hcl")):
        parsed = load_tf(path)
        mocked = {name for block in parsed.get("mock_provider", []) for name in block}
        assert "aws" in mocked, f"{path.relative_to(TERRAFORM_DIR)} does not mock the aws provider"
        assert "provider" not in parsed, f"{path.relative_to(TERRAFORM_DIR)} configures a real provider"


def test_every_module_has_a_minimal_example():
    for module in sorted(p for p in MODULES_DIR.iterdir() if p.is_dir()):
        assert (module / "examples" / "minimal").is_dir(), f"{module.name} has no examples/minimal"


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=_ids(EXAMPLE_DIRS))
def test_every_example_is_complete_and_planned(example):
    for name in ("main.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (example / name).is_file(), f"{example.relative_to(TERRAFORM_DIR)} lacks {name}"
    module = example.parent.parent
    sources = {module_block["source"] for _, _, body in runs(module) for module_block in body.get("module", [])}
    assert f"./examples/{example.name}" in sources, f"no run in {module.name}/tests plans examples/{example.name}"
    calls = load_config(example)["module"]
    assert any(re.fullmatch(r"\.\./\.\.", call["source"]) for call in calls.values()), "the example does not call its module"


def test_environment_test_plans_the_example_tfvars():
    (variables,) = load_tf(ENV_DIR / "tests" / "plan.tftest.hcl")["variables"]
    example = load_tf(ENV_DIR / "terraform.tfvars.example")
    assert variables == example, "tests/plan.tftest.hcl and terraform.tfvars.example set different values"
