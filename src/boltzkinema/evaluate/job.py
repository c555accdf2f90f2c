"""Evaluate a run's samples: per system and mode, the model next to its baselines (the noise
generator, the frozen start structure, and a second MD replica under the same conditions where
the data has one), per split, with figures.

Only generated frames are scored (a sample file's ``given`` frames are dropped), against the
reference frames of the same time span at the same spacing, starting at the file's
``start_frame``; the baselines get the model's number of frames (the replica: the same span).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boltzkinema.data.store import ProcessedSystem, ShardReader
from boltzkinema.evaluate import metrics as mt
from boltzkinema.evaluate.ensemble import (
    evaluate_ensemble,
    noise_baseline,
    start_structure,
    static_baseline,
)
from boltzkinema.evaluate.figures import system_figures
from boltzkinema.progress import track
from boltzkinema.settings import settings
from boltzkinema.train.resolved import ResolvedCheckpoint
from boltzkinema.util import atomic_output, from_settings

log = logging.getLogger(__name__)
METHODS = ("model", "noise", "static", "replica")


@settings("evaluate")
class EvaluateConfig:
    """The ``evaluate`` section of the config."""

    seed: int
    baselines: list[str]
    lancedb: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluateConfig:
        return from_settings(cls, d, "evaluate")


def _load(results_root: Path, row: pd.Series) -> ProcessedSystem:
    with ShardReader(results_root / row["shard"]) as reader:
        return reader.load(row.name)


@dataclass(frozen=True)
class Generated:
    """The generated part of one sample file."""

    coords: np.ndarray  # (S, G, M, 3) generated frames only
    times_ns: np.ndarray  # (G,) relative to the start frame
    n_given: int
    start_frame: int


def generated_frames(path: str | Path) -> Generated:
    """Coordinates and times of the generated frames of a ``{mode}.npz`` (given frames dropped;
    a file without ``given`` is taken as all generated, with a warning)."""
    with np.load(path) as data:
        coords = data["coords"].astype(np.float64)
        times = np.asarray(data["times_ns"], np.float64)
        if "given" in data:
            given = np.asarray(data["given"], bool)
        else:
            log.warning(
                "%s has no 'given' frames mask (written by an older version): scoring every "
                "frame, conditioning frames included",
                path,
            )
            given = np.zeros(len(times), bool)
        start = int(data["start_frame"]) if "start_frame" in data else 0
    if given.shape != times.shape:
        raise ValueError(f"{path}: 'given' has shape {given.shape}, times {times.shape}")
    return Generated(coords[:, ~given], times[~given], int(given.sum()), start)


def reference_frames(
    times_ns: np.ndarray, start_frame: int, dt_ref: float, n_ref: int
) -> tuple[np.ndarray, str]:
    """Indices of the reference frames over the generated span, and a note ("" if none).

    Generated frame times (relative to the start frame) that fall on reference frames (the
    generated spacing a whole multiple of the reference's) pick those frames; otherwise every
    reference frame inside the span is taken at the reference's own spacing. A reference that
    ends before the span does is used as far as it goes, and the note says so.
    """
    if len(times_ns) == 0:
        return np.zeros(0, np.int64), "no generated frames"
    steps = np.asarray(times_ns, float) / dt_ref
    whole = np.round(steps)
    note = ""
    if np.allclose(steps, whole, atol=1e-3):
        idx = start_frame + whole.astype(np.int64)
    else:
        first, last = int(np.ceil(steps[0] - 1e-3)), int(np.floor(steps[-1] + 1e-3))
        idx = start_frame + np.arange(first, last + 1, dtype=np.int64)
        note = "generated spacing is not a multiple of the reference's; reference at its own"
    inside = idx < n_ref
    if not inside.all():
        span = float(times_ns[-1] - times_ns[0])
        have = (n_ref - 1 - start_frame) * dt_ref
        note = "; ".join(
            n
            for n in (
                note,
                f"reference ends {max(have, 0.0):.4g} ns after the start frame, before the "
                f"generated span ({float(times_ns[0]):.4g}-{float(times_ns[-1]):.4g} ns, "
                f"{span:.4g} ns): {int(inside.sum())} of {len(idx)} reference frames",
            )
            if n
        )
    return idx[inside], note


def _span(idx_or_times: np.ndarray, dt: float = 1.0) -> tuple[float, float]:
    """(span, median spacing) of sorted frame indices × dt or times."""
    x = np.asarray(idx_or_times, float) * dt
    if len(x) < 2:
        return 0.0, float("nan")
    return float(x[-1] - x[0]), float(np.median(np.diff(x)))


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
    for path in track(sorted(map(Path, sample_files)), "evaluate", unit="sample set"):
        with np.load(path) as data:
            sid = str(data["system_id"])
        mode = path.stem
        row = table.loc[sid]
        system = _load(root, row)
        gen = generated_frames(path)
        ref_all = system.coords.astype(np.float64)
        dt_ref = float(row["frame_dt_ns"])
        span_p, dt_p = _span(gen.times_ns)
        if not np.isfinite(dt_p):
            dt_p = dt_ref
        idx, note = reference_frames(gen.times_ns, gen.start_frame, dt_ref, len(ref_all))
        if len(idx) == 0:
            log.warning("%s %s: no reference frames over the generated span; skipped", sid, mode)
            continue
        ref = ref_all[idx]
        span_r, dt_r = _span(idx, dt_ref)
        dt_r = dt_r if np.isfinite(dt_r) else dt_p
        structure = start_structure(ref_all, gen.start_frame)
        shape = gen.coords.shape[:2]
        ensembles: dict[str, np.ndarray] = {"model": gen.coords}
        notes: dict[str, str] = {}
        if "noise" in cfg.baselines:
            ensembles["noise"] = noise_baseline(ref, shape, rng, structure)
        if "static" in cfg.baselines:
            ensembles["static"] = static_baseline(structure, shape)
        replica = _replica(table, row)
        if "replica" in cfg.baselines and replica is not None:
            rep = _load(root, table.loc[replica]).coords.astype(np.float64)
            rep_idx = idx[idx < len(rep)]
            if len(rep_idx):
                ensembles["replica"] = rep[rep_idx][None]
                if len(rep_idx) < len(idx):
                    notes["replica"] = (
                        f"replica {replica} covers {len(rep_idx)} of {len(idx)} frames"
                    )
        for method, ens in ensembles.items():
            m_span, m_dt = (span_r, dt_r) if method == "replica" else (span_p, dt_p)
            metrics = evaluate_ensemble(ens, ref, system, m_dt, dt_r, structure)
            rows.append(
                {
                    "system_id": sid,
                    "mode": mode,
                    "method": method,
                    "split": row["split"],
                    "ood": bool(row["ood"]),
                    "dataset": row["dataset"],
                    "replica_of": replica if method == "replica" else "",
                    "n_samples": int(ens.shape[0]),
                    "n_given": gen.n_given,
                    "start_frame": gen.start_frame,
                    "span_ns_pred": m_span,
                    "span_ns_ref": span_r,
                    "dt_ns_pred": m_dt,
                    "dt_ns_ref": dt_r,
                    "ref_note": "; ".join(n for n in (note, notes.get(method, "")) if n),
                    **metrics,
                }
            )
        system_figures(system, ref, structure, ensembles, gen.times_ns, out_dir / "figures", mode)
        log.info("evaluated %s %s against %s", sid, mode, sorted(ensembles))
    return pd.DataFrame(rows)


def _replica(table: pd.DataFrame, row: pd.Series) -> str | None:
    """Another trajectory of the same system under the same conditions: same dataset, topology
    and temperature (both unknown counts as the same), if any."""
    temp = table["temperature_k"] if "temperature_k" in table else pd.Series(pd.NA, table.index)
    t = row.get("temperature_k", pd.NA)
    same_t = temp.isna() if pd.isna(t) else (temp == t).fillna(False).astype(bool)
    same = table[
        (table["topology_hash"] == row["topology_hash"])
        & (table["dataset"] == row["dataset"])
        & same_t
        & (table.index != row.name)
    ]
    return str(sorted(same.index)[0]) if len(same) else None


def summarise(per_system: pd.DataFrame) -> pd.DataFrame:
    """Median of every metric per (split, ood, mode, method): the aggregate rows. A metric with a
    ``{name}_censored`` flag takes the censored median (censored values rank above all others;
    NaN and flagged when the median falls on one), never the median of the observed ones."""
    if per_system.empty:
        return per_system
    keys = ["split", "ood", "mode", "method"]
    numeric = [
        c
        for c in per_system.columns
        if pd.api.types.is_numeric_dtype(per_system[c]) and c not in ("ood", "start_frame")
    ]
    censored = [c for c in numeric if f"{c}_censored" in per_system.columns]
    plain = [c for c in numeric if c not in censored and not c.endswith("_censored")]
    groups = per_system.groupby(keys)
    agg = groups[plain].median().reset_index()
    for c in censored:
        med = groups.apply(
            lambda g, c=c: mt.censored_median(g[c], g[f"{c}_censored"].astype(bool)),
            include_groups=False,
        )
        agg[c] = [m[0] for m in med.reindex(pd.MultiIndex.from_frame(agg[keys]))]
        agg[f"{c}_censored"] = [m[1] for m in med.reindex(pd.MultiIndex.from_frame(agg[keys]))]
    agg["system_id"] = "median"
    counts = groups.size().reset_index(name="n")
    return agg.merge(counts, on=keys)


def write_tables(per_system: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """per_system.parquet, summary.parquet (per-split medians) and one table per split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    summary = summarise(per_system)
    for name, frame in {"per_system": per_system, "summary": summary}.items():
        target = out_dir / f"{name}.parquet"
        with atomic_output(target) as tmp:
            frame.to_parquet(tmp, index=False)
        paths[name] = target
    for (split, ood), frame in per_system.groupby(["split", "ood"]):
        target = out_dir / f"split_{split}_{'ood' if ood else 'id'}.parquet"
        with atomic_output(target) as tmp:
            pd.concat([frame, summarise(frame)], ignore_index=True).to_parquet(tmp, index=False)
    return paths


def record(db: Path, run: str, checkpoint: ResolvedCheckpoint, per_system: pd.DataFrame) -> None:
    """Runs, systems and eval rows in LanceDB."""
    from boltzkinema.track import log_rows

    log_rows(
        db,
        "runs",
        [
            {
                "run": run,
                "checkpoint": checkpoint.path,
                "step": checkpoint.step,
                "sha256": checkpoint.sha256,
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
    rows = per_system.assign(run=run, sha256=checkpoint.sha256).to_dict("records")
    log_rows(
        db,
        "eval",
        [{k: (float(v) if isinstance(v, np.floating) else v) for k, v in r.items()} for r in rows],
        key=["run", "sha256", "system_id", "mode", "method"],
    )
