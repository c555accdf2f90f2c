"""Ligand chemistry with RDKit: bonds, charge and a sanitisation check from 3-D coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds
from rdkit.Chem.Scaffolds import MurckoScaffold

from boltzkinema.errors import InputError

RDLogger.DisableLog("rdApp.*")
_CHARGES = (0, -1, 1, -2, 2, -3, 3)
_ORDER = {
    1.0: Chem.BondType.SINGLE,
    2.0: Chem.BondType.DOUBLE,
    3.0: Chem.BondType.TRIPLE,
    1.5: Chem.BondType.AROMATIC,
}


@dataclass
class Ligand:
    """A ligand RDKit accepted: canonical SMILES, total charge and its bonds (local indices)."""

    smiles: str
    charge: int | None
    bonds: np.ndarray
    orders_known: bool

    @property
    def scaffold(self) -> str:
        """Bemis–Murcko scaffold; acyclic ligands are their own scaffold."""
        mol = Chem.MolFromSmiles(self.smiles)
        scaffold = MurckoScaffold.MurckoScaffoldSmiles(mol=mol) if mol is not None else ""
        return scaffold or f"acyclic:{self.smiles}"


def _xyz_mol(xyz: np.ndarray, elements: np.ndarray) -> Chem.Mol:
    lines = [str(len(elements)), ""]
    lines += [f"{e} {x:.4f} {y:.4f} {z:.4f}" for e, (x, y, z) in zip(elements, xyz, strict=True)]
    mol = Chem.MolFromXYZBlock("\n".join(lines) + "\n")
    if mol is None:
        raise ValueError("RDKit cannot build a molecule from the coordinates")
    return mol


def _from_bond_list(elements: np.ndarray, bonds: np.ndarray, orders: np.ndarray) -> Chem.Mol:
    mol = Chem.RWMol()
    for e in elements:
        mol.AddAtom(Chem.Atom(str(e)))
    for (i, j), o in zip(bonds.tolist(), orders.tolist(), strict=True):
        mol.AddBond(int(i), int(j), _ORDER.get(round(float(o) * 2) / 2, Chem.BondType.SINGLE))
    return mol.GetMol()


def _bond_array(mol: Chem.Mol) -> np.ndarray:
    pairs = sorted(tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds())
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def perceive_ligand(
    xyz: np.ndarray,
    elements: np.ndarray,
    bonds: np.ndarray | None = None,
    orders: np.ndarray | None = None,
    charge: int | None = None,
) -> Ligand:
    """Perceive and sanitise a ligand; raise :class:`InputError` when RDKit rejects it.

    With hydrogens present, bond orders and the total charge are determined (trying the given
    charge first, then small ones); without hydrogens only connectivity and valences are checked.
    Bonds and orders from a QM file take precedence over perception.
    """
    if len(elements) == 0:
        raise InputError(
            "the ligand has no atoms",
            "remove the empty ligand entry or supply its atoms",
            code="ligand_empty",
        )
    errors = []
    try:
        if bonds is not None and orders is not None:
            mol = _from_bond_list(elements, bonds, orders)
            Chem.SanitizeMol(mol)
            return _accepted(mol, Chem.GetFormalCharge(mol), True)
        has_h = bool((elements == "H").any())
        if has_h:
            for c in dict.fromkeys((charge, *_CHARGES)):
                if c is None:
                    continue
                mol = _xyz_mol(xyz, elements)
                try:
                    rdDetermineBonds.DetermineBonds(mol, charge=int(c))
                    Chem.SanitizeMol(mol)
                    return _accepted(mol, int(c), True)
                except (ValueError, RuntimeError) as exc:
                    errors.append(f"charge {c}: {exc}")
            raise ValueError("; ".join(errors[:2]) or "bond orders could not be assigned")
        mol = _xyz_mol(xyz, elements)
        rdDetermineBonds.DetermineConnectivity(mol)
        Chem.SanitizeMol(mol)
        return _accepted(mol, None, False)
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            f"RDKit rejects the ligand ({len(elements)} atoms, "
            f"{''.join(sorted(set(elements.tolist())))}): {str(exc).splitlines()[0][:200]}",
            "check the ligand's coordinates and protonation, give its bonds in a QM file, or "
            "leave the system out",
            code="ligand_invalid",
        ) from exc


def _accepted(mol: Chem.Mol, charge: int | None, orders_known: bool) -> Ligand:
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) > 1:
        raise ValueError(f"ligand falls into {len(fragments)} disconnected fragments")
    smiles = Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False) if orders_known else mol)
    return Ligand(smiles, charge, _bond_array(mol), orders_known)
