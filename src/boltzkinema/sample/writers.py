"""Write generated trajectories as files that VMD, PyMOL and mdtraj open.

``{mode}.npz`` holds ``coords`` (S, F, M, 3) in Å, ``times_ns`` (F,) relative to the start frame,
``given`` (F,), True for the conditioning frames copied from the reference (evaluation scores only
the others), and ``start_frame``, the reference frame index sampling started from; beside it, per
sample,
``{mode}_s{k}.xtc`` and one topology ``{system}.{mode}.pdb`` with chains, residues, elements
and CONECT records for ligand bonds.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj
import numpy as np

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.io.chemistry import MolType
from boltzkinema.io.mdtraj_files import ascii_paths
from boltzkinema.util import atomic_output, ensure_free_space


def mdtraj_topology(system: ProcessedSystem) -> mdtraj.Topology:
    """An mdtraj topology from a processed system (chains, residues, elements, bonds)."""
    top = mdtraj.Topology()
    chains: dict[int, mdtraj.core.topology.Chain] = {}
    residues: dict[tuple[int, int], mdtraj.core.topology.Residue] = {}
    atoms = []
    for i in range(system.n_atoms):
        c = int(system.chain_index[i])
        if c not in chains:
            chains[c] = top.add_chain()
        key = (c, int(system.residue_index[i]))
        if key not in residues:
            residues[key] = top.add_residue(
                str(system.residue_names[i]), chains[c], resSeq=key[1] + 1
            )
        element = mdtraj.element.Element.getBySymbol(str(system.elements[i]))
        atoms.append(top.add_atom(str(system.atom_names[i]), element, residues[key]))
    for a, b in system.bonds.tolist():
        top.add_bond(atoms[a], atoms[b])
    return top


def _trajectory(
    system: ProcessedSystem, coords: np.ndarray, times_ns: np.ndarray
) -> mdtraj.Trajectory:
    return mdtraj.Trajectory(
        coords.astype(np.float32) / 10.0,
        mdtraj_topology(system),
        time=np.asarray(times_ns) * 1000.0,
    )


def write_pdb(system: ProcessedSystem, coords: np.ndarray, path: Path) -> None:
    """One frame as PDB; ligand bonds become CONECT records."""
    with atomic_output(path) as tmp:
        _trajectory(system, coords[None], np.zeros(1)).save_pdb(str(tmp))
        lig = system.mol_type == int(MolType.LIGAND)
        if lig.any():
            lines = tmp.read_text().splitlines()
            lines = [ln for ln in lines if not ln.startswith(("CONECT", "END"))]
            serial = _pdb_serials(lines)
            for a, b in system.bonds.tolist():
                if lig[a] or lig[b]:
                    lines.append(f"CONECT{serial[a]:5d}{serial[b]:5d}")
            tmp.write_text("\n".join([*lines, "END"]) + "\n")


def _pdb_serials(lines: list[str]) -> list[int]:
    return [int(ln[6:11]) for ln in lines if ln.startswith(("ATOM", "HETATM"))]


def write_samples(
    system: ProcessedSystem,
    coords: np.ndarray,
    times_ns: np.ndarray,
    out_dir: Path,
    mode: str,
    given: np.ndarray | None = None,
    start_frame: int = 0,
) -> dict[str, Path]:
    """npz (Å, ns, the ``given`` frame mask and ``start_frame``), one xtc per sample and the
    topology PDB; all written atomically. ``given`` defaults to no frame given."""
    given = np.zeros(coords.shape[1], bool) if given is None else np.asarray(given, bool)
    if given.shape != (coords.shape[1],):
        raise ValueError(
            f"given must have one entry per frame ({coords.shape[1]}), not {given.shape}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = out_dir / f"{mode}.npz"
    # npz (float32) plus one xtc per sample (at most as large): twice the coordinates.
    ensure_free_space(out_dir, 2 * coords.size * 4)
    with atomic_output(npz) as tmp:
        np.savez(
            tmp,
            coords=coords.astype(np.float32),
            times_ns=np.asarray(times_ns, np.float64),
            system_id=np.array(system.system_id),
            given=given,
            start_frame=np.array(int(start_frame), np.int64),
        )
    pdb = out_dir / f"{system.system_id}.{mode}.pdb"
    write_pdb(system, coords[0, 0], pdb)
    paths = {"npz": npz, "pdb": pdb}
    for k, sample_coords in enumerate(coords):
        xtc = out_dir / f"{mode}_s{k}.xtc"
        with atomic_output(xtc) as tmp, ascii_paths(str(tmp)) as (writable,):
            _trajectory(system, sample_coords, times_ns).save_xtc(writable)
        paths[f"xtc{k}"] = xtc
    return paths
