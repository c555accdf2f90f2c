"""``{shard}.report.json``, the record preprocess writes beside each shard and the manifest and
``inspect`` read: per system ok (with its summary: unit decision, masks, ligand checks) or
quarantined (file, reason, fix), and the options the shard was made with. One writer and one
reader, with a version, so that a file of another layout is refused by name."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from boltzkinema.errors import RecordError
from boltzkinema.util import atomic_write_text, read_record

VERSION = 1


@dataclass(frozen=True)
class ShardReport:
    """What preprocess made of one shard. ``systems`` holds one entry per input system, in input
    order: ``status`` ``ok`` with the processing summary, or ``quarantined`` with ``code``,
    ``reason`` and ``fix``."""

    dataset: str
    shard: str
    n_systems: int
    n_ok: int
    n_quarantined: int
    seconds: float
    options: dict[str, Any]
    systems: list[dict[str, Any]]
    version: int = VERSION

    @property
    def ok(self) -> list[dict[str, Any]]:
        """The entries of the systems that were processed."""
        return [e for e in self.systems if e["status"] == "ok"]

    @property
    def quarantined(self) -> list[dict[str, Any]]:
        """The entries of the systems that were set aside, with reason and fix."""
        return [e for e in self.systems if e["status"] != "ok"]

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=1, default=str) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> ShardReport:
        """The report in ``path`` (another version, or missing keys, is an error naming the file
        and the fix)."""
        fix = "rerun preprocess for this shard (snakemake -R preprocess) with this version"
        return read_record(cls, Path(path), VERSION, fix, RecordError)
