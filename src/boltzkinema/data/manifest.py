"""The manifest: one row per good system, with paths, counts, trunk entry, family and split."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from boltzkinema.data.shard_report import ShardReport
from boltzkinema.data.splits import SplitConfig, assign_splits, cluster_sequences
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.trunk.shard_index import TrunkIndex
from boltzkinema.util import atomic_output

log = logging.getLogger(__name__)

COLUMNS = [
    "system_id",
    "dataset",
    "format",
    "source",
    "group",
    "shard",
    "trunk_key",
    "trunk_path",
    "topology_hash",
    "n_frames",
    "n_atoms",
    "n_tokens",
    "frame_dt_ns",
    "duration_ns",
    "unit",
    "unit_confidence",
    "has_ligand",
    "ligand_smiles",
    "scaffold",
    "sequence",
    "cluster",
    "family",
    "split",
    "ood",
    "temperature_k",
    "replica",
]


class ManifestError(BoltzKinemaError):
    """Inputs to the manifest disagree or point outside the results folder."""


def _inside(results_root: Path, rel: str, what: str) -> str:
    full = (results_root / rel).resolve()
    if not full.is_relative_to(results_root.resolve()):
        raise ManifestError(
            f"{what} path {rel!r} escapes the results folder {results_root}; "
            "rerun the stage with outputs under the results folder"
        )
    return Path(os.path.relpath(full, results_root.resolve())).as_posix()


def build_manifest(
    reports: list[str | Path],
    trunk_indices: list[str | Path],
    results_root: str | Path,
    split_cfg: SplitConfig,
) -> pd.DataFrame:
    """Join shard reports and trunk indices into a table and assign splits."""
    results_root = Path(results_root)
    trunk: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    for path in trunk_indices:
        index = TrunkIndex.read(path)
        trunk.update(index.systems)
        refused.update(index.quarantined)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in sorted(map(str, reports)):
        report = ShardReport.read(path)
        shard_rel = _inside(
            results_root,
            os.path.relpath(Path(path).with_name(report.shard), results_root),
            "shard",
        )
        for entry in report.ok:
            sid = entry["system_id"]
            if sid in seen:
                raise ManifestError(
                    f"system {sid!r} appears in {seen[sid]} and {path}; give the "
                    "datasets distinct names or inputs"
                )
            seen[sid] = path
            if sid in refused:
                log.warning("%s left out: the trunk refused it (%s)", sid, refused[sid])
                continue
            if sid not in trunk:
                raise ManifestError(
                    f"system {sid!r} of {path} has no trunk entry; rerun trunk_cache for its shard"
                )
            t = trunk[sid]
            extra = entry.get("extra") or {}
            ligand = entry.get("ligand") or {}
            rows.append(
                {
                    "system_id": sid,
                    "dataset": report.dataset,
                    "format": entry.get("format") or extra.get("format") or "",
                    "source": entry["file"],
                    "group": entry["group"],
                    "shard": shard_rel,
                    "trunk_key": t["key"],
                    "trunk_path": _inside(results_root, t["path"], "trunk"),
                    "topology_hash": entry["topology_hash"],
                    "n_frames": entry["n_frames"],
                    "n_atoms": entry["n_atoms"],
                    "n_tokens": entry["n_tokens"],
                    "frame_dt_ns": entry["frame_dt_ns"],
                    "duration_ns": entry["frame_dt_ns"] * max(entry["n_frames"] - 1, 0),
                    "unit": entry["unit"]["detected"],
                    "unit_confidence": entry["unit"]["confidence"],
                    "has_ligand": bool(ligand),
                    "ligand_smiles": ligand.get("smiles", ""),
                    "scaffold": ligand.get("scaffold", ""),
                    "sequence": ":".join(entry.get("sequences", {}).values()),
                    "temperature_k": extra.get("temperature_k"),
                    "replica": str(extra.get("replica", "")),
                }
            )
    table = pd.DataFrame(
        rows, columns=[c for c in COLUMNS if c not in ("cluster", "family", "split", "ood")]
    )
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    seqs = {r.system_id: r.sequence for r in table.itertuples() if r.sequence}
    clusters = cluster_sequences(seqs, split_cfg.sequence_identity)
    table["cluster"] = [clusters.get(s, "") for s in table["system_id"]]
    table["family"] = [
        f"scaffold:{r.scaffold}"
        if r.has_ligand
        else f"cluster:{r.cluster}"
        if r.cluster
        else f"topology:{r.topology_hash}"
        for r in table.itertuples()
    ]
    splits = assign_splits(dict(zip(table["system_id"], table["family"], strict=True)), split_cfg)
    table["split"] = [splits[s][0] for s in table["system_id"]]
    table["ood"] = [splits[s][1] for s in table["system_id"]]
    table["temperature_k"] = table["temperature_k"].astype("Float64")
    return table[COLUMNS].sort_values("system_id").reset_index(drop=True)


def write_manifest(table: pd.DataFrame, path: str | Path) -> None:
    """Write Parquet atomically."""
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)
