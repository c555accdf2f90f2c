"""Any topology + trajectory pair that mdtraj reads (pdb, psf, prmtop/parm7, gro, xtc, dcd, ...).

mdtraj converts every format to nm, so the unit hint is certain; the geometry still gets checked,
because a file written in the wrong unit is converted just as confidently.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mdtraj
import numpy as np

from boltzkinema.errors import InputError
from boltzkinema.io.chemistry import normalise_element
from boltzkinema.io.system import RawSystem, SystemRef

_SINGLE_FILE = {".pdb", ".h5", ".gro"}
# Formats that store each frame's time; for the others (dcd, mdcrd, pdb) mdtraj numbers frames.
TIMED_FORMATS = {".xtc", ".trr", ".nc", ".ncdf", ".netcdf", ".h5", ".dtr"}
# Massless interaction sites: TIP4P/OPC "M"/"MW", TIP5P "LP1/LP2", AMBER/OpenMM extra points.
# "D" is what mdtraj makes of dummy atoms such as the cationic dummy-atom zinc model's DM1..DM4
# (it reads them as deuterium); MD topologies write deuterium as H.
VIRTUAL_ELEMENTS = {"Vs", "Ep", "Lp", "D", "Du"}
VIRTUAL_NAMES = {"M", "MW", "LP", "LP1", "LP2", "EP", "EPW", "EP1", "EP2"}


AKMA_PS = 0.04888821  # CHARMM's time unit in ps


def dcd_frame_spacing_ps(path: str | Path) -> float | None:
    """Frame spacing (ps) from a CHARMM/NAMD/OpenMM DCD header: NSAVC steps of DELTA (AKMA).

    None where the header holds no usable time: not a CORD file, a non-positive step, or
    mdtraj's placeholder (DELTA 1, NSAVC 1), which says nothing about the simulation.
    """
    with open(path, "rb") as f:
        head = f.read(92)
    if len(head) < 92 or head[4:8] != b"CORD":
        return None
    order = "<" if int.from_bytes(head[:4], "little") == 84 else ">"
    icntrl = np.frombuffer(head[8:88], dtype=f"{order}i4")
    nsavc = int(icntrl[2])
    if icntrl[19] == 0:  # X-PLOR header: DELTA is a double over ICNTRL[9:11]
        delta = float(np.frombuffer(head[44:52], dtype=f"{order}f8")[0])
    else:
        delta = float(np.frombuffer(head[44:48], dtype=f"{order}f4")[0])
    if nsavc <= 0 or not delta > 0 or (delta == 1.0 and nsavc == 1):
        return None
    return nsavc * delta * AKMA_PS


def virtual_sites(top: mdtraj.Topology) -> np.ndarray:
    """Bool per atom: a virtual site or dummy particle (zero mass, element Vs/EP/LP/D, or a water
    extra point by name).

    They carry charge in the force field but are no atoms: they are dropped at read time and
    never a reason to quarantine a system."""
    out = []
    for a in top.atoms:
        el = a.element
        symbol = normalise_element(el.symbol) if el is not None and el.symbol else ""
        massless = el is not None and el.mass == 0
        named = el is None and a.name.upper() in VIRTUAL_NAMES
        out.append(massless or symbol in VIRTUAL_ELEMENTS or named)
    return np.array(out, dtype=bool)


def system_name(trajectory: str) -> str:
    """A system name from a trajectory file name, safe as an HDF5 group name."""
    stem = Path(trajectory).name
    for suffix in Path(trajectory).suffixes[::-1]:
        stem = stem.removesuffix(suffix)
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)


def discover(dataset: str, inputs: list[dict[str, Any]]) -> list[SystemRef]:
    """One reference per trajectory matched by each entry's ``trajectories`` patterns."""
    refs = []
    for entry in inputs:
        topology = entry["topology"]
        for pattern in entry["trajectories"]:
            for traj in sorted(glob.glob(pattern)) or [pattern]:
                refs.append(
                    SystemRef(f"{dataset}.{system_name(traj)}", "mdtraj", traj, topology=topology)
                )
    return refs


def topology_arrays(top: mdtraj.Topology) -> dict[str, np.ndarray]:
    """Per-atom name, element, residue name/number and chain id of an mdtraj topology."""
    atoms = list(top.atoms)
    chain_letters = [c.chain_id or chr(ord("A") + c.index % 26) for c in top.chains]
    return {
        "atom_names": np.array([a.name for a in atoms], dtype=str),
        "elements": np.array(
            [
                normalise_element(a.element.symbol)
                if a.element is not None and a.element.symbol
                else "X"
                for a in atoms
            ],
            dtype=str,
        ),
        "residue_names": np.array([a.residue.name for a in atoms], dtype=str),
        "residue_ids": np.array([a.residue.resSeq for a in atoms], dtype=np.int64),
        "chain_ids": np.array([chain_letters[a.residue.chain.index] for a in atoms], dtype=str),
    }


@contextmanager
def ascii_paths(*paths: str | None) -> Iterator[list[str | None]]:
    """The paths, each non-ASCII one replaced by an ASCII-named symbolic link to it.

    mdtraj's compiled readers (xtc, trr, dcd) encode the file name as ASCII and fail on any other
    character; a folder named ``données`` or ``café`` is common. The link, not a copy, lives in a
    temporary folder for as long as the reading (or writing: a link to a file not yet there is
    written through) takes."""
    if all(p is None or p.isascii() for p in paths):
        yield list(paths)
        return
    with tempfile.TemporaryDirectory(prefix="boltzkinema-") as tmp:
        out: list[str | None] = []
        for i, p in enumerate(paths):
            if p is None or p.isascii():
                out.append(p)
                continue
            link = Path(tmp) / f"file{i}{''.join(Path(p).suffixes)}"
            os.symlink(Path(p).resolve(), link)
            out.append(str(link))
        yield out


def from_trajectory(ref: SystemRef, traj: mdtraj.Trajectory) -> RawSystem:
    """Wrap an mdtraj trajectory (nm, ps) as a :class:`RawSystem`, virtual sites dropped."""
    virtual = virtual_sites(traj.topology)
    notes = []
    if virtual.any():
        names = sorted({str(a.name) for a in traj.topology.atoms if virtual[a.index]})
        notes.append(f"{int(virtual.sum())} virtual sites dropped ({', '.join(names)})")
        traj = traj.atom_slice(np.flatnonzero(~virtual))
    bonds = np.array([(a.index, b.index) for a, b in traj.topology.bonds], dtype=np.int64)
    timed = Path(ref.path).suffix.lower() in TIMED_FORMATS and traj.time is not None
    times = np.asarray(traj.time, dtype=np.float64) / 1000.0 if timed else None
    if Path(ref.path).suffix.lower() == ".dcd":
        spacing_ps = dcd_frame_spacing_ps(ref.path)
        if spacing_ps is not None:
            times = np.arange(traj.n_frames) * spacing_ps / 1000.0
    box = None
    if traj.unitcell_lengths is not None:
        box = np.asarray(traj.unitcell_lengths, dtype=np.float64)
        if not np.allclose(traj.unitcell_angles, 90.0, atol=1e-3):  # triclinic: cell vectors
            box = np.asarray(traj.unitcell_vectors, dtype=np.float64)
    return RawSystem(
        ref=ref,
        coords=np.asarray(traj.xyz, dtype=np.float64),
        unit_hint="nm",
        unit_hint_source="file",
        times_ns=times,
        box=box,
        bonds=bonds.reshape(-1, 2),
        notes=notes,
        **topology_arrays(traj.topology),
    )


def load(ref: SystemRef) -> RawSystem:
    """Load one trajectory with its topology through mdtraj."""
    if ref.topology and Path(ref.topology).suffix.lower() == ".tpr":
        stem = Path(ref.topology).with_suffix("")
        raise InputError(
            "a GROMACS .tpr is a binary run input that mdtraj cannot read",
            f"write its structure once with `gmx editconf -f {ref.topology} -o {stem}.gro` "
            "(or `gmx trjconv -s ... -dump 0 -o ....pdb`) and give that as the topology (bonds "
            "then come from residue templates and geometry)",
            code="unsupported_topology",
        )
    try:
        with ascii_paths(ref.path, ref.topology or None) as (path, topology):
            if Path(ref.path).suffix in _SINGLE_FILE or not topology:
                traj = mdtraj.load(path)
            else:
                traj = mdtraj.load(path, top=mdtraj.load_topology(topology))
    except (ValueError, OSError, RuntimeError, EOFError, IndexError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "atoms" in message and ("topology" in message.lower() or "match" in message):
            code, fix = (
                "topology_mismatch",
                "pair the trajectory with the topology it was written for",
            )
        else:
            code, fix = "unreadable", "check that the file is complete (re-copy or re-export it)"
        raise InputError(f"mdtraj cannot read it: {message}", fix, code=code) from exc
    raw = from_trajectory(ref, traj)
    raw.reference_angstrom = topology_reference(ref.topology, raw.n_atoms)
    return raw


def topology_reference(topology: str, n_atoms: int) -> np.ndarray | None:
    """Coordinates (Å) stored in the topology file itself (PDB, GRO), shared by its replicas,
    virtual sites dropped as from the trajectory."""
    if not topology or Path(topology).suffix.lower() not in (".pdb", ".gro", ".cif"):
        return None
    try:
        with ascii_paths(topology) as (path,):
            structure = mdtraj.load(path)
        real = np.flatnonzero(~virtual_sites(structure.topology))
        xyz = structure.xyz[0, real].astype(np.float64) * 10.0
    except (ValueError, OSError, IndexError, NotImplementedError):
        return None
    return xyz if len(xyz) == n_atoms else None
