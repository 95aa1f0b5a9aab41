# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a GGUF file holds, read from its header with the `gguf` library (llama.cpp's own reader),
never typed in by hand: architecture, size, quantization and the attention shape the fit check
(fit.py) needs, plus the file's SHA-256.

The same fields travel as MLflow tags on a registered model version (prefix ``llm.``):
``metadata_tags`` writes them and ``metadata_from_tags`` reads them back, both from the one key
list FIELDS, so a role can judge the fit of a version without downloading its file.

Plain Python, no Ansible; `gguf` is imported when a file is read (MissingDependencyError when it
is missing). A file that is not GGUF or lacks a required key raises InputError naming the file
and the key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os

from ..common.errors import InputError, MissingDependencyError
from ..common.files import file_sha256

TAG_PREFIX = "llm."
FORMAT = "gguf"

# The metadata, in the order the tags are listed: (field, kind). Tag name = TAG_PREFIX + field.
# kind: str, int or bool (bools are the tag strings "true"/"false"). One list, read both ways.
FIELDS = (
    ("format", "str"),
    ("architecture", "str"),
    ("name", "str"),
    ("file_name", "str"),
    ("quantization", "str"),
    ("parameter_count", "int"),
    ("weights_bytes", "int"),
    ("embedding_bytes", "int"),
    ("output_bytes", "int"),
    ("file_bytes", "int"),
    ("context_length", "int"),
    ("layers", "int"),
    ("attention_heads", "int"),
    ("kv_heads", "int"),
    ("head_size", "int"),
    ("value_head_size", "int"),
    ("embedding_length", "int"),
    ("feed_forward_length", "int"),
    ("vocab_size", "int"),
    ("has_chat_template", "bool"),
    ("sha256", "str"),
    ("gguf_version", "int"),
)
FIELD_KINDS = dict(FIELDS)


def _gguf():
    try:
        import gguf  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MissingDependencyError("gguf", "reading GGUF model files")
    return gguf


def _value(reader, key):
    """The field's value (a list for arrays), or None when the header has no such key."""
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _count(value):
    """An int from a count field; a per-layer list counts as its largest entry (an over-estimate
    for models whose layers differ, which is the safe side for a fit check)."""
    if isinstance(value, (list, tuple)):
        value = max(value) if value else None
    return None if value is None else int(value)


def _required(reader, path, key):
    value = _value(reader, key)
    if value is None:
        raise InputError("%s: the GGUF header has no key %s" % (path, key))
    return value


def quantization_name(gguf, file_type, tensors):
    """general.file_type as llama.cpp names it (LlamaFileType MOSTLY_Q4_1 -> 'Q4_1', ALL_F32 -> 'F32');
    without it (or for an unknown number) the tensor type holding the most elements."""
    if file_type is not None:
        try:
            name = gguf.LlamaFileType(int(file_type)).name
        except ValueError:
            name = None
        if name and name != "GUESSED":
            for prefix in ("MOSTLY_", "ALL_"):
                if name.startswith(prefix):
                    return name[len(prefix):]
            return name
    elements = collections.Counter()
    for tensor in tensors:
        elements[tensor.tensor_type.name] += int(tensor.n_elements)
    return elements.most_common(1)[0][0] if elements else None


def read_metadata(path):
    """The metadata of the GGUF file at path, read from its header (see FIELDS), sha256 included.

    Raises InputError for a missing or unreadable file, a file that is not GGUF, or a header
    that lacks a required key (both named), MissingDependencyError when gguf is not installed.
    """
    if not os.path.isfile(path):
        raise InputError("%s: no such file" % path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except (IOError, OSError) as exc:
        raise InputError("%s: cannot read: %s" % (path, exc.strerror or exc))
    if magic != b"GGUF":
        raise InputError("%s is not a GGUF file (it starts with %r, a GGUF file with b'GGUF')" % (path, magic))
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as exc:  # pylint: disable=broad-except  # gguf raises ValueError, struct/numpy errors on truncation
        raise InputError("%s: not a readable GGUF file: %s" % (path, str(exc) or type(exc).__name__))

    arch = str(_required(reader, path, "general.architecture"))
    layers = _count(_required(reader, path, "%s.block_count" % arch))
    heads = _count(_required(reader, path, "%s.attention.head_count" % arch))
    embedding = _count(_required(reader, path, "%s.embedding_length" % arch))
    context = _count(_required(reader, path, "%s.context_length" % arch))
    kv_heads = _count(_value(reader, "%s.attention.head_count_kv" % arch))
    if not kv_heads:
        kv_heads = heads
    if not heads:
        raise InputError("%s: the GGUF header's %s.attention.head_count is 0" % (path, arch))
    head_size = _count(_value(reader, "%s.attention.key_length" % arch)) or embedding // heads
    value_head_size = _count(_value(reader, "%s.attention.value_length" % arch)) or head_size
    vocab = _count(_value(reader, "%s.vocab_size" % arch))
    if not vocab:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        vocab = len(tokens.data) if tokens is not None else None
    by_name = dict((tensor.name, tensor) for tensor in reader.tensors)
    if not vocab and "token_embd.weight" in by_name:
        vocab = int(by_name["token_embd.weight"].shape[-1])
    if not vocab:
        raise InputError("%s: the GGUF header has no key %s.vocab_size (nor tokenizer.ggml.tokens)" % (path, arch))
    # The FFN's width (the compute buffer's largest activations); a mixture of experts computes
    # expert_used_count experts of expert_feed_forward_length each per token.
    feed_forward = _count(_value(reader, "%s.feed_forward_length" % arch)) or 0
    experts = (_count(_value(reader, "%s.expert_feed_forward_length" % arch)) or 0) * \
        (_count(_value(reader, "%s.expert_used_count" % arch)) or 0)
    feed_forward = max(feed_forward, experts) or None
    name = _value(reader, "general.name")
    version = _value(reader, "GGUF.version")
    return {
        "format": FORMAT,
        "architecture": arch,
        "name": str(name) if name is not None else None,
        "file_name": os.path.basename(path),
        "quantization": quantization_name(gguf, _value(reader, "general.file_type"), reader.tensors),
        "parameter_count": sum(int(tensor.n_elements) for tensor in reader.tensors),
        "weights_bytes": sum(int(tensor.n_bytes) for tensor in reader.tensors),
        # The input embedding stays in RAM under GPU offload; the output matrix (absent when
        # it is tied to the embedding) goes with the output layer (fit.py).
        "embedding_bytes": int(by_name["token_embd.weight"].n_bytes) if "token_embd.weight" in by_name else 0,
        "output_bytes": int(by_name["output.weight"].n_bytes) if "output.weight" in by_name else 0,
        "file_bytes": os.path.getsize(path),
        "context_length": context,
        "layers": layers,
        "attention_heads": heads,
        "kv_heads": kv_heads,
        "head_size": head_size,
        "value_head_size": value_head_size,
        "embedding_length": embedding,
        "feed_forward_length": feed_forward,
        "vocab_size": vocab,
        "has_chat_template": "tokenizer.chat_template" in reader.fields,
        "sha256": file_sha256(path),
        "gguf_version": int(version) if version is not None else None,
    }


def metadata_tags(meta):
    """The metadata as flat MLflow tags: {'llm.architecture': 'llama', 'llm.layers': '30',
    'llm.has_chat_template': 'true', ...}; fields that are None are left out."""
    tags = {}
    for field, kind in FIELDS:
        value = meta.get(field)
        if value is None:
            continue
        if kind == "bool":
            tags[TAG_PREFIX + field] = "true" if value else "false"
        else:
            tags[TAG_PREFIX + field] = str(value)
    return tags


def metadata_from_tags(tags):
    """The inverse of metadata_tags: the llm.* tags of a model version (other tags are ignored)
    back to metadata, ints as ints and bools as bools. Raises InputError naming a tag whose value
    is not of its kind."""
    meta = {}
    for field, kind in FIELDS:
        key = TAG_PREFIX + field
        if key not in (tags or {}):
            continue
        value = tags[key]
        if kind == "int":
            if isinstance(value, bool):
                raise InputError("%s: %r is not a whole number" % (key, value))
            try:
                meta[field] = int(str(value).strip())
            except ValueError:
                raise InputError("%s: %r is not a whole number" % (key, value))
        elif kind == "bool":
            text = str(value).strip().lower()
            if text not in ("true", "false"):
                raise InputError("%s: %r is not true or false" % (key, value))
            meta[field] = text == "true"
        else:
            meta[field] = str(value)
    return meta


def normalize_metadata(value):
    """Metadata given either as llm.* tags (a model version's tags, other tags ignored) or as the
    dict read_metadata returns; checked and typed the same way either way."""
    value = value or {}
    if any(str(key).startswith(TAG_PREFIX) for key in value):
        return metadata_from_tags(value)
    return metadata_from_tags(metadata_tags(value))
