"""``checkpoint.json``, the record ``resolve_checkpoint`` writes and every later stage reads:
which checkpoint folder and weights file sampling, evaluation and the next phase use. One
writer and one reader, with a version, so that a file of another layout is refused by name."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from boltzkinema.errors import CheckpointError
from boltzkinema.train.state import NAME, TrainingState
from boltzkinema.util import atomic_write_text, read_record

VERSION = 1


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """The checkpoint a policy picked: its folder (``path``, which holds ``state.json``), the
    weights file to load (the weight average where the run kept one), the step, the policy and
    the weights' sha256."""

    path: str
    weights: str
    averaged: bool
    step: int
    policy: str
    sha256: str
    version: int = VERSION

    def write(self, output: str | Path) -> None:
        atomic_write_text(output, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, source: str | Path) -> ResolvedCheckpoint:
        """The record in ``source`` (another version, or missing keys, is an error naming the
        file and the fix)."""
        fix = "rerun resolve_checkpoint (snakemake -R resolve_checkpoint) with this version"
        return read_record(cls, Path(source), VERSION, fix, CheckpointError)

    def state(self) -> TrainingState:
        """The ``state.json`` of the checkpoint folder: the network and what training covered."""
        if not (Path(self.path) / NAME).exists():
            raise CheckpointError(
                f"{Path(self.path) / NAME} does not exist: the checkpoint this record names is "
                "gone; rerun resolve_checkpoint"
            )
        return TrainingState.read(self.path)
