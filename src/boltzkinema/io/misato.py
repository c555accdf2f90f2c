"""MISATO ``MD.hdf5``: one group per PDB id, AMBER atom order, no atom names or residue indices.

The file stores per atom the atomic number (``atoms_number``), a residue *type* code
(``atoms_residue``: 0 = ligand ``MOL``) and an AMBER/GAFF type code, plus the start index of every
molecule. Residues are rebuilt by walking each molecule against the AMBER heavy-atom order of its
residue type, which also yields PDB atom names (so Cα atoms are known).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

import h5py
import numpy as np

from boltzkinema.errors import InputError
from boltzkinema.io.chemistry import element_symbols
from boltzkinema.io.listing import list_hdf5
from boltzkinema.io.system import RawSystem, SystemRef
from boltzkinema.io.topology_cache import NO_REUSE, TopologyCache, fingerprint

DEFAULT_FRAME_DT_NS = 0.08
LIGAND_RESIDUE = "MOL"

# AMBER (ff14SB library) order of heavy atoms per residue; hydrogens sit between them.
_SIDE_CHAINS = {
    "ALA": "CB",
    "ARG": "CB CG CD NE CZ NH1 NH2",
    "ASN": "CB CG OD1 ND2",
    "ASP": "CB CG OD1 OD2",
    "CYS": "CB SG",
    "GLN": "CB CG CD OE1 NE2",
    "GLU": "CB CG CD OE1 OE2",
    "GLY": "",
    "HIS": "CB CG ND1 CE1 NE2 CD2",
    "ILE": "CB CG2 CG1 CD1",
    "LEU": "CB CG CD1 CD2",
    "LYS": "CB CG CD CE NZ",
    "MET": "CB CG SD CE",
    "PHE": "CB CG CD1 CE1 CZ CE2 CD2",
    "SER": "CB OG",
    "THR": "CB CG2 OG1",
    "TRP": "CB CG CD1 NE1 CE2 CZ2 CH2 CZ3 CE3 CD2",
    "TYR": "CB CG CD1 CE1 CZ OH CE2 CD2",
    "VAL": "CB CG1 CG2",
}
HEAVY_ORDER: dict[str, list[str]] = {
    name: ["N", "CA", *sc.split(), "C", "O"] for name, sc in _SIDE_CHAINS.items()
}
HEAVY_ORDER["PRO"] = ["N", "CD", "CG", "CB", "CA", "C", "O"]
HEAVY_ORDER["ACE"] = ["CH3", "C", "O"]
HEAVY_ORDER["NME"] = ["N", "CH3"]
_ALIASES = {
    "HIE": "HIS",
    "HID": "HIS",
    "HIP": "HIS",
    "CYX": "CYS",
    "CYM": "CYS",
    "ASH": "ASP",
    "GLH": "GLU",
    "LYN": "LYS",
}


@cache
def code_tables() -> dict[str, dict[str, str]]:
    """MISATO's published code tables (residue types, AMBER/GAFF atom types)."""
    text = resources.files("boltzkinema.io").joinpath("data/misato_maps.json").read_text()
    return json.loads(text)


def residue_name(code: int) -> str:
    return code_tables()["atoms_residue_map"].get(str(int(code)), "UNK")


def discover(dataset: str, paths: list[str]) -> list[SystemRef]:
    """One reference per top-level group of every MISATO file."""
    return [
        ref
        for path in paths
        for ref in list_hdf5(
            dataset,
            "misato",
            str(path),
            lambda f, path=path: [
                SystemRef(f"{dataset}.{key}", "misato", str(path), group=key) for key in sorted(f)
            ],
        )
    ]


def _residues_of_segment(
    resnames: np.ndarray, elements: np.ndarray, start: int, stop: int, group: str
) -> tuple[list[int], list[str]]:
    """Residue numbers (1-based within the segment) and atom names for atoms start..stop."""
    res_ids: list[int] = []
    names: list[str] = []
    i, resno = start, 0
    while i < stop:
        rname = resnames[i]
        order = HEAVY_ORDER.get(_ALIASES.get(rname, rname))
        resno += 1
        if order is None:
            # Unknown residue type: one residue per run of identical codes, generic names.
            j = i
            while j < stop and resnames[j] == rname:
                j += 1
            for k in range(i, j):
                res_ids.append(resno)
                names.append(f"{elements[k]}{k - i + 1}")
            i = j
            continue
        slot, n_h = 0, 0
        while i < stop and resnames[i] == rname:
            el = elements[i]
            if el == "H":
                n_h += 1
                res_ids.append(resno)
                names.append(f"H{n_h}")
                i += 1
                continue
            if slot == len(order):
                # C-terminal oxygen right after O; anything else starts the next residue.
                if el == "O" and names and names[-1] == "O" and order[-1] == "O":
                    res_ids.append(resno)
                    names.append("OXT")
                    i += 1
                    continue
                break
            expected = order[slot]
            if el != expected[0] or (expected[0] == "C" and el != "C"):
                raise InputError(
                    f"atom {i} ({el}) of residue {resno} ({rname}) does not follow the AMBER "
                    f"heavy-atom order {order}",
                    "check that the group holds an unmodified MISATO topology; otherwise convert "
                    "it to PDB + trajectory and use format 'mdtraj'",
                    code="residue_layout",
                    group=group,
                )
            res_ids.append(resno)
            names.append(expected)
            slot += 1
            i += 1
        if slot not in (len(order), 0):
            raise InputError(
                f"residue {resno} ({rname}) ends after {slot} of {len(order)} heavy atoms",
                "the topology is truncated or reordered; re-export the system",
                code="residue_layout",
                group=group,
            )
    return res_ids, names


def _qm_ligand(qm_path: str, key: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Ligand elements, bonds (0-based unique pairs) and total charge from MISATO's QM file, or
    None when it has no entry for ``key``.

    The file's third bond column is not used: the two listings of one bond can disagree on it
    (e.g. 187L), so bond orders are assigned by RDKit for the QM total charge.
    """
    with h5py.File(qm_path, "r") as f:
        g = f.get(key.upper()) or f.get(key)
        if g is None or "atom_properties/bonds" not in g:
            return None
        numbers = [int(v) for v in g["atom_properties/atom_names"][()]]
        bonds = np.asarray(g["atom_properties/bonds"][()])
        charge = round(float(g["mol_properties/total_charge"][()]))
    pairs = np.sort(bonds[:, :2].astype(np.int64), axis=1)
    elements = element_symbols(numbers)
    return elements, np.unique(pairs, axis=0), charge


def _topology(
    numbers: np.ndarray,
    res_codes: np.ndarray,
    begins: np.ndarray,
    group: str,
    peptide_ligand_max_residues: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Elements, residue names, atom names, residue numbers, chain ids, the ligand mask and
    notes, from a group's per-atom atomic numbers, residue codes and molecule starts: what every
    rerun of one complex shares (computed once per topology through the cache)."""
    notes: list[str] = []
    n = len(numbers)
    if len(res_codes) != n:
        raise InputError(
            f"atoms_residue has {len(res_codes)} entries for {n} atoms",
            "the topology arrays disagree; re-export the group",
            code="topology_mismatch",
        )
    elements = element_symbols(numbers)
    unknown = np.flatnonzero(elements == "X")
    if len(unknown):
        raise InputError(
            f"{len(unknown)} atoms with an unknown element (atoms_number "
            f"{int(numbers[unknown[0]])} at atom {int(unknown[0])})",
            "atoms_number must hold atomic numbers 1-118; re-export the group",
            code="unknown_element",
        )
    known = code_tables()["atoms_residue_map"]
    codes, inverse = np.unique(res_codes, return_inverse=True)
    inverse = inverse.reshape(-1)
    defined = np.array([str(c) in known for c in codes.tolist()], dtype=bool)
    unknown = np.flatnonzero(~defined[inverse])
    if len(unknown):
        raise InputError(
            f"{len(unknown)} atoms with a residue code MISATO does not define (atoms_residue "
            f"{int(res_codes[unknown[0]])} at atom {unknown[0]})",
            "use an unmodified MISATO file, or convert the system to PDB + trajectory and use "
            "format 'mdtraj'",
            code="unknown_residue",
        )
    resnames = np.array([residue_name(c) for c in codes.tolist()], str)[inverse]

    cuts = sorted({int(b) for b in begins if 0 <= b < n} | {0})
    bounds = [(a, b) for a, b in zip(cuts, [*cuts[1:], n], strict=True) if b > a]
    if len(begins) and int(begins[-1]) >= n:
        notes.append("last molecule is empty (begin index equals the atom count)")
    ligand = resnames == LIGAND_RESIDUE
    if not ligand.any() and len(bounds) > 1:
        a, b = bounds[-1]
        n_res = len(set(_residues_of_segment(resnames, elements, a, b, group)[0]))
        if 0 < n_res <= peptide_ligand_max_residues:
            ligand[a:b] = True
            notes.append(f"no MOL atoms: last molecule ({n_res} residues) taken as peptide ligand")

    atom_names = np.empty(n, dtype=object)
    residue_ids = np.zeros(n, dtype=np.int64)
    chain_ids = np.empty(n, dtype=object)
    for k, (a, b) in enumerate(bounds):
        chain_ids[a:b] = chr(ord("A") + k % 26)
        seg_lig = ligand[a:b]
        poly = np.flatnonzero(~seg_lig) + a
        if len(poly):
            ids, names = _residues_of_segment(resnames, elements, poly[0], poly[-1] + 1, group)
            residue_ids[poly[0] : poly[-1] + 1] = ids
            atom_names[poly[0] : poly[-1] + 1] = names
        lig = np.flatnonzero(seg_lig) + a
        if len(lig) and (resnames[lig] == LIGAND_RESIDUE).all():
            residue_ids[lig] = 1 + (residue_ids[poly].max() if len(poly) else 0)
            counts: dict[str, int] = {}
            for i in lig:
                counts[elements[i]] = counts.get(elements[i], 0) + 1
                atom_names[i] = f"{elements[i]}{counts[elements[i]]}"
        elif len(lig):
            ids, names = _residues_of_segment(resnames, elements, lig[0], lig[-1] + 1, group)
            residue_ids[lig] = ids
            atom_names[lig] = names
    return (
        elements,
        resnames,
        atom_names.astype(str),
        residue_ids,
        chain_ids.astype(str),
        ligand,
        tuple(notes),
    )


def load(
    ref: SystemRef,
    qm_path: str | None = None,
    *,
    peptide_ligand_max_residues: int,
    cache: TopologyCache = NO_REUSE,
) -> RawSystem:
    """Read one MISATO group into a :class:`RawSystem` (coordinates in the file's unit); the
    topology is rebuilt once per distinct topology in ``cache``."""
    key = ref.group
    with h5py.File(ref.path, "r") as f:
        if key not in f:
            raise InputError(
                f"group {key!r} not found", "rebuild the dataset index", code="missing_group"
            )
        g = f[key]
        for name in ("atoms_number", "atoms_residue", "molecules_begin_atom_index"):
            if name not in g:
                raise InputError(
                    f"dataset {name!r} missing",
                    "use an unmodified MISATO MD.hdf5",
                    code="missing_dataset",
                )
        numbers = np.asarray(g["atoms_number"][()], dtype=np.int64)
        res_codes = np.asarray(g["atoms_residue"][()], dtype=np.int64)
        begins = np.asarray(g["molecules_begin_atom_index"][()], dtype=np.int64)
        if "trajectory_coordinates" in g:
            ds = g["trajectory_coordinates"]
            notes = []
        elif "atoms_coordinates_ref" in g:
            ds = g["atoms_coordinates_ref"]
            notes = ["no trajectory_coordinates: using the single reference frame"]
        else:
            raise InputError(
                "no trajectory_coordinates or atoms_coordinates_ref",
                "use an unmodified MISATO MD.hdf5",
                code="missing_dataset",
            )
        coords = np.asarray(ds[()], dtype=np.float64)
        unit_attr = ds.attrs.get("units", ds.attrs.get("unit"))
        reference = (
            np.asarray(g["atoms_coordinates_ref"][()], dtype=np.float64)
            if "atoms_coordinates_ref" in g and not unit_attr
            else None
        )
    if coords.ndim == 2:
        coords = coords[None]
    n = len(numbers)
    topo = cache.get(
        ("misato", fingerprint(numbers, res_codes, begins), peptide_ligand_max_residues),
        lambda: _topology(numbers, res_codes, begins, key, peptide_ligand_max_residues),
    )
    elements, resnames, atom_names, residue_ids, chain_ids, ligand, topo_notes = topo
    notes.extend(topo_notes)

    raw = RawSystem(
        ref=ref,
        atom_names=atom_names,
        elements=elements,
        residue_names=resnames,
        residue_ids=residue_ids,
        chain_ids=chain_ids,
        coords=coords,
        unit_hint=str(unit_attr).lower().replace("å", "angstrom") if unit_attr else "angstrom",
        unit_hint_source="file" if unit_attr else "convention",
        ligand_mask=ligand,
        notes=notes,
        reference_angstrom=reference if reference is not None and len(reference) == n else None,
    )
    if raw.unit_hint not in ("nm", "angstrom"):
        raw.unit_hint = {"a": "angstrom", "ang": "angstrom", "nanometer": "nm"}.get(raw.unit_hint)
    if qm_path and ligand.any() and Path(qm_path).exists():
        qm = _qm_ligand(qm_path, key)
        if qm is not None and np.array_equal(qm[0], elements[ligand]):
            _, raw.ligand_bonds, raw.ligand_charge = qm
            raw.notes.append(f"ligand bonds and charge from QM file {qm_path}")
        elif qm is not None:
            raw.notes.append("QM file atoms differ from the MD ligand atoms: bonds perceived")
    return raw
