"""Real state left by the runtime role on a lab host (molecule verify)."""

import json

import pytest

PROBE = "/opt/runlocalai/venvs/probe"
RESPEC = "/opt/runlocalai/venvs/respec"


def test_service_user_cannot_log_in(host):
    user = host.user("mlops")
    assert user.exists
    assert user.group == "mlops"
    assert user.shell == "/usr/sbin/nologin"
    # Locked: the shadow hash starts with "!" (no password can match).
    shadow = host.check_output("getent shadow mlops").split(":")
    assert shadow[1].startswith("!")
    assert user.uid < 1000, "expected a system account"


@pytest.mark.parametrize(
    "path,owner,group,mode",
    [
        ("/opt/runlocalai", "root", "root", 0o755),
        ("/opt/runlocalai/venvs", "root", "root", 0o755),
        ("/etc/runlocalai", "root", "mlops", 0o750),
        ("/var/lib/runlocalai", "mlops", "mlops", 0o750),
        ("/var/log/runlocalai", "mlops", "mlops", 0o750),
    ],
)
def test_directories(host, path, owner, group, mode):
    d = host.file(path)
    assert d.is_directory
    assert (d.user, d.group, d.mode) == (owner, group, mode)


def test_pip_configuration_points_at_the_wheelhouse_only(host):
    conf = host.file("/etc/runlocalai/pip.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "mlops", 0o640)
    text = conf.content_string
    assert "no-index = true" in text
    assert "find-links = /opt/runlocalai/wheelhouse" in text
    assert "cert = /etc/runlocalai/pip-ca-bundle.pem" in text
    assert "index-url" not in text
    ca = host.file("/etc/runlocalai/pip-ca-bundle.pem")
    assert ca.mode == 0o644 and "BEGIN CERTIFICATE" in ca.content_string
    wheels = host.check_output("ls /opt/runlocalai/wheelhouse").split()
    assert any(w.startswith("requests-2.32.3-") for w in wheels)


def test_pinned_package_imports_at_pinned_version(host):
    out = host.check_output(
        PROBE + "/bin/python -c 'import json, requests, sys; "
        "print(json.dumps([requests.__version__, requests.__file__, sys.prefix]))'"
    )
    version, module_file, prefix = json.loads(out)
    assert version == "2.32.3"
    assert module_file.startswith(PROBE + "/")
    assert prefix == PROBE


def test_venv_records_its_spec(host):
    spec = host.file(PROBE + "/.runlocalai-venv-spec").content_string
    assert "- requests==2.32.3" in spec
    py = host.check_output("python3 -c 'import sys; print(sys.version)'")
    assert py.strip() in spec


def test_unchanged_spec_keeps_the_venv(host):
    assert host.file(PROBE + "/marker").exists


def test_changed_spec_recreates_the_venv(host):
    assert not host.file(RESPEC + "/marker").exists
    assert "- urllib3" in host.file(RESPEC + "/.runlocalai-venv-spec").content_string
    host.run_expect([0], RESPEC + "/bin/python -c 'import requests, urllib3'")
