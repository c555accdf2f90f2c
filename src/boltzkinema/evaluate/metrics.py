"""Ensemble and dynamics metrics against reference MD (DESIGN §5), on coordinates in Å.

Every function takes NumPy arrays or torch tensors (CPU or GPU) of shape (F, M, 3) for one system
and computes in torch on the input's device, in float64; results come back as Python floats or
NumPy arrays. Anything that would need F×F or F×M×M memory runs in chunks of frames or atoms, so
long trajectories stream through in bounded memory.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

CONTACT_CUTOFF = 8.0
TORSION_BINS = 100
CHUNK = 64
ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, device: torch.device | None = None) -> torch.Tensor:
    """float64 tensor on the input's device (or ``device``)."""
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    return t.to(device=device or t.device, dtype=torch.float64)


def _index(x: ArrayLike, device: torch.device) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    return t.to(device=device, dtype=torch.long)


def superpose(x: torch.Tensor, target: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
    """Every frame of ``x`` (F, M, 3) rigidly fitted onto ``target`` (M, 3) on ``selection``."""
    xs, ts = x[:, selection], target[selection]
    cx, ct = xs.mean(1, keepdim=True), ts.mean(0)
    h = (xs - cx).transpose(1, 2) @ (ts - ct)
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.ones_like(u[:, 0])
    fix[:, 2] = d
    rot = (u * fix[:, None, :]) @ vt
    return (x - cx) @ rot + ct


def aligned(
    pred: ArrayLike, ref: ArrayLike, selection: ArrayLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both ensembles superposed on the reference's first frame."""
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    sel = (
        torch.ones(r.shape[1], dtype=torch.bool, device=r.device)
        if selection is None
        else _index(selection, r.device).bool()
    )
    return superpose(p, r[0], sel), superpose(r, r[0], sel)


def rmsf(x: ArrayLike) -> np.ndarray:
    """Root-mean-square fluctuation per atom (Å) of an aligned ensemble."""
    t = as_tensor(x)
    return ((t - t.mean(0)) ** 2).sum(-1).mean(0).sqrt().cpu().numpy()


def pearson(a: ArrayLike, b: ArrayLike) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pairwise_rmsd(x: ArrayLike, max_frames: int = 500) -> float:
    """Mean RMSD over frame pairs after pairwise superposition; at most ``max_frames`` evenly
    spaced frames, one reference frame at a time (memory F × M)."""
    t = as_tensor(x)
    if len(t) < 2:
        return float("nan")
    t = t[torch.linspace(0, len(t) - 1, min(len(t), max_frames)).round().long().unique()]
    sel = torch.ones(t.shape[1], dtype=torch.bool, device=t.device)
    total, count = 0.0, 0
    for i in range(len(t) - 1):
        fitted = superpose(t[i + 1 :], t[i], sel)
        total += float(((fitted - t[i]) ** 2).sum(-1).mean(-1).sqrt().sum())
        count += len(t) - 1 - i
    return total / count


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp_min(0).sqrt()[..., None, :]) @ v.transpose(-1, -2)


def rmwd(pred: ArrayLike, ref: ArrayLike) -> float:
    """Root mean Wasserstein distance of per-atom 3-D Gaussians (aligned ensembles)."""
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    mu1, mu2 = p.mean(0), r.mean(0)
    c1 = torch.einsum("fmi,fmj->mij", p - mu1, p - mu1) / len(p)
    c2 = torch.einsum("fmi,fmj->mij", r - mu2, r - mu2) / len(r)
    s1 = _sqrtm_psd(c1)
    cross = _sqrtm_psd(s1 @ c2 @ s1)
    tr = torch.diagonal(c1 + c2 - 2 * cross, dim1=-2, dim2=-1).sum(-1)
    w2 = ((mu1 - mu2) ** 2).sum(-1) + tr
    return float(w2.clamp_min(0).mean().sqrt())


def pca_basis(ref: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and top-``n`` principal axes of an aligned ensemble (flattened)."""
    flat = ref.reshape(len(ref), -1)
    mean = flat.mean(0)
    _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    return mean, vt[:n]


def pca_w2(pred: ArrayLike, ref: ArrayLike, n_components: int = 2) -> float:
    """Exact 2-Wasserstein distance of the projections on the reference's top PCs."""
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    mean, comps = pca_basis(r, n_components)
    a = (r.reshape(len(r), -1) - mean) @ comps.T
    b = (p.reshape(len(p), -1) - mean) @ comps.T
    n = min(len(a), len(b))
    a = a[torch.linspace(0, len(a) - 1, n, device=a.device).round().long()]
    b = b[torch.linspace(0, len(b) - 1, n, device=b.device).round().long()]
    cost = ((a[:, None] - b[None]) ** 2).sum(-1).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def contact_fraction(x: ArrayLike, cutoff: float = CONTACT_CUTOFF) -> torch.Tensor:
    """Fraction of frames in which each atom pair is closer than ``cutoff`` (M, M)."""
    t = as_tensor(x)
    count = torch.zeros(t.shape[1], t.shape[1], dtype=torch.float64, device=t.device)
    for start in range(0, len(t), CHUNK):
        count += (torch.cdist(t[start : start + CHUNK], t[start : start + CHUNK]) < cutoff).sum(0)
    return count / len(t)


def contact_sets(x: ArrayLike, ref0: ArrayLike, cutoff: float = CONTACT_CUTOFF) -> tuple[set, set]:
    """Weak (in contact at the start, < 90 % of frames) and transient (not at the start,
    > 10 % of frames) contacts between atoms at least three apart."""
    frac = contact_fraction(x, cutoff).cpu().numpy()
    r0 = as_tensor(ref0)
    start = (torch.cdist(r0, r0) < cutoff).cpu().numpy()
    i, j = np.triu_indices(len(start), k=3)
    weak = {(int(a), int(b)) for a, b in zip(i, j, strict=True) if start[a, b] and frac[a, b] < 0.9}
    trans = {
        (int(a), int(b)) for a, b in zip(i, j, strict=True) if not start[a, b] and frac[a, b] > 0.1
    }
    return weak, trans


def jaccard(a: set, b: set) -> float:
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


def torsion_jsd(pred: ArrayLike, ref: ArrayLike) -> float:
    """Mean Jensen–Shannon distance (base e, as scipy's) between per-torsion histograms
    (100 bins on [−π, π]) of angles (F, K)."""
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    if p.numel() == 0 or r.numel() == 0:
        return float("nan")

    def hist(a: torch.Tensor) -> torch.Tensor:
        idx = ((a + torch.pi) / (2 * torch.pi) * TORSION_BINS).long().clamp(0, TORSION_BINS - 1)
        h = torch.zeros(a.shape[1], TORSION_BINS, dtype=a.dtype, device=a.device)
        h.scatter_add_(1, idx.T, torch.ones_like(idx.T, dtype=a.dtype))
        h = h + 1e-6
        return h / h.sum(1, keepdim=True)

    hp, hr = hist(p), hist(r)
    m = 0.5 * (hp + hr)
    js = 0.5 * (hp * (hp / m).log()).sum(1) + 0.5 * (hr * (hr / m).log()).sum(1)
    return float(js.clamp_min(0).sqrt().mean())


def decorrelation_time(series: ArrayLike, dt_ns: float) -> float:
    """First lag (ns) where the autocorrelation of a scalar series drops below 1/e."""
    x = as_tensor(series).flatten()
    x = x - x.mean()
    if len(x) < 3 or float(x.std()) == 0:
        return float("nan")
    n = len(x)
    spec = torch.fft.rfft(x, n=2 * n)
    acf = torch.fft.irfft(spec * spec.conj(), n=2 * n)[:n] / (x.var(unbiased=False) * n)
    below = torch.nonzero(acf < np.exp(-1)).flatten()
    return float(below[0]) * dt_ns if len(below) else n * dt_ns


def tica_first(
    ref: ArrayLike, pred: ArrayLike, lag: int = 1, reg: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Projections on the reference's slowest TICA component (time-lagged covariance)."""
    r = as_tensor(ref)
    p = as_tensor(pred, r.device)
    flat = r.reshape(len(r), -1)
    mean = flat.mean(0)
    x = flat - mean
    if len(x) <= lag + 1:
        return np.zeros(len(r)), np.zeros(len(p))
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    keep = int((s > s[0] * 1e-6).sum())
    basis = vt[: min(20, keep)]
    y = x @ basis.T
    eye = torch.eye(len(basis), dtype=y.dtype, device=y.device)
    c0 = y.T @ y / len(y) + reg * eye
    ct = (y[:-lag].T @ y[lag:] + y[lag:].T @ y[:-lag]) / (2 * (len(y) - lag))
    w, v = torch.linalg.eigh(c0)
    whiten = v / w.sqrt()
    _, ew = torch.linalg.eigh(whiten.T @ ct @ whiten)
    comp = basis.T @ (whiten @ ew[:, -1])
    pp = (p.reshape(len(p), -1) - mean) @ comp
    return (x @ comp).cpu().numpy(), pp.cpu().numpy()


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
