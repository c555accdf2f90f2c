"""One sampling job: a resolved checkpoint, one system, one mode → trajectory files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from boltzkinema.data.dataset import reference_structure
from boltzkinema.data.pose import Pose
from boltzkinema.data.store import ProcessedSystem
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.model.architectures import build_network, system_features
from boltzkinema.model.layers.frames import old_layout_hint
from boltzkinema.sample import coverage, modes, steering
from boltzkinema.sample.sampler import SamplerConfig
from boltzkinema.sample.writers import write_samples
from boltzkinema.settings import default, settings
from boltzkinema.train.checkpoint import load_base, load_weights
from boltzkinema.train.params import add_lora, names_after_lora
from boltzkinema.train.resolved import ResolvedCheckpoint
from boltzkinema.trunk.cache import check_widths
from boltzkinema.util import atomic_output, from_settings

log = logging.getLogger(__name__)
MODES = ("forecast", "interpolate", "hierarchical", "unbinding")


@settings("sample")
class SampleConfig:
    """The ``sample`` section of the config."""

    systems: list[str]
    modes: list[str]
    n_samples: int
    seed: int
    window: int
    history: int
    n_frames: int
    dt_ns: float | None
    n_coarse: int
    coarse_factor: int
    max_history: int
    sampler: dict[str, Any]
    steering: dict[str, Any]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleConfig:
        return from_settings(cls, d, "sample")


def load_model(checkpoint_json: str | Path) -> nn.Module:
    """The network of a resolved checkpoint, with every parameter loaded (or a clear error)."""
    info = ResolvedCheckpoint.read(checkpoint_json)
    state = info.state()
    model = build_network(state.architecture, state.model_config)
    from_base: set[str] = set()
    if state.trainable_only and state.base:
        from_base = load_base(model, state.base)
    if state.lora_rank:
        add_lora(model, state.lora_rank)
        from_base = names_after_lora(model, from_base)
    report = load_weights(model, info.weights)
    missing = sorted(set(report["missing"]) - from_base)
    if missing:
        raise BoltzKinemaError(
            f"{info.weights} lacks {len(missing)} parameters (e.g. {missing[:3]}): the run "
            "saved trainable parameters only; set train.save: all, or sample from a checkpoint "
            f"with every weight{old_layout_hint(missing)}"
        )
    model.eval()
    return model


def steering_for(
    system: ProcessedSystem, cfg: SampleConfig, device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The steering of ``cfg.steering`` for one system, or ``None`` when it is off."""
    settings = steering.SteeringConfig(**cfg.steering)
    if not settings.active:
        return None
    held = steering.restraints(system, settings.pair_cutoff).to(device)
    log.info(
        "%s: steering %d bonds, %d stereo/planar centres, %d non-bonded pairs",
        system.system_id, len(held.bonds), len(held.centres), len(held.pairs),
    )  # fmt: skip
    return partial(steering.steer, r=held, cfg=settings)


def trained_pose(checkpoint_json: str | Path, system: ProcessedSystem) -> Pose | None:
    """How windows are posed where training posed them (``coverage.pose`` other than random);
    None for random poses and older checkpoints."""
    recorded = coverage.trained_coverage(checkpoint_json) or {}
    kind = recorded.get("pose", default("train.segments.pose"))
    if kind == "random":
        return None
    return Pose.of(kind, system.atom_names, system.token_index, reference_structure(system))


def reference_at(system: ProcessedSystem, dt_ns: float) -> np.ndarray:
    """The system's frames at the sampling spacing: every k-th frame, k = dt / frame spacing.

    Given frames (forecast history, interpolation ends) come from these, so that they are as far
    apart as the frames the model generates after them.
    """
    frame_dt = float(system.attrs.get("frame_dt_ns") or dt_ns)
    stride = max(1, round(dt_ns / frame_dt))
    if abs(stride * frame_dt - dt_ns) > 0.01 * dt_ns:
        log.warning(
            "%s: sampling spacing %g ns is no whole multiple of the data's %g ns; given frames "
            "are %g ns apart",
            system.system_id, dt_ns, frame_dt, stride * frame_dt,
        )  # fmt: skip
    return system.coords[::stride]


def sample_system(
    model: nn.Module, inputs: modes.SystemInputs, mode: str, cfg: SampleConfig, dt_ns: float
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Coordinates (S, F, M, 3) in Å, times (F,) in ns and extras of one mode (``given``: (F,)
    True for the conditioning frames copied from the reference)."""
    if mode not in MODES:
        raise BoltzKinemaError(f"unknown sampling mode {mode!r}; choose from {MODES}")
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = SamplerConfig(**cfg.sampler)
    frames = torch.from_numpy(reference_at(inputs.system, dt_ns).astype(np.float32))
    extras: dict[str, np.ndarray] = {}
    if mode in ("forecast", "unbinding"):
        if mode == "unbinding" and not model.cfg.causal:
            log.warning("unbinding with a bidirectional model; train with model.causal: true")
        history = frames[: max(1, min(cfg.history, len(frames)))]
        traj, times = modes.forecast(
            model,
            inputs,
            history,
            cfg.n_frames,
            dt_ns,
            cfg.window,
            sampler,
            gen,
            cfg.n_samples,
            cfg.max_history,
        )
        extras["given"] = np.arange(traj.shape[1]) < len(history)
        if mode == "unbinding":
            extras["ligand_centre_distance"] = modes.ligand_centre_distance(
                inputs.system, traj.numpy()
            )
    elif mode == "interpolate":
        end = min(len(frames) - 1, cfg.n_frames + 1)
        if end < 1:
            raise BoltzKinemaError("interpolate needs a system with at least two frames")
        traj, times = modes.interpolate(
            model, inputs, frames[0], frames[end], end - 1, dt_ns, sampler, gen, cfg.n_samples
        )
        extras["given"] = np.isin(np.arange(traj.shape[1]), [0, traj.shape[1] - 1])
    else:
        traj, times = modes.hierarchical(
            model,
            inputs,
            frames[0],
            cfg.n_coarse,
            cfg.coarse_factor * dt_ns,
            dt_ns,
            cfg.window,
            sampler,
            gen,
            cfg.n_samples,
            cfg.max_history,
        )
        extras["given"] = np.arange(traj.shape[1]) < 1
    return traj.numpy(), np.asarray(times), extras


def run_sampling(
    checkpoint_json: str | Path,
    manifest: str | Path,
    results_root: str | Path,
    system_id: str,
    mode: str,
    cfg: SampleConfig,
    out_dir: str | Path,
) -> dict[str, Path]:
    """Sample one system in one mode and write npz, xtc and pdb under ``out_dir``."""
    table = pd.read_parquet(manifest).set_index("system_id")
    if system_id not in table.index:
        raise BoltzKinemaError(
            f"system {system_id!r} is not in {manifest}; pick one of {sorted(table.index)[:10]}"
        )
    row = table.loc[system_id]
    model = load_model(checkpoint_json)
    try:
        check_widths([Path(results_root) / row["trunk_path"]], model.trunk_widths)
    except ValueError as exc:
        raise BoltzKinemaError(f"{checkpoint_json}: {exc}") from exc
    inputs = modes.load_system(
        results_root,
        row["shard"],
        system_id,
        row["trunk_path"],
        system_features(model.architecture),
        cfg.seed,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    inputs.features = {k: v.to(device) for k, v in inputs.features.items()}
    inputs.steer = steering_for(inputs.system, cfg, device)
    inputs.pose = trained_pose(checkpoint_json, inputs.system)
    dt = cfg.dt_ns or float(row["frame_dt_ns"])
    coverage.check(checkpoint_json, cfg, mode, dt)
    coords, times, extras = sample_system(model, inputs, mode, cfg, dt)
    given = extras.pop("given", None)
    paths = write_samples(inputs.system, coords, times, Path(out_dir), mode, given, start_frame=0)
    if extras:
        with atomic_output(Path(out_dir) / f"{mode}_extras.npz") as tmp:
            np.savez(tmp, **extras)
    log.info(
        "%s %s: %d samples x %d frames -> %s",
        system_id,
        mode,
        coords.shape[0],
        coords.shape[1],
        paths["npz"],
    )
    return paths
