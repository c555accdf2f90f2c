"""One ensemble's metrics against reference MD (``evaluate_ensemble``), the torsions and geometry
they are computed from, and the baselines an ensemble is set beside (noise, the static start).
The per-split job that calls it for every system and mode is ``evaluate/job.py``."""

from __future__ import annotations

import json
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


def ramachandran_pairs(system: ProcessedSystem) -> tuple[np.ndarray, np.ndarray]:
    """(φ quads, ψ quads) of every residue that has both, row k of each the same residue."""
    quads = backbone_torsions(system)
    names = system.atom_names
    phi = {int(q[2]): q for q in quads if names[q[0]] == "C" and names[q[3]] == "C"}
    psi = {int(q[1]): q for q in quads if names[q[0]] == "N" and names[q[3]] == "N"}
    both = sorted(set(phi) & set(psi))
    return (
        np.array([phi[k] for k in both], dtype=np.int64).reshape(-1, 4),
        np.array([psi[k] for k in both], dtype=np.int64).reshape(-1, 4),
    )


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


def _backbone_kinds(system: ProcessedSystem, quads: np.ndarray) -> list[str]:
    """'phi' where the quadruple starts with the previous residue's C, else 'psi'."""
    return ["phi" if str(system.atom_names[q[0]]) == "C" else "psi" for q in quads]


def start_structure(ref: np.ndarray, start_frame: int = 0) -> np.ndarray:
    """The reference frame sampling started from (the structure given)."""
    return np.asarray(ref[start_frame], np.float64)


def noise_baseline(
    ref: np.ndarray,
    n_frames: int | tuple[int, ...],
    rng: np.random.Generator,
    structure: np.ndarray | None = None,
) -> np.ndarray:
    """The trivial generator, (n_frames, M, 3) or (*n_frames, M, 3): the start structure (by
    default ``ref[0]``) plus per-atom Gaussian noise with the reference's RMSF (σ = RMSF/√3 per
    coordinate; the reference superposed on the structure)."""
    base = np.asarray(ref[0] if structure is None else structure, np.float64)
    _, ref_al = mt.aligned(ref, ref, structure=base)
    sigma = mt.rmsf(ref_al) / np.sqrt(3.0)
    shape = (n_frames,) if isinstance(n_frames, int) else tuple(n_frames)
    return base + rng.normal(size=(*shape, *base.shape)) * sigma[:, None]


def static_baseline(structure: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """What a frozen model produces (S, F, M, 3): the start structure repeated."""
    base = np.asarray(structure, np.float64)
    return np.broadcast_to(base, (*shape, *base.shape)).copy()


def _trajectories(pred: mt.ArrayLike, device: torch.device) -> torch.Tensor:
    """(S, F, M, 3) float64 on ``device`` from one trajectory (F, M, 3) or several."""
    t = mt.as_tensor(pred, device)
    return t[None] if t.dim() == 3 else t


def evaluate_ensemble(
    pred: mt.ArrayLike,
    ref: mt.ArrayLike,
    system: ProcessedSystem,
    dt_ns: float,
    dt_ns_ref: float | None = None,
    structure: mt.ArrayLike | None = None,
) -> dict[str, Any]:
    """All metrics of generated frames against reference frames of the same span.

    ``pred`` is one trajectory (F, M, 3) or S independent ones (S, F, M, 3) at spacing
    ``dt_ns``; ``ref`` one trajectory (F', M, 3) at ``dt_ns_ref`` (default ``dt_ns``). Every frame
    is superposed on ``structure`` (default ``ref[0]``): heavy atoms on the polymer for per-atom
    metrics, Cα on Cα for Cα metrics (AlphaFlow). Time-series metrics never pair frames of
    different samples. NumPy arrays or torch tensors; the work happens on the reference's device.
    """
    r_in = mt.as_tensor(ref)
    dev = r_in.device
    trajs = _trajectories(pred, dev)
    p_in = trajs.reshape(-1, *trajs.shape[2:])
    dt_ref = dt_ns if dt_ns_ref is None else dt_ns_ref
    s0 = r_in[0] if structure is None else mt.as_tensor(structure, dev)
    polymer = np.isin(system.mol_type, [int(MolType.PROTEIN), int(MolType.DNA), int(MolType.RNA)])
    align_sel = polymer if polymer.sum() >= 3 else np.ones(system.n_atoms, bool)
    p, r = mt.aligned(p_in, r_in, align_sel, s0)
    ca_np = system.atom_names == "CA"
    if ca_np.sum() < 3:
        ca_np = np.ones(system.n_atoms, bool)
    ca = torch.from_numpy(ca_np).to(dev)
    p_ca, r_ca = mt.aligned(p_in[:, ca], r_in[:, ca], None, s0[ca])
    rmsf_p, rmsf_r = mt.rmsf(p), mt.rmsf(r)
    out: dict[str, Any] = {
        "n_frames_pred": len(p),
        "n_frames_ref": len(r),
        "rmsf_pred_mean": float(rmsf_p.mean()),
        "rmsf_ref_mean": float(rmsf_r.mean()),
        "rmsf_r_all": mt.pearson(rmsf_p, rmsf_r),
        "rmsf_r_ca": mt.pearson(rmsf_p[ca_np], rmsf_r[ca_np]),
        "rmsf_mae": float(np.abs(rmsf_p - rmsf_r).mean()),
        "pairwise_rmsd_pred": mt.pairwise_rmsd(p_ca),
        "pairwise_rmsd_ref": mt.pairwise_rmsd(r_ca),
        **mt.rmwd_parts(p, r),
        "pca_w2_ref": mt.pca_w2(p_ca, r_ca, basis="ref"),
        "pca_w2_joint": mt.pca_w2(p_ca, r_ca, basis="joint"),
    }
    weak_p, trans_p = mt.contact_sets(p_ca, s0[ca])
    weak_r, trans_r = mt.contact_sets(r_ca, s0[ca])
    out["weak_contacts_jaccard"] = mt.jaccard(weak_p, weak_r)
    out["transient_contacts_jaccard"] = mt.jaccard(trans_p, trans_r)
    out.update(_torsions(trajs, r_in, system, dt_ns, dt_ref))
    out["bond_violations"] = mt.bond_violations(p_in, system.bonds, system.bond_lengths)
    out["clashes_per_frame"] = mt.clashes(p_in, system.bonds)
    ca_pairs, centres = backbone_geometry(system)
    out["chain_breaks_per_frame"] = mt.chain_breaks(p_in, ca_pairs)
    out["chirality_flips"] = mt.chirality_flips(p_in, s0, centres)
    lig_np = system.mol_type == int(MolType.LIGAND)
    if lig_np.any():
        out.update(_ligand(p, s0, lig_np, polymer, trajs.shape[:2]))
    return out


def _ligand(
    p: torch.Tensor,
    s0: torch.Tensor,
    lig_np: np.ndarray,
    polymer: np.ndarray,
    shape: tuple[int, int],
) -> dict[str, Any]:
    """Ligand metrics per sample (frames superposed on the receptor), then averaged."""
    lig = torch.from_numpy(lig_np).to(p.device)
    per = p.reshape(*shape, *p.shape[1:])
    centre0 = s0[lig].mean(0)
    centres = per[:, :, lig].mean(2)  # (S, F, 3)
    last = (centres[:, -1] - centre0).norm(dim=-1)
    return {
        "ligand_rmsd": float(((p[:, lig] - s0[lig]) ** 2).sum(-1).mean(-1).sqrt().mean()),
        "ligand_centre_displacement": float(last.mean()),
        "pocket_contacts_kept": mt.pocket_contacts_kept(p, s0, lig_np, polymer),
        "unbound_fraction": float((last > UNBOUND_ANGSTROM).double().mean()),
    }


def _torsions(
    trajs: torch.Tensor, r_in: torch.Tensor, system: ProcessedSystem, dt: float, dt_ref: float
) -> dict[str, Any]:
    """Torsion JSDs (per angle and means), decorrelation times and the kinetics (MDGen)."""
    bb, chi = backbone_torsions(system), side_chain_torsions(system)
    quads = np.concatenate([bb, chi])
    kinds = _backbone_kinds(system, bb)
    labels = [f"{k}{lab}" for k, lab in zip(kinds, _residue_tags(system, bb, 2), strict=True)] + [
        f"chi1{lab}" for lab in _residue_tags(system, chi, 1)
    ]
    flat = trajs.reshape(-1, *trajs.shape[2:])
    tor_p = mt.dihedrals(flat, quads).cpu().numpy()
    tor_r = mt.dihedrals(r_in, quads).cpu().numpy()
    per_sample = [a for a in tor_p.reshape(*trajs.shape[:2], len(quads))]
    jsd = mt.torsion_jsd(tor_p, tor_r)
    nb = len(bb)
    out: dict[str, Any] = {
        "torsion_jsd": _nanmean(jsd[:nb]),
        "chi1_jsd": _nanmean(jsd[nb:]),
        "torsion_jsd_all": _nanmean(jsd),
        "torsion_jsd_per_angle": json.dumps(
            {lab: round(float(v), 6) for lab, v in zip(labels, jsd, strict=True)}
        ),
    }
    for side, series, step in (("pred", per_sample, dt), ("ref", [tor_r], dt_ref)):
        times, cens = mt.torsion_decorrelation(series, step)
        med, med_c = mt.censored_median(times, cens)
        out[f"torsion_decorrelation_ns_{side}"] = med
        out[f"torsion_decorrelation_ns_{side}_censored"] = med_c
        out[f"torsion_decorrelation_censored_frac_{side}"] = (
            float(cens.mean()) if len(cens) else float("nan")
        )
    out.update(
        mt.kinetics(
            mt.torsion_features(tor_r), [mt.torsion_features(a) for a in per_sample], dt_ref, dt
        )
    )
    return out


def _residue_tags(system: ProcessedSystem, quads: np.ndarray, centre: int) -> list[str]:
    """``:{chain}:{residue name}{number}`` of each quadruple's atom at position ``centre``."""
    return [
        f":{int(system.chain_index[q[centre]])}:{system.residue_names[q[centre]]}"
        f"{int(system.residue_index[q[centre]]) + 1}"
        for q in quads
    ]


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
