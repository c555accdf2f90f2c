"""The raw system every reader returns: topology arrays plus coordinates in the file's units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SystemRef:
    """Where one system lives: enough to load it again in another process (JSON-serialisable)."""

    system_id: str
    format: str
    path: str
    group: str = ""
    topology: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "system_id": self.system_id,
            "format": self.format,
            "path": self.path,
            "group": self.group,
            "topology": self.topology,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SystemRef:
        return cls(**d)


@dataclass
class RawSystem:
    """One trajectory as read, before unit conversion, atom selection and alignment.

    ``coords`` is (F, N, 3) in the file's unit; ``box`` (F, 3) orthorhombic lengths, or (F, 3, 3)
    cell vectors as rows for a triclinic cell (truncated octahedron, rhombic dodecahedron), in
    the same unit, or None. ``unit_hint`` is what the format or file says about units and
    ``unit_hint_source`` how sure that is ("file" for an explicit attribute or a reader that
    converts, "convention" for a format's documented default). ``reference_angstrom`` (N, 3) is
    the reference structure the format ships with the topology (ATLAS/mdCATH PDB), shared by
    replicas; None if none.
    """

    ref: SystemRef
    atom_names: np.ndarray
    elements: np.ndarray
    residue_names: np.ndarray
    residue_ids: np.ndarray
    chain_ids: np.ndarray
    coords: np.ndarray
    unit_hint: str | None = None
    unit_hint_source: str = ""
    times_ns: np.ndarray | None = None
    frame_dt_ns: float | None = None
    box: np.ndarray | None = None
    bonds: np.ndarray | None = None
    ligand_mask: np.ndarray | None = None
    reference_angstrom: np.ndarray | None = None
    ligand_bonds: np.ndarray | None = None
    ligand_charge: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_atoms(self) -> int:
        return len(self.elements)

    @property
    def n_frames(self) -> int:
        return int(self.coords.shape[0]) if self.coords.ndim == 3 else 0
