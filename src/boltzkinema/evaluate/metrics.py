"""Ensemble and dynamics metrics against reference MD (DESIGN §5), on coordinates in Å.

Every structural function takes NumPy arrays or torch tensors (CPU or GPU) of shape (F, M, 3) for
one system and computes in torch on the input's device, in float64; results come back as Python
floats or NumPy arrays. Anything that would need F×F or F×M×M memory runs in chunks of frames or
atoms, so long trajectories stream through in bounded memory.

Definitions follow AlphaFlow's ``scripts/analyze_ensembles.py`` and ``scripts/print_analysis.py``
(ensembles: RMSF, pairwise RMSD, RMWD, PCA W2, contacts) and MDGen's
``scripts/analyze_peptide_sim.py`` and ``mdgen/analysis.py`` (torsion JSD, decorrelation, TICA,
MSMs); each function's docstring names its source and any deliberate difference. The kinetics use
``deeptime`` (TICA, k-means, maximum-likelihood MSM, PCCA+) where MDGen used PyEMMA.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from boltzkinema.data.align import kabsch_rotations

log = logging.getLogger(__name__)

CONTACT_CUTOFF = 8.0
TORSION_BINS = 100
CHUNK = 64
INV_E = float(np.exp(-1.0))
MIN_MSM_FRAMES = 20
ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, device: torch.device | None = None) -> torch.Tensor:
    """float64 tensor on the input's device (or ``device``)."""
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    return t.to(device=device or t.device, dtype=torch.float64)


def _index(x: ArrayLike, device: torch.device) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    return t.to(device=device, dtype=torch.long)


def superpose(x: torch.Tensor, target: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
    """Every frame of ``x`` (F, M, 3) rigidly fitted (Kabsch) onto ``target`` (M, 3) on
    ``selection``, as mdtraj's ``Trajectory.superpose`` does."""
    xs, ts = x[:, selection], target[selection]
    cx, ct = xs.mean(1, keepdim=True), ts.mean(0)
    return (x - cx) @ kabsch_rotations(xs - cx, ts - ct) + ct


def aligned(
    pred: ArrayLike,
    ref: ArrayLike,
    selection: ArrayLike | None = None,
    structure: ArrayLike | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both ensembles superposed on the reference structure (``structure``, by default the
    reference ensemble's first frame), as AlphaFlow superposes MD and samples on the PDB."""
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    target = r[0] if structure is None else as_tensor(structure, r.device)
    sel = (
        torch.ones(r.shape[1], dtype=torch.bool, device=r.device)
        if selection is None
        else _index(selection, r.device).bool()
    )
    return superpose(p, target, sel), superpose(r, target, sel)


def rmsf(x: ArrayLike) -> np.ndarray:
    """Root-mean-square fluctuation per atom (Å) about the mean of an aligned ensemble
    (AlphaFlow: ``mdtraj.rmsf(traj, ref)`` after superposing on the reference)."""
    t = as_tensor(x)
    return ((t - t.mean(0)) ** 2).sum(-1).mean(0).sqrt().cpu().numpy()


def pearson(a: ArrayLike, b: ArrayLike) -> float:
    """Pearson r (NaN where either profile is constant)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _even(n: int, k: int, device: torch.device) -> torch.Tensor:
    """``k`` evenly spaced distinct indices into ``n`` items."""
    return torch.linspace(0, n - 1, min(n, k), device=device).round().long().unique()


def pairwise_rmsd(x: ArrayLike, max_frames: int = 500, include_self: bool = True) -> float:
    """Mean Cα RMSD (Å) over frame pairs of an ensemble already superposed on the reference
    structure, with no per-pair superposition (AlphaFlow ``get_rmsds(x, x).mean()``).

    AlphaFlow averages the whole F×F matrix, the zero diagonal included (``include_self``);
    the mean over distinct pairs is that times F/(F−1). At most ``max_frames`` evenly spaced
    frames; distances in row blocks (memory CHUNK × F).
    """
    t = as_tensor(x)
    if len(t) < 2:
        return float("nan")
    t = t[_even(len(t), max_frames, t.device)]
    flat = t.reshape(len(t), -1)
    n_atoms = t.shape[1]
    total = 0.0
    for start in range(0, len(flat), CHUNK):
        total += float(torch.cdist(flat[start : start + CHUNK], flat).sum())
    f = len(flat)
    return float(total / np.sqrt(n_atoms) / (f * f if include_self else f * (f - 1)))


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp_min(0).sqrt()[..., None, :]) @ v.transpose(-1, -2)


def rmwd_parts(pred: ArrayLike, ref: ArrayLike) -> dict[str, float]:
    """Root mean Wasserstein distance of per-atom 3-D Gaussians (aligned ensembles), Å.

    AlphaFlow (``emd_mean``, ``emd_var`` in analyze_ensembles.py; RMWD in print_analysis.py):
    per atom W2² = |μ1−μ2|² + Tr(Σ1+Σ2−2(Σ1^½Σ2Σ1^½)^½) with covariances over frames (1/F);
    ``rmwd_trans`` = √mean|Δμ|², ``rmwd_var`` = √mean(Bures term), ``rmwd`` = √(trans² + var²).
    """
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    mu1, mu2 = p.mean(0), r.mean(0)
    c1 = torch.einsum("fmi,fmj->mij", p - mu1, p - mu1) / len(p)
    c2 = torch.einsum("fmi,fmj->mij", r - mu2, r - mu2) / len(r)
    s1 = _sqrtm_psd(c1)
    cross = _sqrtm_psd(s1 @ c2 @ s1)
    var = torch.diagonal(c1 + c2 - 2 * cross, dim1=-2, dim2=-1).sum(-1).clamp_min(0)
    trans = ((mu1 - mu2) ** 2).sum(-1)
    t2, v2 = float(trans.mean()), float(var.mean())
    return {
        "rmwd": float(np.sqrt(t2 + v2)),
        "rmwd_trans": float(np.sqrt(t2)),
        "rmwd_var": float(np.sqrt(v2)),
    }


def rmwd(pred: ArrayLike, ref: ArrayLike) -> float:
    """RMWD (Å) of aligned ensembles; see :func:`rmwd_parts`."""
    return rmwd_parts(pred, ref)["rmwd"]


def pca_basis(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and top-``n`` principal axes of an aligned ensemble (flattened), as sklearn's PCA."""
    flat = x.reshape(len(x), -1)
    mean = flat.mean(0)
    _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    return mean, vt[:n]


def pca_w2(
    pred: ArrayLike,
    ref: ArrayLike,
    n_components: int = 2,
    basis: str = "ref",
    max_frames: int = 1000,
) -> float:
    """2-Wasserstein distance (Å) of Cα ensembles projected on the top-2 PCs of the reference
    (``basis="ref"``, AlphaFlow "MD PCA W2") or of the joint ensemble (``"joint"``, "Joint PCA
    W2"), distances divided by √N_Cα.

    Exact W2 by linear assignment (scipy) on equal-size samples of both ensembles: n = min of
    their sizes (at most ``max_frames``), evenly spaced frames of each. AlphaFlow instead
    resamples the reference with replacement to the generated ensemble's size; the joint PCA is
    fitted on the two equal-size samples together, as AlphaFlow's is.
    """
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    n_atoms = r.shape[1]
    n = min(len(r), len(p), max_frames)
    a = r[_even(len(r), n, r.device)].reshape(n, -1)
    b = p[_even(len(p), n, r.device)].reshape(n, -1)
    if basis == "ref":
        mean, comps = pca_basis(r, n_components)
    elif basis == "joint":
        mean, comps = pca_basis(torch.cat([a, b]), n_components)
    else:
        raise ValueError(f"basis must be 'ref' or 'joint', not {basis!r}")
    pa, pb = (a - mean) @ comps.T, (b - mean) @ comps.T
    cost = (((pa[:, None] - pb[None]) ** 2).sum(-1) / n_atoms).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def contact_fraction(x: ArrayLike, cutoff: float = CONTACT_CUTOFF) -> torch.Tensor:
    """Fraction of frames in which each atom pair is closer than ``cutoff`` (M, M)."""
    t = as_tensor(x)
    count = torch.zeros(t.shape[1], t.shape[1], dtype=torch.float64, device=t.device)
    for start in range(0, len(t), CHUNK):
        count += (torch.cdist(t[start : start + CHUNK], t[start : start + CHUNK]) < cutoff).sum(0)
    return count / len(t)


def contact_sets(
    x: ArrayLike, ref0: ArrayLike, cutoff: float = CONTACT_CUTOFF, min_separation: int = 1
) -> tuple[set, set]:
    """Weak (in contact in the reference structure, < 90 % of frames) and transient (not in
    contact there, > 10 % of frames) Cα contacts at 8 Å (AlphaFlow print_analysis.py: every
    pair i < j; ``min_separation`` > 1 skips near-sequence neighbours)."""
    frac = contact_fraction(x, cutoff).cpu().numpy()
    r0 = as_tensor(ref0)
    start = (torch.cdist(r0, r0) < cutoff).cpu().numpy()
    i, j = np.triu_indices(len(start), k=min_separation)
    weak = {(int(a), int(b)) for a, b in zip(i, j, strict=True) if start[a, b] and frac[a, b] < 0.9}
    trans = {
        (int(a), int(b)) for a, b in zip(i, j, strict=True) if not start[a, b] and frac[a, b] > 0.1
    }
    return weak, trans


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b| (NaN when both are empty, as AlphaFlow's 0/0)."""
    return float(len(a & b) / len(a | b)) if a | b else float("nan")


def dihedrals(x: ArrayLike, quads: ArrayLike) -> torch.Tensor:
    """Dihedral angles (F, K) in radians for atom quadruples (K, 4)."""
    t = as_tensor(x)
    q = _index(quads, t.device).reshape(-1, 4)
    if len(q) == 0:
        return torch.zeros(len(t), 0, dtype=t.dtype, device=t.device)
    p0, p1, p2, p3 = (t[:, q[:, i]] for i in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    return torch.atan2((torch.cross(b1n, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def histogram_jsd(a: ArrayLike, b: ArrayLike, lo: float, hi: float, bins: int) -> float:
    """Jensen–Shannon distance (scipy, base e: 0 … √ln2) of two samples' histograms of counts
    on ``bins`` bins over [lo, hi] (NaN where either sample is empty)."""
    a, b = _numpy(a).ravel(), _numpy(b).ravel()
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    ha = np.histogram(a, bins=bins, range=(lo, hi))[0]
    hb = np.histogram(b, bins=bins, range=(lo, hi))[0]
    if ha.sum() == 0 or hb.sum() == 0:
        return float("nan")
    return float(jensenshannon(ha, hb))


def torsion_jsd(pred: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """Per-angle Jensen–Shannon distance (K,) between the histograms (100 bins on [−π, π]) of
    angles (F, K) and (F', K) (MDGen analyze_peptide_sim.py: scipy ``jensenshannon`` of counts,
    base e, so at most √ln2)."""
    p, r = _numpy(pred), _numpy(ref)
    if p.ndim != 2 or r.ndim != 2 or p.shape[1] != r.shape[1]:
        raise ValueError(f"angles must be (F, K) with the same K, got {p.shape} and {r.shape}")
    return np.array(
        [histogram_jsd(p[:, k], r[:, k], -np.pi, np.pi, TORSION_BINS) for k in range(p.shape[1])]
    )


def _segments(x: ArrayLike | Sequence[ArrayLike]) -> list[np.ndarray]:
    """One array per trajectory, each (n, D): a list is kept, an array is one trajectory."""
    segs = list(x) if isinstance(x, list | tuple) else [x]
    out = []
    for s in segs:
        a = _numpy(s).astype(np.float64)
        out.append(a.reshape(len(a), -1))
    return out


MAX_LAG_FRACTION = 0.1


def autocorrelation(
    series: ArrayLike | Sequence[ArrayLike], max_lag: int | None = None, demean: bool = True
) -> np.ndarray:
    """Normalised autocorrelation ρ(k), k = 0 … max_lag, of a (multi-dimensional) time series.

    MDGen's torsion decorrelation (``demean=False``): C(k) = Σ_d acovf(x_d, demean=False,
    adjusted=True)[k], the mean of x_t·x_{t+k} over the n−k available pairs summed over
    dimensions; with b = Σ_d mean(x_d)², ρ(k) = (C(k) − b) / (C(0) − b). For (sin θ, cos θ) of
    one angle C(0) = 1, which is MDGen's (acf − baseline) / (1 − baseline). ``demean=True``
    subtracts the mean first (b = 0), for series not bounded like sin/cos (a TICA projection).
    A list holds independent trajectories (samples): pairs are counted within each, never
    across. ``max_lag`` defaults to a tenth of the longest trajectory (at least 1): beyond it a
    window's own mean absorbs the slow motion and the estimate drops spuriously.
    """
    segs = [s for s in _segments(series) if len(s)]
    if not segs:
        return np.full(1, np.nan)
    pooled = np.concatenate(segs)
    pooled_mean, size = pooled.mean(0), float((pooled**2).sum(1).mean())
    if demean:
        segs = [s - pooled_mean for s in segs]
    longest = max(len(s) for s in segs)
    if max_lag is None:
        max_lag = max(1, int(longest * MAX_LAG_FRACTION))
    max_lag = max(0, min(max_lag, longest - 1))
    num = np.zeros(max_lag + 1)
    den = np.zeros(max_lag + 1)
    for s in segs:
        n = len(s)
        spec = np.fft.rfft(s, n=2 * n, axis=0)
        acov = np.fft.irfft(spec * spec.conj(), n=2 * n, axis=0)[:n].sum(1)
        k = min(n, max_lag + 1)
        num[:k] += acov[:k]
        den[:k] += n - np.arange(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = num / den
    baseline = 0.0 if demean else float((pooled_mean**2).sum())
    scale = c[0] - baseline
    if not scale > 1e-12 * max(size, 1e-300):  # no fluctuation
        return np.full(max_lag + 1, np.nan)
    return (c - baseline) / scale


def decorrelation_time(
    series: ArrayLike | Sequence[ArrayLike],
    dt_ns: float,
    max_lag: int | None = None,
    demean: bool = True,
) -> tuple[float, bool]:
    """Time (ns) at which the autocorrelation (:func:`autocorrelation`) first falls below 1/e,
    linearly interpolated between lags, and whether it is censored.

    Censored (NaN, True): the autocorrelation stays above 1/e over every lag examined (a tenth
    of the trajectory by default), so the time is only known to exceed it; never the trajectory
    length. A series without fluctuation gives (NaN, False).
    """
    rho = autocorrelation(series, max_lag, demean)
    if not np.isfinite(rho[0]):
        return float("nan"), False
    below = np.nonzero(rho[1:] < INV_E)[0]
    if len(below) == 0:
        return float("nan"), True
    k = int(below[0]) + 1
    frac = (rho[k - 1] - INV_E) / (rho[k - 1] - rho[k])
    return float((k - 1 + frac) * dt_ns), False


def censored_median(times: ArrayLike, censored: ArrayLike) -> tuple[float, bool]:
    """Median of right-censored times: censored ones rank above every observed one (they exceed
    the longest lag). (NaN, True) when the median falls on a censored value; NaN times that are
    not censored (no fluctuation) are left out."""
    t, c = np.asarray(times, float), np.asarray(censored, bool)
    keep = c | np.isfinite(t)
    if not keep.any():
        return float("nan"), False
    med = float(np.median(np.where(c[keep], np.inf, t[keep])))
    return (float("nan"), True) if np.isinf(med) else (med, False)


def torsion_features(angles: ArrayLike) -> np.ndarray:
    """(sin θ, cos θ) features (F, 2K) of angles (F, K), as PyEMMA's ``cossin=True``."""
    a = _numpy(angles).astype(np.float64)
    return np.concatenate([np.sin(a), np.cos(a)], axis=1)


def torsion_decorrelation(
    angles: ArrayLike | Sequence[ArrayLike], dt_ns: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-angle decorrelation time (ns) of (sin θ, cos θ) and its censored flag (MDGen)."""
    segs = _segments(angles)
    k = segs[0].shape[1] if segs else 0
    out = [
        decorrelation_time([torsion_features(s[:, [i]]) for s in segs], dt_ns, demean=False)
        for i in range(k)
    ]
    return np.array([o[0] for o in out], float), np.array([o[1] for o in out], bool)


def _coarse_msm(
    dtrajs: list[np.ndarray], n_states: int, lag: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Stationary distribution (n,) and transition matrix (n, n) of a reversible MLE MSM on the
    largest connected set, embedded in ``n_states`` states (π = 0, T = I outside)."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    dtrajs = [d for d in dtrajs if len(d) > lag]
    if not dtrajs:
        return None
    counts = TransitionCountEstimator(lag, "sliding", n_states=n_states).fit_fetch(dtrajs)
    counts = counts.submodel_largest()
    if counts.n_states < 2:
        return None
    msm = MaximumLikelihoodMSM(reversible=True).fit_fetch(counts)
    active = counts.state_symbols
    pi = np.zeros(n_states)
    pi[active] = msm.stationary_distribution
    t = np.eye(n_states)
    t[np.ix_(active, active)] = msm.transition_matrix
    return pi, t


def _slowest_timescale(dtrajs: list[np.ndarray], lag: int, dt_ns: float) -> float:
    """Slowest implied timescale (ns) of a reversible MLE MSM on the largest connected set."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    dtrajs = [d for d in dtrajs if len(d) > lag]
    if not dtrajs:
        return float("nan")
    counts = TransitionCountEstimator(lag, "sliding").fit_fetch(dtrajs).submodel_largest()
    if counts.n_states < 2:
        return float("nan")
    msm = MaximumLikelihoodMSM(reversible=True).fit_fetch(counts)
    return float(msm.timescales(1)[0]) * dt_ns


KINETIC_KEYS = (
    "tica0_jsd",
    "decorrelation_ns_pred",
    "decorrelation_ns_pred_censored",
    "decorrelation_ns_ref",
    "decorrelation_ns_ref_censored",
    "msm_n_metastable",
    "msm_state_jsd",
    "msm_state_l1",
    "msm_flux_spearman",
    "msm_flux_l1",
    "its_slowest_ns_pred",
    "its_slowest_ns_ref",
)


def kinetics(
    ref_features: ArrayLike,
    pred_features: ArrayLike | Sequence[ArrayLike],
    dt_ns_ref: float,
    dt_ns_pred: float,
    lag: int = 1,
    n_clusters: int = 100,
    n_metastable: int = 10,
    seed: int = 137,
) -> dict[str, float | bool]:
    """MDGen's kinetics on torsion (sin, cos) features, with deeptime.

    TICA (kinetic map, 95 % kinetic variance, ``lag`` frames) fitted on the reference; both
    projected. ``tica0_jsd``: JSD of the first component's histograms (100 bins over the joint
    range). ``decorrelation_ns_*``: 1/e time of the first component's autocorrelation (censored
    flagged). MSM (needs ≥ MIN_MSM_FRAMES reference frames): k-means (at most ``n_clusters``,
    one per 10 reference frames) on the reference's TICA space, reversible MLE MSM, PCCA+ into
    at most ``n_metastable`` sets; every frame gets its microstate's metastable set (frames in
    microstates outside the reference MSM's connected set count in one extra bin). Metastable
    populations of model and reference: ``msm_state_jsd`` (JSD) and ``msm_state_l1`` (Σ|Δp|);
    fluxes F_ij = π_i T_ij (i ≠ j) of MSMs on the metastable trajectories of each:
    ``msm_flux_spearman`` and ``msm_flux_l1``; ``its_slowest_ns_*``: slowest implied timescale
    of a microstate MSM of each. NaN where the data cannot carry the estimate.
    """
    from deeptime.clustering import KMeans
    from deeptime.decomposition import TICA

    out: dict[str, float | bool] = {k: float("nan") for k in KINETIC_KEYS}
    out["decorrelation_ns_pred_censored"] = out["decorrelation_ns_ref_censored"] = False
    ref = _segments(ref_features)[0]
    preds = [s for s in _segments(pred_features) if len(s)]
    if ref.shape[1] == 0 or len(ref) < lag + 2 or not preds or ref.std(0).max() == 0:
        return out
    try:
        tica = TICA(lagtime=lag, var_cutoff=0.95, scaling="kinetic_map").fit_fetch(ref)
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.warning("TICA on the reference failed (%s); no kinetic metrics", exc)
        return out
    ref_tic = tica.transform(ref)
    pred_tic = [tica.transform(s) for s in preds]
    r0, p0 = ref_tic[:, 0], np.concatenate([s[:, 0] for s in pred_tic])
    lo, hi = float(min(r0.min(), p0.min())), float(max(r0.max(), p0.max()))
    out["tica0_jsd"] = histogram_jsd(p0, r0, lo, hi, TORSION_BINS) if hi > lo else 0.0
    t_r, c_r = decorrelation_time(r0, dt_ns_ref)
    t_p, c_p = decorrelation_time([s[:, 0] for s in pred_tic], dt_ns_pred)
    out.update(
        decorrelation_ns_ref=t_r,
        decorrelation_ns_ref_censored=c_r,
        decorrelation_ns_pred=t_p,
        decorrelation_ns_pred_censored=c_p,
    )
    if len(ref) < MIN_MSM_FRAMES:
        return out
    try:
        k = max(2, min(n_clusters, len(ref) // 10))
        km = KMeans(k, max_iter=100, fixed_seed=seed).fit_fetch(ref_tic)
        ref_d = km.transform(ref_tic).astype(np.int64)
        pred_d = [km.transform(s).astype(np.int64) for s in pred_tic]
        out["its_slowest_ns_ref"] = _slowest_timescale([ref_d], lag, dt_ns_ref)
        out["its_slowest_ns_pred"] = _slowest_timescale(pred_d, lag, dt_ns_pred)
        _metastable(out, ref_d, pred_d, k, lag, n_metastable)
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        log.warning("MSM estimation failed (%s); MSM metrics are NaN", exc)
    return out


def _metastable(
    out: dict[str, float | bool],
    ref_d: np.ndarray,
    pred_d: list[np.ndarray],
    n_micro: int,
    lag: int,
    n_metastable: int,
) -> None:
    """PCCA+ on the reference microstate MSM; populations and fluxes of both (into ``out``)."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    counts = TransitionCountEstimator(lag, "sliding", n_states=n_micro).fit_fetch([ref_d])
    counts = counts.submodel_largest()
    if counts.n_states < 2:
        return
    msm = MaximumLikelihoodMSM(reversible=True).fit_fetch(counts)
    n_meta = min(n_metastable, counts.n_states)
    pcca = msm.pcca(n_meta)
    meta_of = np.full(n_micro, n_meta, dtype=np.int64)  # outside the connected set: extra bin
    meta_of[counts.state_symbols] = pcca.assignments
    ref_m = meta_of[ref_d]
    pred_m = [meta_of[d] for d in pred_d]
    n_bins = n_meta + 1
    p_ref = np.bincount(ref_m, minlength=n_bins) / len(ref_m)
    allp = np.concatenate(pred_m)
    p_pred = np.bincount(allp, minlength=n_bins) / len(allp)
    out["msm_n_metastable"] = float(n_meta)
    out["msm_state_jsd"] = float(jensenshannon(p_pred, p_ref))
    out["msm_state_l1"] = float(np.abs(p_pred - p_ref).sum())
    cr, cp = _coarse_msm([ref_m], n_bins, lag), _coarse_msm(pred_m, n_bins, lag)
    if cr is None or cp is None:
        return
    off = ~np.eye(n_bins, dtype=bool)
    f_ref, f_pred = (cr[0][:, None] * cr[1])[off], (cp[0][:, None] * cp[1])[off]
    out["msm_flux_l1"] = float(np.abs(f_pred - f_ref).sum())
    if f_ref.std() > 0 and f_pred.std() > 0:
        out["msm_flux_spearman"] = float(spearmanr(f_pred, f_ref)[0])


def bond_violations(x: ArrayLike, bonds: ArrayLike, lengths: ArrayLike, tol: float = 0.2) -> float:
    """Fraction of (frame, bond) pairs off their reference length by more than ``tol`` Å."""
    t = as_tensor(x)
    b = _index(bonds, t.device).reshape(-1, 2)
    if len(b) == 0:
        return 0.0
    d = (t[:, b[:, 0]] - t[:, b[:, 1]]).norm(dim=-1)
    return float(((d - as_tensor(lengths, t.device)).abs() > tol).double().mean())


def clashes(x: ArrayLike, bonds: ArrayLike, cutoff: float = 2.2, chunk: int = 1024) -> float:
    """Mean number per frame of heavy-atom pairs closer than ``cutoff`` Å that are neither
    bonded nor share a bonded neighbour (atom blocks, never a full M×M per frame batch)."""
    t = as_tensor(x)
    m = t.shape[1]
    b = _index(bonds, t.device).reshape(-1, 2)
    adj = torch.zeros(m, m, dtype=torch.bool, device=t.device)
    adj[b[:, 0], b[:, 1]] = adj[b[:, 1], b[:, 0]] = True
    near = (
        adj | ((adj.double() @ adj.double()) > 0) | torch.eye(m, dtype=torch.bool, device=t.device)
    )
    total = 0
    for f in range(len(t)):
        for start in range(0, m, chunk):
            rows = slice(start, min(m, start + chunk))
            close = (torch.cdist(t[f, rows], t[f]) < cutoff) & ~near[rows]
            total += int(close.sum())
    return total / 2 / len(t)


def chain_breaks(x: ArrayLike, ca_pairs: ArrayLike, limit: float = 4.2) -> float:
    """Mean number per frame of consecutive Cα pairs farther apart than ``limit`` Å."""
    t = as_tensor(x)
    pairs = _index(ca_pairs, t.device).reshape(-1, 2)
    if len(pairs) == 0:
        return 0.0
    d = (t[:, pairs[:, 0]] - t[:, pairs[:, 1]]).norm(dim=-1)
    return float((d > limit).double().sum(1).mean())


def chirality_flips(x: ArrayLike, ref0: ArrayLike, centres: ArrayLike) -> float:
    """Fraction of (frame, centre) whose handedness (sign of the triple product of three
    neighbours around a centre, e.g. N, C, CB around Cα) differs from the reference."""
    t = as_tensor(x)
    c = _index(centres, t.device).reshape(-1, 4)
    if len(c) == 0:
        return 0.0

    def sign(y: torch.Tensor) -> torch.Tensor:
        a, b, d, o = (y[..., c[:, i], :] for i in range(4))
        return torch.sign((torch.cross(a - o, b - o, dim=-1) * (d - o)).sum(-1))

    return float((sign(t) != sign(as_tensor(ref0, t.device)[None])).double().mean())


def pocket_contacts_kept(
    x: ArrayLike, ref0: ArrayLike, ligand: ArrayLike, receptor: ArrayLike, cutoff: float = 4.5
) -> float:
    """Fraction of the reference's ligand–receptor heavy-atom contacts present, per frame mean."""
    t = as_tensor(x)
    r0 = as_tensor(ref0, t.device)
    lig = torch.nonzero(_index(ligand, t.device).bool()).flatten()
    rec = torch.nonzero(_index(receptor, t.device).bool()).flatten()
    if len(lig) == 0 or len(rec) == 0:
        return float("nan")
    pairs = torch.nonzero(torch.cdist(r0[lig], r0[rec]) < cutoff)
    if len(pairs) == 0:
        return float("nan")
    a, b = lig[pairs[:, 0]], rec[pairs[:, 1]]
    return float(((t[:, a] - t[:, b]).norm(dim=-1) < cutoff).double().mean())
