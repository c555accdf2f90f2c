"""The processed store: sharded HDF5, one group per system, frames readable one at a time.

Layout (DESIGN §2): ``/systems/{system_id}`` with ``coords`` (F, M, 3) float32 Å chunked by frame,
``times_ns``, per-atom ``atom_names``, ``elements``, ``residue_names``, ``residue_index`` (per
chain), ``chain_index``, ``mol_type``, ``token_index``, ``observed_mask``; ``bonds`` (B, 2) and
``bond_lengths``; attributes ``source``, ``unit_detected``, ``unit_confidence``, ``unit_evidence``
(JSON), ``frame_dt_ns``, ``topology_hash``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from boltzkinema.util import ensure_free_space

_STR = h5py.string_dtype("utf-8")
# System attributes that the writer stores as JSON text (dicts and lists).
JSON_ATTRS = frozenset(
    ["unit_evidence", "notes", "unwrap", "ligand", "frame_dt_evidence", "removed_residues"]
)
TOPOLOGY_FIELDS = (
    "atom_names",
    "elements",
    "residue_names",
    "residue_index",
    "chain_index",
    "mol_type",
    "token_index",
    "observed_mask",
    "bonds",
    "bond_lengths",
)
_STRING_FIELDS = ("atom_names", "elements", "residue_names")


@dataclass
class ProcessedSystem:
    """One system as stored: float32 Å coordinates and the topology the model needs."""

    system_id: str
    coords: np.ndarray
    times_ns: np.ndarray
    atom_names: np.ndarray
    elements: np.ndarray
    residue_names: np.ndarray
    residue_index: np.ndarray
    chain_index: np.ndarray
    mol_type: np.ndarray
    token_index: np.ndarray
    observed_mask: np.ndarray
    bonds: np.ndarray
    bond_lengths: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    reference_coords: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.coords.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.token_index.max()) + 1 if len(self.token_index) else 0


def _bytes(system: ProcessedSystem) -> int:
    """What a system takes in a shard, uncompressed (its arrays; strings at 8 bytes each)."""
    total = system.coords.size * 4 + system.times_ns.size * 8
    if system.reference_coords is not None:
        total += system.reference_coords.size * 4
    for name in TOPOLOGY_FIELDS:
        value = np.asarray(getattr(system, name))
        total += value.size * (8 if value.dtype == object else value.itemsize)
    return int(total)


class ShardWriter:
    """Writes systems into ``{path}.tmp`` and renames it to ``path`` only when closed cleanly."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self._file = h5py.File(self.tmp, "w")
        self._systems = self._file.create_group("systems")
        self._file.attrs["format"] = "boltzkinema-processed"
        self._file.attrs["format_version"] = 1

    def add(self, system: ProcessedSystem) -> None:
        """Write one system; one that would not fit in the free space is refused before any of
        it is written (HDF5 cannot report a full disk once it has buffered the data: it
        crashes on close)."""
        if system.system_id in self._systems:
            raise ValueError(f"system {system.system_id!r} written twice to {self.path}")
        ensure_free_space(self.tmp, _bytes(system))
        g = self._systems.create_group(system.system_id)
        m = system.n_atoms
        g.create_dataset(
            "coords",
            data=np.asarray(system.coords, dtype=np.float32),
            chunks=(1, max(m, 1), 3) if system.n_frames else None,
        )
        g.create_dataset("times_ns", data=system.times_ns.astype(np.float64))
        if system.reference_coords is not None:
            g.create_dataset("reference_coords", data=system.reference_coords.astype(np.float32))
        for name in TOPOLOGY_FIELDS:
            value = getattr(system, name)
            if name in _STRING_FIELDS:
                g.create_dataset(name, data=np.asarray(value, dtype=object), dtype=_STR)
            else:
                g.create_dataset(name, data=value)
        for key, value in system.attrs.items():
            g.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value

    def close(self) -> None:
        self._file.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ShardReader:
    """Random access to a processed shard: topology per system, any subset of frames."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = h5py.File(self.path, "r")
        self._systems = self._file["systems"]

    def system_ids(self) -> list[str]:
        return sorted(self._systems)

    def __contains__(self, system_id: str) -> bool:
        return system_id in self._systems

    def n_frames(self, system_id: str) -> int:
        return int(self._systems[system_id]["coords"].shape[0])

    def attrs(self, system_id: str) -> dict[str, Any]:
        out = {}
        for key, value in self._systems[system_id].attrs.items():
            if key in JSON_ATTRS:
                value = json.loads(value)
            out[key] = value.item() if isinstance(value, np.generic) else value
        return out

    def frames(self, system_id: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Coordinates (len(indices), M, 3) of the given frames, in the order given."""
        idx = np.asarray(indices, dtype=np.int64)
        uniq, inverse = np.unique(idx, return_inverse=True)
        data = self._systems[system_id]["coords"][uniq]
        return data[inverse]

    def load(
        self, system_id: str, frames: Sequence[int] | np.ndarray | None = None
    ) -> ProcessedSystem:
        """The whole system, or only the chosen frames."""
        g = self._systems[system_id]
        fields: dict[str, Any] = {}
        for name in TOPOLOGY_FIELDS:
            value = g[name][()]
            if name in _STRING_FIELDS:
                value = np.array(
                    [v.decode() if isinstance(v, bytes) else v for v in value], dtype=str
                )
            fields[name] = value
        times = g["times_ns"][()]
        reference = g["reference_coords"][()] if "reference_coords" in g else None
        if frames is None:
            coords = g["coords"][()]
        else:
            coords = self.frames(system_id, frames)
            times = times[np.asarray(frames, dtype=np.int64)]
        return ProcessedSystem(
            system_id,
            coords,
            times,
            attrs=self.attrs(system_id),
            reference_coords=reference,
            **fields,
        )

    def __iter__(self) -> Iterator[ProcessedSystem]:
        for sid in self.system_ids():
            yield self.load(sid)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
