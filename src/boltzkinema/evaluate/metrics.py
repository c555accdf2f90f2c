"""Ensemble and dynamics metrics against reference MD (DESIGN §5), on coordinates in Å.

Inputs are (F, M, 3) arrays of one system with the same atoms; every function superposes on the
reference's first frame first where the metric needs a common frame. Frames are processed in
chunks where a metric would otherwise hold F×F or F×M×M arrays.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import jensenshannon

from boltzkinema.data.align import superpose

CONTACT_CUTOFF = 8.0
TORSION_BINS = 100
_CHUNK = 64


def aligned(
    pred: np.ndarray, ref: np.ndarray, selection: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both ensembles superposed on the reference's first frame (Kabsch on ``selection``)."""
    sel = np.ones(ref.shape[1], bool) if selection is None else selection
    stacked = np.concatenate([ref[:1], ref, pred]).astype(np.float64)
    out = superpose(stacked, sel)
    return out[1 + len(ref) :], out[1 : 1 + len(ref)]


def rmsf(x: np.ndarray) -> np.ndarray:
    """Root-mean-square fluctuation per atom (Å) of an aligned ensemble."""
    return np.sqrt(((x - x.mean(axis=0)) ** 2).sum(-1).mean(axis=0))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pairwise_rmsd(x: np.ndarray) -> float:
    """Mean RMSD over all frame pairs of an ensemble (after pairwise superposition)."""
    f = len(x)
    if f < 2:
        return float("nan")
    vals = []
    for i in range(f - 1):
        others = superpose(
            np.concatenate([x[i : i + 1], x[i + 1 :]]).astype(np.float64), np.ones(x.shape[1], bool)
        )
        d = np.sqrt(((others[1:] - others[:1]) ** 2).sum(-1).mean(-1))
        vals.append(d)
    return float(np.concatenate(vals).mean())


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def rmwd(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root mean Wasserstein distance of per-atom 3-D Gaussians (aligned ensembles)."""
    mu1, mu2 = pred.mean(0), ref.mean(0)
    c1 = np.einsum("fmi,fmj->mij", pred - mu1, pred - mu1) / len(pred)
    c2 = np.einsum("fmi,fmj->mij", ref - mu2, ref - mu2) / len(ref)
    s1 = _sqrtm_psd(c1)
    cross = _sqrtm_psd(s1 @ c2 @ s1)
    w2 = ((mu1 - mu2) ** 2).sum(-1) + np.trace(c1 + c2 - 2 * cross, axis1=-2, axis2=-1)
    return float(np.sqrt(np.clip(w2, 0, None).mean()))


def pca_w2(pred: np.ndarray, ref: np.ndarray, n_components: int = 2) -> float:
    """Exact 2-Wasserstein distance of the projections on the reference's top PCs."""
    r = ref.reshape(len(ref), -1)
    p = pred.reshape(len(pred), -1)
    mean = r.mean(0)
    _, _, vt = np.linalg.svd(r - mean, full_matrices=False)
    comps = vt[:n_components]
    a, b = (r - mean) @ comps.T, (p - mean) @ comps.T
    n = min(len(a), len(b))
    a = a[np.linspace(0, len(a) - 1, n).round().astype(int)]
    b = b[np.linspace(0, len(b) - 1, n).round().astype(int)]
    cost = ((a[:, None] - b[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def contact_fraction(x: np.ndarray, cutoff: float = CONTACT_CUTOFF) -> np.ndarray:
    """Fraction of frames in which each atom pair is closer than ``cutoff`` (M, M)."""
    m = x.shape[1]
    count = np.zeros((m, m))
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK]
        d = np.linalg.norm(chunk[:, :, None] - chunk[:, None, :], axis=-1)
        count += (d < cutoff).sum(0)
    return count / len(x)


def contact_sets(
    x: np.ndarray, ref0: np.ndarray, cutoff: float = CONTACT_CUTOFF
) -> tuple[set, set]:
    """Weak (in contact at the start, < 90 % of frames) and transient (not at the start,
    > 10 % of frames) contacts between atoms at least three apart."""
    frac = contact_fraction(x, cutoff)
    start = np.linalg.norm(ref0[:, None] - ref0[None], axis=-1) < cutoff
    i, j = np.triu_indices(len(ref0), k=3)
    weak = {(a, b) for a, b in zip(i, j, strict=True) if start[a, b] and frac[a, b] < 0.9}
    trans = {(a, b) for a, b in zip(i, j, strict=True) if not start[a, b] and frac[a, b] > 0.1}
    return weak, trans


def jaccard(a: set, b: set) -> float:
    return float(len(a & b) / len(a | b)) if a | b else float("nan")


def torsion_jsd(pred: np.ndarray, ref: np.ndarray) -> float:
    """Jensen–Shannon distance between histograms (100 bins on [−π, π]) of angles (F, K)."""
    if pred.size == 0 or ref.size == 0:
        return float("nan")
    bins = np.linspace(-np.pi, np.pi, TORSION_BINS + 1)
    vals = []
    for k in range(pred.shape[1]):
        hp = np.histogram(pred[:, k], bins)[0] + 1e-6
        hr = np.histogram(ref[:, k], bins)[0] + 1e-6
        vals.append(jensenshannon(hp / hp.sum(), hr / hr.sum()))
    return float(np.mean(vals))


def decorrelation_time(series: np.ndarray, dt_ns: float) -> float:
    """First lag (ns) where the autocorrelation of a scalar series drops below 1/e."""
    x = series - series.mean()
    if len(x) < 3 or x.std() == 0:
        return float("nan")
    acf = np.correlate(x, x, mode="full")[len(x) - 1 :] / (x.var() * len(x))
    below = np.flatnonzero(acf < np.exp(-1))
    return float(below[0] * dt_ns) if len(below) else float(len(x) * dt_ns)


def bond_violations(
    x: np.ndarray, bonds: np.ndarray, lengths: np.ndarray, tol: float = 0.2
) -> float:
    """Fraction of (frame, bond) pairs off their reference length by more than ``tol`` Å."""
    if len(bonds) == 0:
        return 0.0
    d = np.linalg.norm(x[:, bonds[:, 0]] - x[:, bonds[:, 1]], axis=-1)
    return float((np.abs(d - lengths[None]) > tol).mean())


def clashes(x: np.ndarray, bonds: np.ndarray, cutoff: float = 2.2) -> float:
    """Mean number per frame of heavy-atom pairs closer than ``cutoff`` Å that are neither
    bonded nor share a bonded neighbour (neighbour search, never M×M)."""
    from scipy.sparse import coo_matrix
    from scipy.spatial import cKDTree

    m = x.shape[1]
    adj = (
        coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(m, m)).tocsr()
        if len(bonds)
        else coo_matrix((m, m)).tocsr()
    )
    adj = adj + adj.T
    near = ((adj + adj @ adj) > 0).tocsr()
    total = 0
    for frame in x:
        pairs = cKDTree(frame).query_pairs(cutoff, output_type="ndarray")
        if len(pairs):
            total += int((~np.asarray(near[pairs[:, 0], pairs[:, 1]]).ravel().astype(bool)).sum())
    return total / len(x)


def dihedrals(x: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles (F, K) in radians for atom quadruples (K, 4)."""
    if len(quads) == 0:
        return np.zeros((len(x), 0))
    p0, p1, p2, p3 = (x[:, quads[:, i]] for i in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1n).sum(-1, keepdims=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdims=True) * b1n
    return np.arctan2((np.cross(b1n, v) * w).sum(-1), (v * w).sum(-1))


def tica_first(
    ref: np.ndarray, pred: np.ndarray, lag: int = 1, reg: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Projections on the reference's slowest TICA component (time-lagged covariance)."""
    r = ref.reshape(len(ref), -1)
    mean = r.mean(0)
    x = r - mean
    if len(x) <= lag + 1:
        return np.zeros(len(ref)), np.zeros(len(pred))
    # Work in the PCA basis of the reference to keep the eigenproblem small and well posed.
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > s[0] * 1e-6
    basis = vt[keep][: min(20, int(keep.sum()))]
    y = x @ basis.T
    c0 = y.T @ y / len(y) + reg * np.eye(len(basis))
    ct = (y[:-lag].T @ y[lag:] + y[lag:].T @ y[:-lag]) / (2 * (len(y) - lag))
    w, v = np.linalg.eigh(c0)
    whiten = v / np.sqrt(w)
    _, ew = np.linalg.eigh(whiten.T @ ct @ whiten)
    comp = basis.T @ (whiten @ ew[:, -1])
    return x @ comp, (pred.reshape(len(pred), -1) - mean) @ comp


def chain_breaks(x: np.ndarray, ca_pairs: np.ndarray, limit: float = 4.2) -> float:
    """Mean number per frame of consecutive Cα pairs farther apart than ``limit`` Å."""
    if len(ca_pairs) == 0:
        return 0.0
    d = np.linalg.norm(x[:, ca_pairs[:, 0]] - x[:, ca_pairs[:, 1]], axis=-1)
    return float((d > limit).sum(1).mean())


def chirality_flips(x: np.ndarray, ref0: np.ndarray, centres: np.ndarray) -> float:
    """Fraction of (frame, centre) whose handedness (sign of the triple product of the three
    neighbours around a centre, e.g. N, C, CB around Cα) differs from the reference."""
    if len(centres) == 0:
        return 0.0

    def sign(c: np.ndarray) -> np.ndarray:
        a, b, d, o = (c[..., centres[:, i], :] for i in range(4))
        return np.sign(np.einsum("...i,...i->...", np.cross(a - o, b - o), d - o))

    return float((sign(x) != sign(ref0[None])).mean())


def pocket_contacts_kept(
    x: np.ndarray, ref0: np.ndarray, ligand: np.ndarray, receptor: np.ndarray, cutoff: float = 4.5
) -> float:
    """Fraction of the reference's ligand–receptor heavy-atom contacts present, per frame mean."""
    lig, rec = np.flatnonzero(ligand), np.flatnonzero(receptor)
    if len(lig) == 0 or len(rec) == 0:
        return float("nan")
    d0 = np.linalg.norm(ref0[lig][:, None] - ref0[rec][None], axis=-1)
    pairs = np.argwhere(d0 < cutoff)
    if len(pairs) == 0:
        return float("nan")
    a, b = lig[pairs[:, 0]], rec[pairs[:, 1]]
    d = np.linalg.norm(x[:, a] - x[:, b], axis=-1)
    return float((d < cutoff).mean())
