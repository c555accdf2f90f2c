"""``state.json``, the record beside a checkpoint's weights: the network it holds, where it
started, what training drew, the batch and data position, and the optimizer and RNG states that
an exact resume needs. One writer and one reader, with a version; files from before versions
(version 1 without the key) read with the defaults those layouts implied."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from boltzkinema.errors import CheckpointError
from boltzkinema.settings import default
from boltzkinema.util import read_record

VERSION = 1
NAME = "state.json"


@dataclass(frozen=True)
class TrainingState:
    """One checkpoint's ``state.json``. ``base`` is the weights the run started from
    (``train.init_from``; see ``checkpoint.base_record``), ``coverage`` what its windows and
    tasks covered (sampling checks it), ``batch`` the global batch and how it was made."""

    step: int
    model_config: dict[str, Any]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    trainable_only: bool = False
    # A state.json from before these were recorded: the defaults of their settings.
    architecture: str = default("train.model.architecture")
    lora_rank: int = default("train.lora_rank")
    base: dict[str, Any] | None = None
    coverage: dict[str, Any] | None = None
    config_hash: str = ""
    val_loss: float | None = None
    best_val: float | None = None
    data_position: int | None = None
    batch: dict[str, int] = field(default_factory=dict)
    version: int = VERSION

    def write(self, folder: Path) -> None:
        """Write into ``folder`` (a checkpoint's temporary folder, renamed as a whole)."""
        text = json.dumps(asdict(self), indent=1, default=_json_default)
        (folder / NAME).write_text(text + "\n")

    @classmethod
    def read(cls, folder: str | Path) -> TrainingState:
        """The state of the checkpoint folder ``folder`` (another version, or a file without
        the network, is an error naming the file)."""
        fix = "resume or sample it with the boltzkinema that wrote it, or retrain"
        return read_record(cls, Path(folder) / NAME, VERSION, fix, CheckpointError)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
