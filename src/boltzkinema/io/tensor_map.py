"""The tensors of a safetensors file as read-only memory maps.

A reader that takes a few rows and columns of a large tensor (a crop of the trunk's pair
embedding) then touches only their bytes: safetensors' own readers copy whole slices first, and
a two-dimensional slice is copied element by element (15x slower than the gather itself). The
layout is the format's specification: an 8-byte little-endian header length, a JSON header of
dtype, shape and byte offsets per tensor, then the row-major data. Nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import mmap
from pathlib import Path

import numpy as np

_DTYPES = {
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def map_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the file at ``path`` as a read-only array backed by a memory map; a
    ``ValueError`` naming the file when it is not a complete safetensors file."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little") if size >= 8 else -1
        if not 0 < n <= size - 8:
            raise ValueError(f"{path}: not a safetensors file (no valid header length)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a safetensors file (header: {exc})") from exc
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = _DTYPES.get(info["dtype"]), tuple(int(d) for d in info["shape"])
            start, end = (8 + n + int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry") from exc
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} is {info['dtype']}, which NumPy cannot map")
        count = math.prod(shape)
        if end - start != count * np.dtype(dtype).itemsize or end > size:
            raise ValueError(
                f"{path}: tensor {name!r} does not fit the file (truncated?); write it again"
            )
        out[name] = np.frombuffer(buffer, dtype, count, start).reshape(shape)
    return out
