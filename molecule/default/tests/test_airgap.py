"""The lab network is closed: neither host has a route out, Debian's archive (the one each host's image
was built from) and the Python package index (pip's default, as the controller's pip knows it) are out of
reach from both, while the controller reaches them (so the probe itself can fail); apt reads only the
signed mirror `make setup` built, from which every package the roles installed came."""

import json
import re
import shlex
import socket
import subprocess
from urllib.parse import urlsplit

import pytest
from pip._internal.models.index import PyPI  # pip's default index: no host name written here

testinfra_hosts = ["ansible://default-debian12", "ansible://default-debian13"]

TRACKING = "default-debian12"  # nginx TLS on 443, reachable inside the lab network
MIRROR = "file:/opt/runlocalai/apt-mirror"
DISABLED = "/etc/apt/sources.list.runlocalai-disabled"  # the image's own sources, kept aside by the role
PORTS = {"http": 80, "https": 443}


def archive_endpoints(host):
    """(name, port) of every archive the image's original apt sources named."""
    text = host.file(DISABLED).content_string
    uris = re.findall(r"^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
    uris += [u for line in re.findall(r"^URIs:\s*(.+)$", text, re.M) for u in line.split()]
    ends = {(urlsplit(u).hostname, urlsplit(u).port or PORTS[urlsplit(u).scheme]) for u in uris
            if urlsplit(u).scheme in PORTS}
    assert ends, "no archive named in %s" % DISABLED
    return sorted(ends)


def index_endpoints():
    return [(urlsplit(PyPI.url).hostname, 443), (PyPI.file_storage_domain, 443)]


def controller_reaches(name, port):
    """The addresses of `name` on the controller, and whether one of them accepts a connection."""
    try:
        addresses = sorted({a[4][0] for a in socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)})
    except OSError:
        return [], False
    for address in addresses:
        try:
            socket.create_connection((address, port), timeout=5).close()
            return addresses, True
        except OSError:
            continue
    return addresses, False


def host_connects(host, targets):
    """The targets ((address or name, port), ...) a TCP connection from the host reaches, all probed at
    once (bash's /dev/tcp, 5 s each): a dropped packet costs the timeout, so one round, not one per target."""
    probes = " ".join("(timeout 5 bash -c %s && echo %s) &" % (shlex.quote("</dev/tcp/%s/%d" % t), shlex.quote("%s:%d" % t))
                      for t in targets)
    reached = host.run("%s wait" % probes).stdout.split()
    return sorted(set(reached))


def container_address(name):
    networks = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", name],
                                         check=True, capture_output=True, text=True).stdout)
    return [n["IPAddress"] for n in networks.values() if n.get("IPAddress")][0]


def test_the_network_is_internal(host):
    """Docker gives an internal network a default route on its bridge (Docker 28), but the bridge
    forwards nothing out of it: the host's every network must be internal."""
    name = host.backend.host
    networks = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", name],
                                         check=True, capture_output=True, text=True).stdout)
    assert networks, "%s is on no network" % name
    for network in networks:
        internal = subprocess.run(["docker", "network", "inspect", "-f", "{{.Internal}}", network],
                                  check=True, capture_output=True, text=True).stdout.strip()
        assert internal == "true", "%s: network %s is not internal" % (name, network)


def test_out_of_reach(host):
    """Debian's archive and the package index: reached from the controller (the probe can succeed),
    by no name and no address from the host."""
    targets = []
    for name, port in archive_endpoints(host) + index_endpoints():
        addresses, reached = controller_reaches(name, port)
        if not reached:
            pytest.skip("the controller itself does not reach %s:%d: nothing to prove" % (name, port))
        targets += [(name, port)] + [(address, port) for address in addresses]
    # The probe's control inside the lab network: the tracking host's nginx answers it.
    control = (container_address(TRACKING), 443)
    assert host_connects(host, targets + [control]) == ["%s:%d" % control], "%s reaches out" % host.backend.host


def test_apt_reads_only_the_mirror(host):
    # Every index apt knows comes from the mirror; Debian's archive is in no source.
    uris = set(host.check_output("apt-get indextargets --format '$(REPO_URI)'").split())
    assert uris == {MIRROR.rstrip("/") + "/"}, uris
    sources = host.check_output("apt-get -o Debug::NoLocking=1 --print-uris update 2>/dev/null || true")
    assert "http" not in sources


def test_the_mirror_is_signed_and_works_offline(host):
    source = host.file("/etc/apt/sources.list.d/runlocalai-lab-mirror.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/runlocalai-lab-mirror.gpg" in source
    assert "Trusted" not in source
    update = host.run("apt-get update")
    assert update.rc == 0, update.stderr
    assert not re.search(r"^(W|E):", update.stdout + update.stderr, re.M), update.stdout + update.stderr


@pytest.mark.parametrize("package", ["nginx", "prometheus-node-exporter", "python3-venv"])
def test_installed_from_the_mirror(host, package):
    """What the roles installed is what the mirror offers (same version, the mirror as its only origin)."""
    if host.backend.host == "default-debian13" and package == "nginx":
        pytest.skip("nginx is on the tracking host only")
    policy = host.check_output("apt-cache policy %s" % package)
    installed = re.search(r"Installed: (\S+)", policy).group(1)
    assert installed != "(none)"
    assert re.search(r"\*\*\* %s \d+\n\s+\d+ %s" % (re.escape(installed), re.escape(MIRROR)), policy), policy
