"""Noise-as-masking: per-frame noise levels where σ = 0 marks a conditioning frame.

Tasks: ``forecast`` (1..k clean leading frames, k up to ``max_history`` so that sampling with
several history frames is in distribution), ``interpolate`` (both ends clean) and
``equilibrium`` (every frame generated). Only noised frames carry loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TASKS = ("forecast", "interpolate", "equilibrium")


@dataclass(frozen=True)
class TaskConfig:
    probabilities: dict[str, float] = field(
        default_factory=lambda: {"forecast": 0.5, "interpolate": 0.3, "equilibrium": 0.2}
    )
    max_history: int = 2
    sigma_data: float = 16.0
    p_mean: float = -1.2
    p_std: float = 1.5

    def __post_init__(self) -> None:
        unknown = set(self.probabilities) - set(TASKS)
        if unknown or not self.probabilities or sum(self.probabilities.values()) <= 0:
            raise ValueError(f"task probabilities {self.probabilities}: use tasks {TASKS}")


def sample_sigmas(
    n_frames: int, cfg: TaskConfig, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """σ per frame (0 = conditioning) and the task drawn, for a window of ``n_frames``."""
    names = sorted(cfg.probabilities)
    p = np.array([cfg.probabilities[k] for k in names], dtype=np.float64)
    task = names[int(rng.choice(len(names), p=p / p.sum()))]
    sigma = cfg.sigma_data * np.exp(cfg.p_mean + cfg.p_std * rng.standard_normal(n_frames))
    if n_frames < 2:
        return sigma, "equilibrium"
    if task == "forecast":
        k = int(rng.integers(1, min(cfg.max_history, n_frames - 1) + 1))
        sigma[:k] = 0.0
    elif task == "interpolate":
        if n_frames < 3:
            sigma[0] = 0.0
            return sigma, "forecast"
        sigma[0] = sigma[-1] = 0.0
    return sigma, task
