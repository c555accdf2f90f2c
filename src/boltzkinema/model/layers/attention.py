"""Attention layers: temporal attention across frames (both networks), windowed atom attention and
pair-biased token attention (native layout), gated pair-biased attention (Boltz-2 layout). All go
through :func:`attend`: ``scaled_dot_product_attention`` with an explicit 1/√d scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from boltzkinema.model.layers.precision import float32_region

LAMBDA_MIN, LAMBDA_MAX = 0.004, 0.7  # per ns
WINDOW_QUERIES, WINDOW_KEYS = 32, 128
MASK_INF = 1e6  # Boltz adds −1e6 (not −inf) to masked attention logits.


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ / √d + mask) · v; ``mask`` is boolean (True = attend) or an additive bias."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=1.0 / math.sqrt(q.shape[-1])
    )


def init_log_lambdas(heads: int) -> torch.Tensor:
    """log λ_h, λ geometric from 0.004 to 0.7 per ns across heads."""
    if heads == 1:
        return torch.tensor([math.log(math.sqrt(LAMBDA_MIN * LAMBDA_MAX))])
    return torch.linspace(math.log(LAMBDA_MIN), math.log(LAMBDA_MAX), heads)


def time_distances(times: torch.Tensor) -> torch.Tensor:
    """|t_i − t_j| (B, T, T) from frame times in ns (B, T); computed once per batch."""
    return (times[:, :, None] - times[:, None, :]).abs()


def temporal_bias(
    dt: torch.Tensor,
    log_lambda: torch.Tensor,
    frame_mask: torch.Tensor,
    causal: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Additive bias (B, H, T, T): −λ_h |t_i − t_j|, −inf on padded keys (and the future if causal).

    Padded query rows keep their own key so that no row is all −inf.
    """
    bias = -log_lambda.exp()[None, :, None, None] * dt[:, None]
    t = dt.shape[-1]
    allowed = frame_mask[:, None, None, :].expand(-1, 1, t, t)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=dt.device).tril()
    allowed = allowed | torch.eye(t, dtype=torch.bool, device=dt.device)
    return bias.masked_fill(~allowed, float("-inf")).to(dtype)


class TemporalAttention(nn.Module):
    """Attention across frames for every atom or token, with the exponential-decay time bias.

    The output projection starts at zero, so a fresh block is the identity.
    """

    def __init__(self, dim: int, heads: int, causal: bool = False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.log_lambda = nn.Parameter(init_log_lambdas(heads))

    def forward(self, x: torch.Tensor, dt: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, N, C); dt (B, T, T); frame_mask (B, T) bool."""
        b, t, n, c = x.shape
        h = self.heads
        qkv = self.qkv(self.norm(x)).view(b, t, n, 3, h, c // h)
        q, k, v = qkv.permute(3, 0, 2, 4, 1, 5)  # each (B, N, H, T, d)
        bias = temporal_bias(dt, self.log_lambda, frame_mask, self.causal, q.dtype)
        # Per batch element, the (H, T, T) bias is an expanded view over the N atoms/tokens:
        # no copy per atom, and 4-D inputs keep SDPA on its fast path.
        out = torch.stack([attend(q[i], k[i], v[i], bias[i].expand(n, h, t, t)) for i in range(b)])
        return x + self.out(out.permute(0, 3, 1, 2, 4).reshape(b, t, n, c))


class WindowedAtomAttention(nn.Module):
    """Sequence-local atom attention: each block of 32 queries sees the 128 atoms around it.

    Pads the atom axis to a multiple of 32 inside the module and trims the result, so any atom
    count works; padded atoms are never attended to.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        """x (B, M, C); atom_mask (B, M) bool."""
        hn = self.norm(x)
        out = self._one_window(hn, atom_mask) if x.shape[1] <= WINDOW_QUERIES else None
        return x + self.out(self._windows(hn, atom_mask) if out is None else out)

    def _one_window(self, hn: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        """At most 32 atoms sit in one window whose keys are all atoms: plain masked attention
        (the same keys as the windowed path, without padding 32 queries to 128 keys)."""
        b, m, c = hn.shape
        h, d = self.heads, c // self.heads
        q = self.q(hn).view(b, m, h, d).transpose(1, 2)
        k, v = self.kv(hn).view(b, m, 2, h, d).permute(2, 0, 3, 1, 4)
        out = attend(q, k, v, atom_mask[:, None, None, :])
        return out.transpose(1, 2).reshape(b, m, c)

    def _windows(self, hn: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        """Blocks of 32 queries, each attending to the 128 atoms around it."""
        b, m, c = hn.shape
        h, d = self.heads, c // self.heads
        wq, wk = WINDOW_QUERIES, WINDOW_KEYS
        mp = -(-m // wq) * wq
        n_win = mp // wq
        side = (wk - wq) // 2
        q = F.pad(self.q(hn), (0, 0, 0, mp - m)).view(b, n_win, wq, h, d).transpose(2, 3)
        kv = F.pad(self.kv(hn), (0, 0, side, side + mp - m))
        kv = kv.unfold(1, wk, wq)  # (B, n_win, 2C, wk)
        k, v = kv.view(b, n_win, 2, h, d, wk).permute(2, 0, 1, 3, 5, 4)
        mask = F.pad(atom_mask.to(torch.uint8), (side, side + mp - m)).unfold(1, wk, wq).bool()
        # A query whose 128 neighbours are all padding (only possible for padded queries) attends
        # to nothing useful; give it one dummy key so the softmax stays finite.
        mask = mask.clone()
        mask[..., side] |= ~mask.any(-1)
        out = attend(q, k, v, mask[:, :, None, None, :])
        return out.transpose(2, 3).reshape(b, mp, c)[:, :m]


class TokenPairBiasAttention(nn.Module):
    """Token self-attention with a per-head bias from the pair representation (native layout:
    pre-LayerNorm inside, one fused q/k/v projection, −inf on padded tokens)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.gate = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pair_bias: torch.Tensor) -> torch.Tensor:
        """x (B, T, N, C); pair_bias (B, H, N, N) including −inf for padded tokens."""
        b, t, n, c = x.shape
        h = self.heads
        hn = self.norm(x)
        q, k, v = self.qkv(hn).view(b, t, n, 3, h, c // h).permute(3, 0, 1, 4, 2, 5)
        out = attend(q, k, v, pair_bias[:, None].to(q.dtype))
        out = out.permute(0, 1, 3, 2, 4).reshape(b, t, n, c)
        return x + self.out(torch.sigmoid(self.gate(hn)) * out)


class AttentionPairBias(nn.Module):
    """Gated multi-head attention with an additive per-head bias (Boltz ``attentionv2``).

    Any leading dimensions; the bias and key mask broadcast over them (e.g. over frames).
    """

    def __init__(self, c_s: int, num_heads: int):
        super().__init__()
        if c_s % num_heads:
            raise ValueError(f"width {c_s} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, c_s // num_heads
        self.proj_q = nn.Linear(c_s, c_s)
        self.proj_k = nn.Linear(c_s, c_s, bias=False)
        self.proj_v = nn.Linear(c_s, c_s, bias=False)
        self.proj_g = nn.Linear(c_s, c_s, bias=False)
        self.proj_o = nn.Linear(c_s, c_s, bias=False)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., L, C) → (..., heads, L, d)."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-2, -3)

    def forward(
        self, s: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, k_in: torch.Tensor
    ) -> torch.Tensor:
        """s (..., Q, C); k_in (..., K, C); bias (..., heads, Q, K); mask (..., K), 1 = attend."""
        q, k, v = (
            self.heads(self.proj_q(s)),
            self.heads(self.proj_k(k_in)),
            self.heads(self.proj_v(k_in)),
        )
        g = torch.sigmoid(self.proj_g(s))
        with float32_region(s):
            logits_bias = bias.float() + (1 - mask[..., None, None, :].float()) * -MASK_INF
            o = attend(q.float(), k.float(), v.float(), logits_bias).to(v.dtype)
        return self.proj_o(g * o.transpose(-2, -3).flatten(-2))
