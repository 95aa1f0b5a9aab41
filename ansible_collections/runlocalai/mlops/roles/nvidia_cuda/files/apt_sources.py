"""Debian archive entries for the nvidia_cuda role's own apt sources file.

Runs on the host (read-only). Reads the host's apt sources, one-line
(`sources.list`, `*.list`) and deb822 (`*.sources`) formats, and prints as
JSON the content of a deb822 file that enables the wanted components on every
Debian archive entry the host already uses for its release (CODENAME,
CODENAME-updates, CODENAME-security): same URI, suite, Signed-By and
architectures, only the components that entry lacks. So a host on a local
mirror keeps using that mirror, and no entry is configured twice.

usage: apt_sources.py --codename C --components a,b [--exclude PATH]...
                      [--mirror URI [--signed-by KEY]] [--root DIR]

With --mirror, the file holds one entry: that URI, suite CODENAME.
Output: {"content": "..." or "" when nothing is missing, "entries": [...],
"found": bool (the host has an entry for CODENAME, or --mirror was given)}.
"""

import argparse
import glob
import json
import os
import sys

HEADER = (
    "# Managed by Ansible (runlocalai.mlops.nvidia_cuda). Debian components\n"
    "# {components}\n"
    "# for the NVIDIA driver and CUDA packages, on the archive entries this\n"
    "# host already uses. Local edits are overwritten.\n"
)


def norm_uri(uri):
    return uri.rstrip("/")


def parse_one_line(path, text):
    """Entries of a one-line format file: deb [opts] uri suite components..."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        kind = tokens.pop(0)
        options = {}
        if tokens and tokens[0].startswith("["):
            words = []
            while tokens:
                word = tokens.pop(0)
                words.append(word)
                if word.endswith("]"):
                    break
            for option in " ".join(words).strip("[] ").split():
                key, value = (option.split("=", 1) + [""])[:2]
                options[key.lower()] = value
        if kind != "deb" or len(tokens) < 2:
            continue
        entries.append({
            "source": "%s:%d" % (path, number),
            "uri": norm_uri(tokens[0]),
            "suite": tokens[1],
            "components": tokens[2:],
            "signed_by": options.get("signed-by", ""),
            "architectures": [a for a in options.get("arch", "").split(",") if a],
        })
    return entries


def deb822_paragraphs(text):
    """Paragraphs of a deb822 file as {lowercased field: value}; values keep
    continuation lines (an inline Signed-By key) joined with newlines."""
    paragraph, key, start = {}, None, 1
    for number, raw in enumerate(text.splitlines() + [""], 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if paragraph:
                yield start, paragraph
            paragraph, key = {}, None
            continue
        if raw[0] in " \t" and key:
            paragraph[key] += "\n" + raw.strip()
            continue
        if not paragraph:
            start = number
        key, value = (raw.split(":", 1) + [""])[:2]
        key = key.strip().lower()
        paragraph[key] = value.strip()


def parse_deb822(path, text):
    entries = []
    for number, fields in deb822_paragraphs(text):
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                entries.append({
                    "source": "%s:%d" % (path, number),
                    "uri": norm_uri(uri),
                    "suite": suite,
                    "components": fields.get("components", "").split(),
                    "signed_by": fields.get("signed-by", ""),
                    "architectures": fields.get("architectures", "").split(),
                })
    return entries


def read_entries(root, exclude):
    apt = os.path.join(root, "etc/apt")
    paths = [os.path.join(apt, "sources.list")]
    paths += sorted(glob.glob(os.path.join(apt, "sources.list.d", "*.list")))
    paths += sorted(glob.glob(os.path.join(apt, "sources.list.d", "*.sources")))
    entries = []
    for path in paths:
        if path in exclude or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        parse = parse_deb822 if path.endswith(".sources") else parse_one_line
        entries.extend(parse(path, text))
    return entries


def field(name, value):
    """One deb822 field; a multi-line value (inline key) as continuation lines."""
    lines = value.split("\n")
    rest = "".join("\n " + (line if line else ".") for line in lines[1:])
    return "%s:%s%s\n" % (name, " " + lines[0] if lines[0] else "", rest)


def render(stanzas, components):
    if not stanzas:
        return ""
    out = [HEADER.format(components=" ".join(components))]
    for stanza in stanzas:
        text = "\nTypes: deb\n"
        text += field("URIs", stanza["uri"])
        text += field("Suites", " ".join(stanza["suites"]))
        text += field("Components", " ".join(stanza["components"]))
        if stanza["architectures"]:
            text += field("Architectures", " ".join(stanza["architectures"]))
        if stanza["signed_by"]:
            text += field("Signed-By", stanza["signed_by"])
        out.append(text)
    return "".join(out)


def plan(entries, codename, wanted, mirror="", signed_by=""):
    """Stanzas giving every wanted component on the release's archive entries."""
    suites = [codename, codename + "-updates", codename + "-security"]
    have = {}
    for entry in entries:
        have.setdefault((entry["uri"], entry["suite"]), set()).update(entry["components"])
    if mirror:
        mirror = norm_uri(mirror)
        if not signed_by:
            signed_by = next(
                (e["signed_by"] for e in entries if (e["uri"], e["suite"]) == (mirror, codename)), "")
        targets = [{"uri": mirror, "suite": codename, "signed_by": signed_by, "architectures": []}]
        found = True
    else:
        targets, seen = [], set()
        for entry in entries:
            key = (entry["uri"], entry["suite"])
            if entry["suite"] in suites and key not in seen:
                seen.add(key)
                targets.append(entry)
        found = any(t["suite"] == codename for t in targets)
    stanzas = []
    for target in targets:
        missing = [c for c in wanted if c not in have.get((target["uri"], target["suite"]), set())]
        if not missing:
            continue
        for stanza in stanzas:
            if (stanza["uri"], stanza["signed_by"], stanza["architectures"], stanza["components"]) == (
                    target["uri"], target["signed_by"], target["architectures"], missing):
                stanza["suites"].append(target["suite"])
                break
        else:
            stanzas.append({"uri": target["uri"], "suites": [target["suite"]], "components": missing,
                            "signed_by": target["signed_by"], "architectures": target["architectures"]})
    return found, stanzas


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codename", required=True)
    parser.add_argument("--components", required=True)
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--mirror", default="")
    parser.add_argument("--signed-by", default="")
    parser.add_argument("--root", default="/")
    args = parser.parse_args(argv)
    wanted = [c for c in args.components.split(",") if c]
    entries = read_entries(args.root, set(args.exclude))
    found, stanzas = plan(entries, args.codename, wanted, args.mirror, args.signed_by)
    json.dump({"found": found, "entries": entries, "content": render(stanzas, wanted)}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
