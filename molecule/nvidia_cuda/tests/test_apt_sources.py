"""The role's apt_sources.py on recorded apt configurations (runs on the controller, no host)."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = os.path.join(
    os.environ["MOLECULE_PROJECT_DIRECTORY"],
    "ansible_collections/runlocalai/mlops/roles/nvidia_cuda/files/apt_sources.py",
)
WANTED = "contrib,non-free,non-free-firmware"
OWN = "/etc/apt/sources.list.d/runlocalai-debian-nonfree.sources"


def run(root, *args):
    out = subprocess.run([sys.executable, SCRIPT, "--root", str(root)] + list(args),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def write(root, path, text):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text))


def stanzas(content):
    body = "\n".join(line for line in content.splitlines() if not line.startswith("#"))
    return [p.strip() for p in body.split("\n\n") if p.strip()]


def test_one_line_sources_all_release_suites_with_options(tmp_path):
    write(tmp_path, "/etc/apt/sources.list", """\
        # a comment
        deb http://mirror.example/debian/ bookworm main
        deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm-updates main contrib # note
        deb-src http://mirror.example/debian bookworm main
        deb http://security.example/debian-security bookworm-security main non-free-firmware
        deb http://mirror.example/debian bookworm-backports main
        deb http://mirror.example/debian trixie main
        """)
    result = run(tmp_path, "--codename", "bookworm", "--components", WANTED)
    assert result["found"] is True
    assert stanzas(result["content"]) == [
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
        "Components: contrib non-free non-free-firmware",
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-updates\n"
        "Components: non-free non-free-firmware\nArchitectures: amd64\nSigned-By: /k.gpg",
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: contrib non-free",
    ]


def test_deb822_suites_grouped_signed_by_copied_disabled_and_flat_ignored(tmp_path):
    write(tmp_path, "/etc/apt/sources.list.d/debian.sources", """\
        Types: deb deb-src
        URIs: http://mirror.example/debian
        Suites: trixie trixie-updates
        Components: main contrib
        Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp

        # disabled: must not count as having non-free
        Types: deb
        URIs: http://mirror.example/debian
        Suites: trixie
        Components: non-free
        Enabled: no
        """)
    write(tmp_path, "/etc/apt/sources.list.d/vendor.sources", """\
        Types: deb
        URIs: https://vendor.example/repo/
        Suites: /
        Signed-By:
         -----BEGIN PGP PUBLIC KEY BLOCK-----
         .
         abc
         -----END PGP PUBLIC KEY BLOCK-----
        """)
    result = run(tmp_path, "--codename", "trixie", "--components", WANTED)
    assert stanzas(result["content"]) == [
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\n"
        "Components: non-free non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp"
    ]


def test_own_file_is_excluded_and_nothing_missing_means_no_file(tmp_path):
    write(tmp_path, "/etc/apt/sources.list",
          "deb http://mirror.example/debian bookworm main contrib non-free non-free-firmware\n")
    write(tmp_path, OWN, "Types: deb\nURIs: http://other.example/debian\nSuites: bookworm\nComponents: contrib\n")
    result = run(tmp_path, "--codename", "bookworm", "--components", WANTED,
                 "--exclude", str(tmp_path / OWN.lstrip("/")))
    assert result["found"] is True
    assert result["content"] == ""
    assert [e["uri"] for e in result["entries"]] == ["http://mirror.example/debian"]


def test_no_entry_for_the_release_is_reported(tmp_path):
    write(tmp_path, "/etc/apt/sources.list", "deb http://mirror.example/debian stable main\n")
    result = run(tmp_path, "--codename", "bookworm", "--components", WANTED)
    assert result["found"] is False and result["content"] == ""


def test_explicit_mirror_takes_the_hosts_key_for_it(tmp_path):
    write(tmp_path, "/etc/apt/sources.list",
          "deb [signed-by=/m.gpg] http://mirror.example/debian bookworm main non-free\n")
    result = run(tmp_path, "--codename", "bookworm", "--components", WANTED,
                 "--mirror", "http://mirror.example/debian/")
    assert stanzas(result["content"]) == [
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
        "Components: contrib non-free-firmware\nSigned-By: /m.gpg"
    ]
    other = run(tmp_path, "--codename", "bookworm", "--components", WANTED,
                "--mirror", "http://local.example/debian", "--signed-by", "/local.gpg")
    assert stanzas(other["content"]) == [
        "Types: deb\nURIs: http://local.example/debian\nSuites: bookworm\n"
        "Components: contrib non-free non-free-firmware\nSigned-By: /local.gpg"
    ]


def test_inline_key_is_written_back_as_continuation_lines(tmp_path):
    write(tmp_path, "/etc/apt/sources.list.d/debian.sources", """\
        Types: deb
        URIs: http://mirror.example/debian
        Suites: bookworm
        Components: main
        Signed-By:
         -----BEGIN PGP PUBLIC KEY BLOCK-----
         .
         abc
         -----END PGP PUBLIC KEY BLOCK-----
        """)
    content = run(tmp_path, "--codename", "bookworm", "--components", "contrib")["content"]
    assert content.endswith(
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n")
