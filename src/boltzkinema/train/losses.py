"""Training losses, each masked to noised (target) frames and real atoms, and normalised per
frame and per atom so that the amount of padding in a batch does not change them.

The structure term is the denoising objective (EDM-weighted MSE): its optimum is the posterior
mean, which is what makes the sampler draw from the data's distribution. The geometric terms
(bond, lDDT, flexibility, chirality) ask the denoised output to be one valid structure; with
``geometry_sigma`` they weigh s²/(σ² + s²) per frame, so that they shape the low-noise detail
but leave the high-noise choice between conformations to the denoising objective.
"""

from __future__ import annotations

import torch

from boltzkinema.io.chemistry import MolType
from boltzkinema.model.edm import loss_weight
from boltzkinema.settings import settings

MOL_WEIGHTS = {
    MolType.PROTEIN: 1.0,
    MolType.DNA: 5.0,
    MolType.RNA: 5.0,
    MolType.LIGAND: 10.0,
    MolType.OTHER: 1.0,
}
LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


@settings("train.losses")
class LossWeights:
    """The ``train.losses`` section: the weight of each loss term."""

    structure: float
    bond: float
    lddt: float
    flexibility: float
    ligand_centre: float
    chirality: float
    geometry_sigma: float | None
    lddt_cutoff: float
    chunk: int


def target_frames(batch: dict) -> torch.Tensor:
    """(B, T) bool: real frames that were noised."""
    return batch["frame_mask"] & (batch["sigma_rel"] > 0)


def geometry_weights(sigma: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Per-frame weight of the geometric terms at noise level ``sigma`` (Å): s²/(σ² + s²) for
    ``scale`` s, 1 where ``scale`` is None."""
    if scale is None:
        return torch.ones_like(sigma)
    return scale**2 / (sigma**2 + scale**2)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _per_frame(values: torch.Tensor, frame_weight: torch.Tensor | None) -> torch.Tensor:
    """``values`` (B, T, ...) times a per-frame weight (B, T), where one is given. The weight
    scales a frame's contribution; the mean stays over the unweighted count of elements."""
    if frame_weight is None:
        return values
    return values * frame_weight.reshape(*frame_weight.shape, *(1,) * (values.dim() - 2))


def atom_weights(batch: dict) -> torch.Tensor:
    """Molecule-type weight of every atom, zero for padding (B, M)."""
    coords = batch["coords"]
    table = torch.tensor(
        [MOL_WEIGHTS[MolType(i)] for i in range(len(MolType))],
        dtype=coords.dtype,
        device=coords.device,
    )
    return table[batch["mol_type"]] * batch["atom_mask"]


def weighted_rigid_align(
    x_true: torch.Tensor, x_pred: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """Ground truth superposed on the prediction per frame (weighted Kabsch, no gradient)."""
    with torch.no_grad():
        wn = (w / w.sum(-1, keepdim=True).clamp_min(1e-8))[:, None, :, None]  # (B, 1, M, 1)
        mu_t = (x_true * wn).sum(-2, keepdim=True)
        mu_p = (x_pred * wn).sum(-2, keepdim=True)
        h = ((x_true - mu_t) * wn).transpose(-1, -2) @ (x_pred - mu_p)  # (B, T, 3, 3)
        u, _, vh = torch.linalg.svd(h.double())
        d = torch.sign(torch.linalg.det(u @ vh))
        fix = torch.ones_like(u[..., 0])
        fix[..., 2] = d
        rot = ((u * fix[..., None, :]) @ vh).to(x_true.dtype)
        return (x_true - mu_t) @ rot + mu_p


def structure_loss(pred: torch.Tensor, batch: dict, sigma_data: float) -> torch.Tensor:
    """EDM-weighted MSE after rigid alignment, atoms weighted by molecule type."""
    w = atom_weights(batch)
    aligned = weighted_rigid_align(batch["coords"], pred, w)
    se = ((pred - aligned) ** 2).sum(-1)  # (B, T, M)
    per_frame = (se * w[:, None]).sum(-1) / (3.0 * w.sum(-1)[:, None]).clamp_min(1e-8)
    return _masked_mean(
        per_frame * loss_weight(batch["sigma_rel"] * sigma_data, sigma_data), target_frames(batch)
    )


def bond_loss(
    pred: torch.Tensor, batch: dict, frame_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared bond-length error over real bonds of target frames (each frame's errors times
    its ``frame_weight``, (B, T), where given)."""
    i, j = batch["bonds"][..., 0], batch["bonds"][..., 1]

    def lengths(x: torch.Tensor) -> torch.Tensor:
        gi = torch.gather(x, 2, i[:, None, :, None].expand(-1, x.shape[1], -1, 3))
        gj = torch.gather(x, 2, j[:, None, :, None].expand(-1, x.shape[1], -1, 3))
        return (gi - gj).norm(dim=-1)  # (B, T, Nb)

    err = (lengths(pred) - lengths(batch["coords"])) ** 2
    mask = batch["bond_mask"][:, None, :] & target_frames(batch)[..., None]
    return _masked_mean(_per_frame(err, frame_weight), mask)


def signed_volumes(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Triple product of the unit vectors from each centre to its three neighbours (B, T, K):
    about ±0.77 at a tetrahedral centre, its sign the handedness, and 0 at a planar one."""
    b, t, _, _ = x.shape

    def at(col: int) -> torch.Tensor:
        idx = centres[:, None, :, col, None].expand(b, t, -1, 3)
        return torch.gather(x, 2, idx)

    o = at(0)
    u = [torch.nn.functional.normalize(at(k) - o, dim=-1, eps=1e-6) for k in (1, 2, 3)]
    return (torch.cross(u[0], u[1], dim=-1) * u[2]).sum(-1)


def chirality_loss(
    pred: torch.Tensor, batch: dict, frame_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared error of the signed volumes at stereo centres on target frames (times
    ``frame_weight`` per frame, where given).

    Distances (bond, lDDT) are blind to a mirror image; this term is not: a centre turned into
    its mirror image costs about 2.4, a flattened one about 0.6. Without it, autoregressive
    rollouts drift into the mirror image, which no distance-based metric sees."""
    err = (
        signed_volumes(pred, batch["centres"]) - signed_volumes(batch["coords"], batch["centres"])
    ) ** 2
    mask = batch["centre_mask"][:, None, :] & target_frames(batch)[..., None]
    return _masked_mean(_per_frame(err, frame_weight), mask)


def smooth_lddt_loss(
    pred: torch.Tensor,
    batch: dict,
    cutoff: float,
    chunk: int,
    frame_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """1 − smooth lDDT over pairs within ``cutoff`` Å in the truth, in row chunks (never M×M);
    each frame's times its ``frame_weight`` where given."""
    true, atom_mask = batch["coords"], batch["atom_mask"]
    m = true.shape[2]
    score = torch.zeros(true.shape[:2], dtype=pred.dtype, device=pred.device)
    pairs = torch.zeros_like(score)
    cols = torch.arange(m, device=pred.device)
    for start in range(0, m, chunk):
        rows = slice(start, min(m, start + chunk))
        d_true = torch.cdist(true[:, :, rows], true)
        d_pred = torch.cdist(pred[:, :, rows], pred)
        mask = (d_true < cutoff) & atom_mask[:, None, rows, None] & atom_mask[:, None, None, :]
        mask = mask & (cols[rows, None] != cols[None, :])
        eps = (d_pred - d_true).abs()
        s = sum(torch.sigmoid(c - eps) for c in LDDT_THRESHOLDS) / len(LDDT_THRESHOLDS)
        score = score + (s * mask).sum((-1, -2))
        pairs = pairs + mask.sum((-1, -2))
    lddt = score / pairs.clamp_min(1.0)
    return _masked_mean(_per_frame(1.0 - lddt, frame_weight), target_frames(batch) & (pairs > 0))


def _rmsf(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    f = frames.to(x.dtype)[..., None, None]
    mean = (x * f).sum(1, keepdim=True) / f.sum(1, keepdim=True).clamp_min(1.0)
    return (
        (((x - mean) ** 2).sum(-1) * f[..., 0])
        .sum(1)
        .div(f[..., 0].sum(1).clamp_min(1.0))
        .clamp_min(1e-10)
        .sqrt()
    )


def flexibility_loss(
    pred: torch.Tensor,
    batch: dict,
    cutoff: float,
    chunk: int,
    frame_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Match fluctuations: per-atom RMSF, distance-weighted spread of pairwise distances, and the
    spread of distances within each token (local). Needs two or more real frames. A window's
    errors count with the mean ``frame_weight`` of its target frames, where given."""
    frames = batch["frame_mask"]
    targets = target_frames(batch)
    ok = (frames.sum(1) >= 2) & targets.any(1)  # (B,)
    if not ok.any():
        return pred.sum() * 0.0
    window = torch.ones(ok.shape, dtype=pred.dtype, device=pred.device)
    if frame_weight is not None:
        t = targets.to(pred.dtype)
        window = (frame_weight * t).sum(1) / t.sum(1).clamp_min(1.0)
    true, atom_mask = batch["coords"], batch["atom_mask"]
    rmsf_err = (_rmsf(pred, frames) - _rmsf(true, frames)) ** 2 * window[:, None]
    rmsf_term = _masked_mean(rmsf_err, atom_mask & ok[:, None])
    m = true.shape[2]
    f = frames.to(pred.dtype)[..., None, None]
    n_f = f.sum(1).clamp_min(1.0)
    spread_num, spread_den, local_num, local_den = torch.zeros(
        4, dtype=pred.dtype, device=pred.device
    ).unbind()
    tok = batch["atom_to_token"]
    for start in range(0, m, chunk):
        rows = slice(start, min(m, start + chunk))
        d_true = torch.cdist(true[:, :, rows], true)
        d_pred = torch.cdist(pred[:, :, rows], pred)

        def std(d: torch.Tensor) -> torch.Tensor:
            mean = (d * f).sum(1) / n_f
            return (((d - mean[:, None]) ** 2 * f).sum(1) / n_f).clamp_min(1e-10).sqrt()

        err = (std(d_pred) - std(d_true)) ** 2 * window[:, None, None]  # (B, c, M)
        ref = d_true[:, 0]
        mask = (ref < cutoff) & atom_mask[:, rows, None] & atom_mask[:, None, :] & ok[:, None, None]
        w = torch.exp(-ref / 10.0) * mask
        spread_num = spread_num + (err * w).sum()
        spread_den = spread_den + w.sum()
        local = mask & (tok[:, rows, None] == tok[:, None, :])
        local_num = local_num + (err * local).sum()
        local_den = local_den + local.sum()
    return rmsf_term + spread_num / spread_den.clamp_min(1e-8) + local_num / local_den.clamp_min(1)


def ligand_centre_loss(pred: torch.Tensor, batch: dict) -> torch.Tensor:
    """Squared distance between predicted and true ligand centres on target frames."""
    lig = (batch["is_ligand"] & batch["atom_mask"]).to(pred.dtype)  # (B, M)
    n = lig.sum(-1)
    if not (n > 0).any():
        return pred.sum() * 0.0
    w = (lig / n.clamp_min(1.0)[:, None])[:, None, :, None]
    c_pred, c_true = (pred * w).sum(2), (batch["coords"] * w).sum(2)
    err = ((c_pred - c_true) ** 2).sum(-1)
    return _masked_mean(err, target_frames(batch) & (n > 0)[:, None])


def total_loss(
    pred: torch.Tensor, batch: dict, weights: LossWeights, sigma_data: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of all terms, and each term's value for the log."""
    w = geometry_weights(batch["sigma_rel"] * sigma_data, weights.geometry_sigma)
    terms = {
        "structure": structure_loss(pred, batch, sigma_data),
        "bond": bond_loss(pred, batch, w),
        "lddt": smooth_lddt_loss(pred, batch, weights.lddt_cutoff, weights.chunk, w),
        "flexibility": flexibility_loss(pred, batch, weights.lddt_cutoff, weights.chunk, w),
        "ligand_centre": ligand_centre_loss(pred, batch),
        "chirality": chirality_loss(pred, batch, w),
    }
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
