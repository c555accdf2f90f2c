"""mdCATH: one HDF5 per CATH domain, every temperature × replica a separate system.

Layout: group ``{domain}`` with per-atom ``element``, ``z``, ``resid``, ``resname``, ``chain`` and
the PDB text ``pdbProteinAtoms`` (atom names come from it); subgroups ``{T}/{replica}`` with
``coords`` (F, N, 3) in Å, one frame per ns. Replicas share one topology.
"""

from __future__ import annotations

import glob
import os

import h5py
import numpy as np

from boltzkinema.errors import InputError
from boltzkinema.io.chemistry import normalise_element
from boltzkinema.io.listing import list_hdf5
from boltzkinema.io.system import RawSystem, SystemRef
from boltzkinema.io.topology_cache import NO_REUSE, TopologyCache

DEFAULT_FRAME_DT_NS = 1.0


def discover(dataset: str, patterns: list[str]) -> list[SystemRef]:
    """One reference per (domain, temperature, replica) in every matched file."""
    return [
        ref
        for pattern in patterns
        for path in sorted(glob.glob(pattern)) or [pattern]
        for ref in list_hdf5(dataset, "mdcath", path, lambda f, path=path: _list(dataset, path, f))
    ]


def _list(dataset: str, path: str, f: h5py.File) -> list[SystemRef]:
    """One reference per (domain, temperature, replica) of an open mdCATH file."""
    return [
        SystemRef(
            f"{dataset}.{domain}_{temp}K_r{rep}",
            "mdcath",
            path,
            group=f"{domain}/{temp}/{rep}",
            extra={"domain": domain, "temperature_k": int(temp), "replica": rep},
        )
        for domain in sorted(f)
        for temp in sorted((k for k in f[domain] if k.isdigit()), key=int)
        for rep in sorted(f[domain][temp], key=lambda r: int(r) if r.isdigit() else r)
    ]


def _pdb_atoms(text: str) -> tuple[list[str], np.ndarray]:
    """Atom names and coordinates (Å) of the ATOM/HETATM records of PDB text."""
    lines = [ln for ln in text.splitlines() if ln.startswith(("ATOM", "HETATM"))]
    names = [ln[12:16].strip() for ln in lines]
    try:
        xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])] for ln in lines])
    except ValueError:
        xyz = np.zeros((0, 3))
    return names, xyz.reshape(-1, 3)


def _strings(ds: h5py.Dataset) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]], dtype=str)


def _domain_topology(g: h5py.Group) -> tuple[np.ndarray, ...]:
    """Elements, residue names and numbers, chains, atom names and the PDB reference of one
    domain group: what its temperatures and replicas share."""
    missing = [k for k in ("element", "resid", "resname", "chain") if k not in g]
    if missing:
        raise InputError(
            f"datasets {missing} missing",
            "use an unmodified mdCATH file",
            code="missing_dataset",
        )
    elements = np.array([normalise_element(e) for e in _strings(g["element"])], dtype=str)
    names: list[str] = []
    reference = np.zeros((0, 3))
    if "pdbProteinAtoms" in g:
        text = g["pdbProteinAtoms"][()]
        names, reference = _pdb_atoms(text.decode() if isinstance(text, bytes) else str(text))
    if len(names) != len(elements):
        names = [f"{e}{i + 1}" for i, e in enumerate(elements)]
    return (
        elements,
        _strings(g["resname"]),
        np.asarray(g["resid"][()], dtype=np.int64),
        _strings(g["chain"]),
        np.array(names, dtype=str),
        reference,
    )


def load(ref: SystemRef, *, cache: TopologyCache = NO_REUSE) -> RawSystem:
    """Read one temperature/replica of a domain; the domain's topology is read once per file
    version in ``cache``."""
    domain, temp, rep = ref.group.split("/")
    stat = os.stat(ref.path)
    with h5py.File(ref.path, "r") as f:
        if ref.group not in f:
            raise InputError(
                f"group {ref.group!r} not found", "rebuild the dataset index", code="missing_group"
            )
        g = f[domain]
        elements, resnames, resids, chains, names, reference = cache.get(
            ("mdcath", ref.path, domain, stat.st_mtime_ns, stat.st_size),
            lambda: _domain_topology(g),
        )
        if "coords" not in g[temp][rep]:
            raise InputError(
                f"dataset 'coords' missing for {temp} K replica {rep}",
                "use an unmodified mdCATH file (re-download or re-copy it)",
                code="missing_dataset",
            )
        ds = g[temp][rep]["coords"]
        coords = np.asarray(ds[()], dtype=np.float64)
        unit_attr = ds.attrs.get("unit", ds.attrs.get("units"))
    hint = None
    if unit_attr is not None:
        u = (unit_attr.decode() if isinstance(unit_attr, bytes) else str(unit_attr)).lower()
        hint = "nm" if u in ("nm", "nanometer", "nanometers") else "angstrom"
    return RawSystem(
        ref=ref,
        atom_names=names,
        elements=elements,
        residue_names=resnames,
        residue_ids=resids,
        chain_ids=chains,
        coords=coords,
        unit_hint=hint or "angstrom",
        unit_hint_source="file" if hint else "convention",
        reference_angstrom=reference if len(reference) == len(elements) else None,
    )
