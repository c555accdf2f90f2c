"""SwiGLU transitions, plain and conditioned on a per-token (or per-atom) vector.

Two conditioned transitions exist because two checkpoint layouts do: Boltz-2's
(:class:`ConditionedTransitionBlock`, AF3 Algorithm 25 with :class:`AdaLN`) and the native one
(:class:`ScaleShiftTransition`, a LayerNorm modulated by (1 + scale, shift) and a gated
residual). They are different functions, not two copies of one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """silu(second half) · first half, as in Boltz (the gate is the second half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gates = x.chunk(2, dim=-1)
        return F.silu(gates) * x


class Transition(nn.Module):
    """SwiGLU MLP with pre-LayerNorm (Boltz ``layers.transition.Transition``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(dim, hidden, bias=False)
        self.fc3 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.fc3(F.silu(self.fc1(x)) * self.fc2(x))


class AdaLN(nn.Module):
    """Adaptive LayerNorm (Algorithm 26): sigmoid-gated scale and shift from the conditioning."""

    def __init__(self, dim: int, dim_single_cond: int):
        super().__init__()
        self.a_norm = nn.LayerNorm(dim, elementwise_affine=False, bias=False)
        self.s_norm = nn.LayerNorm(dim_single_cond, bias=False)
        self.s_scale = nn.Linear(dim_single_cond, dim)
        self.s_bias = nn.Linear(dim_single_cond, dim, bias=False)

    def forward(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        s = self.s_norm(s)
        return torch.sigmoid(self.s_scale(s)) * self.a_norm(a) + self.s_bias(s)


class ConditionedTransitionBlock(nn.Module):
    """SwiGLU transition with AdaLN and a conditioning-dependent output gate (Algorithm 25)."""

    def __init__(self, dim: int, dim_single_cond: int, expansion_factor: int = 2):
        super().__init__()
        inner = dim * expansion_factor
        self.adaln = AdaLN(dim, dim_single_cond)
        self.swish_gate = nn.Sequential(nn.Linear(dim, 2 * inner, bias=False), SwiGLU())
        self.a_to_b = nn.Linear(dim, inner, bias=False)
        self.b_to_a = nn.Linear(inner, dim, bias=False)
        gate = nn.Linear(dim_single_cond, dim)
        nn.init.zeros_(gate.weight)
        nn.init.constant_(gate.bias, -2.0)
        self.output_projection = nn.Sequential(gate, nn.Sigmoid())

    def forward(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        a = self.adaln(a, s)
        b = self.swish_gate(a) * self.a_to_b(a)
        return self.output_projection(s) * self.b_to_a(b)


class ScaleShiftTransition(nn.Module):
    """x + sigmoid(gate(cond)) · SwiGLU(LayerNorm(x) · (1 + scale) + shift), scale and shift
    from ``cond`` (the native layout's conditioned transition)."""

    def __init__(self, dim: int, cond: int, expansion: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.scale_shift = nn.Linear(cond, 2 * dim)
        self.up = nn.Linear(dim, 2 * expansion * dim, bias=False)
        self.down = nn.Linear(expansion * dim, dim, bias=False)
        self.gate = nn.Linear(cond, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift(cond).chunk(2, dim=-1)
        h = self.norm(x) * (1 + scale) + shift
        a, b = self.up(h).chunk(2, dim=-1)
        return x + torch.sigmoid(self.gate(cond)) * self.down(F.silu(a) * b)
