"""The runtime role's preflight on this machine: read-only checks that fail
with a message naming the variable at fault, before anything changes."""

import pytest

PREFLIGHT = [
    {
        "name": "Preflight only",
        "hosts": "localhost",
        "gather_facts": True,
        "tasks": [
            {
                "name": "Run the runtime preflight",
                "ansible.builtin.include_role": {"name": "runlocalai.mlops.runtime", "tasks_from": "preflight"},
            }
        ],
    }
]


def test_preflight_passes_on_a_supported_host(run_playbook):
    result = run_playbook(PREFLIGHT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=0" in result.stdout


@pytest.mark.parametrize(
    "extra_vars,expected",
    [
        ({"runtime_supported_platforms": {"Debian": ["11"], "Ubuntu": ["24"]}},
         "unsupported operating system"),
        ({"runtime_supported_architectures": ["ppc64le"]},
         "runtime_supported_architectures allows ppc64le"),
        ({"runtime_min_python_version": "9.1"},
         "is older than runtime_min_python_version=9.1"),
        ({"runtime_min_free_disk_mb": 10**10},
         "runtime_min_free_disk_mb requires 10000000000 MB"),
        ({"runtime_pip_index_url": "htps:/pypi.example.org simple"},
         "runtime_pip_index_url has a malformed URL 'htps:/pypi.example.org simple'"),
        ({"runtime_pip_extra_index_urls": ["https://ok.example.org/simple", "ftp://mirror/simple"]},
         "runtime_pip_extra_index_urls has a malformed URL 'ftp://mirror/simple'"),
        ({"runtime_pip_no_index": True, "runtime_pip_wheelhouse_dir": "/nonexistent/wheels"},
         "runtime_pip_no_index is true but there is no wheelhouse"),
        ({"runtime_pip_wheelhouse_src": "/nonexistent/wheels"},
         "runtime_pip_wheelhouse_src: /nonexistent/wheels does not exist on the controller"),
    ],
    ids=["os", "arch", "python", "disk", "index-url", "extra-index-url", "no-index", "wheelhouse-src"],
)
def test_preflight_names_the_bad_variable(run_playbook, extra_vars, expected):
    result = run_playbook(PREFLIGHT, extra_vars)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert expected in output, output[-2000:]
    assert "changed=0" in result.stdout


@pytest.mark.parametrize(
    "url", ["https://pypi.example.org/simple", "http://10.0.0.5:3141/root/pypi/+simple/",
            "https://user:token@pkgs.example.org/simple", "file:///srv/pypi/simple"],
)
def test_preflight_accepts_wellformed_index_urls(run_playbook, url):
    result = run_playbook(PREFLIGHT, {"runtime_pip_index_url": url, "runtime_pip_extra_index_urls": [url]})
    assert result.returncode == 0, result.stdout[-2000:]


def test_argument_spec_rejects_wrong_types_before_any_change(run_playbook):
    plays = [{"name": "Whole role", "hosts": "localhost", "gather_facts": False,
              "roles": [{"role": "runlocalai.mlops.runtime"}]}]
    result = run_playbook(plays, {"runtime_min_free_disk_mb": "plenty"}, check=True)
    output = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "runtime_min_free_disk_mb" in output and "int" in output, output[-2000:]
    assert "changed=0" in result.stdout
