"""Noise-as-masking: per-frame noise levels where σ = 0 marks a conditioning frame.

Tasks: ``forecast`` (1..k clean leading frames, k drawn uniformly up to ``max_history`` so that
sampling with any history length up to it is in distribution), ``interpolate`` (both ends clean,
over windows of every length from 3 frames to the segment length, as sampling's interpolation
spans are) and ``equilibrium`` (every frame generated). Only noised frames carry loss.

The noised frames of a window share one σ (``shared_sigma``), as in sampling, where every
generated frame of a window walks down the same schedule from σ_max. Independent σ per frame
(``shared_sigma: false``) would almost never train a window whose targets all sit at σ_max,
where sampling starts.
"""

from __future__ import annotations

import numpy as np

from boltzkinema.settings import settings

TASKS = ("forecast", "interpolate", "equilibrium")
MIN_INTERPOLATION_FRAMES = 3


@settings("train.tasks")
class TaskConfig:
    """The ``train.tasks`` section: which task each window trains, and its noise levels."""

    probabilities: dict[str, float]
    max_history: int
    p_mean: float
    p_std: float
    shared_sigma: bool
    # Std (Å) of Gaussian noise on the given frames' coordinates (inputs only; no loss there).
    given_noise: float

    def __post_init__(self) -> None:
        unknown = set(self.probabilities) - set(TASKS)
        if unknown or not self.probabilities or sum(self.probabilities.values()) <= 0:
            raise ValueError(f"task probabilities {self.probabilities}: use tasks {TASKS}")


def draw_task(cfg: TaskConfig, rng: np.random.Generator) -> str:
    """One task, by the configured probabilities."""
    names = sorted(cfg.probabilities)
    p = np.array([cfg.probabilities[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def window_length(task: str, n_frames: int, rng: np.random.Generator) -> int:
    """Frames in a window of ``task``: ``n_frames``, except interpolation, whose spans are drawn
    uniformly from 3 to ``n_frames`` (sampling interpolates over spans of any such length)."""
    if task == "interpolate" and n_frames > MIN_INTERPOLATION_FRAMES:
        return int(rng.integers(MIN_INTERPOLATION_FRAMES, n_frames + 1))
    return n_frames


def sample_relative_sigmas(
    n_frames: int, cfg: TaskConfig, rng: np.random.Generator, task: str | None = None
) -> tuple[np.ndarray, str]:
    """σ / σ_data per frame (0 = conditioning) and the task (drawn unless given), for
    ``n_frames``. The trainer multiplies by the network's σ_data, the one data scale there is.

    A window too short for its task becomes the nearest one that fits (one frame: equilibrium;
    two frames: forecast instead of interpolate).
    """
    task = draw_task(cfg, rng) if task is None else task
    z = rng.standard_normal(1 if cfg.shared_sigma else n_frames)
    sigma = np.exp(cfg.p_mean + cfg.p_std * z) * np.ones(n_frames)
    if n_frames < 2:
        return sigma, "equilibrium"
    if task == "forecast":
        k = int(rng.integers(1, min(cfg.max_history, n_frames - 1) + 1))
        sigma[:k] = 0.0
    elif task == "interpolate":
        if n_frames < MIN_INTERPOLATION_FRAMES:
            sigma[0] = 0.0
            return sigma, "forecast"
        sigma[0] = sigma[-1] = 0.0
    return sigma, task
