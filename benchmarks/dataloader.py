"""Training items per second through the real data path, with 0, 1 and 2 DataLoader workers.

Builds two processed stores the way the pipeline does (mdtraj files → ``preprocess_shard`` →
built-in trunk cache → manifest), from the bundled villin MD (ATLAS example) tiled into bigger
systems: copies of the protein side by side as separate chains, frames repeated with thermal
noise.

- MISATO-sized: about 5,000 heavy atoms, 100 frames per system;
- ATLAS-sized: about 2,000 heavy atoms, 10,000 frames per system.

Items go through ``TrajectoryDataset`` (frame reads, crops, masking, features) and ``collate``
at ``config/gpu.yaml``'s segment sizes (8 frames, 2,048 atoms, 384 tokens) in batches of
``config/gpu.yaml``'s batch size, via ``train.batches`` exactly as training makes them. Printed:
items/s per worker count (ratio to 0 workers), the main process's RSS and its growth while the
batches are made, and the workers' peak RSS (ru_maxrss of children, pages shared with the parent
included). There is no GPU here: the model's step
rate on one is not measured, so the table gives the items/s a GPU at N steps/s would consume
(N × batch size) for the reader to compare. Run::

    .venv/bin/python benchmarks/dataloader.py [--items 400]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import mdtraj
import numpy as np
import pandas as pd
import yaml

from boltzkinema.data.dataset import SegmentConfig, TrajectoryDataset
from boltzkinema.data.index import discover
from boltzkinema.data.manifest import build_manifest, write_manifest
from boltzkinema.data.masking import TaskConfig
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.splits import SplitConfig
from boltzkinema.train.batches import StepBatches, batches
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.cache import build_trunk_cache

REPO = Path(__file__).resolve().parents[1]
VILLIN = REPO / "resources" / "example" / "atlas" / "villin_hp35"


def tiled(n_atoms: int, n_frames: int, rng: np.random.Generator) -> mdtraj.Trajectory:
    """Copies of villin (heavy atoms) 40 Å apart until ``n_atoms``, ``n_frames`` frames."""
    traj = mdtraj.load(str(next(VILLIN.glob("*_R1.xtc"))), top=str(next(VILLIN.glob("*.pdb"))))
    traj = traj.atom_slice(traj.topology.select("not element H"))
    copies = max(1, round(n_atoms / traj.n_atoms))
    reps = int(np.ceil(n_frames / traj.n_frames))
    xyz = np.concatenate([traj.xyz] * reps)[:n_frames]
    out = mdtraj.Trajectory(xyz, traj.topology)
    for k in range(1, copies):
        other = mdtraj.Trajectory(xyz + np.array([4.0 * k, 0.0, 0.0], np.float32), traj.topology)
        out = out.stack(other)
    out.xyz = out.xyz + rng.normal(scale=0.005, size=out.xyz.shape).astype(np.float32)
    out.time = np.arange(n_frames, dtype=np.float64) * 10.0  # ps
    return out


def build_store(root: Path, name: str, n_atoms: int, n_frames: int, n_systems: int) -> Path:
    """Raw files → shard → trunk → manifest; returns the results root."""
    rng = np.random.default_rng(0)
    raw = root / "raw" / name
    raw.mkdir(parents=True)
    traj = tiled(n_atoms, n_frames, rng)
    traj[0].save_pdb(str(raw / "top.pdb"))
    for i in range(n_systems):
        moved = traj[:]
        moved.xyz = moved.xyz + rng.normal(scale=0.01, size=moved.xyz.shape).astype(np.float32)
        moved.save_hdf5(str(raw / f"run{i}.h5"))
    refs = discover(
        name, "mdtraj", [{"topology": str(raw / "top.pdb"), "trajectories": [str(raw / "run*.h5")]}]
    )
    results = root / "results"
    shard = results / "processed" / name / "0000.h5"
    report = shard.with_suffix(".report.json")
    preprocess_shard(refs, shard, report, ProcessOptions(), dataset=name)
    trunk = results / "trunk" / name / "0000.json"
    build_trunk_cache(
        shard,
        trunk,
        results / "trunk" / "embeddings",
        get_backend("builtin", c_s=384, c_z=128),
        results,
    )
    table = build_manifest(
        [report],
        [trunk],
        results,
        SplitConfig(
            id_val_fraction=0.0, id_test_fraction=0.0, ood_val_fraction=0.0, ood_test_fraction=0.0
        ),
    )
    write_manifest(table, results / "manifest.parquet")
    return results


def rss_mb() -> float:
    """The main process's resident memory now (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_peak_mb() -> float:
    """Peak RSS of the largest finished child (the workers; pages shared with the parent count)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure(results: Path, workers: int, n_items: int, batch: int, seg: dict) -> dict:
    manifest = pd.read_parquet(results / "manifest.parquet")
    cfg = SegmentConfig(seed=0, tasks=TaskConfig(), **seg)
    items = TrajectoryDataset(manifest, results, cfg, "train")
    source = StepBatches(items, batch)
    steps = max(2, n_items // batch)
    first_rss = None
    t0 = time.perf_counter()
    warm = time.perf_counter()
    for k, (_, b) in enumerate(batches(source, 0, steps, workers)):
        if k == 0:  # worker start-up and the first reads are not throughput
            warm = time.perf_counter()
            first_rss = rss_mb()
        assert b[0]["coords"].shape[0] == batch  # one micro-batch: no accumulation
    end = time.perf_counter()
    items.close()
    return {
        "workers": workers,
        "items_per_s": (steps - 1) * batch / (end - warm),
        "startup_s": warm - t0,
        "main_rss_mb": rss_mb(),
        "main_rss_growth_mb": rss_mb() - (first_rss or 0.0),
        "worker_peak_rss_mb": children_peak_mb() if workers else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=400, help="items per measurement")
    p.add_argument("--systems", type=int, default=4)
    a = p.parse_args()
    gpu = yaml.safe_load((REPO / "config" / "gpu.yaml").read_text())["train"]
    seg = {k: gpu["segments"][k] for k in ("n_frames", "max_atoms", "max_tokens")}
    sizes = {"misato_sized": (5000, 100), "atlas_sized": (2000, 10000)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (n_atoms, n_frames) in sizes.items():
            t0 = time.perf_counter()
            results = build_store(Path(tmp) / name, name, n_atoms, n_frames, a.systems)
            m = pd.read_parquet(results / "manifest.parquet")
            print(
                f"{name}: {len(m)} systems x {int(m['n_atoms'].iloc[0])} atoms x "
                f"{int(m['n_frames'].iloc[0])} frames, built in {time.perf_counter() - t0:.0f} s"
            )
            for workers in (0, 1, 2):
                row = measure(results, workers, a.items, gpu["batch_size"], seg)
                rows.append({"store": name, **row})
                print(f"  {workers} workers: {row['items_per_s']:.1f} items/s")
    table = pd.DataFrame(rows)
    base = table[table["workers"] == 0].set_index("store")["items_per_s"]
    table["vs_0_workers"] = table["items_per_s"] / table["store"].map(base)
    print()
    print(table.to_markdown(index=False, floatfmt=".3g"))
    need = {n: n * gpu["batch_size"] for n in (1, 2, 4)}
    print(
        f"\nA GPU at 1 / 2 / 4 steps/s (batch {gpu['batch_size']}) consumes "
        f"{need[1]} / {need[2]} / {need[4]} items/s; the issue's target is 4x that. "
        "GPU step rate at config/gpu.yaml sizes: not measured (no GPU on this machine)."
    )


if __name__ == "__main__":
    main()
