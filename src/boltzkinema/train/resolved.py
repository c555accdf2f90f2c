"""``checkpoint.json``, the record ``resolve_checkpoint`` writes and every later stage reads:
which checkpoint folder and weights file sampling, evaluation and the next phase use. One
writer and one reader, with a version, so that a file of another layout is refused by name."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from boltzkinema.errors import CheckpointError
from boltzkinema.util import atomic_write_text

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
        """The record in ``source``; another version, or missing keys, is an error naming the
        file and the fix. A file without a version is one from before versions (version 1)."""
        try:
            data: dict[str, Any] = json.loads(Path(source).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{source}: not a readable checkpoint.json ({exc})") from exc
        rerun = "rerun resolve_checkpoint (snakemake -R resolve_checkpoint) with this version"
        version = data.get("version", 1)
        if version != VERSION:
            raise CheckpointError(
                f"{source}: checkpoint.json version {version}; this boltzkinema reads version "
                f"{VERSION}: {rerun}"
            )
        names = {f.name for f in fields(cls)}
        missing = sorted(names - {"version"} - set(data))
        if missing:
            raise CheckpointError(f"{source}: checkpoint.json lacks {missing}; {rerun}")
        return cls(**{k: v for k, v in data.items() if k in names} | {"version": version})

    def state(self) -> dict[str, Any]:
        """The ``state.json`` of the checkpoint folder: the network and what training covered."""
        state_path = Path(self.path) / "state.json"
        if not state_path.exists():
            raise CheckpointError(
                f"{state_path} does not exist: the checkpoint this record names is gone; "
                "rerun resolve_checkpoint"
            )
        return json.loads(state_path.read_text())
