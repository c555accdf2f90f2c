"""Where a run's weights start (``train.init_from``): from scratch, from a Boltz-2 Lightning
checkpoint, or from a checkpoint of an earlier run of ours, whose ``state.json`` gives its size
and, when it saved trainable parameters only, the base its frozen weights come from.

:func:`resolve_start` reads what the start says before the network exists; :func:`load_start`
fills a network from it and returns the base record a trainable-only checkpoint keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from boltzkinema.errors import CheckpointError, ConfigError
from boltzkinema.io.lightning_checkpoint import read_checkpoint
from boltzkinema.model.boltz2_weights import load_boltz2_weights
from boltzkinema.train.checkpoint import base_record, load_base, load_weights
from boltzkinema.train.resolved import ResolvedCheckpoint
from boltzkinema.train.state import NAME, TrainingState


@dataclass(frozen=True)
class Start:
    """A run's starting weights: nothing, a Boltz-2 checkpoint (its contents in ``boltz2``), or
    a weights file of ours (``prior``: the ``state.json`` of the run it belongs to, if any)."""

    source: Path | None = None
    boltz2: Mapping[str, Any] | None = None
    prior: TrainingState | None = None

    @property
    def stored_config(self) -> dict[str, Any] | None:
        """The network configuration the earlier run stored."""
        return self.prior.model_config if self.prior else None


def resolve_start(init_from: str | None, architecture: str) -> Start:
    """What ``init_from`` names, checked against the architecture to be trained."""
    if not init_from:
        return Start()
    source = Path(init_from)
    if not source.exists():
        raise CheckpointError(
            f"train.init_from {source} does not exist; run the earlier phase and its "
            "resolve_checkpoint first, or put the Boltz-2 checkpoint (boltz2_conf.ckpt) there"
        )
    if source.suffix == ".json":
        source = Path(ResolvedCheckpoint.read(source).weights)
    if architecture == "boltz2" and source.suffix == ".ckpt":
        return Start(source, boltz2=read_checkpoint(source))
    if not (source.parent / NAME).exists():
        return Start(source)
    prior = TrainingState.read(source.parent)
    arch = prior.architecture
    if arch != architecture:
        raise ConfigError(
            f"train.init_from {source} is a checkpoint of a {arch} network; set "
            f"train.model.architecture: {arch}"
        )
    if prior.lora_rank:
        raise ConfigError(
            f"train.init_from {source} holds LoRA adapters; a later phase cannot start "
            "from them: train that phase without lora_rank, or sample from it directly"
        )
    return Start(source, prior=prior)


def load_start(model: nn.Module, start: Start, architecture: str) -> dict[str, Any] | None:
    """Fill ``model`` from the start (an earlier run's own base first); return its base record."""
    if start.source is None:
        return None
    if start.boltz2 is not None:
        load_boltz2_weights(model, start.boltz2)
        return base_record(start.source, True)
    prior = start.prior
    parent = prior.base if prior is not None and prior.trainable_only else None
    if parent:
        load_base(model, parent)
    hint = (
        "; a Boltz-2 checkpoint needs train.model.architecture: boltz2"
        if start.source.suffix == ".ckpt" and architecture == "native"
        else ""
    )
    try:
        report = load_weights(model, start.source)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{hint}") from exc
    if report["loaded"] == 0:
        raise CheckpointError(
            f"train.init_from {start.source}: none of its tensors is a parameter of the "
            f"{architecture} network{hint}"
        )
    return base_record(start.source, False, parent)
