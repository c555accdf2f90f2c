"""EDM (Karras et al., 2022) preconditioning, noise distribution and loss weight, per frame.

A frame with σ = 0 is a conditioning frame (noise-as-masking): the denoiser returns it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# A denoiser D(x_noisy, σ) → x_denoised for one batch: what a network gives the sampler.
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EDMConfig:
    sigma_data: float = 16.0
    p_mean: float = -1.2
    p_std: float = 1.5


def preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """c_in, c_skip, c_out, c_noise for a tensor of σ (any shape); σ = 0 gives skip 1, out 0."""
    s2 = sigma**2
    d2 = sigma_data**2
    c_in = torch.rsqrt(s2 + d2)
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data * c_in
    c_noise = 0.25 * torch.log(sigma.clamp_min(1e-20))
    c_noise = torch.where(sigma > 0, c_noise, torch.zeros_like(c_noise))
    return c_in, c_skip, c_out, c_noise


def sample_sigma(
    shape: tuple[int, ...], cfg: EDMConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training noise levels: ln σ ~ N(p_mean, p_std²), scaled by σ_data as in AlphaFold 3."""
    z = torch.randn(shape, generator=generator)
    return cfg.sigma_data * torch.exp(cfg.p_mean + cfg.p_std * z)


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """(σ² + σ_d²) / (σ σ_d)²; zero for conditioning frames (σ = 0)."""
    safe = sigma.clamp_min(1e-12)
    w = (safe**2 + sigma_data**2) / (safe * sigma_data) ** 2
    return torch.where(sigma > 0, w, torch.zeros_like(w))
