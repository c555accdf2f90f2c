"""Evaluate a run's samples: per system and mode, the model next to its baselines (the noise
generator, and a second MD replica where the data has one), per split, with figures."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boltzkinema.data.store import ProcessedSystem, ShardReader
from boltzkinema.evaluate.evaluate import evaluate_ensemble, noise_baseline
from boltzkinema.evaluate.figures import system_figures
from boltzkinema.util import from_settings, tmp_path

log = logging.getLogger(__name__)
METHODS = ("model", "noise", "replica")


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate`` section of the config."""

    seed: int = 0
    baselines: list[str] = field(default_factory=lambda: ["noise", "replica"])
    lancedb: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluateConfig:
        return from_settings(cls, d, "evaluate")


def _load(results_root: Path, row: pd.Series) -> ProcessedSystem:
    with ShardReader(results_root / row["shard"]) as reader:
        return reader.load(row.name)


def evaluate_samples(
    sample_files: list[str | Path],
    manifest: str | Path,
    results_root: str | Path,
    cfg: EvaluateConfig,
    out_dir: str | Path,
) -> pd.DataFrame:
    """One row per (system, mode, method) with every metric; figures under ``out_dir``."""
    root, out_dir = Path(results_root), Path(out_dir)
    table = pd.read_parquet(manifest).set_index("system_id")
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for path in sorted(map(Path, sample_files)):
        data = np.load(path)
        sid, mode = str(data["system_id"]), path.stem
        row = table.loc[sid]
        system = _load(root, row)
        ref = system.coords.astype(np.float64)
        pred = data["coords"].astype(np.float64)
        times = data["times_ns"]
        dt = float(np.median(np.diff(times))) if len(times) > 1 else float(row["frame_dt_ns"])
        pooled = pred.reshape(-1, *pred.shape[2:])
        ensembles = {"model": pooled}
        if "noise" in cfg.baselines:
            ensembles["noise"] = noise_baseline(ref, len(pooled), rng)
        replica = _replica(table, row)
        if "replica" in cfg.baselines and replica is not None:
            ensembles["replica"] = _load(root, table.loc[replica]).coords.astype(np.float64)
        for method, ens in ensembles.items():
            metrics = evaluate_ensemble(ens, ref, system, dt)
            rows.append(
                {
                    "system_id": sid,
                    "mode": mode,
                    "method": method,
                    "split": row["split"],
                    "ood": bool(row["ood"]),
                    "dataset": row["dataset"],
                    **metrics,
                }
            )
        system_figures(system, ref, ensembles, times, out_dir / "figures", mode)
        log.info("evaluated %s %s against %s", sid, mode, sorted(ensembles))
    return pd.DataFrame(rows)


def _replica(table: pd.DataFrame, row: pd.Series) -> str | None:
    """Another system of the same dataset and topology (an MD replica), if any."""
    same = table[
        (table["topology_hash"] == row["topology_hash"])
        & (table["dataset"] == row["dataset"])
        & (table.index != row.name)
    ]
    return str(sorted(same.index)[0]) if len(same) else None


def summarise(per_system: pd.DataFrame) -> pd.DataFrame:
    """Median of every metric per (split, ood, mode, method): the aggregate rows."""
    if per_system.empty:
        return per_system
    numeric = [
        c for c in per_system.columns if pd.api.types.is_numeric_dtype(per_system[c]) and c != "ood"
    ]
    agg = per_system.groupby(["split", "ood", "mode", "method"])[numeric].median().reset_index()
    agg["system_id"] = "median"
    counts = per_system.groupby(["split", "ood", "mode", "method"]).size().reset_index(name="n")
    return agg.merge(counts, on=["split", "ood", "mode", "method"])


def write_tables(per_system: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """per_system.parquet, summary.parquet (per-split medians) and one table per split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    summary = summarise(per_system)
    for name, frame in {"per_system": per_system, "summary": summary}.items():
        target = out_dir / f"{name}.parquet"
        frame.to_parquet(tmp_path(target), index=False)
        os.replace(tmp_path(target), target)
        paths[name] = target
    for (split, ood), frame in per_system.groupby(["split", "ood"]):
        target = out_dir / f"split_{split}_{'ood' if ood else 'id'}.parquet"
        pd.concat([frame, summarise(frame)], ignore_index=True).to_parquet(
            tmp_path(target), index=False
        )
        os.replace(tmp_path(target), target)
    return paths


def record(db: Path, run: str, checkpoint: dict[str, Any], per_system: pd.DataFrame) -> None:
    """Runs, systems and eval rows in LanceDB."""
    from boltzkinema.track import log_rows

    log_rows(
        db,
        "runs",
        [
            {
                "run": run,
                "checkpoint": checkpoint["path"],
                "step": int(checkpoint["step"]),
                "sha256": checkpoint["sha256"],
                "n_systems": int(per_system["system_id"].nunique()),
            }
        ],
        key=["run", "sha256"],
    )
    log_rows(
        db,
        "systems",
        [
            {"run": run, "system_id": s, "split": sp, "ood": bool(o)}
            for s, sp, o in per_system[["system_id", "split", "ood"]]
            .drop_duplicates()
            .itertuples(index=False)
        ],
        key=["run", "system_id"],
    )
    rows = per_system.assign(run=run, sha256=checkpoint["sha256"]).to_dict("records")
    log_rows(
        db,
        "eval",
        [{k: (float(v) if isinstance(v, np.floating) else v) for k, v in r.items()} for r in rows],
        key=["run", "sha256", "system_id", "mode", "method"],
    )


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
