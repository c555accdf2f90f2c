"""Evaluate generated ensembles against reference MD, next to baselines, per split."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.evaluate import metrics as mt
from boltzkinema.io.chemistry import MolType


def atom_index(system: ProcessedSystem) -> dict[tuple[int, int, str], int]:
    """(chain, residue, atom name) -> atom index."""
    return {
        (int(c), int(r), str(n)): i
        for i, (c, r, n) in enumerate(
            zip(system.chain_index, system.residue_index, system.atom_names, strict=True)
        )
    }


def backbone_torsions(system: ProcessedSystem) -> np.ndarray:
    """Atom quadruples of every φ and ψ (consecutive residues of one chain)."""
    index = atom_index(system)
    quads = []
    for (c, r, n), i in index.items():
        if n != "CA":
            continue
        ni, ci = index.get((c, r, "N")), index.get((c, r, "C"))
        prev_c, next_n = index.get((c, r - 1, "C")), index.get((c, r + 1, "N"))
        if None not in (prev_c, ni, ci):
            quads.append((prev_c, ni, i, ci))
        if None not in (ni, ci, next_n):
            quads.append((ni, i, ci, next_n))
    return np.array(quads, dtype=np.int64).reshape(-1, 4)


CHI1_GAMMA = ("CG", "OG", "OG1", "SG", "CG1")
UNBOUND_ANGSTROM = 10.0


def side_chain_torsions(system: ProcessedSystem) -> np.ndarray:
    """Atom quadruples of every χ1 (N, CA, CB, first γ atom)."""
    index = atom_index(system)
    quads = []
    for (c, r, n), i in index.items():
        if n != "CA":
            continue
        gamma = next((index[(c, r, g)] for g in CHI1_GAMMA if (c, r, g) in index), None)
        ni, cb = index.get((c, r, "N")), index.get((c, r, "CB"))
        if None not in (ni, cb, gamma):
            quads.append((ni, i, cb, gamma))
    return np.array(quads, dtype=np.int64).reshape(-1, 4)


def backbone_geometry(system: ProcessedSystem) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive Cα pairs within chains, and (N, C, CB, CA) quadruples for handedness."""
    index = atom_index(system)
    pairs, centres = [], []
    for (c, r, n), i in index.items():
        if n != "CA":
            continue
        if (c, r + 1, "CA") in index:
            pairs.append((i, index[(c, r + 1, "CA")]))
        if all((c, r, k) in index for k in ("N", "C", "CB")):
            centres.append((index[(c, r, "N")], index[(c, r, "C")], index[(c, r, "CB")], i))
    return (
        np.array(pairs, dtype=np.int64).reshape(-1, 2),
        np.array(centres, dtype=np.int64).reshape(-1, 4),
    )


def noise_baseline(ref: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """The trivial generator: the start frame plus per-atom Gaussian noise of the reference RMSF."""
    _, ref_al = mt.aligned(ref, ref)
    sigma = mt.rmsf(ref_al) / np.sqrt(3.0)
    ref = mt.as_tensor(ref).cpu().numpy()
    return ref[0][None] + rng.normal(size=(n_frames, *ref.shape[1:])) * sigma[None, :, None]


def evaluate_ensemble(
    pred: mt.ArrayLike, ref: mt.ArrayLike, system: ProcessedSystem, dt_ns: float
) -> dict[str, Any]:
    """All metrics of one generated ensemble (F, M, 3) against the reference (F', M, 3).

    NumPy arrays or torch tensors; the work happens on the reference's device.
    """
    r_in = mt.as_tensor(ref)
    p_in = mt.as_tensor(pred, r_in.device)
    dev = r_in.device
    polymer = np.isin(system.mol_type, [int(MolType.PROTEIN), int(MolType.DNA), int(MolType.RNA)])
    align_sel = polymer if polymer.sum() >= 3 else np.ones(system.n_atoms, bool)
    p, r = mt.aligned(p_in, r_in, align_sel)
    ca_np = system.atom_names == "CA"
    if ca_np.sum() < 3:
        ca_np = np.ones(system.n_atoms, bool)
    ca = torch.from_numpy(ca_np).to(dev)
    rmsf_p, rmsf_r = mt.rmsf(p), mt.rmsf(r)
    out: dict[str, Any] = {
        "n_frames_pred": len(p),
        "n_frames_ref": len(r),
        "rmsf_pred_mean": float(rmsf_p.mean()),
        "rmsf_ref_mean": float(rmsf_r.mean()),
        "rmsf_r_all": mt.pearson(rmsf_p, rmsf_r),
        "rmsf_r_ca": mt.pearson(rmsf_p[ca_np], rmsf_r[ca_np]),
        "rmsf_mae": float(np.abs(rmsf_p - rmsf_r).mean()),
        "pairwise_rmsd_pred": mt.pairwise_rmsd(p_in[:, ca]),
        "pairwise_rmsd_ref": mt.pairwise_rmsd(r_in[:, ca]),
        "rmwd": mt.rmwd(p, r),
        "pca_w2": mt.pca_w2(p[:, ca], r[:, ca]),
    }
    weak_p, trans_p = mt.contact_sets(p[:, ca], r[0, ca])
    weak_r, trans_r = mt.contact_sets(r[:, ca], r[0, ca])
    out["weak_contacts_jaccard"] = mt.jaccard(weak_p, weak_r)
    out["transient_contacts_jaccard"] = mt.jaccard(trans_p, trans_r)
    quads = backbone_torsions(system)
    tor_p, tor_r = mt.dihedrals(p_in, quads), mt.dihedrals(r_in, quads)
    out["torsion_jsd"] = mt.torsion_jsd(tor_p, tor_r)
    chi = side_chain_torsions(system)
    out["chi1_jsd"] = mt.torsion_jsd(mt.dihedrals(p_in, chi), mt.dihedrals(r_in, chi))
    tic_r, tic_p = mt.tica_first(r[:, ca], p[:, ca])
    out["decorrelation_ns_pred"] = mt.decorrelation_time(tic_p, dt_ns)
    out["decorrelation_ns_ref"] = mt.decorrelation_time(tic_r, dt_ns)
    out["torsion_decorrelation_ns_pred"] = _torsion_decorrelation(tor_p, dt_ns)
    out["torsion_decorrelation_ns_ref"] = _torsion_decorrelation(tor_r, dt_ns)
    out["bond_violations"] = mt.bond_violations(p_in, system.bonds, system.bond_lengths)
    out["clashes_per_frame"] = mt.clashes(p_in, system.bonds)
    ca_pairs, centres = backbone_geometry(system)
    out["chain_breaks_per_frame"] = mt.chain_breaks(p_in, ca_pairs)
    out["chirality_flips"] = mt.chirality_flips(p_in, r_in[0], centres)
    lig_np = system.mol_type == int(MolType.LIGAND)
    if lig_np.any():
        lig = torch.from_numpy(lig_np).to(dev)
        out["ligand_rmsd"] = float(((p[:, lig] - r[0, lig]) ** 2).sum(-1).mean(-1).sqrt().mean())
        centre = p[:, lig].mean(1)
        out["ligand_centre_displacement"] = float((centre[-1] - centre[0]).norm())
        out["pocket_contacts_kept"] = mt.pocket_contacts_kept(p, r[0], lig_np, polymer)
        out["unbound"] = bool(float((centre[-1] - r[0, lig].mean(0)).norm()) > UNBOUND_ANGSTROM)
    return out


def _torsion_decorrelation(angles: torch.Tensor, dt_ns: float) -> float:
    """Median over torsions of the decorrelation time of cos(angle)."""
    if angles.numel() == 0:
        return float("nan")
    return float(np.nanmedian([mt.decorrelation_time(torch.cos(a), dt_ns) for a in angles.T]))
