"""Embeddings: the frozen Fourier features of a scalar and Boltz-2's relative positions."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class FourierEmbedding(nn.Module):
    """cos(2π (w·x + b)) with w and b drawn once and never trained (AF3 Algorithm 22).

    Two ways to hold the draw, one formula:

    * ``seed=None`` (Boltz-2): w, b ~ N(0, 1) are the frozen parameters ``proj.weight`` and
      ``proj.bias``, saved in checkpoints, so a Boltz-2 checkpoint's own draw loads by name;
    * ``seed=k``: w ~ N(0, 1), b ~ U(0, 1) from generator seed k, buffers that are rebuilt on
      construction and never saved (the native noise embedding and the frame-time features).
    """

    def __init__(self, dim: int, seed: int | None = None):
        super().__init__()
        if seed is None:
            self.proj = nn.Linear(1, dim)
            nn.init.normal_(self.proj.weight)
            nn.init.normal_(self.proj.bias)
            self.proj.requires_grad_(False)
        else:
            g = torch.Generator().manual_seed(seed)
            self.register_buffer("w", torch.randn(dim, 1, generator=g), persistent=False)
            self.register_buffer("b", torch.rand(dim, generator=g), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) → (..., dim)."""
        w, b = (self.proj.weight, self.proj.bias) if hasattr(self, "proj") else (self.w, self.b)
        return torch.cos(2 * math.pi * F.linear(x[..., None], w, b))


class RelativePositionEncoder(nn.Module):
    """Relative residue/token/chain encoding of the Boltz-2 trunk (``rel_pos``, AF3 Algorithm 3).

    Reads ``asym_id``, ``residue_index``, ``entity_id``, ``token_index``, ``sym_id`` and, when
    ``cyclic_pos_enc``, ``cyclic_period`` (all (B, N)); returns (B, N, N, token_z).
    """

    def __init__(
        self,
        token_z: int,
        r_max: int = 32,
        s_max: int = 2,
        fix_sym_check: bool = False,
        cyclic_pos_enc: bool = False,
    ):
        super().__init__()
        self.r_max, self.s_max = r_max, s_max
        self.fix_sym_check, self.cyclic_pos_enc = fix_sym_check, cyclic_pos_enc
        self.linear_layer = nn.Linear(4 * (r_max + 1) + 2 * (s_max + 1) + 1, token_z, bias=False)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        def pairwise(key: str) -> tuple[torch.Tensor, torch.Tensor]:
            return feats[key][:, :, None], feats[key][:, None, :]

        r, s = self.r_max, self.s_max
        same_chain = torch.eq(*pairwise("asym_id"))
        same_residue = torch.eq(*pairwise("residue_index"))
        same_entity = torch.eq(*pairwise("entity_id"))

        res_i, res_j = pairwise("residue_index")
        d_residue = res_i - res_j
        if self.cyclic_pos_enc and torch.any(feats["cyclic_period"] > 0):
            period = feats["cyclic_period"]
            period = torch.where(period > 0, period, torch.zeros_like(period) + 10000)
            d_residue = (d_residue - period * torch.round(d_residue / period)).long()
        d_residue = torch.clip(d_residue + r, 0, 2 * r)
        d_residue = torch.where(same_chain, d_residue, torch.zeros_like(d_residue) + 2 * r + 1)

        tok_i, tok_j = pairwise("token_index")
        d_token = torch.clip(tok_i - tok_j + r, 0, 2 * r)
        d_token = torch.where(
            same_chain & same_residue, d_token, torch.zeros_like(d_token) + 2 * r + 1
        )

        sym_i, sym_j = pairwise("sym_id")
        d_chain = torch.clip(sym_i - sym_j + s, 0, 2 * s)
        other_chain = ~same_entity if self.fix_sym_check else same_chain
        d_chain = torch.where(other_chain, torch.zeros_like(d_chain) + 2 * s + 1, d_chain)

        return self.linear_layer(
            torch.cat(
                [
                    F.one_hot(d_residue, 2 * r + 2).float(),
                    F.one_hot(d_token, 2 * r + 2).float(),
                    same_entity.unsqueeze(-1).float(),
                    F.one_hot(d_chain, 2 * s + 2).float(),
                ],
                dim=-1,
            )
        )
