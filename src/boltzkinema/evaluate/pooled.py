"""Pooled-ensemble comparison of peptide dynamics: the learning benchmark's table.

A peptide's held-out MD replicas, pooled, are the reference; every method (the model, the
``static`` and ``noise`` baselines, and MD itself as the yardstick: other replicas pooled) is a
list of trajectories at one frame spacing. Each row holds φ/ψ Jensen–Shannon distances (MDGen's
definition, :func:`boltzkinema.evaluate.metrics.torsion_jsd`), the populations of the backbone
basins (:mod:`boltzkinema.evaluate.ramachandran`), the α↔β transition rate, the slowest TICA
timescale (deeptime) and validity counts: clashes, bond-length RMSE, chirality flips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.evaluate import metrics as mt
from boltzkinema.evaluate import ramachandran as rama
from boltzkinema.evaluate.ensemble import backbone_geometry, backbone_torsions

# Blocks of the populations' standard error: a held-out 5 ns replica gives two; alanine
# dipeptide's slowest relaxation (TICA) is ~40 ps.
POPULATION_BLOCK_NS = 2.5


@dataclass(frozen=True)
class Ensemble:
    """Trajectories (each (F, M, 3), Å) of one method at ``dt_ns`` per frame."""

    trajectories: list[np.ndarray]
    dt_ns: float

    @property
    def n_frames(self) -> int:
        return sum(len(t) for t in self.trajectories)

    @property
    def span_ns(self) -> float:
        return sum(max(len(t) - 1, 0) for t in self.trajectories) * self.dt_ns


def phi_psi(system: ProcessedSystem, traj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ and ψ (F,) of the first residue that has both (the central residue of a capped
    amino acid), in radians."""
    quads = backbone_torsions(system)
    names = system.atom_names
    phis = [q for q in quads if names[q[0]] == "C" and names[q[3]] == "C"]
    psis = [q for q in quads if names[q[0]] == "N" and names[q[3]] == "N"]
    if not phis or not psis:
        raise ValueError(f"{system.system_id}: no residue with both φ and ψ")
    angles = mt.dihedrals(traj, np.array([phis[0], psis[0]])).cpu().numpy()
    return angles[:, 0], angles[:, 1]


def bond_length_rmse(traj: np.ndarray, system: ProcessedSystem) -> float:
    """Root-mean-square deviation (Å) of every bond's length from its reference length."""
    b = system.bonds
    if len(b) == 0:
        return 0.0
    d = np.linalg.norm(traj[:, b[:, 0]] - traj[:, b[:, 1]], axis=-1)
    return float(np.sqrt(((d - system.bond_lengths[None]) ** 2).mean()))


def tica_timescale_ns(angles: list[tuple[np.ndarray, np.ndarray]], dt_ns: float, lag: int) -> float:
    """Slowest implied timescale (ns) of TICA on (sin, cos) of φ, ψ at ``lag`` frames
    (deeptime; the trajectories pooled into one estimate); NaN for a frozen ensemble."""
    from deeptime.decomposition import TICA

    feats = [mt.torsion_features(np.stack(a, axis=1)) for a in angles if len(a[0]) > lag + 1]
    if not feats or max(float(f.std(0).max()) for f in feats) < 1e-9:
        return float("nan")  # no frames enough, or frozen: no timescale to estimate
    model = TICA(lagtime=lag, dim=1).fit_fetch(feats)
    return float(model.timescales(lag)[0]) * dt_ns


def ensemble_row(
    ens: Ensemble, ref: Ensemble, system: ProcessedSystem, start: np.ndarray, tica_lag: int
) -> dict[str, float]:
    """Every metric of one method against the pooled reference."""
    angles = [phi_psi(system, t) for t in ens.trajectories]
    ref_angles = [phi_psi(system, t) for t in ref.trajectories]
    phi, psi = (np.concatenate(a) for a in zip(*angles, strict=True))
    rphi, rpsi = (np.concatenate(a) for a in zip(*ref_angles, strict=True))
    jsd = mt.torsion_jsd(np.stack([phi, psi], 1), np.stack([rphi, rpsi], 1))
    pops = rama.populations(phi, psi)
    pooled = np.concatenate(ens.trajectories)
    _, centres = backbone_geometry(system)
    return {
        "n_frames": ens.n_frames,
        "span_ns": ens.span_ns,
        "dt_ns": ens.dt_ns,
        "phi_jsd": float(jsd[0]),
        "psi_jsd": float(jsd[1]),
        **{f"pop_{k}": v for k, v in pops.items()},
        **{
            f"pop_{k}_se": v
            for k, v in rama.population_errors(angles, ens.dt_ns, POPULATION_BLOCK_NS).items()
        },
        "alpha_beta_per_ns": rama.transition_rate_per_ns(angles, ens.dt_ns),
        "tica_slowest_ns": tica_timescale_ns(angles, ens.dt_ns, tica_lag),
        "clashes_per_frame": mt.clashes(pooled, system.bonds),
        "bond_rmse": bond_length_rmse(pooled, system),
        "chirality_flips": mt.chirality_flips(pooled, start, centres),
    }
