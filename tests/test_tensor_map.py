"""Safetensors files read through memory maps: the same arrays as safetensors' own reader."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from boltzkinema.io.tensor_map import map_tensors


@pytest.fixture
def tensors(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "z": rng.normal(size=(7, 7, 3)).astype(np.float16),
        "s": rng.normal(size=(7, 5)).astype(np.float32),
        "i": np.arange(6, dtype=np.int64).reshape(2, 3),
        "empty": np.zeros((0, 4), np.float16),
    }
    path = tmp_path / "t.safetensors"
    save_file(arrays, str(path), metadata={"k": "v"})
    return path


def test_mapped_tensors_equal_what_safetensors_reads(tensors):
    mapped, loaded = map_tensors(tensors), load_file(str(tensors))
    assert mapped.keys() == loaded.keys()
    for name, value in loaded.items():
        assert mapped[name].dtype == value.dtype and np.array_equal(mapped[name], value)


def test_mapped_tensors_are_read_only(tensors):
    z = map_tensors(tensors)["z"]
    with pytest.raises(ValueError, match="read-only"):
        z[0, 0, 0] = 1


def test_a_truncated_file_is_refused_by_name(tensors):
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"t\.safetensors.*does not fit the file"):
        map_tensors(tensors)


def test_a_file_that_is_not_safetensors_is_refused_by_name(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match=r"x\.safetensors: not a safetensors file"):
        map_tensors(path)
    path.write_bytes(b"abc")
    with pytest.raises(ValueError, match="no valid header length"):
        map_tensors(path)
    header = b'{"z": {"dtype": "F16"}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(ValueError, match="'z' has a malformed header entry"):
        map_tensors(path)
