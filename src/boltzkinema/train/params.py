"""Which parameters train: freeze named groups, optionally add LoRA adapters to the spatial
attention projections. The optimizer only ever sees what is trainable."""

from __future__ import annotations

import fnmatch
import logging
import math

import torch
from torch import nn

log = logging.getLogger(__name__)


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update (B starts at zero)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = (alpha or rank) / rank

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


def add_lora(model: nn.Module, rank: int) -> int:
    """Wrap every spatial attention projection (the network's ``lora_targets``) in a LoRA
    adapter; return how many."""
    targets = [
        name
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and name.endswith(tuple(model.lora_targets))
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), rank))
    return len(targets)


def names_after_lora(model: nn.Module, names: set[str]) -> set[str]:
    """``names`` as they read once :func:`add_lora` moved wrapped layers' tensors under ``base``."""
    wrapped = {name for name, mod in model.named_modules() if isinstance(mod, LoRALinear)}
    out = set()
    for name in names:
        owner, _, leaf = name.rpartition(".")
        out.add(f"{owner}.base.{leaf}" if owner in wrapped else name)
    return out


def freeze(model: nn.Module, patterns: list[str]) -> None:
    """Freeze parameters whose names match any glob pattern (e.g. ``tokens.*``)."""
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatch(name, pat) for pat in patterns):
            p.requires_grad_(False)


def describe(model: nn.Module) -> str:
    """The "Frozen: X, Trainable: Y (Z%)" line logged at the start of training."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    pct = 100.0 * trainable / max(1, trainable + frozen)
    return f"Frozen: {frozen:,}, Trainable: {trainable:,} ({pct:.1f}%)"
