"""The dataset index: every system of a dataset, assigned to shards of a fixed size.

Built once per dataset by the ``index_dataset`` checkpoint; preprocessing jobs read their shard's
entries from it, so the workflow never globs or opens raw files while it builds the DAG.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from boltzkinema.errors import ConfigError
from boltzkinema.io import atlas, mdcath, mdtraj_files, misato
from boltzkinema.io.system import SystemRef
from boltzkinema.util import atomic_write_text

FORMATS = ("misato", "mdcath", "atlas", "mdtraj")


def discover(dataset: str, fmt: str, inputs: list[Any]) -> list[SystemRef]:
    """All systems of one dataset, in a deterministic order."""
    if fmt == "misato":
        return misato.discover(dataset, inputs)
    if fmt == "mdcath":
        return mdcath.discover(dataset, inputs)
    if fmt == "atlas":
        return atlas.discover(dataset, inputs)
    if fmt == "mdtraj":
        return mdtraj_files.discover(dataset, inputs)
    raise ConfigError(f"dataset {dataset!r}: unknown format {fmt!r}; choose one of {FORMATS}")


def shard_name(i: int) -> str:
    return f"{i:04d}"


def build_index(dataset: str, fmt: str, inputs: list[Any], shard_size: int) -> dict[str, Any]:
    """Index of a dataset: its systems split into consecutive shards of ``shard_size``."""
    refs = discover(dataset, fmt, inputs)
    if not refs:
        raise ConfigError(f"dataset {dataset!r}: no systems found in {inputs}; check the paths")
    dup = [sid for sid, n in Counter(r.system_id for r in refs).items() if n > 1]
    if dup:
        raise ConfigError(
            f"dataset {dataset!r}: duplicate system ids {dup[:5]}; give the "
            "inputs distinct file names or split them into separate datasets"
        )
    shards = {
        shard_name(i // shard_size): [r.to_json() for r in refs[i : i + shard_size]]
        for i in range(0, len(refs), shard_size)
    }
    return {
        "dataset": dataset,
        "format": fmt,
        "n_systems": len(refs),
        "shard_size": shard_size,
        "shards": shards,
    }


def write_index(index: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(path, json.dumps(index, indent=1) + "\n")


def read_shard_refs(path: str | Path, shard: str) -> list[SystemRef]:
    """The system references of one shard of an index file."""
    index = json.loads(Path(path).read_text())
    if shard not in index["shards"]:
        raise ConfigError(f"{path}: no shard {shard!r}; it has {sorted(index['shards'])[:5]}...")
    return [SystemRef.from_json(d) for d in index["shards"][shard]]


def shard_names(path: str | Path) -> list[str]:
    """Shard names of an index file (read by the workflow after the checkpoint ran)."""
    return sorted(json.loads(Path(path).read_text())["shards"])
