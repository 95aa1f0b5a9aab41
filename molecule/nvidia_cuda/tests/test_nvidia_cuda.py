"""Real state left by the nvidia_cuda role (distro source, runtime mode) on CPU-only lab hosts."""

import os
import shlex

import jinja2
import pytest

SOURCES = "/etc/apt/sources.list.d/runlocalai-debian-nonfree.sources"
ROLE = os.path.join(
    os.environ["MOLECULE_PROJECT_DIRECTORY"], "ansible_collections/runlocalai/mlops/roles/nvidia_cuda"
)

# What Debian ships per release (checked with apt-cache in the lab images).
RELEASES = {
    "bookworm": {"runtime": "libcudart11.0", "soname": "libcudart.so.11.0", "version": "11.8."},
    "trixie": {"runtime": "libcudart12", "soname": "libcudart.so.12", "version": "12.4."},
}
DRIVER_PACKAGES = [
    "nvidia-driver", "nvidia-kernel-dkms", "nvidia-kernel-support", "nvidia-alternative", "libcuda1",
    "nvidia-smi", "nvidia-persistenced", "firmware-nvidia-gsp", "dkms", "nvidia-cuda-toolkit",
]


@pytest.fixture
def release(host):
    return RELEASES[host.system_info.codename]


def stanzas(text):
    """deb822 paragraphs of a sources file as dicts (comments dropped)."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    paragraphs = [p for p in "\n".join(lines).split("\n\n") if p.strip()]
    return [dict(line.split(": ", 1) for line in p.strip().splitlines()) for p in paragraphs]


def test_sources_file_adds_the_missing_components_to_the_hosts_own_archive(host):
    f = host.file(SOURCES)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    codename = host.system_info.codename
    if codename == "bookworm":
        # The image's one-line sources.list: main only, no Signed-By.
        uri = host.check_output("awk '$1 == \"deb\" { print $2; exit }' /etc/apt/sources.list")
        expected = [{"Types": "deb", "URIs": uri.rstrip("/"), "Suites": "bookworm",
                     "Components": "contrib non-free non-free-firmware"}]
    else:
        # prepare.yml's deb822 debian.sources: main contrib, two suites, Signed-By.
        own = stanzas(host.file("/etc/apt/sources.list.d/debian.sources").content_string)[0]
        expected = [{"Types": "deb", "URIs": own["URIs"].rstrip("/"), "Suites": "trixie trixie-updates",
                     "Components": "non-free non-free-firmware",
                     "Signed-By": "/usr/share/keyrings/debian-archive-keyring.pgp"}]
    assert stanzas(f.content_string) == expected
    assert f.content_string.startswith("# Managed by Ansible (runlocalai.mlops.nvidia_cuda)")


def test_apt_uses_the_new_components_without_complaint(host):
    targets = host.check_output(
        "apt-get indextargets --format '$(COMPONENT) $(SOURCESENTRY)' 'Created-By: Packages'"
    ).splitlines()
    fetched = {line.split()[0] for line in targets if SOURCES in line}
    assert {"non-free", "non-free-firmware"} <= fetched
    # Duplicate targets or conflicting Signed-By values make apt warn or fail here.
    cmd = host.run("apt-cache policy")
    assert cmd.rc == 0 and cmd.stderr == "", cmd.stderr


def test_cuda_runtime_package_installed_from_non_free(host, release):
    pkg = host.package(release["runtime"])
    assert pkg.is_installed
    assert pkg.version.startswith(release["version"])
    policy = host.check_output("apt-cache policy " + release["runtime"])
    assert "non-free" in policy


def test_libcudart_is_known_to_the_dynamic_linker(host, release):
    cache = host.check_output("ldconfig -p")
    lines = [line for line in cache.splitlines() if release["soname"] + " " in line]
    assert lines, "%s not in ldconfig -p" % release["soname"]
    path = lines[0].split(" => ")[1].strip()
    assert host.file(path).exists
    # A real shared object of the runtime, not a stub file.
    assert host.check_output("head -c 4 %s | od -An -c" % path).split() == ["177", "E", "L", "F"]
    # ... and the package's own file.
    owners = host.check_output("dpkg -S '*/%s'" % release["soname"]).split(":")[0]
    assert owners == release["runtime"]


def test_runtime_mode_installs_no_driver(host):
    installed = [p for p in DRIVER_PACKAGES if host.package(p).is_installed]
    assert installed == []
    assert host.run("ls /usr/src | grep -i nvidia").stdout == ""
    assert not host.file("/etc/modprobe.d/runlocalai-blacklist-nouveau.conf").exists
    assert not host.file("/run/runlocalai-nvidia-reboot-required").exists


def test_no_nvidia_repository_for_the_distro_source(host):
    for path in ("/etc/apt/sources.list.d/runlocalai-cuda.sources",
                 "/etc/apt/sources.list.d/runlocalai-nvidia-container-toolkit.sources"):
        assert not host.file(path).exists


def test_runtime_mode_leaves_login_shells_alone(host):
    # The runtime libraries are in the linker's default path: no profile script.
    assert not host.file("/etc/profile.d/cuda.sh").exists
    assert host.check_output("bash -lc 'echo ${CUDA_HOME-unset}'") == "unset"


def render_profile(**values):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
                             keep_trailing_newline=True, trim_blocks=True)
    env.filters["quote"] = shlex.quote
    return env.get_template("cuda.sh.j2").render(nvidia_cuda_source="nvidia", **values)


def test_profile_script_puts_cuda_on_path_once(host):
    """The script full mode writes (toolkit under /usr/local/cuda-X.Y), sourced by login shells."""
    script = render_profile(__nvidia_cuda_version="12.8", __nvidia_cuda_home="/usr/local/cuda-12.8",
                            __nvidia_cuda_bin_dir="/usr/local/cuda-12.8/bin",
                            __nvidia_cuda_lib_dir="/usr/local/cuda-12.8/lib64")
    host.run_expect([0], "mkdir -p /tmp/cuda-profile-test && printf %s " + shlex.quote(script)
                    + " > /tmp/cuda-profile-test/cuda.sh")
    shell = ("env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH= bash -c "
             "'. /tmp/cuda-profile-test/cuda.sh; . /tmp/cuda-profile-test/cuda.sh; "
             "echo $CUDA_HOME; echo $PATH; echo $LD_LIBRARY_PATH'")
    home, path, ld = host.check_output(shell).splitlines()
    assert home == "/usr/local/cuda-12.8"
    assert path == "/usr/local/cuda-12.8/bin:/usr/bin:/bin"
    assert ld == "/usr/local/cuda-12.8/lib64"
    host.run("rm -rf /tmp/cuda-profile-test")


def test_profile_script_for_debian_toolkit_sets_only_cuda_home(host):
    """Debian's nvidia-cuda-toolkit puts nvcc in /usr/bin: only CUDA_HOME is needed."""
    script = render_profile(__nvidia_cuda_version="11.8", __nvidia_cuda_home="/usr/lib/cuda",
                            __nvidia_cuda_bin_dir="", __nvidia_cuda_lib_dir="")
    out = host.check_output("env -i PATH=/usr/bin:/bin bash -c " + shlex.quote(
        script + "\necho $CUDA_HOME; echo $PATH; echo ${LD_LIBRARY_PATH-unset}"))
    assert out.splitlines() == ["/usr/lib/cuda", "/usr/bin:/bin", "unset"]
