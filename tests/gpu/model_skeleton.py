#!/usr/bin/env python3
"""A GGUF model's skeleton, and a model of the same shape rebuilt from it.

The test model (SmolLM2-135M-Instruct Q4_1, 98 MB) is larger than what may travel to a GPU test
machine (64 MiB, the working tree included). Its skeleton does travel: the file's header (every
metadata key, the tokenizer included, and every tensor's name, shape, type and offset: about
2 MB) and a JSON index of the tensors. `rebuild` writes a file with that header and tensors of
the same types and sizes, filled with small pseudo-random weights: llama.cpp loads it like the
original and spends the same memory and time per token on it (the answers are noise). The GPU
test measures tokens/s and memory, never the answers' content.

  model_skeleton.py skeleton MODEL.gguf DIR     # here: DIR/skeleton.head, DIR/skeleton.json
  model_skeleton.py rebuild DIR OUT.gguf        # there: standard library only

`skeleton` needs the gguf library (the project's .venv, or gguf-py of the llama.cpp source).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import sys

# Bytes per block and values per block of the tensor types rebuild can fill.
BLOCKS = {"F32": (4, 1), "F16": (2, 1), "BF16": (2, 1), "Q8_0": (34, 32), "Q4_0": (18, 32), "Q4_1": (20, 32),
          "Q5_0": (22, 32), "Q5_1": (24, 32)}
PATTERN_BLOCKS = 8192  # distinct random blocks, repeated over a tensor


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def skeleton(model, out_dir):
    import gguf  # pylint: disable=import-outside-toplevel

    reader = gguf.GGUFReader(model, "r")
    tensors = sorted(reader.tensors, key=lambda t: int(t.data_offset))
    data_start = int(tensors[0].data_offset) if tensors else os.path.getsize(model)
    unsupported = sorted(set(t.tensor_type.name for t in tensors) - set(BLOCKS))
    if unsupported:
        raise SystemExit("model_skeleton: cannot rebuild tensors of type %s" % ", ".join(unsupported))
    os.makedirs(out_dir, exist_ok=True)
    with open(model, "rb") as source, open(os.path.join(out_dir, "skeleton.head"), "wb") as head:
        head.write(source.read(data_start))
    index = {
        "source_file": os.path.basename(model),
        "source_sha256": _sha256(model),
        "file_bytes": os.path.getsize(model),
        "data_start": data_start,
        "tensors": [{"name": t.name, "type": t.tensor_type.name, "offset": int(t.data_offset), "bytes": int(t.n_bytes)}
                    for t in tensors],
    }
    with open(os.path.join(out_dir, "skeleton.json"), "w") as handle:
        json.dump(index, handle, indent=1)
    return index


def _pattern(kind, name, rng):
    """PATTERN_BLOCKS blocks of one type: weights of about +-0.04 (norms: 1.0)."""
    size, _per_block = BLOCKS[kind]
    if kind in ("F32", "F16", "BF16"):
        count = PATTERN_BLOCKS * 32
        if name.endswith("norm.weight"):
            values = [1.0] * count
        else:
            values = [rng.uniform(-0.04, 0.04) for _ in range(count)]
        if kind == "F32":
            return struct.pack("<%df" % count, *values)
        if kind == "F16":
            return struct.pack("<%de" % count, *values)
        return b"".join(struct.pack("<f", v)[2:] for v in values)  # bf16: the high half of an f32
    blocks = []
    for _ in range(PATTERN_BLOCKS):
        if kind == "Q8_0":
            blocks.append(struct.pack("<e", 0.0003) + bytes(rng.randrange(256) for _ in range(32)))
        elif kind == "Q4_0":
            blocks.append(struct.pack("<e", 0.005) + bytes(rng.randrange(256) for _ in range(16)))
        elif kind == "Q4_1":
            blocks.append(struct.pack("<ee", 0.005, -0.0375) + bytes(rng.randrange(256) for _ in range(16)))
        elif kind == "Q5_0":
            blocks.append(struct.pack("<e", 0.0025) + bytes(rng.randrange(256) for _ in range(20)))
        else:  # Q5_1
            blocks.append(struct.pack("<ee", 0.0025, -0.04) + bytes(rng.randrange(256) for _ in range(20)))
    data = b"".join(blocks)
    assert len(data) == PATTERN_BLOCKS * size
    return data


def rebuild(skeleton_dir, out):
    with open(os.path.join(skeleton_dir, "skeleton.json")) as handle:
        index = json.load(handle)
    rng = random.Random(0)
    patterns = {}
    with open(os.path.join(skeleton_dir, "skeleton.head"), "rb") as head, open(out + ".tmp", "wb") as target:
        header = head.read()
        if len(header) != index["data_start"] or header[:4] != b"GGUF":
            raise SystemExit("model_skeleton: %s/skeleton.head does not match skeleton.json" % skeleton_dir)
        target.write(header)
        for tensor in index["tensors"]:
            if tensor["offset"] < target.tell():
                raise SystemExit("model_skeleton: tensor %s overlaps the one before" % tensor["name"])
            target.write(b"\0" * (tensor["offset"] - target.tell()))
            key = (tensor["type"], tensor["name"].endswith("norm.weight"))
            if key not in patterns:
                patterns[key] = _pattern(tensor["type"], tensor["name"], rng)
            pattern, left = patterns[key], tensor["bytes"]
            while left > 0:
                chunk = pattern[:left]
                target.write(chunk)
                left -= len(chunk)
        target.write(b"\0" * (index["file_bytes"] - target.tell()))
    os.replace(out + ".tmp", out)
    return {"model": out, "bytes": os.path.getsize(out), "shape_of": index["source_file"],
            "shape_of_sha256": index["source_sha256"]}


def main(argv):
    if len(argv) == 3 and argv[0] == "skeleton":
        index = skeleton(argv[1], argv[2])
        print("skeleton of %s: %d tensors, header %d bytes" % (index["source_file"], len(index["tensors"]), index["data_start"]))
        return 0
    if len(argv) == 3 and argv[0] == "rebuild":
        print(json.dumps(rebuild(argv[1], argv[2])))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
