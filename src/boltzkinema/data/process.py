"""Turn a raw system into a processed one: checks, units, atom selection, bonds, unwrapping,
superposition, tokens and a topology hash. Pure: no files touched here."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from boltzkinema.data.align import superpose
from boltzkinema.data.bonds import bond_lengths, perceive_bonds
from boltzkinema.data.ligand import Ligand, perceive_ligand
from boltzkinema.data.pbc import BondGraph, bond_graph, unwrap
from boltzkinema.data.store import ProcessedSystem
from boltzkinema.errors import InputError
from boltzkinema.io.chemistry import MolType, atomic_number, one_letter, residue_mol_type
from boltzkinema.io.system import RawSystem
from boltzkinema.io.topology_cache import NO_REUSE, TopologyCache, fingerprint
from boltzkinema.io.units import UnitDecision, detect_unit, forced_unit
from boltzkinema.settings import settings

_POLYMER = (MolType.PROTEIN, MolType.DNA, MolType.RNA)


@settings(
    "preprocess",
    units="datasets.*.units",
    peptide_ligand_max_residues="datasets.*.peptide_ligand_max_residues",
    frame_dt_ns="datasets.*.frame_dt_ns",
    default_frame_dt_ns="datasets.*.frame_dt_ns",
    keep_residues="datasets.*.keep_residues",
)
class ProcessOptions:
    """What a dataset's config says about processing its systems (the ``preprocess`` section
    with the dataset's own settings on top). ``default_frame_dt_ns`` is the format's convention
    (``DEFAULT_FRAME_DT_NS``), used where neither the file nor the config gives a spacing."""

    units: str
    unit_confidence_threshold: float
    hydrogens: bool
    frame_dt_ns: float | None
    default_frame_dt_ns: float | None
    jump_threshold_angstrom: float
    keep_residues: Sequence[str]
    # How readers find a peptide ligand (MISATO: a last molecule of at most this many residues).
    peptide_ligand_max_residues: int
    # Fail the shard at the first bad system instead of quarantining it.
    strict: bool


def _fail(reason: str, fix: str, code: str) -> InputError:
    return InputError(reason, fix, code=code)


def check_raw(raw: RawSystem) -> None:
    """Reject empty, truncated, non-finite or inconsistent input before any work."""
    n = raw.n_atoms
    if raw.coords.ndim != 3 or raw.coords.shape[-1] != 3:
        raise _fail(
            f"coordinates have shape {raw.coords.shape}, expected (frames, atoms, 3)",
            "re-export the trajectory",
            "bad_shape",
        )
    if n == 0:
        raise _fail("the system has no atoms", "check the topology (or drop the entry)", "no_atoms")
    if raw.coords.shape[0] == 0:
        raise _fail("the trajectory has zero frames", "re-export or drop the system", "no_frames")
    if raw.coords.shape[1] != n:
        raise _fail(
            f"topology has {n} atoms but coordinates have {raw.coords.shape[1]}",
            "pair the trajectory with the topology it was written for",
            "topology_mismatch",
        )
    for name in ("atom_names", "residue_names", "residue_ids", "chain_ids"):
        if len(getattr(raw, name)) != n:
            raise _fail(
                f"{name} has {len(getattr(raw, name))} entries for {n} atoms",
                "re-export the topology",
                "topology_mismatch",
            )
    bad = ~np.isfinite(raw.coords)
    if bad.any():
        frames = np.flatnonzero(bad.any(axis=(1, 2)))
        raise _fail(
            f"{bad.sum()} NaN/Inf coordinates in {len(frames)} frames (first: frame {frames[0]})",
            "drop the damaged frames or re-export the trajectory",
            "non_finite",
        )
    unknown = sorted(e for e in np.unique(raw.elements).tolist() if atomic_number(e) == 0)
    if unknown:
        first = int(np.flatnonzero(np.isin(raw.elements, unknown))[0])
        raise _fail(
            f"unknown element(s) {unknown} (first at atom {first}, "
            f"{raw.atom_names[first]} of {raw.residue_names[first]})",
            "give the topology proper element columns",
            "unknown_element",
        )


def residue_keys(raw: RawSystem) -> np.ndarray:
    """Integer id per residue, changing whenever chain, number or name changes along the atoms."""
    change = np.ones(raw.n_atoms, dtype=bool)
    change[1:] = (
        (raw.chain_ids[1:] != raw.chain_ids[:-1])
        | (raw.residue_ids[1:] != raw.residue_ids[:-1])
        | (raw.residue_names[1:] != raw.residue_names[:-1])
    )
    return np.cumsum(change) - 1


def classify(raw: RawSystem, keep: tuple[str, ...] = ()) -> np.ndarray:
    """Molecule type per atom (-1 for solvent, lipids and ions, unless named in ``keep``)."""
    kept = frozenset(n.upper() for n in keep)
    keys = residue_keys(raw)
    heavy_counts = np.bincount(keys, weights=(raw.elements != "H").astype(float))
    mol = np.full(raw.n_atoms, -1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], raw.n_atoms]
    for s, e in zip(starts, ends, strict=True):
        t = residue_mol_type(str(raw.residue_names[s]), int(heavy_counts[keys[s]]), kept)
        mol[s:e] = -1 if t is None else int(t)
    if raw.ligand_mask is not None:
        mol[raw.ligand_mask] = int(MolType.LIGAND)
    return mol


def removed_residues(raw: RawSystem, mol: np.ndarray, keys: np.ndarray) -> dict[str, int]:
    """How many residues of each name were removed as solvent, lipid or ion (for the report);
    ``keys`` are :func:`residue_keys`."""
    gone = mol < 0
    first = np.flatnonzero(gone & np.r_[True, keys[1:] != keys[:-1]])
    names, counts = np.unique(raw.residue_names[first].astype(str), return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


MAX_BOND_ANGSTROM = 3.0  # no covalent bond is longer (S–S 2.05 Å, I–C 2.14 Å)
# Largest change of any bond length between two systems of one topology that still lets the
# second reuse the first's bonds and ligand check (thermal bond fluctuations are ~0.05 Å).
REPLICA_BOND_TOLERANCE = 0.3


def split_chains(chain_ids: np.ndarray, keys: np.ndarray, broken: np.ndarray) -> np.ndarray:
    """Chain ids with a new chain started after every broken link between two residues of
    one chain (``broken`` (K, 2) atom pairs, ``keys`` the residue id per atom)."""
    start = np.zeros(len(chain_ids), dtype=bool)
    for i, j in np.sort(broken, axis=1):
        if chain_ids[i] == chain_ids[j] and keys[i] != keys[j]:
            start[np.flatnonzero(keys == keys[j])[0]] = True
    segment = np.cumsum(start)
    return np.array(
        [f"{c}" if n == 0 else f"{c}:{n}" for c, n in zip(chain_ids, segment, strict=True)],
        dtype=object,
    )


def _broken_bonds_note(
    raw: RawSystem, sol: np.ndarray, broken: np.ndarray, xyz0: np.ndarray
) -> str:
    def atom(k: int) -> str:
        a = sol[k]
        return f"{raw.atom_names[a]} {raw.residue_names[a]}{raw.residue_ids[a]}"

    i, j = broken[0]
    return (
        f"{len(broken)} topology bond(s) longer than {MAX_BOND_ANGSTROM:g} Å after unwrapping "
        f"dropped (e.g. {atom(i)} - {atom(j)}, {np.linalg.norm(xyz0[i] - xyz0[j]):.1f} Å); "
        "a chain is split where one linked two residues"
    )


def decide_unit(
    xyz0: np.ndarray,
    elements: np.ndarray,
    bonds: np.ndarray | None,
    raw: RawSystem,
    opts: ProcessOptions,
) -> UnitDecision:
    """Measure the unit on the solute of the first frame; stop when unsure unless forced."""
    measured = detect_unit(xyz0, elements, bonds, raw.unit_hint, raw.unit_hint_source)
    if opts.units != "auto":
        return forced_unit(opts.units, measured)
    if measured.confidence < opts.unit_confidence_threshold:
        raise _fail(
            f"cannot tell nm from Å (best guess {measured.unit}, confidence "
            f"{measured.confidence:.2f} < {opts.unit_confidence_threshold})",
            "set 'units: nm' or 'units: angstrom' for this dataset in the config (or pass "
            "--units to preprocess)",
            "undecidable_unit",
        )
    return measured


def _chain_and_residue_index(
    chain_ids: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    order = {c: i for i, c in enumerate(dict.fromkeys(chain_ids.tolist()))}
    chain_index = np.array([order[c] for c in chain_ids.tolist()], dtype=np.int32)
    residue_index = np.zeros(len(keys), dtype=np.int32)
    for c in np.unique(chain_index):
        sel = chain_index == c
        _, residue_index[sel] = np.unique(keys[sel], return_inverse=True)
    return chain_index, residue_index


def tokens(mol_type: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Token per atom: one per polymer residue, one per ligand or other atom, in atom order."""
    new = np.ones(len(keys), dtype=bool)
    polymer = np.isin(mol_type, [int(t) for t in _POLYMER])
    same_residue = np.r_[False, keys[1:] == keys[:-1]]
    new[1:] = ~(same_residue[1:] & polymer[1:] & polymer[:-1])
    return (np.cumsum(new) - 1).astype(np.int32)


def topology_hash(fields: dict[str, np.ndarray]) -> str:
    """Content hash of the topology (not the coordinates): replicas share it."""
    h = hashlib.sha256()
    for name in (
        "elements",
        "atom_names",
        "residue_names",
        "residue_index",
        "chain_index",
        "mol_type",
        "token_index",
        "bonds",
    ):
        arr = np.asarray(fields[name])
        h.update(name.encode())
        h.update("\x1f".join(arr.astype(str).ravel().tolist()).encode())
    return h.hexdigest()[:32]


def sequences(
    mol_type: np.ndarray,
    chain_index: np.ndarray,
    token_index: np.ndarray,
    residue_names: np.ndarray,
) -> dict[str, str]:
    """One-letter sequence of each polymer chain."""
    out: dict[str, str] = {}
    firsts = np.flatnonzero(np.r_[True, token_index[1:] != token_index[:-1]])
    for i in firsts:
        t = MolType(int(mol_type[i]))
        if t in _POLYMER:
            key = str(int(chain_index[i]))
            out[key] = out.get(key, "") + one_letter(str(residue_names[i]), t)
    return out


FRAME_DT_TOLERANCE = 0.01


def frame_times(raw: RawSystem, opts: ProcessOptions) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Frame times in ns from zero, the frame spacing, and the evidence it was decided on.

    Sources, like units: the config (``frame_dt_ns``), the file's own times (strictly
    increasing, not all equal) and the format's convention (MISATO, mdCATH, ATLAS). The config
    wins over the file, with a warning when they differ by more than 1%; the file wins over a
    convention. With no usable source the system is refused: a guessed spacing would set the Δt
    the model learns, with no trace."""
    n = raw.n_frames
    file_dt = None
    if raw.times_ns is not None and len(raw.times_ns) == n and n >= 2:
        steps = np.diff(raw.times_ns)
        if np.all(steps > 0):
            file_dt = float(np.median(steps))
    convention = raw.frame_dt_ns or opts.default_frame_dt_ns
    evidence: dict[str, Any] = {
        "config": opts.frame_dt_ns,
        "file": file_dt,
        "convention": convention,
        "warnings": [],
    }
    if opts.frame_dt_ns is not None:
        dt, evidence["source"] = float(opts.frame_dt_ns), "config"
        if file_dt is not None and abs(file_dt - dt) > FRAME_DT_TOLERANCE * dt:
            evidence["warnings"].append(
                f"frame spacing: the config says {dt:g} ns, the file's times {file_dt:g} ns; "
                "the config wins"
            )
        return np.arange(n) * dt, dt, evidence
    if file_dt is not None:
        t = raw.times_ns - raw.times_ns[0]
        evidence["source"] = "file"
        if convention is not None and abs(file_dt - convention) > FRAME_DT_TOLERANCE * file_dt:
            evidence["warnings"].append(
                f"frame spacing: the file's times say {file_dt:g} ns, the format's convention "
                f"{convention:g} ns; the file wins"
            )
        return t, file_dt, evidence
    if convention is not None:
        evidence["source"] = "format convention"
        return np.arange(n) * convention, float(convention), evidence
    if n < 2:
        evidence["source"] = "single frame"
        return np.zeros(n), 0.0, evidence
    raise _fail(
        f"no usable frame spacing: the file holds no increasing times "
        f"({'none' if raw.times_ns is None else 'all equal or not increasing'}) and the config "
        "gives none",
        f"set `frame_dt_ns: <ns between frames>` for dataset "
        f"{raw.ref.system_id.split('.')[0]!r} in the config",
        "no_frame_spacing",
    )


@dataclass(frozen=True)
class _Selection:
    """What a raw topology alone decides: molecule types, residues, the solute and the atoms
    kept, topology bonds within the solute, and what was removed."""

    mol_all: np.ndarray
    residue_of: np.ndarray
    keep: np.ndarray
    sol: np.ndarray
    topo_bonds: np.ndarray | None
    removed: dict[str, int]


def _select(raw: RawSystem, opts: ProcessOptions) -> _Selection:
    mol_all = classify(raw, opts.keep_residues)
    residue_of = residue_keys(raw)
    solute = mol_all >= 0
    keep = solute & (opts.hydrogens | (raw.elements != "H"))
    if not keep.any():
        raise _fail(
            "no atoms left after removing solvent, ions and hydrogens",
            "check residue names (solvent/ion names are removed)",
            "empty_selection",
        )
    sol = np.flatnonzero(solute)
    remap = np.full(raw.n_atoms, -1)
    remap[sol] = np.arange(len(sol))
    topo_bonds = None
    if raw.bonds is not None and len(raw.bonds):
        b = remap[raw.bonds]
        topo_bonds = np.sort(b[(b >= 0).all(axis=1)], axis=1)
    return _Selection(
        mol_all, residue_of, keep, sol, topo_bonds, removed_residues(raw, mol_all, residue_of)
    )


def _bond_graph(
    xyz0: np.ndarray, elements: np.ndarray, box0: np.ndarray | None, topo_bonds: np.ndarray | None
) -> tuple[np.ndarray, BondGraph]:
    """The bonds of the solute (the topology's where they cover it, else perceived on the first
    frame) and their graph."""
    bonds = _merge_bonds(topo_bonds, perceive_bonds(xyz0, elements, box0), len(xyz0))
    return bonds, bond_graph(len(xyz0), bonds)


def topology_key(raw: RawSystem, opts: ProcessOptions) -> str:
    """Fingerprint of everything :func:`process` derives per topology from: replicas share it."""
    return fingerprint(
        raw.atom_names,
        raw.elements,
        raw.residue_names,
        raw.residue_ids,
        raw.chain_ids,
        raw.ligand_mask,
        raw.bonds,
        raw.ligand_bonds,
        raw.ligand_charge,
        tuple(opts.keep_residues),
        opts.hydrogens,
    )


def process(
    raw: RawSystem, opts: ProcessOptions, cache: TopologyCache = NO_REUSE
) -> tuple[ProcessedSystem, dict[str, Any]]:
    """Checks, unit conversion, selection, bonds, unwrapping and superposition of one system.

    With a ``cache`` (one per preprocessing job), work that depends on the topology is done once
    for all systems that share it: the selection, the bonds and their spanning forest, the RDKit
    ligand check, the sequences and the topology hash. Bonds and the ligand are perceived on the
    first of those systems and hold for the others, so replicas share one bond graph and one
    topology hash (and so one trunk entry). The unit is decided per system (one file can hold
    groups in nm and in Å), and every coordinate-dependent step (unwrapping, broken-bond checks,
    superposition) is done per system."""
    check_raw(raw)
    key = topology_key(raw, opts)
    selection = cache.get(("selection", key), lambda: _select(raw, opts))
    mol_all, residue_of, keep, sol = (
        selection.mol_all,
        selection.residue_of,
        selection.keep,
        selection.sol,
    )
    # Solute only from here on (hydrogens kept while the ligand is checked).
    elements = raw.elements[sol]
    topo_bonds = selection.topo_bonds
    unit = decide_unit(raw.coords[0, sol], elements, topo_bonds, raw, opts)
    scale = unit.scale_to_angstrom
    # np.take keeps (frames, atoms, 3) order in memory; raw.coords[:, sol] puts atoms first,
    # which makes every later per-frame pass strided (several times slower). Nothing below
    # writes into xyz, so a solute-only file in Å is used as read, without a copy.
    xyz = raw.coords if len(sol) == raw.n_atoms else np.take(raw.coords, sol, axis=1)
    if scale != 1.0:
        xyz = xyz * scale
    box = raw.box * scale if raw.box is not None else None
    box0 = box[0] if box is not None else None
    bonds, graph = cache.get(
        ("bonds", key), lambda: _bond_graph(xyz[0], elements, box0, topo_bonds)
    )
    unwrapped, unwrap_info = unwrap(xyz, bonds, box, opts.jump_threshold_angstrom, graph=graph)
    lengths = bond_lengths(unwrapped[0], bonds)
    first = cache.get(("bond_lengths", key), lambda: lengths)
    if not np.allclose(lengths, first, rtol=0, atol=REPLICA_BOND_TOLERANCE):
        # This system's geometry does not fit the bonds of an earlier one of its topology (a
        # collapsed ligand, a broken chain): it gets all its own perception and checks.
        raw.notes.append(
            "bond lengths differ from an earlier system of the same topology by up to "
            f"{np.abs(lengths - first).max():.2f} Å: bonds perceived for this system alone"
        )
        return process(raw, opts)
    chain_ids = raw.chain_ids[sol]
    broken = lengths > MAX_BOND_ANGSTROM
    bond_notes = []
    if broken.any():  # e.g. a GROMACS .gro that holds a dimer as one chain
        bond_notes.append(_broken_bonds_note(raw, sol, bonds[broken], unwrapped[0]))
        chain_ids = split_chains(chain_ids, residue_of[sol], bonds[broken])
        bonds = bonds[~broken]
        unwrapped, unwrap_info = unwrap(xyz, bonds, box, opts.jump_threshold_angstrom)
    # float32 from here on, the precision of the store (superposition is twice as fast).
    xyz = unwrapped.astype(np.float32, copy=False)

    mol_sol = mol_all[sol]
    lig_local = np.flatnonzero(mol_sol == int(MolType.LIGAND))
    ligand: Ligand | None = None
    if len(lig_local):
        qm_bonds = _usable_ligand_bonds(raw, xyz[0, lig_local], len(lig_local))
        ligand = cache.get(
            ("ligand", key, qm_bonds is None),
            lambda: perceive_ligand(
                xyz[0, lig_local], elements[lig_local], qm_bonds, raw.ligand_charge
            ),
        )
        inside = np.isin(bonds, lig_local).any(axis=1)
        bonds = np.concatenate([bonds[~inside], lig_local[ligand.bonds]])
        bonds = np.unique(np.sort(bonds, axis=1), axis=0)

    # Atom selection (hydrogens), then reindex bonds.
    sel = np.flatnonzero(keep[sol])
    remap2 = np.full(len(sol), -1)
    remap2[sel] = np.arange(len(sel))
    b = remap2[bonds]
    bonds = b[(b >= 0).all(axis=1)].astype(np.int32).reshape(-1, 2)
    xyz = np.take(xyz, sel, axis=1)  # frames-first in memory, as above
    atoms = sol[sel]
    mol_type = mol_sol[sel].astype(np.int8)

    polymer = np.isin(mol_type, [int(t) for t in _POLYMER])
    align_sel = polymer if polymer.sum() >= 3 else np.ones(len(atoms), dtype=bool)
    xyz = superpose(xyz, align_sel)

    keys = residue_of[atoms]
    chain_index, residue_index = _chain_and_residue_index(chain_ids[sel], keys)
    token_index = tokens(mol_type, keys)
    times, dt, dt_evidence = frame_times(raw, opts)
    notes = [*raw.notes, *bond_notes, *dt_evidence["warnings"]]
    fields = {
        "atom_names": raw.atom_names[atoms],
        "elements": raw.elements[atoms],
        "residue_names": raw.residue_names[atoms],
        "residue_index": residue_index,
        "chain_index": chain_index,
        "mol_type": mol_type,
        "token_index": token_index,
        "observed_mask": np.ones(len(atoms), dtype=bool),
        "bonds": bonds,
        "bond_lengths": bond_lengths(xyz[0], bonds).astype(np.float32),
    }
    reference = _reference(raw, atoms, xyz[0])
    topo_hash, chain_sequences = cache.get(
        ("hash", key, fingerprint(bonds, chain_index)),
        lambda: (
            topology_hash(fields),
            sequences(mol_type, chain_index, token_index, fields["residue_names"]),
        ),
    )
    attrs: dict[str, Any] = {
        "source": raw.ref.path,
        "group": raw.ref.group,
        "format": raw.ref.format,
        "unit_detected": unit.unit,
        "unit_confidence": float(unit.confidence),
        "unit_forced": unit.forced,
        "unit_evidence": unit.evidence,
        "frame_dt_ns": float(dt),
        "frame_dt_source": dt_evidence["source"],
        "frame_dt_evidence": dt_evidence,
        "topology_hash": topo_hash,
        "reference_hash": hashlib.sha256(reference.tobytes()).hexdigest()[:16],
        "reference_source": "topology" if raw.reference_angstrom is not None else "first frame",
        "unwrap": unwrap_info,
        "removed_residues": dict(selection.removed),
        "notes": notes,
    }
    if ligand is not None:
        attrs["ligand"] = {
            "smiles": ligand.smiles,
            "charge": ligand.charge,
            "scaffold": ligand.scaffold,
            "orders_known": ligand.orders_known,
        }
    system = ProcessedSystem(
        raw.ref.system_id,
        xyz.astype(np.float32, copy=False),
        times,
        **fields,
        attrs=attrs,
        reference_coords=reference,
    )
    summary = {
        "n_frames": system.n_frames,
        "n_atoms": system.n_atoms,
        "n_tokens": system.n_tokens,
        "n_bonds": len(bonds),
        "topology_hash": topo_hash,
        "frame_dt_ns": float(dt),
        "unit": {
            "detected": unit.unit,
            "confidence": float(unit.confidence),
            "forced": unit.forced,
            "evidence": unit.evidence,
        },
        "sequences": dict(chain_sequences),
        "ligand": attrs.get("ligand"),
        "mol_types": sorted({MolType(int(t)).name.lower() for t in np.unique(mol_type)}),
        "frame_dt_evidence": dt_evidence,
        "removed_residues": attrs["removed_residues"],
        "notes": notes,
    }
    return system, summary


def _reference(raw: RawSystem, atoms: np.ndarray, first_frame: np.ndarray) -> np.ndarray:
    """The structure trunk features come from: the one shipped with the topology (identical for
    every replica, so they share one trunk entry), else the processed first frame."""
    ref = raw.reference_angstrom
    if ref is not None and np.isfinite(ref[atoms]).all():
        return np.round(ref[atoms], 3).astype(np.float32)
    return first_frame.astype(np.float32)


def _usable_ligand_bonds(raw: RawSystem, lig_xyz: np.ndarray, n_ligand: int) -> np.ndarray | None:
    """QM ligand bonds when they fit the MD ligand (same atoms, every bond under 2.2 Å)."""
    if raw.ligand_bonds is None or raw.ligand_mask is None or n_ligand != raw.ligand_mask.sum():
        return None
    b = raw.ligand_bonds
    lengths = np.linalg.norm(lig_xyz[b[:, 0]] - lig_xyz[b[:, 1]], axis=1) if len(b) else b
    if b.max(initial=-1) >= n_ligand or (len(b) and lengths.max() > 2.2):
        raw.notes.append("QM ligand bonds do not fit the MD coordinates: bonds perceived")
        return None
    return b


def _merge_bonds(topology: np.ndarray | None, perceived: np.ndarray, n: int) -> np.ndarray:
    """Topology bonds when they cover every multi-atom residue, else perceived ones."""
    if topology is None or len(topology) == 0:
        return perceived
    bonded = np.zeros(n, dtype=bool)
    bonded[topology.ravel()] = True
    needs = np.zeros(n, dtype=bool)
    needs[perceived.ravel()] = True
    if (bonded | ~needs).all():
        return np.unique(topology, axis=0)
    return np.unique(np.concatenate([topology, perceived]), axis=0)
