"""Figures per system: RMSF profiles, projection on the reference's top PCs, backbone torsions,
Ramachandran maps and, for ligands, the ligand-centre distance over time; the training curves
of a run. PNG, written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.evaluate import metrics as mt
from boltzkinema.evaluate.ensemble import backbone_torsions, ramachandran_pairs
from boltzkinema.io.chemistry import MolType
from boltzkinema.util import atomic_output

COLOURS = {
    "reference": "black",
    "model": "tab:blue",
    "noise": "tab:grey",
    "static": "tab:orange",
    "replica": "tab:green",
}


def _save(fig: plt.Figure, path: Path) -> None:
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def system_figures(
    system: ProcessedSystem,
    ref: np.ndarray,
    structure: np.ndarray,
    ensembles: dict[str, np.ndarray],
    times: np.ndarray,
    out_dir: Path,
    mode: str,
) -> list[Path]:
    """All figures of one system and mode; returns their paths.

    ``ref`` holds the reference frames scored, ``structure`` the start structure everything is
    superposed on, ``ensembles`` (S, F, M, 3) the generated frames (at ``times``) per method.
    """
    sid = system.system_id
    ca = system.atom_names == "CA"
    if ca.sum() < 3:
        ca = np.ones(system.n_atoms, bool)
    trajs = {
        k: np.asarray(v) if np.ndim(v) == 4 else np.asarray(v)[None] for k, v in ensembles.items()
    }
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in trajs.items()}
    paths = []

    fig, ax = plt.subplots(figsize=(7, 3))
    r = mt.aligned(ref, ref, structure=structure)[1].cpu().numpy()
    ax.plot(mt.rmsf(r[:, ca]), color=COLOURS["reference"], label="reference MD")
    aligned = {k: mt.aligned(v, ref, structure=structure)[0].cpu().numpy() for k, v in flat.items()}
    for name, p in aligned.items():
        ax.plot(mt.rmsf(p[:, ca]), color=COLOURS.get(name), label=name, alpha=0.8)
    ax.set_xlabel("residue (Cα)")
    ax.set_ylabel("RMSF (Å)")
    ax.set_title(f"{sid} — {mode}")
    ax.legend(fontsize=7)
    paths.append(out_dir / f"{sid}.{mode}.rmsf.png")
    _save(fig, paths[-1])

    fig, ax = plt.subplots(figsize=(4, 4))
    rr = r[:, ca].reshape(len(r), -1)
    mean = rr.mean(0)
    _, _, vt = np.linalg.svd(rr - mean, full_matrices=False)
    pr = (rr - mean) @ vt[:2].T
    ax.scatter(pr[:, 0], pr[:, 1], s=6, color=COLOURS["reference"], label="reference MD")
    for name, p in aligned.items():
        pp = (p[:, ca].reshape(len(p), -1) - mean) @ vt[:2].T
        ax.scatter(pp[:, 0], pp[:, 1], s=6, color=COLOURS.get(name), label=name, alpha=0.6)
    ax.set_xlabel("PC1 (Å)")
    ax.set_ylabel("PC2 (Å)")
    ax.legend(fontsize=7)
    paths.append(out_dir / f"{sid}.{mode}.pca.png")
    _save(fig, paths[-1])

    quads = backbone_torsions(system)
    if len(quads):
        fig, ax = plt.subplots(figsize=(4, 3))
        bins = np.linspace(-np.pi, np.pi, 37)
        ax.hist(
            mt.dihedrals(ref, quads).cpu().numpy().ravel(),
            bins,
            histtype="step",
            density=True,
            color=COLOURS["reference"],
            label="reference MD",
        )
        for name, ens in flat.items():
            ax.hist(
                mt.dihedrals(ens, quads).cpu().numpy().ravel(),
                bins,
                histtype="step",
                density=True,
                color=COLOURS.get(name),
                label=name,
            )
        ax.set_xlabel("backbone φ/ψ (rad)")
        ax.legend(fontsize=7)
        paths.append(out_dir / f"{sid}.{mode}.torsions.png")
        _save(fig, paths[-1])

    phi_q, psi_q = ramachandran_pairs(system)
    if len(phi_q):
        paths.append(out_dir / f"{sid}.{mode}.ramachandran.png")
        ramachandran_maps({"reference MD": ref, **flat}, phi_q, psi_q, sid, paths[-1])

    lig = system.mol_type == int(MolType.LIGAND)
    if lig.any() and "model" in trajs and len(times):
        fig, ax = plt.subplots(figsize=(5, 3))
        centre0 = np.asarray(structure)[lig].mean(0)
        for k, traj in enumerate(trajs["model"]):
            p = mt.aligned(traj, ref, ~lig, structure)[0].cpu().numpy()
            ax.plot(
                times,
                np.linalg.norm(p[:, lig].mean(1) - centre0, axis=-1),
                color="tab:blue",
                alpha=0.7,
                label="model" if k == 0 else None,
            )
        r_lig = mt.aligned(ref, ref, ~lig, structure)[1].cpu().numpy()
        t_ref = times if len(r_lig) == len(times) else np.linspace(times[0], times[-1], len(r_lig))
        ax.plot(
            t_ref,
            np.linalg.norm(r_lig[:, lig].mean(1) - centre0, axis=-1),
            color="black",
            label="reference MD",
        )
        ax.set_xlabel("time (ns)")
        ax.set_ylabel("ligand centre distance (Å)")
        ax.legend(fontsize=7)
        paths.append(out_dir / f"{sid}.{mode}.ligand.png")
        _save(fig, paths[-1])
    return paths


def ramachandran_maps(
    ensembles: dict[str, np.ndarray],
    phi_quads: np.ndarray,
    psi_quads: np.ndarray,
    title: str,
    path: Path,
) -> Path:
    """One φ/ψ histogram per ensemble (every residue with both angles pooled), side by side."""
    fig, axes = plt.subplots(1, len(ensembles), figsize=(2.6 * len(ensembles), 2.8), squeeze=False)
    edges = np.linspace(-180, 180, 61)
    for ax, (name, frames) in zip(axes[0], ensembles.items(), strict=True):
        phi = np.degrees(mt.dihedrals(frames, phi_quads).cpu().numpy().ravel())
        psi = np.degrees(mt.dihedrals(frames, psi_quads).cpu().numpy().ravel())
        ax.hist2d(phi, psi, bins=[edges, edges], cmap="viridis", cmin=1)
        ax.set_title(f"{name} ({len(frames)} frames)", fontsize=8)
        ax.set_xlabel("φ (°)")
        ax.set_xlim(-180, 180)
        ax.set_ylim(-180, 180)
    axes[0, 0].set_ylabel("ψ (°)")
    fig.suptitle(title, fontsize=9)
    _save(fig, path)
    return path


LOSS_TERMS = ("loss", "structure", "bond", "lddt", "flexibility", "ligand_centre", "chirality")


def training_curves(log: pd.DataFrame, path: Path) -> Path:
    """Every loss term of a training log against the step (a running mean over 2 % of the
    steps, raw values faint behind it) and the validation loss where it was computed."""
    fig, ax = plt.subplots(figsize=(8, 4))
    window = max(1, len(log) // 50)
    steps = log["step"].to_numpy() + 1
    for i, term in enumerate(t for t in LOSS_TERMS if t in log and log[t].abs().sum() > 0):
        colour = f"C{i}"
        ax.plot(steps, log[term], color=colour, alpha=0.15, lw=0.5)
        smooth = log[term].rolling(window, min_periods=1).mean()
        ax.plot(steps, smooth, color=colour, lw=1.5, label=term)
    if "val_loss" in log and log["val_loss"].notna().any():
        val = log.dropna(subset=["val_loss"])
        ax.plot(val["step"] + 1, val["val_loss"], "ko-", ms=3, label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training curves")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    return path
