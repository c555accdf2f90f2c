"""Generation modes built on the sampler: forecast, interpolate, hierarchical and unbinding.

All work on one system at a time with ``n_samples`` independent trajectories in one batch.
Coordinates are in Å in the system's reference frame (as stored in the processed shard).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from torch import nn

from boltzkinema import progress
from boltzkinema.data.dataset import (
    SystemFeatures,
    random_rotation,
    reference_positions,
    reference_structure,
    reference_system,
)
from boltzkinema.data.features import atom_features
from boltzkinema.data.pose import Pose
from boltzkinema.data.store import ProcessedSystem, ShardReader
from boltzkinema.io.chemistry import MolType
from boltzkinema.sample.sampler import SamplerConfig, sample


@dataclass
class SystemInputs:
    """What the model needs about one system, independent of frames, the steering that
    corrects its denoised estimates (``None``: none) and, for a network trained with
    ``segments.pose`` other than random, how each window is posed (:mod:`boltzkinema.data.pose`)."""

    system: ProcessedSystem
    features: dict[str, torch.Tensor]
    steer: Callable[[torch.Tensor], torch.Tensor] | None = None
    pose: Pose | None = None

    @property
    def n_atoms(self) -> int:
        return self.system.n_atoms


def load_system(
    results_root: str | Path,
    shard: str,
    system_id: str,
    trunk_path: str,
    system_features: SystemFeatures | None = None,
    reference_seed: int = 0,
) -> SystemInputs:
    """Topology, all frames and trunk embeddings of a manifest row (and the architecture's
    ``system_features``).

    The reference-position feature is built as in training: the system's reference structure,
    centred on itself and turned by a rotation of its own (drawn from ``reference_seed``), not
    the frame the samples start from. Per-system features come from that reference too.
    """
    root = Path(results_root)
    with ShardReader(root / shard) as reader:
        system = reader.load(system_id)
    trunk = load_file(str(root / trunk_path))
    reference = reference_structure(system)
    rotation = random_rotation(np.random.default_rng([reference_seed, 1]))
    ref = reference_positions(reference, rotation)
    feats = atom_features(system.elements, system.mol_type, system.atom_names, ref)
    features = {
        "atom_features": torch.from_numpy(feats),
        "atom_to_token": torch.from_numpy(system.token_index.astype(np.int64)),
        "s_inputs": torch.from_numpy(trunk["s_inputs"].astype(np.float32)),
        "s_trunk": torch.from_numpy(trunk["s_trunk"].astype(np.float32)),
        "z_trunk": torch.from_numpy(trunk["z_trunk"].astype(np.float32)),
    }
    if system_features is not None:
        extra = system_features(reference_system(system, reference), root / trunk_path)
        features.update({k: torch.from_numpy(v) for k, v in extra.items()})
    return SystemInputs(system, features)


def batch_for(inputs: SystemInputs, times: torch.Tensor, n_samples: int) -> dict:
    """Model batch of ``n_samples`` copies of the system over frames at ``times`` (ns)."""
    f = inputs.features
    m, n = f["atom_to_token"].shape[0], f["s_trunk"].shape[0]
    device = f["s_trunk"].device

    def rep(x: torch.Tensor) -> torch.Tensor:
        return x[None].expand(n_samples, *x.shape)

    return {
        **{key: rep(value) for key, value in f.items()},
        "atom_mask": torch.ones(n_samples, m, dtype=torch.bool, device=device),
        "token_mask": torch.ones(n_samples, n, dtype=torch.bool, device=device),
        "times": rep(times.float().to(device)),
        "frame_mask": torch.ones(n_samples, len(times), dtype=torch.bool, device=device),
    }


def sample_window(
    model: nn.Module,
    inputs: SystemInputs,
    known: torch.Tensor,
    known_mask: torch.Tensor,
    times: torch.Tensor,
    cfg: SamplerConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Sample one window: ``known`` (S, T, M, 3) where ``known_mask`` (T,) is True.

    Runs on the device of ``inputs.features`` (the model's); the window comes back on the CPU.
    """
    s = known.shape[0]
    device = inputs.features["s_trunk"].device
    batch = batch_for(inputs, times, s)
    mask = known_mask[None].expand(s, -1).to(device)
    posed = inputs.pose is not None and bool(known_mask.any())
    if posed:
        # The window in training's pose (from its first frame), turned back after.
        first = known[:, int(known_mask.nonzero()[0])].double().numpy()
        centre, rot = (torch.from_numpy(a).to(known.dtype) for a in inputs.pose.of_frames(first))
        known = (known - centre[:, None]) @ rot[:, None]
    with torch.no_grad():
        denoise = model.denoiser(batch)
        out = sample(denoise, known.to(device), mask, cfg, generator, inputs.steer).cpu()
    return out @ rot.transpose(1, 2)[:, None] + centre[:, None] if posed else out


def forecast(
    model: nn.Module,
    inputs: SystemInputs,
    history: torch.Tensor,
    n_frames: int,
    dt_ns: float,
    window: int,
    cfg: SamplerConfig,
    generator: torch.Generator,
    n_samples: int = 1,
    max_history: int | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Autoregressive windows: each conditions on the last frames so far and generates the next.

    ``history`` (H, M, 3) are the given leading frames; returns (S, H + n_frames, M, 3) and the
    frame times. ``max_history`` bounds how many past frames a window sees (at most
    ``window - 1``; training draws 1..``train.tasks.max_history``).
    """
    if window < 2:
        raise ValueError("window must hold at least one history and one new frame")
    traj = history[None].expand(n_samples, *history.shape).clone()
    limit = min(max_history or window - 1, window - 1)
    with progress.bar(f"forecast {inputs.system.system_id}", n_frames, "frame") as shown:
        while traj.shape[1] - len(history) < n_frames:
            h = min(limit, traj.shape[1])
            k = min(window - h, n_frames - (traj.shape[1] - len(history)))
            known = torch.cat([traj[:, -h:], torch.zeros(n_samples, k, *traj.shape[2:])], dim=1)
            mask = torch.arange(h + k) < h
            times = torch.arange(h + k) * dt_ns
            out = sample_window(model, inputs, known, mask, times, cfg, generator)
            traj = torch.cat([traj, out[:, h:]], dim=1)
            shown.update(k)
    return traj, np.arange(traj.shape[1]) * dt_ns


def interpolate(
    model: nn.Module,
    inputs: SystemInputs,
    start: torch.Tensor,
    end: torch.Tensor,
    n_between: int,
    dt_ns: float,
    cfg: SamplerConfig,
    generator: torch.Generator,
    n_samples: int = 1,
) -> tuple[torch.Tensor, np.ndarray]:
    """Frames between two given ones, in one window: (S, n_between + 2, M, 3)."""
    t = n_between + 2
    known = torch.zeros(n_samples, t, *start.shape)
    known[:, 0], known[:, -1] = start, end
    mask = torch.zeros(t, dtype=torch.bool)
    mask[0] = mask[-1] = True
    times = torch.arange(t) * dt_ns
    return sample_window(model, inputs, known, mask, times, cfg, generator), times.numpy()


def hierarchical(
    model: nn.Module,
    inputs: SystemInputs,
    start: torch.Tensor,
    n_coarse: int,
    coarse_dt_ns: float,
    fine_dt_ns: float,
    window: int,
    cfg: SamplerConfig,
    generator: torch.Generator,
    n_samples: int = 1,
    max_history: int | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Coarse forecast at ``coarse_dt_ns``, then fine frames at ``fine_dt_ns`` between anchors.

    Returns n_coarse · r + 1 frames (r = coarse/fine ratio) at times k · fine_dt_ns.
    ``max_history`` bounds the coarse forecast's history as in :func:`forecast`.
    """
    ratio = round(coarse_dt_ns / fine_dt_ns)
    if ratio < 1 or abs(ratio * fine_dt_ns - coarse_dt_ns) > 1e-6 * coarse_dt_ns:
        raise ValueError("coarse_dt_ns must be a whole multiple of fine_dt_ns")
    coarse, _ = forecast(
        model,
        inputs,
        start[None],
        n_coarse,
        coarse_dt_ns,
        window,
        cfg,
        generator,
        n_samples,
        max_history,
    )
    pieces = [coarse[:, :1]]
    for i in range(n_coarse):
        if ratio == 1:
            pieces.append(coarse[:, i + 1 : i + 2])
            continue
        fine = torch.stack(
            [
                interpolate(
                    model,
                    inputs,
                    coarse[s, i],
                    coarse[s, i + 1],
                    ratio - 1,
                    fine_dt_ns,
                    cfg,
                    generator,
                    1,
                )[0][0]
                for s in range(n_samples)
            ]
        )
        pieces.append(fine[:, 1:])
    traj = torch.cat(pieces, dim=1)
    return traj, np.arange(traj.shape[1]) * fine_dt_ns


def ligand_centre_distance(system: ProcessedSystem, traj: np.ndarray) -> np.ndarray:
    """Distance (Å) of the ligand centre from its starting position, per sample and frame."""
    lig = system.mol_type == int(MolType.LIGAND)
    if not lig.any():
        return np.zeros(traj.shape[:2])
    centre = traj[:, :, lig].mean(axis=2)
    return np.linalg.norm(centre - centre[:, :1], axis=-1)
