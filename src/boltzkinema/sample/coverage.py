"""Does a checkpoint cover what a sampling job asks of it?

Training records what it trained on (``state.json`` → ``coverage``: window length, most history
frames, frame-spacing range, tasks). A sampling job that needs longer windows, more history
frames, longer interpolation spans or an untrained task asks for inputs the network never saw;
a frame spacing outside the trained range makes the time features extrapolate. :func:`check`
names each mismatch with the setting that fixes it: as warnings, or (``strict``) refusing the
structural ones (everything but the frame spacing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from boltzkinema.errors import BoltzKinemaError
from boltzkinema.train.resolved import ResolvedCheckpoint

log = logging.getLogger(__name__)
REL_TOL = 1e-6


class SampleSettings(Protocol):
    """The ``sample`` settings a job's needs follow from (``sample.job.SampleConfig``)."""

    window: int
    history: int
    n_frames: int
    coarse_factor: int
    max_history: int


@dataclass(frozen=True)
class Needs:
    """What one sampling job asks of the network."""

    window: int = 0
    history: int = 0
    interpolation_span: int = 0
    dt_ns: tuple[float, ...] = ()
    tasks: tuple[str, ...] = ()


def needs(cfg: SampleSettings, mode: str, dt_ns: float) -> Needs:
    """Window length, history frames, interpolation span (frames, both ends included), frame
    spacings and tasks that ``mode`` uses under ``cfg`` at frame spacing ``dt_ns``."""
    history = min(cfg.max_history, cfg.window - 1)
    if mode in ("forecast", "unbinding"):
        return Needs(cfg.window, history, 0, (dt_ns,), ("forecast",))
    if mode == "interpolate":
        return Needs(0, 0, cfg.n_frames + 2, (dt_ns,), ("interpolate",))
    if mode == "hierarchical":
        span = cfg.coarse_factor + 1 if cfg.coarse_factor > 1 else 0
        spacings = (cfg.coarse_factor * dt_ns, dt_ns) if span else (cfg.coarse_factor * dt_ns,)
        tasks = ("forecast", "interpolate") if span else ("forecast",)
        return Needs(cfg.window, history, span, spacings, tasks)
    raise BoltzKinemaError(f"unknown sampling mode {mode!r}")


def problems(trained: dict[str, Any], need: Needs) -> tuple[list[str], list[str]]:
    """(structural mismatches, frame-spacing mismatches) of a job with ``need`` on a checkpoint
    trained with ``trained``; empty lists when it is covered."""
    errors, warnings = [], []
    n_frames, max_history = int(trained["n_frames"]), int(trained["max_history"])
    if need.window > n_frames:
        errors.append(
            f"sample.window {need.window} is longer than the {n_frames}-frame windows the "
            f"checkpoint was trained on; set sample.window <= {n_frames} or train with "
            f"train.segments.n_frames >= {need.window}"
        )
    if need.history > max_history:
        errors.append(
            f"forecast windows condition on {need.history} history frames "
            f"(min(sample.max_history, sample.window - 1)) but training drew at most "
            f"{max_history}; set sample.max_history <= {max_history} or train with "
            f"train.tasks.max_history >= {need.history}"
        )
    if need.interpolation_span > n_frames:
        errors.append(
            f"interpolation spans {need.interpolation_span} frames (sample.n_frames + 2, or "
            f"sample.coarse_factor + 1 for hierarchical) but training windows hold {n_frames}; "
            f"set sample.n_frames <= {n_frames - 2} (sample.coarse_factor <= {n_frames - 1}) "
            f"or train with train.segments.n_frames >= {need.interpolation_span}"
        )
    trained_tasks = {k for k, p in trained.get("tasks", {}).items() if p > 0}
    for task in need.tasks:
        if trained_tasks and task not in trained_tasks:
            errors.append(
                f"this mode needs the {task} task, which training never drew; give it a "
                "probability in train.tasks.probabilities"
            )
    lo, hi = trained["dt_ns"]
    for dt in need.dt_ns:
        if dt < lo * (1 - REL_TOL) or dt > hi * (1 + REL_TOL):
            warnings.append(
                f"frame spacing {dt:g} ns is outside the {lo:g}-{hi:g} ns the checkpoint was "
                "trained on (the time features extrapolate); set sample.dt_ns inside it, or "
                f"train with train.segments.dt_ns ranges that include {dt:g}"
            )
    return errors, warnings


def trained_coverage(checkpoint_json: str | Path) -> dict[str, Any] | None:
    """The ``coverage`` a resolved checkpoint's training recorded (None for older runs)."""
    return ResolvedCheckpoint.read(checkpoint_json).state().coverage


def check(
    checkpoint_json: str | Path,
    cfg: SampleSettings,
    mode: str,
    dt_ns: float,
    strict: bool = False,
) -> None:
    """Warn about every way the job leaves what the checkpoint was trained on; with ``strict``,
    refuse windows, history, spans or tasks outside it."""
    trained = trained_coverage(checkpoint_json)
    if trained is None:
        log.warning(
            "%s records no training coverage (window length, history, frame spacings): "
            "sampling settings are not checked against training",
            checkpoint_json,
        )
        return
    errors, warnings = problems(trained, needs(cfg, mode, dt_ns))
    if strict and errors:
        raise BoltzKinemaError(f"{mode} with {checkpoint_json}: " + "; ".join(errors))
    for message in ([] if strict else errors) + warnings:
        log.warning("%s with %s: %s", mode, checkpoint_json, message)
