"""Proof that the `terraform test` files can fail (by hand, not part of
scripts/test-terraform.sh: 6 to 9 minutes on two busy cores).

For every validation block of every variable, and every resource precondition,
of every module and environment: switch that one rule off (its condition
becomes `can(var.X)`, always true) and run the runs that expect the variable or resource to fail.
At least one of them must now fail (normally "Missing expected failure");
otherwise no run depends on the rule (IMPLIED lists the rules that other rules
make unbreakable alone, with the reason). Then a list of secure defaults is broken one at a time
in main.tf (IMDSv2, encryption, public access, ...) and the module's
secure_defaults.tftest.hcl must fail for each.

Works on a copy of terraform/ in a temporary directory, one Terraform process
at a time:
    .venv/bin/python tests/terraform/mutation_check.py
Exits non-zero when a mutation survives.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tf_helpers import CONFIG_DIRS, PINS, TERRAFORM, TERRAFORM_DIR

ENV = dict(os.environ, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")

# Rules no input can break alone, with the reason; they are reported, not failed.
IMPLIED = {
    ("modules/ansible_inventory", "var.hosts rule 1"): "an empty map also has no mlflow host (rule 5); "
    "rule 1 is there for its message, which test_ansible_inventory_module.py checks",
}

# (module, file, text, replacement): secure defaults broken on purpose.
SECURE_DEFAULT_MUTATIONS = [
    ("modules/serving_hosts", "main.tf", "http_put_response_hop_limit = 1", "http_put_response_hop_limit = 2"),
    ("modules/serving_hosts", "main.tf", "http_tokens                 = var.http_tokens", 'http_tokens                 = "optional"'),
    ("modules/serving_hosts", "main.tf", "associate_public_ip_address = false", "associate_public_ip_address = true"),
    ("modules/serving_hosts", "main.tf", "    encrypted             = true", "    encrypted             = false"),
    ("modules/serving_hosts", "main.tf", 'volume_type           = "gp3"', 'volume_type           = "gp2"'),
    ("modules/serving_hosts", "main.tf", "  encrypted         = true", "  encrypted         = false"),
    ("modules/serving_hosts", "main.tf", "      cidr        = null\n      source_sg   = \"serving\"", '      cidr        = "0.0.0.0/0"\n      source_sg   = null'),
    ("modules/serving_hosts", "main.tf", "      from        = 22", "      from        = 0"),
    ("modules/serving_hosts", "main.tf", "      from           = 80", "      from           = 8080"),
    ("modules/serving_hosts", "main.tf", 'description    = "HTTPS to ${pair[1]}: package mirrors, PyPI, S3"', 'description    = ""'),
    ("modules/serving_hosts", "main.tf", 'role   = aws_iam_role.this["mlflow"].id', 'role   = aws_iam_role.this["serving"].id'),
    ("modules/serving_hosts", "main.tf", "spot_instance_type             = \"persistent\"", "spot_instance_type             = \"one-time\""),
    ("modules/serving_hosts", "main.tf", '      Role        = host.role\n', '      Role        = "x"\n'),
    ("modules/artifact_store", "main.tf", "force_destroy = false", "force_destroy = true"),
    ("modules/artifact_store", "main.tf", "restrict_public_buckets = true", "restrict_public_buckets = false"),
    ("modules/artifact_store", "main.tf", '"BucketOwnerEnforced"', '"ObjectWriter"'),
    ("modules/artifact_store", "main.tf", 'status = "Enabled"\n  }', 'status = "Suspended"\n  }'),
    ("modules/artifact_store", "main.tf", 'sse_algorithm = "aws:kms"', 'sse_algorithm = "AES256"'),
    ("modules/artifact_store", "main.tf", "enable_key_rotation     = true", "enable_key_rotation     = false"),
    ("modules/artifact_store", "main.tf", 'values   = ["1.2"]', 'values   = ["1.0"]'),
    ("modules/artifact_store", "main.tf", 'values   = ["false"]', 'values   = ["true"]'),
    ("modules/artifact_store", "main.tf", 'actions   = ["s3:GetObject", "s3:GetObjectVersion"]', 'actions   = ["s3:GetObject", "s3:PutObject"]'),
    ("modules/artifact_store", "main.tf", '"${aws_s3_bucket.this.arn}/${var.artifact_prefix}/*"', '"${aws_s3_bucket.this.arn}/*"'),
    ("modules/ansible_inventory", "main.tf", '"https://${local.mlflow_address}"', '"http://${local.mlflow_address}"'),
    ("modules/ansible_inventory", "main.tf", "mlflow_artifact_bucket = local.artifact_bucket", "mlflow_artifact_bucket = \"\""),
]


def terraform(directory, *args):
    return subprocess.run([str(TERRAFORM), *args, "-no-color"], cwd=directory, env=ENV, capture_output=True, text=True)


def blocks(text, opener):
    """(start, end) line spans of the blocks whose first line matches `opener`, up to the
    closing brace at the same indentation (terraform fmt's layout)."""
    lines = text.split("\n")
    spans = []
    for index, line in enumerate(lines):
        match = re.match(rf"^(\s*){opener}", line)
        if match:
            indent = match.group(1)
            end = next(i for i in range(index + 1, len(lines)) if lines[i] == f"{indent}}}")
            spans.append((index, end))
    return spans


def switch_off(text, start, end):
    """The condition of the validation/precondition block at lines start..end, replaced by one
    that always holds (can(var.X): Terraform refuses a condition that refers to nothing)."""
    lines = text.split("\n")
    first = next(i for i in range(start, end) if re.match(r"^\s*condition\s*=", lines[i]))
    last = next(i for i in range(first, end) if re.match(r"^\s*error_message\s*=", lines[i]))
    indent = re.match(r"^(\s*)", lines[first]).group(1)
    variable = re.search(r"\bvar\.(\w+)", "\n".join(lines[first:last])).group(1)
    return "\n".join(lines[:first] + [f"{indent}condition = can(var.{variable})"] + lines[last:])


def rules(directory):
    """(label, file, start, end, target) of every validation block and precondition."""
    found = []
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        for v_start, v_end in blocks(text, r'variable "(\w+)" \{'):
            name = re.search(r'variable "(\w+)"', text.split("\n")[v_start]).group(1)
            inner = [(s, e) for s, e in blocks(text, r"validation \{") if v_start < s < v_end]
            for number, (start, end) in enumerate(inner, 1):
                found.append((f"var.{name} rule {number}", path.name, start, end, f"var.{name}"))
        for r_start, r_end in blocks(text, r'resource "(\w+)" "(\w+)" \{'):
            rtype, rname = re.search(r'resource "(\w+)" "(\w+)"', text.split("\n")[r_start]).groups()
            inner = [(s, e) for s, e in blocks(text, r"precondition \{") if r_start < s < r_end]
            for number, (start, end) in enumerate(inner, 1):
                found.append((f"{rtype}.{rname} precondition {number}", path.name, start, end, f"{rtype}.{rname}"))
    return found


def runs_expecting(directory, target):
    """A test file: the file-level blocks of the test file holding runs that expect `target`
    to fail, with only those runs."""
    for path in sorted((directory / "tests").glob("*.tftest.hcl")):
        text = path.read_text()
        lines = text.split("\n")
        spans = blocks(text, r'run "')
        chosen = [
            "\n".join(lines[s : e + 1])
            for s, e in spans
            if re.search(r"expect_failures\s*=\s*\[[^\]]*\b" + re.escape(target) + r"\b", "\n".join(lines[s : e + 1]))
        ]
        if chosen:
            header = "\n".join(lines[: spans[0][0]])
            return header + "\n" + "\n\n".join(chosen) + "\n", len(chosen)
    return None, 0


def main():
    survivors = []
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "terraform"
        shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
        for config in CONFIG_DIRS:
            relative = config.relative_to(TERRAFORM_DIR)
            directory = copy / relative
            init = terraform(directory, "init", "-backend=false", f"-plugin-dir={PINS['TF_PLUGIN_DIR']}", "-input=false")
            assert init.returncode == 0, init.stdout + init.stderr
            mutant_test = directory / "tests" / "mutation.tftest.hcl"
            for label, file_name, start, end, target in rules(directory):
                source = directory / file_name
                original = source.read_text()
                test_text, count = runs_expecting(directory, target)
                if not test_text:
                    survivors.append(f"{relative}: {label}: no run expects {target} to fail")
                    continue
                source.write_text(switch_off(original, start, end))
                mutant_test.write_text(test_text)
                result = terraform(directory, "test", "-filter=tests/mutation.tftest.hcl")
                source.write_text(original)
                mutant_test.unlink()
                checked += 1
                caught = result.returncode != 0
                how = "missing expected failure" if "Missing expected failure" in result.stdout + result.stderr else "other error"
                implied = IMPLIED.get((str(relative), label))
                verdict = "caught  " if caught else ("implied " if implied else "SURVIVED")
                print(f"{verdict} {relative}: {label} switched off ({count} runs; {how if caught else implied or 'all passed'})", flush=True)
                if not caught and not implied:
                    survivors.append(f"{relative}: {label}")
        for module, file_name, text, replacement in SECURE_DEFAULT_MUTATIONS:
            directory = copy / module
            source = directory / file_name
            original = source.read_text()
            assert original.count(text) >= 1, f"{module}/{file_name}: {text!r} not found"
            source.write_text(original.replace(text, replacement))
            test_files = sorted(p.name for p in (directory / "tests").glob("*.tftest.hcl") if p.name != "validation.tftest.hcl")
            result = terraform(directory, "test", *[f"-filter=tests/{name}" for name in test_files])
            source.write_text(original)
            checked += 1
            caught = result.returncode != 0
            how = "assertion failed" if "Test assertion failed" in result.stdout + result.stderr else "other error"
            print(f"{'caught  ' if caught else 'SURVIVED'} {module}/{file_name}: {text.strip()!r} -> {replacement.strip()!r}"
                  f" ({how if caught else 'all passed'})", flush=True)
            if not caught:
                survivors.append(f"{module}: {text!r} -> {replacement!r}")
    print(f"{checked} mutations, {len(survivors)} survived ({len(IMPLIED)} rule(s) implied by others: see IMPLIED)")
    for line in survivors:
        print("  survived:", line)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
