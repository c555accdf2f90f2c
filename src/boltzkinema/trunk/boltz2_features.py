"""Boltz-2 trunk input features of a processed system, built with numpy and RDKit only.

:func:`build_features` returns, for one :class:`~boltzkinema.data.store.ProcessedSystem`, the 29
tensors that ``boltz.model.models.boltz2.Boltz2`` reads up to the end of its trunk (templates
off), exactly as boltz 2.2.1's own featuriser would produce them for the same molecules given in a
Boltz input file (``Boltz2Featurizer.process`` at inference: no crop, no padding of tokens, atoms
padded to a multiple of 32), one token per token of ours and in our order:

* tokens: one per standard residue (boltz's ``const.tokens`` vocabulary: force-field names such as
  HIE/HID/HIP → HIS, CYX → CYS, ASH → ASP via :data:`~boltzkinema.io.chemistry.PROTEIN_RESIDUES`,
  DA5 → DA, RU → U ...), one per non-standard polymer residue (the caps ACE, NME, NH2: UNK type,
  ``modified`` = 1, their CCD heavy atoms without leaving atoms), one per ligand heavy atom (UNK);
* chains: a run of polymer tokens with one chain id and molecule type is a chain (residue index
  0, 1, ... along it, as Boltz numbers a sequence); every ligand (a connected group of ligand or
  "other" atoms) is its own chain with residue index 0. ``asym_id`` counts chains in order,
  ``entity_id`` numbers distinct (type, residue names) / (ligand SMILES) in order of first
  appearance, ``sym_id`` counts copies within an entity;
* atoms: a standard residue contributes boltz's ``const.ref_atoms`` heavy atoms in that order
  whatever atoms the topology has (so OXT/OC1/OC2 and hydrogens are ignored, and missing ones do
  not matter), with CCD ideal coordinates, elements and formal charges from
  ``trunk/data/ccd_reference.json`` (see ``scripts/make_ccd_reference.py``);
* ligands: the shard's SMILES (bond orders where preprocessing knew them), given the stereo
  of our reference structure, is treated as Boltz treats a SMILES ligand: hydrogens added, atoms
  named symbol + canonical rank, one ETKDGv3 conformer relaxed with UFF (here with the fixed
  ``seed``; Boltz seeds nothing), then mapped onto our atoms by graph matching;
* bonds (``token_bonds``/``type_bonds``): the ligands' bonds with their RDKit types, the caps'
  CCD bonds (on the diagonal, as Boltz does) and, as COVALENT, our bonds that join a ligand to
  another chain. Polymer–polymer bonds (backbone, disulfides) are not features, as in Boltz;
* MSA: single sequence (one row, the residue types; paired flag 1, no deletions);
  ``method_feature`` from ``method`` (boltz's default "x-ray diffraction"); no contact
  conditioning; ``cyclic_period`` 0.

Reference-conformer augmentation: Boltz centres each residue's conformer, rotates it at random and
shifts it by N(0, 1) Å with torch's global RNG (and, by an off-by-one in its loop, leaves the
last residue as it is). We keep the deterministic part only: every residue but the last is
centred on its mean, no rotation, no shift (``REF_POS_AUGMENTATION``).

Features travel between processes in a compact form (:func:`pack_features` /
:func:`expand_features`): one-hot tensors as class indices, pair flags as bytes.
This module is imported by the worker in the Boltz environment too: numpy (and RDKit, lazily)
only, no h5py or torch.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from boltzkinema.errors import SystemRefused

if TYPE_CHECKING:
    from boltzkinema.data.store import ProcessedSystem

# --- boltz 2.2.1 tables (boltz/data/const.py), copied: the core environment never imports boltz.
CANONICAL_TOKENS = [
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "UNK",
]  # fmt: skip
TOKENS = [
    "<pad>", "-", *CANONICAL_TOKENS, "A", "G", "C", "U", "N", "DA", "DG", "DC", "DT", "DN",
]  # fmt: skip
TOKEN_IDS = {t: i for i, t in enumerate(TOKENS)}
NUM_TOKENS = len(TOKENS)
CHAIN_TYPE_IDS = {"PROTEIN": 0, "DNA": 1, "RNA": 2, "NONPOLYMER": 3}
UNK_TOKEN = {"PROTEIN": "UNK", "DNA": "DN", "RNA": "N"}
BOND_TYPE_IDS = {"OTHER": 0, "SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3, "AROMATIC": 4, "COVALENT": 5}
NUM_ELEMENTS = 128
NAME_CLASSES = 64
NUM_CONTACT_CLASSES = 5  # UNSPECIFIED, UNSELECTED, POCKET>BINDER, BINDER>POCKET, CONTACT
CONTACT_UNSPECIFIED = 0
ATOMS_PER_WINDOW = 32
_METHODS = {
    "MD": 0, "X-RAY DIFFRACTION": 1, "ELECTRON MICROSCOPY": 2, "SOLUTION NMR": 3,
    "SOLID-STATE NMR": 4, "NEUTRON DIFFRACTION": 4, "ELECTRON CRYSTALLOGRAPHY": 4,
    "FIBER DIFFRACTION": 4, "POWDER DIFFRACTION": 4, "INFRARED SPECTROSCOPY": 4,
    "FLUORESCENCE TRANSFER": 4, "EPR": 4, "THEORETICAL MODEL": 4, "SOLUTION SCATTERING": 4,
    "OTHER": 4, "AFDB": 5, "BOLTZ-1": 6, "FUTURE1": 7, "FUTURE2": 8, "FUTURE3": 9,
    "FUTURE4": 10, "FUTURE5": 11,
}  # fmt: skip
METHOD_TYPE_IDS = {k.lower(): v for k, v in _METHODS.items()}
DEFAULT_METHOD = "x-ray diffraction"
# fmt: off
REF_ATOMS: dict[str, list[str]] = {
    "UNK": ["N", "CA", "C", "O", "CB"],
    "ALA": ["N", "CA", "C", "O", "CB"],
    "ARG": ["N", "CA", "C", "O", "CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"],
    "ASN": ["N", "CA", "C", "O", "CB", "CG", "OD1", "ND2"],
    "ASP": ["N", "CA", "C", "O", "CB", "CG", "OD1", "OD2"],
    "CYS": ["N", "CA", "C", "O", "CB", "SG"],
    "GLN": ["N", "CA", "C", "O", "CB", "CG", "CD", "OE1", "NE2"],
    "GLU": ["N", "CA", "C", "O", "CB", "CG", "CD", "OE1", "OE2"],
    "GLY": ["N", "CA", "C", "O"],
    "HIS": ["N", "CA", "C", "O", "CB", "CG", "ND1", "CD2", "CE1", "NE2"],
    "ILE": ["N", "CA", "C", "O", "CB", "CG1", "CG2", "CD1"],
    "LEU": ["N", "CA", "C", "O", "CB", "CG", "CD1", "CD2"],
    "LYS": ["N", "CA", "C", "O", "CB", "CG", "CD", "CE", "NZ"],
    "MET": ["N", "CA", "C", "O", "CB", "CG", "SD", "CE"],
    "PHE": ["N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"],
    "PRO": ["N", "CA", "C", "O", "CB", "CG", "CD"],
    "SER": ["N", "CA", "C", "O", "CB", "OG"],
    "THR": ["N", "CA", "C", "O", "CB", "OG1", "CG2"],
    "TRP": ["N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"],  # noqa: E501
    "TYR": ["N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"],
    "VAL": ["N", "CA", "C", "O", "CB", "CG1", "CG2"],
    "A": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'", "N9", "C8", "N7", "C5", "C6", "N6", "N1", "C2", "N3", "C4"],  # noqa: E501
    "G": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'", "N9", "C8", "N7", "C5", "C6", "O6", "N1", "C2", "N2", "N3", "C4"],  # noqa: E501
    "C": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'", "N1", "C2", "O2", "N3", "C4", "N4", "C5", "C6"],  # noqa: E501
    "U": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'", "N1", "C2", "O2", "N3", "C4", "O4", "C5", "C6"],  # noqa: E501
    "DA": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "C1'", "N9", "C8", "N7", "C5", "C6", "N6", "N1", "C2", "N3", "C4"],  # noqa: E501
    "DG": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "C1'", "N9", "C8", "N7", "C5", "C6", "O6", "N1", "C2", "N2", "N3", "C4"],  # noqa: E501
    "DC": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "C1'", "N1", "C2", "O2", "N3", "C4", "N4", "C5", "C6"],  # noqa: E501
    "DT": ["P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "C1'", "N1", "C2", "O2", "N3", "C4", "O4", "C5", "C7", "C6"],  # noqa: E501
}
# fmt: on

# What changes the features besides the topology (part of the backend's cache key).
REF_POS_AUGMENTATION = "centre-each-residue-except-last-no-rotation-no-shift"
LIGAND_CONFORMER = "boltz-smiles-path:etkdgv3+uff1000,seeded"

# --- the 29 trunk inputs: boltz dtype, and how they are packed between processes.
# Packed one-hot tensors hold the class index (-1 for an all-zero row); "flag" tensors are bytes.
FEATURE_DTYPES: dict[str, str] = {
    "res_type": "int64",
    "profile": "float32",
    "deletion_mean": "float32",
    "msa": "int64",
    "msa_paired": "float32",
    "has_deletion": "bool",
    "deletion_value": "float32",
    "msa_mask": "int64",
    "token_pad_mask": "float32",
    "token_index": "int64",
    "residue_index": "int64",
    "asym_id": "int64",
    "entity_id": "int64",
    "sym_id": "int64",
    "mol_type": "int64",
    "method_feature": "int64",
    "modified": "int64",
    "cyclic_period": "float32",
    "token_bonds": "float32",
    "type_bonds": "int64",
    "contact_conditioning": "int64",
    "contact_threshold": "float32",
    "ref_pos": "float32",
    "ref_charge": "float32",
    "ref_element": "int64",
    "ref_atom_name_chars": "int64",
    "ref_space_uid": "int64",
    "atom_pad_mask": "float32",
    "atom_to_token": "int64",
}
FEATURES = tuple(FEATURE_DTYPES)
ONE_HOT_CLASSES: dict[str, int | None] = {  # None: the number of tokens
    "res_type": NUM_TOKENS,
    "contact_conditioning": NUM_CONTACT_CLASSES,
    "ref_element": NUM_ELEMENTS,
    "ref_atom_name_chars": NAME_CLASSES,
    "atom_to_token": None,
}
_PACKED_DTYPES = {
    "res_type": "int8",
    "contact_conditioning": "int8",
    "ref_element": "int16",
    "ref_atom_name_chars": "int8",
    "atom_to_token": "int32",
    "token_bonds": "uint8",
    "type_bonds": "uint8",
}


class FeatureError(SystemRefused):
    """A system the Boltz-2 featuriser cannot represent token for token."""


@cache
def ccd_reference() -> dict[str, dict[str, Any]]:
    """The shipped CCD reference residues (``trunk/data/ccd_reference.json``)."""
    text = resources.files("boltzkinema.trunk").joinpath("data/ccd_reference.json").read_text()
    return json.loads(text)["residues"]


@dataclass
class _Residue:
    name: str
    res_type: int
    modified: bool
    atom_names: list[str]
    elements: list[int]
    charges: list[int]
    coords: np.ndarray  # (atoms, 3) reference conformer
    bonds: list[tuple[int, int, int]] = field(default_factory=list)  # local atoms, bond type id
    tokens: list[int] = field(default_factory=list)  # our tokens, in order
    atom_token: list[int] = field(default_factory=list)  # per atom: index into ``tokens``


@dataclass
class _Chain:
    chain_type: str
    residues: list[_Residue]
    entity_key: tuple


# ------------------------------------------------------------------------------------ helpers
def _fail(system: ProcessedSystem, reason: str, fix: str) -> FeatureError:
    return FeatureError(f"boltz2 trunk, system {system.system_id}: {reason}. Fix: {fix}")


def _polymer_code(name: str, mol: int) -> str | None:
    from boltzkinema.io.chemistry import DNA_RESIDUES, PROTEIN_RESIDUES, RNA_RESIDUES, MolType

    table = {
        MolType.PROTEIN: PROTEIN_RESIDUES,
        MolType.DNA: DNA_RESIDUES,
        MolType.RNA: RNA_RESIDUES,
    }[MolType(mol)]
    return table.get(name.strip())


def _polymer_residue(system: ProcessedSystem, code: str, chain_type: str) -> _Residue:
    ref = ccd_reference().get(code)
    if ref is None:
        raise _fail(
            system,
            f"residue {code} is neither a Boltz standard residue nor in ccd_reference.json",
            "add it to scripts/make_ccd_reference.py and regenerate the reference",
        )
    from boltzkinema.io.chemistry import atomic_number

    index = {n: i for i, n in enumerate(ref["names"])}
    if code in REF_ATOMS:
        keep = [index[n] for n in REF_ATOMS[code]]
        res_type, modified, bonds = TOKEN_IDS[code], False, []
    else:  # non-standard: CCD heavy atoms without leaving atoms, with their bonds
        keep = [
            i
            for i, (e, leaving) in enumerate(zip(ref["elements"], ref["leaving"], strict=True))
            if e != "H" and not leaving
        ]
        res_type, modified = TOKEN_IDS[UNK_TOKEN[chain_type]], True
        local = {a: k for k, a in enumerate(keep)}
        bonds = [
            (min(local[i], local[j]), max(local[i], local[j]), _ccd_bond_type(order, arom))
            for i, j, order, arom in ref["bonds"]
            if i in local and j in local
        ]
    return _Residue(
        name=code,
        res_type=res_type,
        modified=modified,
        atom_names=[ref["names"][i] for i in keep],
        elements=[atomic_number(ref["elements"][i]) for i in keep],
        charges=[int(ref["charges"][i]) for i in keep],
        coords=np.asarray([ref["coords"][i] for i in keep], dtype=np.float64).reshape(-1, 3),
        bonds=bonds,
    )


def _ccd_bond_type(order: str, aromatic: bool) -> int:
    if aromatic:
        return BOND_TYPE_IDS["AROMATIC"]
    name = {"SING": "SINGLE", "DOUB": "DOUBLE", "TRIP": "TRIPLE"}.get(order, "OTHER")
    return BOND_TYPE_IDS[name]


# ------------------------------------------------------------------------------------ ligands
@dataclass
class LigandReference:
    """A ligand as Boltz sees it, in our atom order."""

    smiles: str  # what Boltz would be given (isomeric, canonical)
    order: list[int]  # our atom k is atom order[k] of Chem.MolFromSmiles(smiles)
    names: list[str]
    elements: list[int]
    charges: list[int]
    coords: np.ndarray  # (atoms, 3) conformer
    bonds: list[tuple[int, int, int]]  # (our local i, our local j, bond type id), Boltz's order


def _graph_mol(elements: np.ndarray, bonds: np.ndarray):
    from rdkit import Chem

    from boltzkinema.io.chemistry import atomic_number

    mol = Chem.RWMol()
    for e in elements.tolist():
        mol.AddAtom(Chem.Atom(atomic_number(e)))
    for i, j in bonds.tolist():
        mol.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    return mol.GetMol()


def _bare(mol):
    """Connectivity and elements only (single bonds, no charges or aromaticity), for matching."""
    from rdkit import Chem

    out = Chem.RWMol(mol)
    for b in out.GetBonds():
        b.SetBondType(Chem.BondType.SINGLE)
        b.SetIsAromatic(False)
    for a in out.GetAtoms():
        a.SetFormalCharge(0)
        a.SetIsAromatic(False)
        a.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    out = out.GetMol()
    out.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(out)
    return out


def _full_match(target, query) -> tuple[int, ...] | None:
    if (target.GetNumAtoms(), target.GetNumBonds()) != (query.GetNumAtoms(), query.GetNumBonds()):
        return None
    match = target.GetSubstructMatch(query)
    return match if len(match) == query.GetNumAtoms() else None


def ligand_reference(
    elements: np.ndarray,
    bonds: np.ndarray,
    reference_xyz: np.ndarray,
    smiles: str | None,
    seed: int,
) -> LigandReference:
    """Boltz's SMILES-ligand treatment of one ligand whose atoms (heavy, in our order) have
    ``elements``, the bonds ``bonds`` (local index pairs) and coordinates ``reference_xyz``.

    ``smiles`` gives bond orders and charges (matched onto our connectivity); without it the
    connectivity alone (single bonds) is sanitised. Stereo comes from ``reference_xyz``.
    Raises ValueError with the reason when RDKit cannot do a step.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    graph = _graph_mol(elements, bonds)
    if smiles:
        template = Chem.MolFromSmiles(smiles)
        if template is None:
            raise ValueError(f"RDKit cannot parse the ligand SMILES {smiles!r}")
        match = _full_match(_bare(graph), _bare(template))
        if match is None:
            raise ValueError(f"the ligand SMILES {smiles} does not match its atoms and bonds")
        inv = [0] * len(match)
        for t, g in enumerate(match):
            inv[g] = t
        ours = Chem.RenumberAtoms(template, inv)  # atom k = our atom k, with orders and charges
    else:
        ours = Chem.Mol(graph)
        try:
            Chem.SanitizeMol(ours)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"RDKit rejects the ligand's connectivity ({exc})") from None
    conf = Chem.Conformer(ours.GetNumAtoms())
    for k, xyz in enumerate(np.asarray(reference_xyz, dtype=np.float64).tolist()):
        conf.SetAtomPosition(k, xyz)
    ours.RemoveAllConformers()
    ours.AddConformer(conf, assignId=True)
    Chem.AssignStereochemistryFrom3D(ours)
    smiles = Chem.MolToSmiles(ours)

    # From here on exactly Boltz's SMILES path (boltz/data/parse/schema.py), seeded.
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse its own SMILES {smiles!r}")
    ours.RemoveAllConformers()
    match = ours.GetSubstructMatch(mol, useChirality=True)
    if len(match) != mol.GetNumAtoms():
        match = _full_match(_bare(ours), _bare(mol))
        if match is None:
            raise ValueError(f"{smiles} does not map back onto the ligand's atoms")
    order = [0] * len(match)
    for j, k in enumerate(match):
        order[k] = j
    mol_h = Chem.AddHs(mol)
    ranks = list(Chem.CanonicalRankAtoms(mol_h))
    Chem.AssignStereochemistry(mol_h, force=True, cleanIt=True)
    names = [
        a.GetSymbol().upper() + str(r + 1) for a, r in zip(mol_h.GetAtoms(), ranks, strict=True)
    ]
    long = [n for n in names if len(n) > 4]
    if long:
        raise ValueError(f"atom names longer than 4 characters ({long[0]}): Boltz refuses these")
    options = AllChem.ETKDGv3()
    options.clearConfs = False
    options.randomSeed = int(seed)
    conf_id = AllChem.EmbedMolecule(mol_h, options)
    if conf_id == -1:
        options.useRandomCoords = True
        conf_id = AllChem.EmbedMolecule(mol_h, options)
    if conf_id == -1:
        raise ValueError(f"ETKDG found no conformer for {smiles}")
    with contextlib.suppress(RuntimeError, ValueError):  # as Boltz: keep it unrelaxed
        AllChem.UFFOptimizeMolecule(mol_h, confId=conf_id, maxIters=1000)
    xyz = mol_h.GetConformer(conf_id).GetPositions()
    n = mol.GetNumAtoms()
    heavy = [a for a in mol_h.GetAtoms() if a.GetIdx() < n]
    inv = {j: k for k, j in enumerate(order)}
    bond_list = []
    for b in mol_h.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        if i >= n or j >= n:
            continue
        kind = BOND_TYPE_IDS.get(b.GetBondType().name, BOND_TYPE_IDS["OTHER"])
        a, c = sorted((inv[i], inv[j]))
        bond_list.append((a, c, kind))
    return LigandReference(
        smiles=smiles,
        order=order,
        names=[names[j] for j in order],
        elements=[heavy[j].GetAtomicNum() for j in order],
        charges=[heavy[j].GetFormalCharge() for j in order],
        coords=xyz[order],
        bonds=bond_list,
    )


# ------------------------------------------------------------------------------------ layout
def _components(n: int, bonds: np.ndarray) -> np.ndarray:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in bonds.tolist():
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def _chains(system: ProcessedSystem, seed: int) -> list[_Chain]:
    from boltzkinema.io.chemistry import MolType

    tok = np.asarray(system.token_index)
    if len(tok) == 0:
        raise _fail(system, "it has no atoms", "leave it out")
    if np.any(np.diff(tok) < 0) or np.any(np.diff(tok) > 1) or tok[0] != 0:
        raise _fail(
            system, "its token index is not 0, 1, 2 ... along the atoms", "re-run preprocess"
        )
    first = np.flatnonzero(np.r_[True, tok[1:] != tok[:-1]])
    bounds = np.r_[first, len(tok)]
    mol = np.asarray(system.mol_type).astype(int)
    polymer_types = {
        int(MolType.PROTEIN): "PROTEIN",
        int(MolType.DNA): "DNA",
        int(MolType.RNA): "RNA",
    }
    nonpolymer = ~np.isin(mol, list(polymer_types))
    elements = np.asarray(system.elements).astype(str)
    h_tokens = [t for t, a in enumerate(first) if nonpolymer[a] and elements[a] == "H"]
    if h_tokens:
        raise _fail(
            system,
            f"{len(h_tokens)} ligand tokens are hydrogen atoms; Boltz has tokens for heavy "
            "ligand atoms only",
            "preprocess with hydrogens: false (the default) for the boltz2 trunk",
        )
    # Ligands: connected groups of non-polymer atoms (of one molecule type).
    bonds = np.asarray(system.bonds, dtype=np.int64).reshape(-1, 2)
    lig_atoms = np.flatnonzero(nonpolymer)
    group = np.full(len(tok), -1, dtype=np.int64)
    if len(lig_atoms):
        local = np.full(len(tok), -1, dtype=np.int64)
        local[lig_atoms] = np.arange(len(lig_atoms))
        inside = nonpolymer[bonds].all(axis=1) & (mol[bonds[:, 0]] == mol[bonds[:, 1]])
        group[lig_atoms] = lig_atoms[_components(len(lig_atoms), local[bonds[inside]])]

    runs: list[tuple[str, list[int]]] = []  # (key, tokens)
    for t, a in enumerate(first):
        key = f"lig{group[a]}" if nonpolymer[a] else f"poly{system.chain_index[a]}:{mol[a]}"
        if runs and runs[-1][0] == key:
            runs[-1][1].append(t)
        else:
            runs.append((key, [t]))
    seen = [k for k, _ in runs]
    split = sorted({k for k in seen if k.startswith("lig") and seen.count(k) > 1})
    if split:
        raise _fail(
            system,
            "a ligand's atoms are not contiguous in the atom order",
            "write each ligand's atoms together in the topology and re-run preprocess",
        )

    ligand_attrs = (system.attrs or {}).get("ligand") or {}
    ligand_groups = {int(group[a]) for a in lig_atoms if mol[a] == int(MolType.LIGAND)}
    reference = system.reference_coords if system.reference_coords is not None else None
    if reference is None:
        reference = np.asarray(system.coords[0])
    chains: list[_Chain] = []
    n_ligands = 0
    for key, tokens in runs:
        atoms0 = first[tokens[0]]
        if key.startswith("poly"):
            chain_type = polymer_types[int(mol[atoms0])]
            residues = []
            for t in tokens:
                name = str(system.residue_names[first[t]])
                code = _polymer_code(name, int(mol[first[t]]))
                if code is None:
                    raise _fail(
                        system,
                        f"{chain_type.lower()} residue {name} has no Boltz residue type",
                        "map it in boltzkinema.io.chemistry",
                    )
                res = _polymer_residue(system, code, chain_type)
                res.tokens = [t]
                res.atom_token = [0] * len(res.atom_names)
                residues.append(res)
            chains.append(
                _Chain(chain_type, residues, (chain_type, tuple(r.name for r in residues)))
            )
            continue
        atoms = np.concatenate([np.arange(bounds[t], bounds[t + 1]) for t in tokens])
        smiles = None
        if mol[atoms0] == int(MolType.LIGAND) and len(ligand_groups) == 1:
            smiles = ligand_attrs.get("smiles")
        local = np.full(len(tok), -1, dtype=np.int64)
        local[atoms] = np.arange(len(atoms))
        inner = bonds[(local[bonds] >= 0).all(axis=1)]
        try:
            lig = ligand_reference(
                elements[atoms], local[inner], reference[atoms], smiles, seed=seed
            )
        except ValueError as exc:
            raise _fail(
                system,
                f"ligand of {len(atoms)} atoms (residue {system.residue_names[atoms0]}): {exc}",
                "check the ligand's bonds in the processed shard, or leave the system out",
            ) from None
        n_ligands += 1
        res = _Residue(
            name=f"LIG{n_ligands}",
            res_type=TOKEN_IDS["UNK"],
            modified=False,
            atom_names=lig.names,
            elements=lig.elements,
            charges=lig.charges,
            coords=lig.coords,
            bonds=lig.bonds,
            tokens=list(tokens),
            atom_token=list(range(len(tokens))),
        )
        chains.append(_Chain("NONPOLYMER", [res], ("NONPOLYMER", lig.smiles)))
    return chains


def _covalent_links(system: ProcessedSystem, chains: list[_Chain]) -> list[tuple[int, int]]:
    """Our bonds joining a ligand to another chain, as token pairs (Boltz's 'bond' constraints)."""
    tok = np.asarray(system.token_index)
    chain_of = np.full(len(tok), -1, dtype=np.int64)
    ligand = np.zeros(len(tok), dtype=bool)
    first_atom = np.flatnonzero(np.r_[True, tok[1:] != tok[:-1]])
    bounds = np.r_[first_atom, len(tok)]
    for c, chain in enumerate(chains):
        tokens = [t for r in chain.residues for t in r.tokens]
        for t in tokens:
            chain_of[bounds[t] : bounds[t + 1]] = c
            ligand[bounds[t] : bounds[t + 1]] = chain.chain_type == "NONPOLYMER"
    bonds = np.asarray(system.bonds, dtype=np.int64).reshape(-1, 2)
    if not len(bonds):
        return []
    cross = (chain_of[bonds[:, 0]] != chain_of[bonds[:, 1]]) & ligand[bonds].any(axis=1)
    pairs = np.sort(bonds[cross], axis=1)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return [(int(tok[i]), int(tok[j])) for i, j in pairs.tolist()]


def name_chars(name: str) -> list[int]:
    codes = [ord(c) - 32 for c in str(name).strip()]
    if len(codes) > 4 or any(c < 0 or c >= NAME_CLASSES for c in codes):
        raise ValueError(f"atom name {name!r} cannot be encoded the way Boltz encodes names")
    return codes + [0] * (4 - len(codes))


# ------------------------------------------------------------------------------------ public
def build_features(
    system: ProcessedSystem, method: str = DEFAULT_METHOD, seed: int = 0
) -> dict[str, np.ndarray]:
    """The packed Boltz-2 trunk features of ``system`` (see :func:`expand_features`)."""
    method_id = METHOD_TYPE_IDS.get(str(method).lower())
    if method_id is None:
        raise FeatureError(f"unknown Boltz method {method!r}; one of {sorted(METHOD_TYPE_IDS)}")
    chains = _chains(system, seed)
    n_tokens = system.n_tokens

    # Entities in order of first appearance; copies count up within an entity.
    entity_ids: dict[tuple, int] = {}
    copies: dict[int, int] = {}
    res_type = np.zeros(n_tokens, dtype=np.int8)
    asym = np.zeros(n_tokens, dtype=np.int64)
    entity = np.zeros(n_tokens, dtype=np.int64)
    sym = np.zeros(n_tokens, dtype=np.int64)
    mol_type = np.zeros(n_tokens, dtype=np.int64)
    residue_index = np.zeros(n_tokens, dtype=np.int64)
    modified = np.zeros(n_tokens, dtype=np.int64)
    seen_tokens = np.zeros(n_tokens, dtype=bool)
    for a, chain in enumerate(chains):
        e = entity_ids.setdefault(chain.entity_key, len(entity_ids))
        s = copies.get(e, 0)
        copies[e] = s + 1
        for r, res in enumerate(chain.residues):
            t = np.asarray(res.tokens)
            seen_tokens[t] = True
            asym[t], entity[t], sym[t] = a, e, s
            mol_type[t] = CHAIN_TYPE_IDS[chain.chain_type]
            residue_index[t] = r
            res_type[t] = res.res_type
            modified[t] = int(res.modified)
    if not seen_tokens.all():
        raise _fail(system, "some tokens fit no Boltz chain", "report this as a bug")

    # Atoms, token by token (a residue's atoms at its token; ligand atoms one per token).
    per_token: list[list[tuple[_Residue, int, tuple[int, int]]]] = [[] for _ in range(n_tokens)]
    for a, chain in enumerate(chains):
        for r, res in enumerate(chain.residues):
            for k, owner in enumerate(res.atom_token):
                per_token[res.tokens[owner]].append((res, k, (a, r)))
    # ref_space_uid: one per (chain, residue), numbered in token order, as Boltz does.
    uids: dict[tuple[int, int], int] = {}
    names, elements, charges, coords, uid, atom_token = [], [], [], [], [], []
    for t in range(n_tokens):
        for res, k, residue in per_token[t]:
            u = uids.setdefault(residue, len(uids))
            try:
                names.append(name_chars(res.atom_names[k]))
            except ValueError as exc:
                raise _fail(system, str(exc), "rename the atom") from None
            elements.append(res.elements[k])
            charges.append(res.charges[k])
            coords.append(res.coords[k])
            uid.append(u)
            atom_token.append(t)
    n_atoms = len(names)
    ref_pos = np.asarray(coords, dtype=np.float64).reshape(-1, 3).astype(np.float32)
    uid_arr = np.asarray(uid, dtype=np.int64)
    for u in range(int(uid_arr.max())):  # Boltz's loop: the last residue is left as it is
        sel = uid_arr == u
        mean = ref_pos[sel].astype(np.float64).mean(axis=0).astype(np.float32)
        ref_pos[sel] = ref_pos[sel] - mean
    if any(not 0 <= z < NUM_ELEMENTS for z in elements):
        raise _fail(system, "an element outside Boltz's 128 classes", "check the elements")
    padded = -(-n_atoms // ATOMS_PER_WINDOW) * ATOMS_PER_WINDOW
    pad = padded - n_atoms

    def padded_like(values, dtype, fill=0):
        arr = np.asarray(values, dtype=dtype)
        widths = [(0, pad)] + [(0, 0)] * (arr.ndim - 1)
        return np.pad(arr, widths, constant_values=fill)

    # Bonds in Boltz's order: residue bonds chain by chain, then the covalent links.
    token_bonds = np.zeros((n_tokens, n_tokens), dtype=np.uint8)
    type_bonds = np.zeros((n_tokens, n_tokens), dtype=np.uint8)
    for chain in chains:
        for res in chain.residues:
            for i, j, kind in res.bonds:
                ti, tj = res.tokens[res.atom_token[i]], res.tokens[res.atom_token[j]]
                token_bonds[ti, tj] = token_bonds[tj, ti] = 1
                type_bonds[ti, tj] = type_bonds[tj, ti] = kind + 1
    for ti, tj in _covalent_links(system, chains):
        token_bonds[ti, tj] = token_bonds[tj, ti] = 1
        type_bonds[ti, tj] = type_bonds[tj, ti] = BOND_TYPE_IDS["COVALENT"] + 1

    msa = res_type.astype(np.int64)[None, :]
    profile = np.zeros((n_tokens, NUM_TOKENS), dtype=np.float32)
    profile[np.arange(n_tokens), res_type.astype(np.int64)] = 1.0
    return {
        "res_type": res_type,
        "profile": profile,
        "deletion_mean": np.zeros(n_tokens, dtype=np.float32),
        "msa": msa,
        "msa_paired": np.ones((1, n_tokens), dtype=np.float32),
        "has_deletion": np.zeros((1, n_tokens), dtype=bool),
        "deletion_value": np.zeros((1, n_tokens), dtype=np.float32),
        "msa_mask": np.ones((1, n_tokens), dtype=np.int64),
        "token_pad_mask": np.ones(n_tokens, dtype=np.float32),
        "token_index": np.arange(n_tokens, dtype=np.int64),
        "residue_index": residue_index,
        "asym_id": asym,
        "entity_id": entity,
        "sym_id": sym,
        "mol_type": mol_type,
        "method_feature": np.full(n_tokens, method_id, dtype=np.int64),
        "modified": modified,
        "cyclic_period": np.zeros(n_tokens, dtype=np.float32),
        "token_bonds": token_bonds,
        "type_bonds": type_bonds,
        "contact_conditioning": np.full((n_tokens, n_tokens), CONTACT_UNSPECIFIED, np.int8),
        "contact_threshold": np.zeros((n_tokens, n_tokens), dtype=np.float32),
        "ref_pos": padded_like(ref_pos, np.float32),
        "ref_charge": padded_like(charges, np.float32),
        "ref_element": padded_like(elements, np.int16, fill=-1),
        "ref_atom_name_chars": padded_like(names, np.int8, fill=-1).reshape(padded, 4),
        "ref_space_uid": padded_like(uid_arr, np.int64),
        "atom_pad_mask": padded_like(np.ones(n_atoms), np.float32),
        "atom_to_token": padded_like(atom_token, np.int32, fill=-1),
    }


def expand_features(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Boltz's own tensors (dtypes and one-hot layout of ``Boltz2Featurizer``) from packed ones."""
    n_tokens = int(packed["token_index"].shape[0])
    out = {}
    for key, dtype in FEATURE_DTYPES.items():
        value = np.asarray(packed[key])
        if key in ONE_HOT_CLASSES:
            classes = ONE_HOT_CLASSES[key] or n_tokens
            idx = value.astype(np.int64)
            if idx.max(initial=-1) >= classes or idx.min(initial=0) < -1:
                raise ValueError(f"{key}: class index outside 0..{classes - 1}")
            hot = np.zeros((*idx.shape, classes), dtype=dtype)
            sel = idx >= 0
            hot[(*np.nonzero(sel), idx[sel])] = 1
            value = hot
        elif key == "token_bonds":
            value = value.astype(dtype)[..., None]
        out[key] = np.ascontiguousarray(value, dtype=dtype)
    return out


def pack_features(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`expand_features`; raises ValueError if it would lose anything."""
    packed = {}
    for key, dtype in FEATURE_DTYPES.items():
        value = np.asarray(features[key])
        if str(value.dtype) != dtype:
            raise ValueError(f"{key} has dtype {value.dtype}, Boltz's is {dtype}")
        if key in ONE_HOT_CLASSES:
            sums = value.sum(axis=-1)
            if not np.isin(sums, (0, 1)).all() or not np.isin(value, (0, 1)).all():
                raise ValueError(f"{key} is not one-hot")
            value = np.where(sums > 0, value.argmax(axis=-1), -1)
        elif key == "token_bonds":
            value = value[..., 0]
        packed_dtype = _PACKED_DTYPES.get(key, dtype)
        packed[key] = np.ascontiguousarray(value.astype(packed_dtype))
        if not np.array_equal(packed[key], value):
            raise ValueError(f"{key} does not fit {packed_dtype}")
    if not all(np.array_equal(a, features[k]) for k, a in expand_features(packed).items()):
        raise ValueError("packing does not round-trip")
    return packed
