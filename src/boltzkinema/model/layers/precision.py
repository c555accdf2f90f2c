"""Where mixed precision is switched off."""

from __future__ import annotations

import torch


def float32_region(x: torch.Tensor) -> torch.autocast:
    """Autocast off: Boltz keeps these parts in float32 under mixed precision."""
    return torch.autocast(device_type=x.device.type, enabled=False)
