"""Nanoseconds of trajectory generated per wall-clock second, next to OpenMM simulating the same
system on the same machine in the same run.

System: the bundled villin headpiece (HP35). OpenMM runs the example's own set-up (amber14 +
OBC2, 4 fs with hydrogen mass repartitioning, CPU platform). The model forecasts from the first
frame with a fresh network of the example's size (speed does not depend on the weights) at the
frame spacing given (default 1 ns, what the full-scale model is trained on; the bundled example
uses 1 ps), 20 EDM steps. Run: ``.venv/bin/python benchmarks/sampling.py`` (needs OpenMM).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from boltzkinema.data.index import discover
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.sample import modes
from boltzkinema.sample.sampler import SamplerConfig
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.cache import build_trunk_cache

REPO = Path(__file__).resolve().parents[1]


def openmm_ns_per_s(steps: int, threads: int) -> float:
    import openmm
    from openmm import unit

    from boltzkinema.simulate import build_system

    _, system, positions = build_system("villin_n68h", REPO / "resources" / "example" / "inputs")
    integ = openmm.LangevinMiddleIntegrator(
        300 * unit.kelvin, 1 / unit.picosecond, 4 * unit.femtoseconds
    )
    ctx = openmm.Context(
        system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)}
    )
    ctx.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, maxIterations=100)
    integ.step(50)
    t0 = time.perf_counter()
    integ.step(steps)
    ctx.getState(getPositions=True)
    return steps * 4e-6 / (time.perf_counter() - t0)


def model_ns_per_s(frames: int, dt_ns: float, n_steps: int) -> tuple[float, float]:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        refs = discover("bench", "atlas", [str(REPO / "resources" / "example" / "atlas")])[:1]
        shard = root / "processed" / "0000.h5"
        preprocess_shard(refs, shard, root / "r.json", ProcessOptions(frame_dt_ns=dt_ns))
        backend = get_backend("builtin", c_s=cfg["trunk"]["c_s"], c_z=cfg["trunk"]["c_z"])
        idx = build_trunk_cache(shard, root / "t.json", root / "emb", backend, root)
        entry = next(iter(idx.systems.values()))
        inputs = modes.load_system(root, "processed/0000.h5", refs[0].system_id, entry["path"])
        torch.manual_seed(0)
        net = DiffusionNetwork(
            ModelConfig(c_s=cfg["trunk"]["c_s"], c_z=cfg["trunk"]["c_z"], **cfg["train"]["model"])
        ).eval()
        hist = torch.from_numpy(inputs.system.coords[:1])
        t0 = time.perf_counter()
        modes.forecast(
            net,
            inputs,
            hist,
            frames,
            dt_ns,
            8,
            SamplerConfig(n_steps=n_steps),
            torch.Generator().manual_seed(0),
        )
        seconds = time.perf_counter() - t0
    return frames * dt_ns / seconds, seconds / frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=28)
    p.add_argument("--dt-ns", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=20, help="EDM steps per window")
    p.add_argument("--md-steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    md = openmm_ns_per_s(a.md_steps, a.threads)
    gen, per_frame = model_ns_per_s(a.frames, a.dt_ns, a.steps)
    print(
        f"OpenMM (villin, OBC2, 4 fs, CPU {a.threads} threads): {md:.3e} ns/s "
        f"({md * 86400:.1f} ns/day)"
    )
    print(
        f"model (forecast, {a.steps} EDM steps, window 8, {a.dt_ns} ns/frame): "
        f"{gen:.3e} ns/s ({per_frame:.3f} s per frame)"
    )
    print(
        f"ratio model/MD: {gen / md:.1f}x at {a.dt_ns} ns per frame; break-even frame spacing "
        f"{md * per_frame * 1e3:.3f} ps"
    )
    assert np.isfinite(gen) and np.isfinite(md)


if __name__ == "__main__":
    main()
