"""Atoms to tokens and back by index (gather / scatter-add), for both networks.

Boltz and AlphaFold 3 map atoms to tokens with a one-hot (B, M, N) matrix and matrix products,
which costs O(M·N·C) per map; gathering and scattering by each atom's token index costs
O(M·C). The results are the same sums, in another order.
"""

from __future__ import annotations

import torch


def token_index(one_hot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each atom's token (B, M) and whether it has one (B, M), from a one-hot (B, M, N) map
    (rows of zeros: padding atoms)."""
    return one_hot.argmax(dim=-1), one_hot.sum(dim=-1) > 0


def gather_tokens(x: torch.Tensor, index: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Token values (B, ..., N, C) → the value of each atom's token (B, ..., M, C); 0 for
    atoms without one."""
    lead = x.shape[1:-2]
    shape = (x.shape[0], *([1] * len(lead)), index.shape[1], 1)
    idx = index.clamp_min(0).reshape(shape).expand(*x.shape[:-2], index.shape[1], x.shape[-1])
    mask = present.reshape(shape).to(x.dtype)
    return torch.gather(x, -2, idx) * mask


def mean_over_atoms(
    x: torch.Tensor, index: torch.Tensor, present: torch.Tensor, n: int, eps: float = 0.0
) -> torch.Tensor:
    """Atom values (B, ..., M, C) → each token's mean over its atoms (B, ..., N, C):
    the sum over them divided by ``count + eps`` (count clamped to at least 1 when eps is 0)."""
    lead = x.shape[1:-2]
    shape = (x.shape[0], *([1] * len(lead)), index.shape[1], 1)
    idx = index.clamp_min(0).reshape(shape).expand_as(x)
    weight = present.to(x.dtype)
    sums = torch.zeros(*x.shape[:-2], n, x.shape[-1], dtype=x.dtype, device=x.device)
    sums = sums.scatter_add(-2, idx, x * weight.reshape(shape))
    counts = torch.zeros(x.shape[0], n, dtype=x.dtype, device=x.device)
    counts = counts.scatter_add(1, index.clamp_min(0), weight)
    counts = counts + eps if eps > 0 else counts.clamp_min(1.0)
    return sums / counts.reshape(x.shape[0], *([1] * len(lead)), n, 1)


def pair_gather(
    z: torch.Tensor,
    query: torch.Tensor,
    query_present: torch.Tensor,
    key: torch.Tensor,
    key_present: torch.Tensor,
) -> torch.Tensor:
    """Pair values z (B, N, N, D) at every (query atom, key atom) of the atom windows:
    ``query`` (B, K, W) and ``key`` (B, K, H) token indices → (B, K, W, H, D); 0 where either
    atom has no token."""
    b, n, _, d = z.shape
    flat = query.clamp_min(0)[..., :, None] * n + key.clamp_min(0)[..., None, :]  # (B, K, W, H)
    out = torch.gather(z.reshape(b, n * n, d), 1, flat.reshape(b, -1, 1).expand(-1, -1, d))
    mask = (query_present[..., :, None] & key_present[..., None, :]).to(z.dtype)
    return out.reshape(*flat.shape, d) * mask[..., None]
