"""Residue, element and molecule-type tables shared by every reader."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from rdkit import Chem


class MolType(IntEnum):
    """Molecule type codes stored per atom in processed shards."""

    PROTEIN = 0
    DNA = 1
    RNA = 2
    LIGAND = 3
    OTHER = 4


# Canonical residue for every protein residue name we accept (AMBER, CHARMM and PDB variants).
PROTEIN_RESIDUES: dict[str, str] = {
    **{
        n: n
        for n in (
            [
                "ALA",
                "ARG",
                "ASN",
                "ASP",
                "CYS",
                "GLN",
                "GLU",
                "GLY",
                "HIS",
                "ILE",
                "LEU",
                "LYS",
                "MET",
                "PHE",
                "PRO",
                "SER",
                "THR",
                "TRP",
                "TYR",
                "VAL",
            ]
        )
    },
    "HIE": "HIS",
    "HID": "HIS",
    "HIP": "HIS",
    "HSD": "HIS",
    "HSE": "HIS",
    "HSP": "HIS",
    "CYX": "CYS",
    "CYM": "CYS",
    "ASH": "ASP",
    "GLH": "GLU",
    "LYN": "LYS",
    "MSE": "MET",
    "ACE": "ACE",
    "NME": "NME",
    "NMA": "NME",
    "NH2": "NH2",
}
ONE_LETTER: dict[str, str] = {
    "ALA": "A",
    "ARG": "R",
    "ASN": "N",
    "ASP": "D",
    "CYS": "C",
    "GLN": "Q",
    "GLU": "E",
    "GLY": "G",
    "HIS": "H",
    "ILE": "I",
    "LEU": "L",
    "LYS": "K",
    "MET": "M",
    "PHE": "F",
    "PRO": "P",
    "SER": "S",
    "THR": "T",
    "TRP": "W",
    "TYR": "Y",
    "VAL": "V",
}
CAPS = frozenset({"ACE", "NME", "NH2"})

DNA_RESIDUES: dict[str, str] = {}
RNA_RESIDUES: dict[str, str] = {}
for _b in "ACGT":
    for _name in (f"D{_b}", f"D{_b}5", f"D{_b}3", f"D{_b}N"):
        DNA_RESIDUES[_name] = f"D{_b}"
for _b in "ACGU":
    for _name in (_b, f"R{_b}", f"{_b}5", f"{_b}3", f"R{_b}5", f"R{_b}3", f"{_b}N"):
        RNA_RESIDUES[_name] = _b

SOLVENT_RESIDUES = frozenset(
    [
        "HOH",
        "WAT",
        "SOL",
        "H2O",
        "DOD",
        "TIP",
        "TIP3",
        "TIP4",
        "TIP5",
        "TP3",
        "T3P",
        "T4P",
        "T4E",
        "SPC",
        "SPCE",
        "OPC",
        "OPC3",
        "TIP3P",
        "TIP4P",
        "TIP4E",
        "TIP5P",
        "TP4",
        "TP5",
        "T5P",
        "SWM4",
    ]
)
# Co-solvents of MD (an additive code such as DMS means the same molecule in a crystal, where it
# is kept; in a simulation box it is solvent).
COSOLVENT_RESIDUES = frozenset(["DMSO", "DMS", "MOH", "MEOH", "EOH", "ETOH"])
# Membranes: CHARMM36 / Slipids / GROMOS lipid names and sterols, and AMBER Lipid14/17/21's
# split residues (acyl chains PA/OL/ST/MY/LA/DHA/AR, head groups PC/PE/PS/PGR/PH-, cholesterol
# CHL). A membrane protein preprocesses to its protein (and ligand) atoms.
_ACYL_PAIRS = ("PO", "DP", "DM", "DO", "DL", "DS", "SO", "PL", "DA")  # POPC, DPPE, DMPG, ...
LIPID_RESIDUES = frozenset(
    [
        *(f"{t}P{h}" for t in _ACYL_PAIRS for h in "CEGSA"),
        "POPI",
        "POP2",
        "PLPI",
        "CHL1",
        "CHOL",
        "CHL",
        "ERG",
        "PSM",
        "SSM",
        "SM",
        "CER",
        "CARD",
        "TOCL",
        "LPPC",
        "DPC",
        "SDS",
        "PA",
        "OL",
        "ST",
        "MY",
        "LA",
        "DHA",
        "AR",
        "PC",
        "PE",
        "PS",
        "PGR",
        "PH-",
    ]
)
ION_RESIDUES = frozenset(
    [
        "NA",
        "CL",
        "K",
        "MG",
        "CA",
        "ZN",
        "MN",
        "FE",
        "FE2",
        "CU",
        "CO",
        "NI",
        "CD",
        "LI",
        "RB",
        "CS",
        "BR",
        "IOD",
        "F",
        "SR",
        "BA",
        "HG",
        "NA+",
        "CL-",
        "K+",
        "MG2",
        "CA2",
        "ZN2",
        "SOD",
        "CLA",
        "POT",
        "CAL",
        "CES",
        "LIT",
        "RUB",
        "Na+",
        "Cl-",
        "K+",
        "Na",
        "Cl",
    ]
)
# Crystallisation additives and buffers: kept as "other", never called a ligand.
ADDITIVE_RESIDUES = frozenset(
    ["GOL", "EDO", "SO4", "PO4", "ACT", "PEG", "FMT", "MPD", "BME", "EPE", "TRS", "CIT"]
)

SOLVENT_AND_IONS = SOLVENT_RESIDUES | COSOLVENT_RESIDUES | LIPID_RESIDUES | ION_RESIDUES

_PT = Chem.GetPeriodicTable()


def normalise_element(symbol: str) -> str:
    """Return the element symbol capitalised as in the periodic table ('CL' -> 'Cl')."""
    s = symbol.strip()
    return s[:1].upper() + s[1:].lower()


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol, or 0 when the symbol is not an element."""
    s = normalise_element(symbol)
    if not s or not s.isalpha() or s in {"X", "Du", "Ep", "Lp"}:
        return 0
    try:
        return int(_PT.GetAtomicNumber(s))
    except RuntimeError:
        return 0


def element_symbol(z: int) -> str:
    """Element symbol of an atomic number."""
    return str(_PT.GetElementSymbol(int(z)))


def element_symbols(numbers: np.ndarray) -> np.ndarray:
    """Element symbol per atomic number, "X" outside 1-118: one lookup per distinct number,
    not per atom."""
    distinct, inverse = np.unique(np.asarray(numbers, dtype=np.int64), return_inverse=True)
    table = np.array([element_symbol(z) if 0 < z < 119 else "X" for z in distinct.tolist()], str)
    return table[inverse.reshape(-1)]


def covalent_radii(elements: np.ndarray) -> np.ndarray:
    """Covalent radii in Å for an array of element symbols (RDKit's table)."""
    table = {e: float(_PT.GetRcovalent(atomic_number(e))) for e in set(elements.tolist())}
    return np.array([table[e] for e in elements.tolist()], dtype=np.float64)


def residue_mol_type(
    resname: str, n_heavy_atoms: int, keep: frozenset[str] = frozenset()
) -> MolType | None:
    """Molecule type of a residue, or None for solvent, co-solvent, lipid and ion (which are
    removed) unless its name is in ``keep`` (then it is a ligand, or "other" for one atom)."""
    name = resname.strip()
    removable = name in SOLVENT_AND_IONS or name.upper() in SOLVENT_AND_IONS
    if removable and name not in keep and name.upper() not in keep:
        return None
    if name in PROTEIN_RESIDUES:
        return MolType.PROTEIN
    if name in DNA_RESIDUES:
        return MolType.DNA
    if name in RNA_RESIDUES:
        return MolType.RNA
    if name in ADDITIVE_RESIDUES or n_heavy_atoms <= 1:
        return MolType.OTHER
    return MolType.LIGAND


def one_letter(resname: str, mol_type: MolType) -> str:
    """One-letter code of a polymer residue ('X' when unknown)."""
    if mol_type == MolType.PROTEIN:
        return ONE_LETTER.get(PROTEIN_RESIDUES.get(resname, ""), "X")
    if mol_type == MolType.DNA:
        return DNA_RESIDUES.get(resname, "DN")[1:]
    if mol_type == MolType.RNA:
        return RNA_RESIDUES.get(resname, "N")
    return "X"
