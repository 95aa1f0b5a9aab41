"""`make setup` is idempotent: run after a complete set-up (as `make test`
does), it installs nothing, builds nothing and leaves the lab images alone."""

import shutil
import subprocess

import pytest

from conftest import ROOT


def image_ids():
    out = subprocess.run(["docker", "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                          "runlocalai-lab"], check=True, capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines())


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the Docker engine that make setup starts")
def test_second_setup_does_nothing():
    before = image_ids()
    venv_stamp = (ROOT / ".venv" / ".requirements.sha256").stat().st_mtime_ns
    llama_server = (ROOT / ".cache" / "llm" / "llama-server-cpu" / "llama-server").resolve()
    llama_stamp = llama_server.stat().st_mtime_ns
    mirrors = {release: (ROOT / ".cache" / "apt-mirror" / release).resolve() for release in ("bookworm", "trixie")}
    result = subprocess.run([str(ROOT / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "setup: nothing to do: system packages, Docker engine, .venv, Terraform, checkov, lab images, wheelhouse,"
        " llama-server, the test model and the apt mirrors are up to date"
    ]
    assert image_ids() == before
    assert {"runlocalai-lab:bookworm", "runlocalai-lab:trixie"} <= set(before)
    assert (ROOT / ".venv" / ".requirements.sha256").stat().st_mtime_ns == venv_stamp
    # the llama-server build is cached outside the checkout and not rebuilt
    assert (ROOT / ".cache" / "llm" / "llama-server-cpu" / "llama-server").resolve() == llama_server
    assert llama_server.stat().st_mtime_ns == llama_stamp
    # the apt mirrors: the same cached builds, complete
    for release, mirror in mirrors.items():
        assert (ROOT / ".cache" / "apt-mirror" / release).resolve() == mirror
        assert (mirror / ".complete").is_file() and (mirror / "InRelease").is_file(), release
