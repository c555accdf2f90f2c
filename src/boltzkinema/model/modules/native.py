"""Composite blocks of the native network: spatial attention, temporal attention, transition.

``temporal_causal`` None leaves the temporal attention out (a spatial-only block); False or True
adds it, bidirectional or causal.
"""

from __future__ import annotations

import torch
from torch import nn

from boltzkinema.model.layers.attention import (
    TemporalAttention,
    TokenPairBiasAttention,
    WindowedAtomAttention,
)
from boltzkinema.model.layers.transition import ScaleShiftTransition


class AtomBlock(nn.Module):
    """Windowed atom attention, then temporal attention per atom, then a transition."""

    def __init__(self, dim: int, heads: int, temporal_causal: bool | None):
        super().__init__()
        self.spatial = WindowedAtomAttention(dim, heads)
        self.temporal = (
            None if temporal_causal is None else TemporalAttention(dim, heads, temporal_causal)
        )
        self.transition = ScaleShiftTransition(dim, dim)

    def forward(
        self,
        q: torch.Tensor,
        cond: torch.Tensor,
        atom_mask: torch.Tensor,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """q (B, T, M, C); cond (B, M, C); atom_mask (B, M); dt (B, T, T); frame_mask (B, T)."""
        b, t, m, c = q.shape
        q = self.spatial(q.reshape(b * t, m, c), atom_mask.repeat_interleave(t, 0)).view(b, t, m, c)
        if self.temporal is not None:
            q = self.temporal(q, dt, frame_mask)
        return self.transition(q, cond[:, None])


class TokenBlock(nn.Module):
    """Pair-biased token attention, then temporal attention per token, then a transition."""

    def __init__(self, dim: int, cond: int, heads: int, temporal_causal: bool | None):
        super().__init__()
        self.spatial = TokenPairBiasAttention(dim, heads)
        self.temporal = (
            None if temporal_causal is None else TemporalAttention(dim, heads, temporal_causal)
        )
        self.transition = ScaleShiftTransition(dim, cond)

    def forward(
        self,
        x: torch.Tensor,
        s: torch.Tensor,
        pair_bias: torch.Tensor,
        dt: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """x (B, T, N, C); s (B, N, c_s); pair_bias (B, H, N, N); dt (B, T, T)."""
        x = self.spatial(x, pair_bias)
        if self.temporal is not None:
            x = self.temporal(x, dt, frame_mask)
        return self.transition(x, s[:, None])
