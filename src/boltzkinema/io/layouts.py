"""Write trajectories in the raw layouts we read (MISATO, mdCATH, ATLAS).

Used to store the bundled example and to build real-layout test fixtures. Each writer takes an
mdtraj trajectory (nm, as mdtraj holds it) and writes what the real archives hold, in their units.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import mdtraj
import numpy as np

from boltzkinema.io.chemistry import PROTEIN_RESIDUES
from boltzkinema.io.misato import LIGAND_RESIDUE, code_tables
from boltzkinema.util import atomic_output

_GENERIC_TYPES = {"C": "CT", "N": "N", "O": "O", "S": "S", "H": "H"}
_HISTIDINES = {"HIS", "HID", "HIP", "HSD", "HSE", "HSP"}  # MISATO codes every histidine as HIE


@contextmanager
def _atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file written under a temporary name, renamed on success, removed on failure."""
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        yield f


def misato_codes(
    traj: mdtraj.Trajectory, amber_types: list[str], ligand_residue: str
) -> dict[str, np.ndarray]:
    """MISATO per-atom code arrays (atomic number, compact element, residue type, atom type)."""
    tables = code_tables()
    res_code = {v: int(k) for k, v in tables["atoms_residue_map"].items()}
    type_code = {v: int(k) for k, v in tables["atoms_type_map"].items()}
    compact = {v: int(k) for k, v in tables["map_elements_numbers_number"].items()}
    number, element, residue, atype = [], [], [], []
    for atom, t in zip(traj.topology.atoms, amber_types, strict=True):
        sym = atom.element.symbol
        number.append(atom.element.number)
        element.append(compact[sym.upper()])
        rname = atom.residue.name
        if rname == ligand_residue:
            residue.append(res_code[LIGAND_RESIDUE])
        elif rname in res_code:
            residue.append(res_code[rname])
        elif rname in _HISTIDINES:
            residue.append(res_code["HIE"])
        elif PROTEIN_RESIDUES.get(rname) in res_code:
            residue.append(res_code[PROTEIN_RESIDUES[rname]])
        else:
            raise ValueError(f"residue {rname} has no MISATO residue code")
        atype.append(type_code.get(t, type_code[_GENERIC_TYPES.get(sym, "CT")]))
    as_int = {"dtype": np.int64}
    return {
        "atoms_number": np.array(number, **as_int),
        "atoms_element": np.array(element, **as_int),
        "atoms_residue": np.array(residue, **as_int),
        "atoms_type": np.array(atype, **as_int),
    }


def write_misato(
    path: Path, groups: dict[str, tuple[mdtraj.Trajectory, list[str]]], ligand_residue: str
) -> None:
    """MISATO ``MD.hdf5``: coordinates in Å (float64), per-frame ligand RMSD and distance."""
    with _atomic_h5(path) as f:
        for key, (traj, amber_types) in groups.items():
            g = f.create_group(key)
            for name, arr in misato_codes(traj, amber_types, ligand_residue).items():
                g.create_dataset(name, data=arr)
            lig = np.array([a.residue.name == ligand_residue for a in traj.topology.atoms])
            begins = [0] + ([int(np.flatnonzero(lig)[0])] if lig.any() else [])
            g.create_dataset("molecules_begin_atom_index", data=np.array(begins, dtype=np.int64))
            xyz = traj.xyz.astype(np.float64) * 10.0
            g.create_dataset(
                "trajectory_coordinates", data=xyz, compression="gzip", chunks=(1, *xyz.shape[1:])
            )
            if lig.any():
                lx = xyz[:, lig]
                g.create_dataset(
                    "frames_rmsd_ligand", data=np.sqrt(((lx - lx[:1]) ** 2).sum(-1).mean(-1))
                )
                g.create_dataset(
                    "frames_distance",
                    data=np.linalg.norm(lx.mean(1) - xyz[:, ~lig].mean(1), axis=1),
                )


def write_mdcath(
    path: Path, domain: str, replicas: dict[tuple[int, int], mdtraj.Trajectory]
) -> None:
    """mdCATH domain file: topology arrays, ``pdbProteinAtoms``, ``{T}/{replica}/coords`` in Å."""
    first = next(iter(replicas.values()))
    top = first.topology
    pdb_tmp = path.with_name(path.name + ".pdb.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    first[0].save_pdb(str(pdb_tmp))
    pdb_text = pdb_tmp.read_text()
    pdb_tmp.unlink()
    with _atomic_h5(path) as f:
        g = f.create_group(domain)
        atoms = list(top.atoms)
        g.create_dataset("element", data=np.array([a.element.symbol for a in atoms], dtype="S2"))
        g.create_dataset("z", data=np.array([a.element.number for a in atoms], dtype=np.int64))
        g.create_dataset("resid", data=np.array([a.residue.resSeq for a in atoms], dtype=np.int64))
        g.create_dataset("resname", data=np.array([a.residue.name for a in atoms], dtype="S4"))
        g.create_dataset(
            "chain", data=np.array([a.residue.chain.chain_id or "A" for a in atoms], dtype="S1")
        )
        g.create_dataset("pdbProteinAtoms", data=pdb_text)
        g.attrs.update(
            numProteinAtoms=top.n_atoms, numResidues=top.n_residues, numChains=top.n_chains
        )
        for (temp, rep), traj in replicas.items():
            r = g.create_group(f"{temp}/{rep}")
            xyz = (traj.xyz * 10.0).astype(np.float32)
            ds = r.create_dataset(
                "coords", data=xyz, compression="gzip", chunks=(1, *xyz.shape[1:])
            )
            ds.attrs["unit"] = "Angstrom"
            r.attrs["numFrames"] = traj.n_frames
            ca = traj.topology.select("name CA")
            ref = xyz[0, ca]
            r.create_dataset("rmsd", data=np.sqrt(((xyz[:, ca] - ref) ** 2).sum(-1).mean(-1)))


def write_atlas(directory: Path, name: str, replicas: list[mdtraj.Trajectory]) -> None:
    """ATLAS protein folder: ``{name}.pdb`` plus ``{name}_R{k}.xtc`` fitted on the first frame."""
    directory.mkdir(parents=True, exist_ok=True)
    replicas[0][0].save_pdb(str(directory / f"{name}.pdb"))
    for k, traj in enumerate(replicas, start=1):
        fitted = traj.superpose(replicas[0], 0)
        target = directory / f"{name}_R{k}.xtc"
        with atomic_output(target, fitted.xyz.nbytes) as tmp:
            fitted.save_xtc(str(tmp))
