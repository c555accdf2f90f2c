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

- items/s per worker count (ratio to 0 workers), with the main process receiving every batch (one
  copy into reused buffers, as ``pin_memory`` does before a GPU), the main process's RSS and its
  growth while the batches are made, and the workers' peak RSS (shared pages included). The
  process keeps the memory it frees, as the ``train`` command (and so its workers) does;
- RSS of the main process and of each worker every 1,000 items over ``--rss-items`` (10,000)
  items with 2 workers: flat means no leak;
- what one GPU consumes: the training step at ``config/gpu.yaml``'s model and batch, measured
  (bf16 forward, backward and AdamW on a batch from the loader) where CUDA is
  available, else ESTIMATED from the step's FLOPs (counted by torch on the meta device) at an
  assumed 30% of an H100's dense bf16 peak, and the 2-worker loader's ratio to it (target 4x).

``--smoke`` runs every path at toy sizes (tests call it). Run::

    .venv/bin/python benchmarks/dataloader.py [--items 400] [--rss-items 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import mdtraj
import numpy as np
import pandas as pd
import torch
import yaml
from gpu import model_config
from model import time_training_step
from torch.utils.flop_counter import FlopCounterMode

from boltzkinema.data.dataset import SegmentConfig, TrajectoryDataset
from boltzkinema.data.index import discover
from boltzkinema.data.manifest import build_manifest, write_manifest
from boltzkinema.data.masking import TaskConfig
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.splits import SplitConfig
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.train.batches import StepBatches, batches
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.cache import build_trunk_cache
from boltzkinema.util import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
VILLIN = REPO / "resources" / "example" / "atlas" / "villin_hp35"
H100_BF16_FLOPS = 989e12  # dense bf16 peak of an H100 SXM (NVIDIA's datasheet)
ASSUMED_MFU = 0.3  # a typical fraction of it reached by transformer training


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


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory now (MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids() -> list[int]:
    """This process's live children (the DataLoader workers while a loader runs)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def children_peak_mb() -> float:
    """Peak RSS of the largest finished child (the workers; pages shared with the parent count)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def dataset(results: Path, seg: dict) -> TrajectoryDataset:
    manifest = pd.read_parquet(results / "manifest.parquet")
    return TrajectoryDataset(manifest, results, SegmentConfig(seed=0, tasks=TaskConfig(), **seg))


def receive(batch: dict[str, Any], buffers: dict[str, torch.Tensor]) -> None:
    """Copy every tensor of ``batch`` into a buffer kept across batches, as ``pin_memory``
    copies a batch into reused pinned blocks before it goes to a GPU: the main process's share
    of the data path (a batch made by a worker arrives in new shared memory)."""
    for key, value in batch.items():
        if torch.is_tensor(value):
            if key not in buffers or buffers[key].shape != value.shape:
                buffers[key] = torch.empty_like(value)
            buffers[key].copy_(value)


def measure(results: Path, workers: int, n_items: int, batch: int, seg: dict) -> dict:
    items = dataset(results, seg)
    steps = max(2, n_items // batch)
    first_rss = None
    t0 = time.perf_counter()
    warm = time.perf_counter()
    received: dict[str, torch.Tensor] = {}
    for k, (_, b) in enumerate(batches(StepBatches(items, batch), 0, steps, workers)):
        if k == 0:  # worker start-up and the first reads are not throughput
            warm = time.perf_counter()
            first_rss = rss_mb()
        assert b[0]["coords"].shape[0] == batch  # one micro-batch: no accumulation
        receive(b[0], received)
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


def rss_trace(results: Path, n_items: int, batch: int, seg: dict, every: int = 1000) -> list:
    """(items made, main RSS, each worker's RSS) every ``every`` items, with 2 workers."""
    items = dataset(results, seg)
    every_steps = max(1, every // batch)
    trace = []
    for k, _ in enumerate(batches(StepBatches(items, batch), 0, max(1, n_items // batch), 2)):
        if (k + 1) % every_steps == 0:
            workers = sorted(round(rss_mb(p)) for p in worker_pids())
            trace.append(((k + 1) * batch, round(rss_mb()), workers))
    items.close()
    return trace


def step_flops(net: DiffusionNetwork, batch: dict[str, Any]) -> float:
    """FLOPs of one training step's forward and backward (activation-checkpoint recompute
    included) on ``batch``, counted by torch on the meta device: nothing is computed."""
    meta = net.to("meta").train()
    on_meta = {k: v.to("meta") if torch.is_tensor(v) else v for k, v in batch.items()}
    on_meta = {
        k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
        for k, v in on_meta.items()
    }
    sigma = torch.full(on_meta["sigma_rel"].shape, 5.0, device="meta")
    with FlopCounterMode(display=False) as counter:
        meta(on_meta, on_meta["coords"], sigma).square().mean().backward()
    return float(counter.get_total_flops())


def measured_step_s(cfg: ModelConfig, batch: dict[str, Any], device: str, repeats: int) -> float:
    """Seconds per training step on ``device`` (bf16 autocast on CUDA, backward, AdamW) on the
    loader's batch, its float16 trunk embeddings widened there as ``denoise_loss`` does."""
    on_device = {
        k: (v.to(device).float() if v.dtype == torch.float16 else v.to(device))
        if torch.is_tensor(v)
        else v
        for k, v in batch.items()
    }
    sigma = torch.full(on_device["sigma_rel"].shape, 5.0, device=device)
    net = DiffusionNetwork(cfg).to(device).train()
    timed = time_training_step(net, on_device, on_device["coords"], sigma, repeats, bf16=True)
    return timed["seconds"]


def gpu_step(batch: dict[str, Any], smoke: bool) -> tuple[float, str]:
    """Seconds per training step on one GPU and how the number was obtained."""
    cfg = model_config(smoke)
    flops = step_flops(DiffusionNetwork(cfg), batch)
    if torch.cuda.is_available():
        seconds = measured_step_s(cfg, batch, "cuda", repeats=10)
        name = torch.cuda.get_device_name()
        return seconds, f"MEASURED on {name} ({flops / 1e12:.1f} TFLOP per step)"
    if smoke:  # the measuring path, on the CPU, so that it is exercised without a GPU
        measured_step_s(cfg, batch, "cpu", repeats=1)
    seconds = flops / (H100_BF16_FLOPS * ASSUMED_MFU)
    return seconds, (
        f"ESTIMATED, no GPU here: {flops / 1e12:.1f} TFLOP per step (counted) at "
        f"{ASSUMED_MFU:.0%} of an H100's {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s bf16"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=400, help="items per measurement")
    p.add_argument("--rss-items", type=int, default=10000, help="items of the RSS trace")
    p.add_argument("--systems", type=int, default=4)
    p.add_argument("--smoke", action="store_true", help="toy sizes: every path, in seconds")
    a = p.parse_args()
    keep_freed_memory()  # as the train command does before its DataLoader forks the workers
    gpu = yaml.safe_load((REPO / "config" / "gpu.yaml").read_text())
    train = gpu["train"]
    seg = {k: train["segments"][k] for k in ("n_frames", "max_atoms", "max_tokens")}
    sizes = {"misato_sized": (5000, 100), "atlas_sized": (2000, 10000)}
    if a.smoke:
        sizes = {"misato_sized": (150, 10), "atlas_sized": (100, 200)}
        seg = {"n_frames": 4, "max_atoms": 64, "max_tokens": 16}
    batch_size = train["batch_size"]
    rows, traces = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (n_atoms, n_frames) in sizes.items():
            t0 = time.perf_counter()
            results = build_store(Path(tmp) / name, name, n_atoms, n_frames, a.systems)
            m = pd.read_parquet(results / "manifest.parquet")
            print(
                f"{name}: {len(m)} systems x {int(m['n_atoms'].iloc[0])} atoms x "
                f"{int(m['n_frames'].iloc[0])} frames, built in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            for workers in (0, 1, 2):
                row = measure(results, workers, a.items, batch_size, seg)
                rows.append({"store": name, **row})
                print(f"  {workers} workers: {row['items_per_s']:.1f} items/s", flush=True)
            traces[name] = rss_trace(results, a.rss_items, batch_size, seg, every=a.rss_items // 10)
            if name == "misato_sized":
                batch = StepBatches(dataset(results, seg), batch_size)[0][0]
    table = pd.DataFrame(rows)
    base = table[table["workers"] == 0].set_index("store")["items_per_s"]
    table["vs_0_workers"] = table["items_per_s"] / table["store"].map(base)
    print()
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print(f"\nRSS (MB) with 2 workers over {a.rss_items} items: (items, main, workers)")
    for name, trace in traces.items():
        print(f"  {name}: " + "  ".join(f"{n}: {m} {w}" for n, m, w in trace))
    seconds, how = gpu_step(batch, a.smoke)
    need = batch_size / seconds
    print(f"\nGPU step at config/gpu.yaml sizes: {seconds:.3f} s ({how}),")
    print(
        f"so one GPU consumes {need:.1f} items/s (batch {batch_size}); target 4x = {4 * need:.0f}."
    )
    two = table[table["workers"] == 2].set_index("store")["items_per_s"]
    for name, rate in two.items():
        print(f"  {name}, 2 workers: {rate:.1f} items/s = {rate / need:.2f}x what the GPU consumes")
    print(f"(this machine: {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
