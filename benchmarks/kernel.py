"""The learned transition kernel, one window at a time, against MD's from the same histories.

A rollout's basin populations are the stationary state of its one-window kernel, applied to the
model's own frames. This benchmark separates the two: it gives the network many histories taken
from real MD (held-out replicas by default), generates one window after each exactly as
``sample`` does (same pose, sampler and steering), and compares the basin of every generated
frame with the basin MD itself reached at the same lag from the same history. Printed per lag:

- the conditional basin probabilities P(state at t + lag | state at t) of the model and of MD,
  with the number of starts in each state;
- the stationary populations those two matrices imply.

When the kernel from MD histories implies MD's populations but the rollout does not, the bias
comes from the rollout feeding on its own frames; when the kernel itself implies the rollout's
populations, the network has learned the wrong transition odds. Run after the learning benchmark::

    .venv/bin/python benchmarks/kernel.py --results results/peptides --run peptides \
        --systems alanine.ala2_R5 alanine.ala2_R6 --starts 400 --samples 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from boltzkinema.evaluate import ramachandran as rama
from boltzkinema.evaluate.pooled import phi_psi
from boltzkinema.model.architectures import system_features
from boltzkinema.sample import modes
from boltzkinema.sample.job import (
    SampleConfig,
    load_model,
    reference_at,
    steering_for,
    trained_pose,
)
from boltzkinema.sample.sampler import SamplerConfig


def states(system, traj: np.ndarray) -> np.ndarray:
    """Basin index (β, αR, αL) of every frame of ``traj`` (F, M, 3)."""
    phi, psi = phi_psi(system, traj.astype(np.float64))
    return rama.basin(phi, psi)


def one_window(
    model, inputs, histories: np.ndarray, cfg: SampleConfig, dt_ns: float, gen, batch: int
):
    """Generated frames (S, k, M, 3) after each history (S, h, M, 3), one window each."""
    h = histories.shape[1]
    k = cfg.window - h
    sampler = SamplerConfig(**cfg.sampler)
    mask = torch.arange(h + k) < h
    times = torch.arange(h + k) * dt_ns
    out = []
    for i in range(0, len(histories), batch):
        part = torch.from_numpy(histories[i : i + batch].astype(np.float32))
        known = torch.cat([part, torch.zeros(len(part), k, *part.shape[2:])], dim=1)
        out.append(modes.sample_window(model, inputs, known, mask, times, sampler, gen)[:, h:])
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/peptides"))
    ap.add_argument("--run", default="peptides")
    ap.add_argument("--systems", nargs="+", default=["alanine.ala2_R5", "alanine.ala2_R6"])
    ap.add_argument("--starts", type=int, default=400, help="histories over all systems")
    ap.add_argument("--samples", type=int, default=4, help="windows per history")
    ap.add_argument("--batch", type=int, default=256, help="windows per network call")
    ap.add_argument("--sampler", type=json.loads, default={}, help="sampler overrides (JSON)")
    ap.add_argument("--no-steering", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    run = args.results / "runs" / args.run
    checkpoint = run / "checkpoint.json"
    raw = json.loads((run / "sample_config.json").read_text())
    raw["sampler"] = {**raw.get("sampler", {}), **args.sampler}
    if args.no_steering:
        raw["steering"] = {**raw.get("steering", {}), "steps": 0}
    cfg = SampleConfig.from_dict(raw)
    table = pd.read_parquet(args.results / "manifest.parquet").set_index("system_id")
    model = load_model(checkpoint)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    h = min(cfg.max_history, cfg.window - 1)  # what every forecast window after the first sees
    k = cfg.window - h
    md_start, md_end, gen_start, gen_end = [], [], [], []
    t0 = time.perf_counter()
    n_windows = 0
    per_system = -(-args.starts // len(args.systems))
    for sid in args.systems:
        row = table.loc[sid]
        inputs = modes.load_system(
            args.results, row["shard"], sid, row["trunk_path"],
            system_features(model.architecture), cfg.seed,
        )  # fmt: skip
        inputs.steer = steering_for(inputs.system, cfg, torch.device("cpu"))
        inputs.pose = trained_pose(checkpoint, inputs.system)
        dt_ns = cfg.dt_ns or float(row["frame_dt_ns"])
        frames = reference_at(inputs.system, dt_ns)
        basins = states(inputs.system, frames)
        last = np.sort(rng.choice(np.arange(h - 1, len(frames) - k), per_system, replace=False))
        hist = np.stack([frames[t - h + 1 : t + 1] for t in last])
        hist = np.repeat(hist, args.samples, axis=0)
        out = one_window(model, inputs, hist, cfg, dt_ns, gen, args.batch)
        n_windows += len(out)
        gen_b = states(inputs.system, out.reshape(-1, *out.shape[2:])).reshape(len(out), k)
        start = np.repeat(basins[last], args.samples)
        gen_start.append(start)
        gen_end.append(gen_b)
        md_start.append(basins[last])
        md_end.append(np.stack([basins[last + j] for j in range(1, k + 1)], axis=1))
    wall = time.perf_counter() - t0
    gs, ge = np.concatenate(gen_start), np.concatenate(gen_end)
    ms, me = np.concatenate(md_start), np.concatenate(md_end)
    names = rama.STATES
    print(f"{n_windows} windows ({len(ms)} MD histories x {args.samples}) in {wall:.0f} s")
    print("starts per state:", dict(zip(names, np.bincount(ms, minlength=3).tolist(), strict=True)))
    rows = []
    for lag in range(1, k + 1):
        pg = rama.conditional_probabilities(gs, ge[:, lag - 1])
        pm = rama.conditional_probabilities(ms, me[:, lag - 1])
        sg, sm = rama.stationary_populations(pg), rama.stationary_populations(pm)
        for i, a in enumerate(names):
            rows.append(
                {"lag_ps": round(lag * dt_ns * 1000), "from": a}
                | {f"model->{b}": pg[i, j] for j, b in enumerate(names)}
                | {f"md->{b}": pm[i, j] for j, b in enumerate(names)}
            )
        print(
            f"lag {lag}: stationary model "
            + " ".join(f"{n} {v:.3f}" for n, v in zip(names, sg, strict=True))
            + " | MD "
            + " ".join(f"{n} {v:.3f}" for n, v in zip(names, sm, strict=True))
        )
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
