"""``python -m boltzkinema inspect <file>``: a readable summary of any intermediate artifact.

Shards (with their report's quarantine reasons), shard reports, trunk entries, the manifest,
checkpoints (a step folder, its state.json or weights, or a resolved checkpoint.json), training
logs and sample sets. Each summary is a list of lines; nothing is unpickled or modified.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from boltzkinema.data.shard_report import ShardReport
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.train.resolved import ResolvedCheckpoint
from boltzkinema.train.state import TrainingState


def _unit(attrs: dict[str, Any]) -> str:
    unit = attrs.get("unit_detected", "?")
    forced = " (forced)" if attrs.get("unit_forced") else ""
    return f"{unit}{forced}, confidence {float(attrs.get('unit_confidence', float('nan'))):.2f}"


def shard(path: Path) -> list[str]:
    """Systems, frames, atoms, units and spacing with their evidence; the report's quarantine."""
    from boltzkinema.data.store import ShardReader

    lines = [f"processed shard {path}"]
    with ShardReader(path) as reader:
        ids = reader.system_ids()
        lines.append(f"{len(ids)} systems")
        for sid in ids:
            s = reader.load(sid, frames=[0])
            a = s.attrs
            n_frames = reader.n_frames(sid)
            dt = float(a.get("frame_dt_ns", float("nan")))
            lines.append(
                f"  {sid}: {n_frames} frames x {s.n_atoms} atoms, {s.n_tokens} tokens; "
                f"unit {_unit(a)}; every {dt:g} ns ({a.get('frame_dt_source', '?')})"
            )
            for note in a.get("notes", []):
                lines.append(f"      note: {note}")
    report = path.with_suffix(".report.json")
    if report.exists():
        lines += shard_report(report)[1:]
    return lines


def shard_report(path: Path) -> list[str]:
    r = ShardReport.read(path)
    lines = [
        f"shard report {path}",
        f"{r.n_ok} of {r.n_systems} systems processed, {r.n_quarantined} quarantined "
        f"({r.seconds:.1f} s)",
    ]
    for e in r.quarantined:
        where = e["file"] + (f" [{e['group']}]" if e.get("group") else "")
        lines.append(f"  QUARANTINED {e['system_id']} ({e['code']}): {where}: {e['reason']}")
        lines.append(f"      fix: {e['fix']}")
    return lines


def trunk_entry(path: Path) -> list[str]:
    from safetensors import safe_open

    from boltzkinema.trunk.cache import entry_metadata

    meta = entry_metadata(path)
    lines = [f"trunk entry {path}"]
    lines += [f"  {k}: {v}" for k, v in sorted(meta.items())]
    with safe_open(str(path), framework="numpy") as f:
        for key in sorted(f.keys()):
            sl = f.get_slice(key)
            lines.append(f"  {key}: {tuple(sl.get_shape())} {sl.get_dtype()}")
    return lines


def manifest(path: Path) -> list[str]:
    import pandas as pd

    t = pd.read_parquet(path)
    lines = [f"manifest {path}", f"{len(t)} systems"]
    counts = t.groupby(["split", "ood"]).size()
    for (split, ood), n in counts.items():
        lines.append(f"  {split} {'out of distribution' if ood else 'in distribution'}: {n}")
    if "dataset" in t:
        for name, n in t["dataset"].value_counts().sort_index().items():
            lines.append(f"  dataset {name}: {n}")
    return lines


def checkpoint(folder: Path) -> list[str]:
    """Step, architecture, parameter counts (trainable / frozen), base, weight average."""
    from safetensors import safe_open

    from boltzkinema.model.architectures import build_network
    from boltzkinema.train.checkpoint import EMA_NAME

    state = TrainingState.read(folder)
    arch = state.architecture
    total = sum(p.numel() for p in build_network(arch, state.model_config).parameters())
    with safe_open(str(folder / "model.safetensors"), framework="numpy") as f:
        saved = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118
    frozen = state.trainable_only
    lines = [
        f"checkpoint {folder}",
        f"  step {state.step}, architecture {arch}",
        f"  parameters: {total:,} in the network, {saved:,} in model.safetensors"
        + (f" (trainable; {total - saved:,} frozen, from the base)" if frozen else ""),
        f"  weight average: {'yes' if (folder / f'{EMA_NAME}.safetensors').exists() else 'no'}",
        f"  validation loss: {state.val_loss}, best so far: {state.best_val}",
        f"  config hash: {state.config_hash or '-'}",
    ]
    if state.base:
        lines.append(f"  base: {state.base['path']} (sha256 {state.base['sha256'][:12]})")
    if state.lora_rank:
        lines.append(f"  LoRA rank {state.lora_rank}")
    if state.coverage is not None:
        lines.append(f"  trained on: {json.dumps(state.coverage, sort_keys=True)}")
    return lines


def resolved(path: Path) -> list[str]:
    info = ResolvedCheckpoint.read(path)
    return [
        f"resolved checkpoint {path}: policy {info.policy}, step {info.step}",
        f"  weights {info.weights} (sha256 {info.sha256[:12]})",
        *checkpoint(Path(info.path))[1:],
    ]


def samples(path: Path) -> list[str]:
    with np.load(path, allow_pickle=False) as z:
        coords, times = z["coords"], z["times_ns"]
        given = z["given"] if "given" in z else np.zeros(coords.shape[1], bool)
        sid = str(z["system_id"]) if "system_id" in z else "?"
    dt = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    return [
        f"sample set {path} ({sid})",
        f"  {coords.shape[0]} samples x {coords.shape[1]} frames x {coords.shape[2]} atoms",
        f"  {int(given.sum())} given (conditioning) frames, {int((~given).sum())} generated",
        f"  times {times[0]:g}..{times[-1]:g} ns, every {dt:g} ns",
    ]


def train_log(path: Path) -> list[str]:
    import pandas as pd

    t = pd.read_parquet(path)
    last = t.iloc[-1]
    val = t["val_loss"].dropna() if "val_loss" in t else []
    return [
        f"training log {path}: {len(t)} steps ({int(t['skipped'].sum())} skipped)",
        f"  last step {int(last['step'])}: loss {last['loss']:.4f}, lr {last['lr']:.2e}",
        f"  {t['seconds'].mean():.3f} s/step"
        + (f"; best validation loss {val.min():.4f}" if len(val) else ""),
    ]


def _kind(path: Path) -> Callable[[Path], list[str]]:
    if path.is_dir():
        if (path / "state.json").exists():
            return checkpoint
        raise BoltzKinemaError(f"{path}: a folder, but not a checkpoint (no state.json)")
    name = path.name
    in_checkpoint = name.endswith(".safetensors") and (path.parent / "state.json").exists()
    if name == "state.json" or in_checkpoint:
        return lambda p: checkpoint(p.parent)
    if name == "checkpoint.json":
        return resolved
    if name.endswith(".report.json"):
        return shard_report
    if path.suffix == ".h5":
        return shard
    if path.suffix == ".safetensors":
        return trunk_entry
    if path.suffix == ".npz":
        return samples
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        columns = set(pq.read_schema(path).names)
        if {"system_id", "split", "ood"} <= columns:
            return manifest
        if {"step", "loss", "lr"} <= columns:
            return train_log
    raise BoltzKinemaError(
        f"{path}: not an artifact inspect knows; give a shard (.h5), shard report, trunk entry, "
        "manifest, checkpoint (folder, state.json or checkpoint.json), train_log.parquet or a "
        "sample set (.npz)"
    )


def describe(path: str | Path) -> list[str]:
    """The summary lines of one artifact (its kind told from its name and contents)."""
    path = Path(path)
    if not path.exists():
        raise BoltzKinemaError(f"{path}: no such file or folder")
    try:
        return _kind(path)(path)
    except (KeyError, ValueError, OSError) as exc:
        raise BoltzKinemaError(f"{path}: cannot be read as its kind ({exc})") from exc
