"""Per-frame conditioning: which frames are given, the window's frame spacing and each frame's
place in the window.

The temporal decay bias alone cannot tell the network how far apart frames are: at 1 ps spacing
−λ·|Δt| is ~0.002 for every head, so 1 ps and 1 ns windows look alike. And a given frame (σ = 0)
must not reach the network as a noise level: c_noise(0) is a finite number that coincides with a
real σ. :class:`FrameConditioning` therefore gives every frame a vector made of

* a learned "given" vector where σ = 0 (the noise embedding of such frames is dropped by the
  network), and
* a projection of fixed Fourier features of ln(Δt / 1 ns), Δt the window's frame spacing, and of
  the frame's offset (t − t₀) / Δt from the window's first frame.

Both start at zero, so a fresh module adds exactly 0 to every frame with σ > 0: a Boltz-2 start
keeps its one-frame equivalence, and a fresh native network equals its spatial-only counterpart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from boltzkinema.model.layers.embedding import FourierEmbedding

FOURIER_DIM = 64
# ln Δt (ns) spans about −9 (0.1 ps) to 7 (1 µs); offsets 0..T−1. Scaled to O(1) before the
# Fourier features, as ¼ ln σ is for the noise level.
LOG_DT_SCALE, OFFSET_SCALE = 0.25, 0.25
# The attribute both networks keep the module under (its parameters have no Boltz-2 counterpart).
MODULE_NAME = "frame_conditioning"


def frame_spacing(times: torch.Tensor) -> torch.Tensor:
    """Δt (B,) in ns: the mean spacing of a window's frames (1 ns for a one-frame window).

    Windows are evenly spaced (training strides, sampling steps; padded frames continue the
    spacing), so the mean spacing is the frame spacing.
    """
    t = times.shape[1]
    if t < 2:
        return torch.ones(times.shape[0], dtype=times.dtype, device=times.device)
    return ((times[:, -1] - times[:, 0]) / (t - 1)).clamp_min(1e-9)


def frame_offsets(times: torch.Tensor, spacing: torch.Tensor) -> torch.Tensor:
    """(t − t₀) / Δt (B, T): each frame's place in its window in units of the frame spacing."""
    return (times - times[:, :1]) / spacing[:, None]


def is_added_parameter(name: str) -> bool:
    """True for parameters Boltz-2 lacks: temporal attentions and the frame conditioning."""
    dotted = f".{name}"
    return ".temporal." in dotted or f".{MODULE_NAME}." in dotted


class FrameConditioning(nn.Module):
    """Per-frame vectors (B, T, d) for each width d in ``dims``: given flag plus time features.

    ``forward(times, sigma)`` takes frame times (B, T) in ns and noise levels (B, T).
    """

    def __init__(self, dims: Sequence[int]):
        super().__init__()
        self.log_dt = FourierEmbedding(FOURIER_DIM, seed=101)
        self.offset = FourierEmbedding(FOURIER_DIM, seed=102)
        self.given = nn.ParameterList(nn.Parameter(torch.zeros(d)) for d in dims)
        self.time = nn.ModuleList(nn.Linear(2 * FOURIER_DIM, d, bias=False) for d in dims)
        for layer in self.time:
            nn.init.zeros_(layer.weight)

    def forward(self, times: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
        spacing = frame_spacing(times.float())
        offsets = frame_offsets(times.float(), spacing)
        log_dt = torch.log(spacing)[:, None].expand_as(offsets)
        features = torch.cat(
            [self.log_dt(LOG_DT_SCALE * log_dt), self.offset(OFFSET_SCALE * offsets)], dim=-1
        )
        given = (sigma == 0)[..., None].to(features.dtype)
        return [
            layer(features) + given * vector
            for layer, vector in zip(self.time, self.given, strict=True)
        ]


def nearest_given(
    x: torch.Tensor, sigma: torch.Tensor, times: torch.Tensor, frame_mask: torch.Tensor
) -> torch.Tensor:
    """Per generated frame the coordinates of the given frame (σ = 0) nearest in time (the
    earlier one on a tie), zeros for given frames and for windows without any (B, T, M, 3).

    A forecast frame is anchored on the last history frame, an interpolated one on the nearer
    end: what a frame is most like, so that the network denoises the displacement from it.
    """
    given = (sigma == 0) & frame_mask
    gap = (times[:, :, None] - times[:, None, :]).abs()
    gap = gap.masked_fill(~given[:, None, :], float("inf"))
    nearest = gap.argmin(-1)  # the first minimum: the earlier frame on a tie
    b, t, m, _ = x.shape
    anchor = torch.gather(x, 1, nearest[..., None, None].expand(b, t, m, 3))
    anchored = (~given & given.any(1, keepdim=True))[..., None, None]
    return torch.where(anchored, anchor, torch.zeros_like(anchor))


def old_layout_hint(missing: list[str]) -> str:
    """An explanation to append when a checkpoint lacks exactly the frame conditioning: it was
    trained before given frames and frame times became inputs."""
    if missing and all(f".{MODULE_NAME}." in f".{name}" for name in missing):
        return (
            f". These are all {MODULE_NAME}.* parameters (given-frame vector, frame-time "
            "features): the checkpoint is of the older layout without them; retrain it with this "
            "version"
        )
    return ""
