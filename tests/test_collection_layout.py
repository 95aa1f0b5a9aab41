"""The collection as it is built for Galaxy: the lifecycle playbooks ship inside it and the
repository's playbooks/ imports them (no copies), and galaxy.yml declares every collection
the roles and playbooks use."""

import re

import yaml

from conftest import ROOT

COLLECTION = ROOT / "ansible_collections" / "runlocalai" / "mlops"
LIFECYCLE = ("site", "deploy_model", "rollback", "reconcile", "drift", "audit", "backup", "restore")
# Module, filter and connection names as YAML uses them: namespace.collection.name
FQCN = re.compile(r"\b([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*\b")
NOT_COLLECTIONS = {"ansible.builtin", "runlocalai.mlops", "ansible.legacy"}


def galaxy():
    return yaml.safe_load((COLLECTION / "galaxy.yml").read_text())


def test_the_lifecycle_playbooks_ship_in_the_collection():
    shipped = {p.stem for p in (COLLECTION / "playbooks").glob("*.yml")}
    assert set(LIFECYCLE) <= shipped


def test_the_repository_playbooks_import_them_and_copy_nothing():
    for name in (p.stem for p in (COLLECTION / "playbooks").glob("*.yml")):
        plays = yaml.safe_load((ROOT / "playbooks" / f"{name}.yml").read_text())
        assert len(plays) == 1, name
        assert plays[0]["ansible.builtin.import_playbook"] == f"runlocalai.mlops.{name}", name
        assert set(plays[0]) == {"name", "ansible.builtin.import_playbook"}, name


def test_galaxy_declares_every_collection_the_roles_and_playbooks_use():
    used = set()
    for path in list((COLLECTION / "roles").rglob("*.yml")) + list((COLLECTION / "playbooks").glob("*.yml")):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            used |= set(FQCN.findall(line))
    # Only the names that are collections Ansible would load: namespace.name keys of YAML
    # (`ansible.posix.acl:`) or values (`name: community.postgresql.postgresql_db`).
    used = {u for u in used if u.split(".")[0] in {"ansible", "community", "amazon", "kubernetes", "containers"}}
    used -= NOT_COLLECTIONS
    assert used, "the scan found no collection at all: the pattern is wrong"
    assert used <= set(galaxy()["dependencies"]), sorted(used - set(galaxy()["dependencies"]))


def test_galaxy_metadata_points_to_real_things():
    meta = galaxy()
    assert (COLLECTION / meta["license_file"]).read_text().startswith("\n                                 Apache License")
    for key in ("repository", "documentation", "issues", "homepage"):
        assert meta[key].startswith("https://"), key
    for name, spec in meta["dependencies"].items():
        assert re.fullmatch(r">=\d+\.\d+\.\d+,<\d+\.0\.0", spec), (name, spec)
