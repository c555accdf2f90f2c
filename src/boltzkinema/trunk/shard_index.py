"""``trunk/{dataset}/{shard}.json``, the record the trunk cache writes per shard and the manifest
reads: which cached embedding each system uses, and which systems the backend refused. One writer
and one reader, with a version, so that a file of another layout is refused by name."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from boltzkinema.errors import RecordError
from boltzkinema.util import atomic_write_text, read_record

# 2: the record's own version; the unversioned layout kept the backend's version in "version".
VERSION = 2


@dataclass(frozen=True)
class TrunkIndex:
    """One shard's trunk entries. ``systems`` maps a system id to its entry's ``key``, ``path``
    (relative to the results folder), ``topology_hash`` and whether this run ``computed`` it;
    ``quarantined`` maps a refused system id to the backend's reason."""

    backend: str
    backend_version: str
    params: dict[str, Any]
    shard: str
    computed: int
    reused: int
    systems: dict[str, dict[str, Any]]
    quarantined: dict[str, str]
    version: int = VERSION

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> TrunkIndex:
        """The index in ``path`` (another version, or missing keys, is an error naming the file
        and the fix)."""
        fix = "rerun the trunk cache for this shard (snakemake -R trunk_cache) with this version"
        return read_record(cls, Path(path), VERSION, fix, RecordError)
