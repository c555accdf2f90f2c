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


def _with_bonds(xyz: np.ndarray, elements: np.ndarray, bonds: np.ndarray) -> Chem.Mol:
    """A molecule with the given connectivity (single bonds) and 3-D coordinates."""
    mol = Chem.RWMol(_xyz_mol(xyz, elements))
    for i, j in bonds.tolist():
        mol.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    return mol.GetMol()


def _bond_array(mol: Chem.Mol) -> np.ndarray:
    pairs = sorted(tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds())
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def perceive_ligand(
    xyz: np.ndarray,
    elements: np.ndarray,
    bonds: np.ndarray | None = None,
    charge: int | None = None,
) -> Ligand:
    """Perceive and sanitise a ligand; raise :class:`InputError` when RDKit rejects it.

    Connectivity comes from ``bonds`` (e.g. a QM file) or from the coordinates. With hydrogens
    present, RDKit assigns bond orders for the total charge (the given one first, then small
    ones); without hydrogens only connectivity and valences are checked.
    """
    if len(elements) == 0:
        raise InputError(
            "the ligand has no atoms",
            "remove the empty ligand entry or supply its atoms",
            code="ligand_empty",
        )

    def connected() -> Chem.Mol:
        if bonds is not None:
            return _with_bonds(xyz, elements, bonds)
        mol = _xyz_mol(xyz, elements)
        rdDetermineBonds.DetermineConnectivity(mol)
        return mol

    errors = []
    try:
        if (elements == "H").any():
            for c in dict.fromkeys((charge, *_CHARGES)):
                if c is None:
                    continue
                mol = connected()
                try:
                    rdDetermineBonds.DetermineBondOrders(mol, charge=int(c))
                    Chem.SanitizeMol(mol)
                    return _accepted(mol, int(c), True)
                except (ValueError, RuntimeError) as exc:
                    errors.append(f"charge {c}: {exc}")
            raise ValueError("; ".join(errors[:2]) or "bond orders could not be assigned")
        mol = connected()
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
