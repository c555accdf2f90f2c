"""An exponential moving average of the trainable weights, which diffusion models sample from.

EDM (Karras et al. 2022) and AlphaFold 3 / Boltz sample from averaged weights: with a constant
learning rate the raw weights jitter around the optimum and the fine, low-σ detail that bond
lengths and torsions need is the first thing that jitter spoils. The decay warms up as
``min(decay, (1 + t) / (10 + t))`` (the usual warm-up), so that a short run averages over its
own steps rather than keeping its initial weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def ema_decay(decay: float, step: int) -> float:
    """The decay used at optimisation step ``step`` (0-based): warmed up, capped at ``decay``."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """Float32 shadows of a model's trainable parameters, updated after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError("the weight-average decay must lie in (0, 1)")
        self.decay = decay
        self.shadow = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move every shadow towards the current weight by ``1 - ema_decay(decay, step)``."""
        weight = 1.0 - ema_decay(self.decay, step)
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), weight)

    def averaged_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged values in place of the trainable weights."""
        state = dict(model.state_dict())
        for name, value in self.shadow.items():
            state[name] = value.to(state[name].dtype)
        return state

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """The averaged weights in ``model`` for the duration (validation scores what sampling
        uses), its own weights back afterwards, bit for bit."""
        params = dict(model.named_parameters())
        raw = {name: params[name].detach().clone() for name in self.shadow}
        with torch.no_grad():
            for name, value in self.shadow.items():
                params[name].copy_(value.to(params[name].dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in raw.items():
                    params[name].copy_(value)

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        """Restore the shadows from saved averaged weights (a resumed run continues the same
        average); a name that is missing or misshapen is an error."""
        for name, value in self.shadow.items():
            if name not in weights or weights[name].shape != value.shape:
                raise KeyError(f"averaged weights lack {name} {tuple(value.shape)}")
            value.copy_(weights[name].float())
