# -*- coding: utf-8 -*-
"""llm/gguf.py: metadata read from tiny GGUF files the tests write, the llm.* tags both ways."""

import hashlib
import os
import sys

import pytest

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import InputError, MissingDependencyError
from ansible_collections.runlocalai.mlops.plugins.module_utils.common import files
from ansible_collections.runlocalai.mlops.plugins.module_utils.llm import gguf
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.gguf_files import SMOLLM2_135M, write_gguf


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_every_field_of_a_llama_file_with_chat_template(tmp_path):
    path = tmp_path / "tiny.gguf"
    expected = write_gguf(path, layers=3, heads=4, kv_heads=2, embedding=64, vocab=96, context=1024)
    meta = gguf.read_metadata(str(path))
    assert meta == {
        "format": "gguf",
        "architecture": "llama",
        "name": "tiny-llama",
        "file_name": "tiny.gguf",
        "quantization": "F16",
        "parameter_count": expected["parameter_count"],
        "weights_bytes": expected["weights_bytes"],
        "embedding_bytes": 96 * 64 * 2,
        "output_bytes": 96 * 64 * 2,
        "file_bytes": os.path.getsize(str(path)),
        "context_length": 1024,
        "layers": 3,
        "attention_heads": 4,
        "kv_heads": 2,
        "head_size": 16,
        "value_head_size": 16,
        "embedding_length": 64,
        "feed_forward_length": 128,
        "vocab_size": 96,
        "has_chat_template": True,
        "sha256": sha256_of(str(path)),
        "gguf_version": 3,
    }
    # The file holds the tensors plus a header: the weights are a little less than the file.
    assert meta["weights_bytes"] < meta["file_bytes"] < meta["weights_bytes"] + 16384


def test_defaults_and_fallbacks_without_optional_keys(tmp_path):
    """No chat template, no head_count_kv (= heads), explicit key/value lengths, no vocab_size
    (the token list counts), no general.file_type (the most common tensor type), tied output."""
    path = tmp_path / "bare.gguf"
    expected = write_gguf(path, layers=2, heads=4, kv_heads=None, chat_template=False, key_length=32, value_length=48,
                          skip=("llama.vocab_size",), tokens=True, file_type=None, output=False)
    meta = gguf.read_metadata(str(path))
    assert meta["has_chat_template"] is False
    assert meta["kv_heads"] == 4
    assert meta["head_size"] == 32 and meta["value_head_size"] == 48
    assert meta["vocab_size"] == 96
    assert meta["quantization"] == "F16"
    assert meta["output_bytes"] == 0
    assert meta["weights_bytes"] == expected["weights_bytes"]
    assert meta["parameter_count"] == expected["parameter_count"]


def test_file_type_names(tmp_path):
    path = tmp_path / "f32.gguf"
    write_gguf(path, file_type="F32")
    assert gguf.read_metadata(str(path))["quantization"] == "F32"
    path = tmp_path / "q4_1.gguf"
    write_gguf(path, file_type="Q4_1")  # the tensors are f16; the header's file type is what counts
    assert gguf.read_metadata(str(path))["quantization"] == "Q4_1"


def test_vocab_from_the_embedding_when_no_key_nor_tokens(tmp_path):
    path = tmp_path / "novocab.gguf"
    write_gguf(path, vocab=80, skip=("llama.vocab_size",))
    assert gguf.read_metadata(str(path))["vocab_size"] == 80


def test_not_gguf_missing_key_truncated_and_missing_file(tmp_path):
    text = tmp_path / "model.bin"
    text.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(InputError) as error:
        gguf.read_metadata(str(text))
    assert str(error.value) == "%s is not a GGUF file (it starts with b'PK\\x03\\x04', a GGUF file with b'GGUF')" % text

    lacking = tmp_path / "lacking.gguf"
    write_gguf(lacking, skip=("llama.block_count",))
    with pytest.raises(InputError) as error:
        gguf.read_metadata(str(lacking))
    assert str(error.value) == "%s: the GGUF header has no key llama.block_count" % lacking

    good = tmp_path / "good.gguf"
    write_gguf(good)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(InputError) as error:
        gguf.read_metadata(str(truncated))
    assert str(error.value).startswith("%s: not a readable GGUF file: " % truncated)

    with pytest.raises(InputError) as error:
        gguf.read_metadata(str(tmp_path / "absent.gguf"))
    assert str(error.value) == "%s: no such file" % (tmp_path / "absent.gguf")


def test_missing_library(tmp_path, monkeypatch):
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf raises ImportError
    with pytest.raises(MissingDependencyError) as error:
        gguf.read_metadata(str(path))
    assert error.value.library == "gguf"


def test_sha256_is_streamed_in_blocks(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(3 * files.CHUNK + 5))
    monkeypatch.setattr(files, "CHUNK", 1 << 16)
    assert gguf.file_sha256(str(path)) == sha256_of(str(path))


def test_tags_round_trip(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    meta = gguf.read_metadata(str(path))
    tags = gguf.metadata_tags(meta)
    assert set(tags) == set("llm." + field for field, _kind in gguf.FIELDS)
    assert all(isinstance(value, str) for value in tags.values())
    assert tags["llm.format"] == "gguf"
    assert tags["llm.architecture"] == "llama"
    assert tags["llm.parameter_count"] == str(meta["parameter_count"])
    assert tags["llm.has_chat_template"] == "true"
    assert tags["llm.sha256"] == meta["sha256"]
    assert gguf.metadata_from_tags(tags) == meta
    # A version's other tags are ignored; the metadata dict itself is accepted too.
    assert gguf.metadata_from_tags(dict(tags, **{"validation.passed": "true"})) == meta
    assert gguf.normalize_metadata(dict(tags, other="x")) == meta
    assert gguf.normalize_metadata(meta) == meta
    assert gguf.metadata_from_tags(gguf.metadata_tags(SMOLLM2_135M)) == SMOLLM2_135M


def test_tags_leave_out_none_and_refuse_bad_values():
    meta = dict(SMOLLM2_135M, name=None)
    assert "llm.name" not in gguf.metadata_tags(meta)
    with pytest.raises(InputError) as error:
        gguf.metadata_from_tags({"llm.layers": "thirty"})
    assert str(error.value) == "llm.layers: 'thirty' is not a whole number"
    with pytest.raises(InputError) as error:
        gguf.metadata_from_tags({"llm.has_chat_template": "yes"})
    assert str(error.value) == "llm.has_chat_template: 'yes' is not true or false"
    assert gguf.metadata_from_tags({"llm.layers": 30, "llm.has_chat_template": False}) == {"layers": 30, "has_chat_template": False}
