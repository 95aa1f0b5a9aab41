"""tests/gpu without a GPU: run.sh parses and dry-runs, and a model skeleton rebuilds a GGUF file of
the same shape that gguf reads like the original (the GPU check itself runs on a GPU machine only)."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import model_skeleton  # noqa: E402  pylint: disable=wrong-import-position


def test_run_sh_parses_and_dry_runs():
    subprocess.run(["bash", "-n", os.path.join(HERE, "run.sh")], check=True)
    subprocess.run(["bash", "-n", os.path.join(HERE, "prepare.sh")], check=True)
    out = subprocess.run([os.path.join(HERE, "run.sh")], env=dict(os.environ, DRY_RUN="1", OUT=""),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for words in ("build-llama-server.sh cuda", "build.py check", "bench.py estimate --device cuda",
                  "bench.py serve --device cuda", "bench.py serve --device cpu", "bench.py summary"):
        assert words in out.stderr


def test_skeleton_rebuilds_a_file_of_the_same_shape(tmp_path):
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    source = str(tmp_path / "small.gguf")
    writer = gguf.GGUFWriter(source, "llama")
    writer.add_block_count(1)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_tensor("token_embd.weight", np.ones((4, 64), dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float16))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    index = model_skeleton.skeleton(source, str(tmp_path / "skel"))
    assert [t["type"] for t in index["tensors"]] == ["F32", "F16", "Q8_0"]
    with open(str(tmp_path / "skel" / "skeleton.json")) as handle:
        assert json.load(handle)["file_bytes"] == os.path.getsize(source)
    rebuilt = str(tmp_path / "rebuilt.gguf")
    model_skeleton.rebuild(str(tmp_path / "skel"), rebuilt)
    assert os.path.getsize(rebuilt) == os.path.getsize(source)
    before, after = gguf.GGUFReader(source), gguf.GGUFReader(rebuilt)
    assert [(t.name, t.tensor_type, int(t.n_bytes)) for t in before.tensors] == \
        [(t.name, t.tensor_type, int(t.n_bytes)) for t in after.tensors]
    assert set(before.fields) == set(after.fields)
    norm = next(t for t in after.tensors if t.name == "blk.0.attn_norm.weight")
    assert np.all(np.asarray(norm.data, dtype=np.float32) == 1.0)
