"""Backbone conformational states of a peptide from its (φ, ψ) angles: populations and kinetics.

The three basins of a capped amino acid, as used for alanine dipeptide in the learned-propagator
literature: β/PPII (φ < 0, ψ outside (−120°, 50°)), αR (φ < 0, −120° ≤ ψ ≤ 50°) and αL/C7ax
(φ ≥ 0). Together they cover the plane. Transitions are counted between *cores* of the basins
(a frame between cores keeps the state of the last core visited), so that a trajectory
jittering on a boundary makes none.
"""

from __future__ import annotations

import numpy as np

STATES = ("beta", "alpha_R", "alpha_L")
BETA, ALPHA_R, ALPHA_L = range(3)


def basin(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """State index (0 β/PPII, 1 αR, 2 αL/C7ax) of every (φ, ψ) pair, angles in radians."""
    phi_d, psi_d = np.degrees(phi), np.degrees(psi)
    alpha = (psi_d >= -120.0) & (psi_d <= 50.0)
    out = np.where(alpha, ALPHA_R, BETA)
    return np.where(phi_d >= 0.0, ALPHA_L, out)


def core(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """State index of frames inside a basin's core, −1 for frames between cores.

    Cores: β/PPII φ ≤ −45°, ψ ≥ 90° or ψ ≤ −150°; αR φ ∈ [−160°, −30°], ψ ∈ [−90°, 20°];
    αL/C7ax φ ≥ 30°.
    """
    phi_d, psi_d = np.degrees(phi), np.degrees(psi)
    out = np.full(np.shape(phi), -1)
    beta = (phi_d <= -45.0) & ((psi_d >= 90.0) | (psi_d <= -150.0))
    alpha = (phi_d >= -160.0) & (phi_d <= -30.0) & (psi_d >= -90.0) & (psi_d <= 20.0)
    out[beta] = BETA
    out[alpha] = ALPHA_R
    out[phi_d >= 30.0] = ALPHA_L
    return out


def populations(phi: np.ndarray, psi: np.ndarray) -> dict[str, float]:
    """Fraction of frames in each basin."""
    counts = np.bincount(np.asarray(basin(phi, psi)).ravel(), minlength=len(STATES))
    return {s: float(c / max(counts.sum(), 1)) for s, c in zip(STATES, counts, strict=True)}


def population_errors(
    trajectories: list[tuple[np.ndarray, np.ndarray]], dt_ns: float, block_ns: float
) -> dict[str, float]:
    """Standard error of each basin's population by block averaging (Flyvbjerg & Petersen
    1989): every trajectory cut into blocks of ``block_ns`` (the remainder dropped), the error
    the spread of the block populations over √(number of blocks). Blocks much longer than the
    slowest relaxation are independent; NaN with fewer than two blocks."""
    size = max(1, round(block_ns / dt_ns))
    blocks = [
        populations(phi[i : i + size], psi[i : i + size])
        for phi, psi in trajectories
        for i in range(0, len(phi) - size + 1, size)
    ]
    if len(blocks) < 2:
        return dict.fromkeys(STATES, float("nan"))
    return {s: float(np.std([b[s] for b in blocks], ddof=1) / np.sqrt(len(blocks))) for s in STATES}


def core_path(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Per frame the state of the last core visited (−1 before the first core)."""
    c = core(phi, psi)
    seen = np.where(c >= 0, np.arange(len(c)), -1)
    last = np.maximum.accumulate(seen)
    return np.where(last >= 0, c[np.maximum(last, 0)], -1)


def transitions(trajectories: list[tuple[np.ndarray, np.ndarray]], a: int, b: int) -> int:
    """Number of core-to-core transitions between states ``a`` and ``b`` (either way)."""
    total = 0
    for phi, psi in trajectories:
        path = core_path(phi, psi)
        path = path[path >= 0]
        change = np.flatnonzero(path[1:] != path[:-1])
        total += sum({int(path[i]), int(path[i + 1])} == {a, b} for i in change)
    return total


def transition_rate_per_ns(
    trajectories: list[tuple[np.ndarray, np.ndarray]],
    dt_ns: float,
    a: int = ALPHA_R,
    b: int = BETA,
) -> float:
    """α↔β (by default) core-to-core transitions per ns, pooled over trajectories sampled every
    ``dt_ns``."""
    frames = sum(max(len(phi) - 1, 0) for phi, _ in trajectories)
    if frames == 0:
        return float("nan")
    return transitions(trajectories, a, b) / (frames * dt_ns)


def conditional_probabilities(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """P[i, j] = fraction of the pairs starting in basin ``i`` that end in basin ``j`` (paired
    arrays of basin indices); a row without starts is NaN. At one lag this is the empirical
    transition matrix between the basins (one window of a model, or MD over the same time)."""
    n = len(STATES)
    counts = np.zeros((n, n))
    np.add.at(counts, (np.asarray(start), np.asarray(end)), 1.0)
    with np.errstate(invalid="ignore"):
        return counts / counts.sum(axis=1, keepdims=True)


def stationary_populations(p: np.ndarray) -> np.ndarray:
    """The populations a basin transition matrix ``p`` leaves unchanged (deeptime's stationary
    distribution of the Markov chain), over the basins that have starts; 0 elsewhere. Applied
    over and over, as a rollout applies its window, ``p`` drives any start to these."""
    from deeptime.markov.msm import MarkovStateModel

    ok = np.isfinite(p).all(axis=1)
    sub = p[np.ix_(ok, ok)]
    sub = sub / sub.sum(axis=1, keepdims=True)
    out = np.zeros(len(p))
    out[ok] = MarkovStateModel(sub).stationary_distribution
    return out
