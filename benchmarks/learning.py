"""The learning benchmark: does the emulator learn peptide dynamics from MD made on this machine?

Runs the workflow on ``config/peptides.yaml`` (preprocess → trunk → manifest → train → sample →
evaluate → report, real Snakemake, this machine's CPU), then compares on held-out data:

- alanine dipeptide: the model's forecast from a frame of held-out replica R5, against the held-out
  replicas R5 + R6 pooled; the yardstick is MD itself (the training replicas R1–R4 pooled, against
  the same reference), beside the ``static`` (start frame repeated) and ``noise`` baselines;
- the held-out peptides (out of distribution): the forecast from the start of R1 against R1, with
  R2 as the replica level.

Every ensemble is compared at the generated frame spacing (the MD strided to it). Prints the
tables and the targets of issue 12, writes ``table.md`` / ``table.json`` and figures (Ramachandran
maps, basin populations over time) under ``{results}/learning/`` and into the run's report, and
times OpenMM on the same peptide for generated-ns-per-second. Run::

    .venv/bin/python benchmarks/learning.py            # the whole workflow, then the tables
    .venv/bin/python benchmarks/learning.py --no-run   # tables from an existing run
    .venv/bin/python benchmarks/learning.py --seed 1   # the same with every seed 1, own folder
    .venv/bin/python benchmarks/learning.py --summarise results/peptides results/peptides_seed1

``--summarise`` reads the ``learning/table.json`` of finished runs (one per seed) and prints each
model number as mean and spread over the seeds, and in how many seeds each target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from boltzkinema.data.store import ProcessedSystem, ShardReader
from boltzkinema.evaluate import ramachandran as rama
from boltzkinema.evaluate.ensemble import noise_baseline
from boltzkinema.evaluate.job import generated_frames
from boltzkinema.evaluate.pooled import Ensemble, ensemble_row, phi_psi
from boltzkinema.sample.job import reference_at

REPO = Path(__file__).resolve().parents[1]
ALA = "alanine.ala2"
STAGES = ("train", "sample", "evaluate")


def run_workflow(config: Path, cores: int) -> float:
    """Snakemake on ``config`` to the end (report included); wall seconds."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    start = time.perf_counter()
    subprocess.run(
        [
            "snakemake",
            "--cores",
            str(cores),
            "--configfile",
            str(config),
            "--rerun-triggers",
            "mtime",
        ],
        cwd=REPO,
        env=env,
        check=True,
    )
    return time.perf_counter() - start


def load(root: Path, row: pd.Series) -> ProcessedSystem:
    with ShardReader(root / row["shard"]) as reader:
        return reader.load(row.name)


def generated(npz: Path) -> tuple[list[np.ndarray], float]:
    """The generated frames only (given frames dropped), per sample, and their spacing."""
    gen = generated_frames(npz)
    return list(gen.coords), float(np.median(np.diff(gen.times_ns)))


def strided(system: ProcessedSystem, dt_ns: float) -> np.ndarray:
    """A system's frames at the generated spacing (as sampling takes its given frames)."""
    return reference_at(system, dt_ns).astype(np.float64)


def compare(
    methods: dict[str, Ensemble], ref: Ensemble, system: ProcessedSystem, start: np.ndarray
) -> pd.DataFrame:
    lag = max(1, round(0.1 / ref.dt_ns))  # 100 ps
    rows = {name: ensemble_row(ens, ref, system, start, lag) for name, ens in methods.items()}
    rows["reference"] = ensemble_row(ref, ref, system, start, lag)
    return pd.DataFrame(rows).T


def ala2_targets(table: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """Issue 12's targets on held-out alanine dipeptide: (target, met, numbers)."""
    m, y, r = table.loc["model"], table.loc["md_yardstick"], table.loc["reference"]
    out = []
    for angle in ("phi", "psi"):
        k = f"{angle}_jsd"
        out.append(
            (f"{angle} JSD <= 1.5x yardstick", m[k] <= 1.5 * y[k], f"{m[k]:.3f} vs {y[k]:.3f}")
        )
    for state in rama.STATES:
        k = f"pop_{state}"
        tol = max(0.05, abs(y[k] - r[k]))
        out.append(
            (
                f"{state} population within {tol:.2f}",
                abs(m[k] - r[k]) <= tol,
                f"{m[k]:.3f} ± {m[k + '_se']:.3f} vs {r[k]:.3f} ± {r[k + '_se']:.3f} "
                f"(yardstick {y[k]:.3f} ± {y[k + '_se']:.3f}; ± block standard errors)",
            )
        )
    for k, factor in (("alpha_beta_per_ns", 1.5), ("tica_slowest_ns", 2.0)):
        ratio = m[k] / r[k] if r[k] > 0 else float("nan")
        ok = bool(np.isfinite(ratio) and 1 / factor <= ratio <= factor)
        out.append((f"{k} within x{factor:g}", ok, f"{m[k]:.3g} vs {r[k]:.3g}"))
    out.append(("0 clashes", m["clashes_per_frame"] == 0, f"{m['clashes_per_frame']:.3g}/frame"))
    # MD's own bonds vibrate (and xtc rounds to 0.01 Å): about 0.035 Å from the reference
    # lengths, so the bar is 0.02 Å or the yardstick's own RMSE where that is larger.
    bar = max(0.02, y["bond_rmse"])
    out.append((f"bond RMSE <= {bar:.3f} A", m["bond_rmse"] <= bar, f"{m['bond_rmse']:.4f} A"))
    out.append(("0 chirality flips", m["chirality_flips"] == 0, f"{m['chirality_flips']:.3g}"))
    return out


def distance_to_reference(table: pd.DataFrame, method: str, metric: str) -> float:
    """How far ``method`` is from the reference MD on ``metric`` (lower is better).

    JSDs, clashes, bond RMSE and flips are distances already; a population counts by its
    absolute difference from the reference's, a rate or timescale by the factor between them
    (|log ratio|; a method without the quantity, such as ``static``'s timescale, is infinitely far).
    """
    value, ref = table.loc[method, metric], table.loc["reference", metric]
    if metric.startswith("pop_"):
        return float(abs(value - ref))
    if metric in RATE_METRICS:
        if not (np.isfinite(value) and value > 0 and ref > 0):
            return float("inf")
        return float(abs(np.log(value / ref)))
    return float(value)


RATE_METRICS = ("alpha_beta_per_ns", "tica_slowest_ns")
OOD_METRICS = (
    "phi_jsd",
    "psi_jsd",
    *(f"pop_{s}" for s in rama.STATES),
    *RATE_METRICS,
    "clashes_per_frame",
    "bond_rmse",
    "chirality_flips",
)
# Validity metrics are met by reaching MD's own level (no clashes or flips, bonds no further from
# the reference lengths than MD's): a static copy of an MD frame has exact bonds by construction.
VALIDITY_METRICS = ("clashes_per_frame", "bond_rmse", "chirality_flips")
# A population within the alanine-dipeptide target's tolerance of MD's counts as matching it.
POPULATION_TOLERANCE = 0.05


def matches_md(table: pd.DataFrame, metric: str) -> bool:
    """Whether the model is at MD's own level on ``metric`` (see VALIDITY_METRICS)."""
    d_model = distance_to_reference(table, "model", metric)
    if metric in VALIDITY_METRICS:
        return bool(d_model <= table.loc["reference", metric])
    return metric.startswith("pop_") and d_model <= POPULATION_TOLERANCE


def ood_targets(name: str, table: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """Held-out peptides: JSD <= 3x the replica's, and better than static and noise on every
    metric: closer to the reference MD (``distance_to_reference``), or at MD's own level
    (``matches_md``)."""
    m, rep = table.loc["model"], table.loc["replica"]
    out = []
    for k in ("phi_jsd", "psi_jsd"):
        out.append((f"{name} {k} <= 3x replica", m[k] <= 3 * rep[k], f"{m[k]:.3f} vs {rep[k]:.3f}"))
    for k in OOD_METRICS:
        d_model = distance_to_reference(table, "model", k)
        for base in ("static", "noise"):
            ok = bool(d_model < distance_to_reference(table, base, k) or matches_md(table, k))
            numbers = f"{m[k]:.3g} vs {table.loc[base, k]:.3g} (MD {table.loc['reference', k]:.3g})"
            out.append((f"{name} {k} better than {base}", ok, numbers))
    return out


def ramachandran_figure(
    angles: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(angles), figsize=(3.2 * len(angles), 3.2), squeeze=False)
    for ax, (name, (phi, psi)) in zip(axes[0], angles.items(), strict=True):
        ax.hist2d(np.degrees(phi), np.degrees(psi), bins=60, range=[[-180, 180], [-180, 180]],
                  cmap="viridis", cmin=1)  # fmt: skip
        ax.set_title(f"{name} ({len(phi)} frames)", fontsize=9)
        ax.set_xlabel("φ (°)")
        ax.set_xlim(-180, 180)
        ax.set_ylim(-180, 180)
    axes[0][0].set_ylabel("ψ (°)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def populations_figure(
    angles: dict[str, list[tuple[np.ndarray, np.ndarray]]], dt_ns: float, path: Path
) -> None:
    """Running basin populations along the first trajectory of each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rama.STATES), figsize=(4 * len(rama.STATES), 3), squeeze=False)
    for name, trajs in angles.items():
        phi, psi = trajs[0]
        states = rama.basin(phi, psi)
        t = np.arange(1, len(states) + 1)
        for i, (ax, state) in enumerate(zip(axes[0], rama.STATES, strict=True)):
            ax.plot(t * dt_ns, np.cumsum(states == i) / t, label=name)
            ax.set_title(f"{state} population (running)", fontsize=9)
            ax.set_xlabel("time (ns)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def openmm_ns_per_s(steps: int = 5000) -> float:
    """OpenMM's ns per wall second on one alanine dipeptide (the benchmark's own set-up)."""
    import dataclasses

    from boltzkinema.peptides import PEPTIDE_BATCHES, build_batch
    from boltzkinema.simulate import equilibrated

    batch = dataclasses.replace(
        PEPTIDE_BATCHES[0], runs=PEPTIDE_BATCHES[0].runs[:1], equilibration_steps=100
    )
    _, system, positions, _ = build_batch(batch)
    context, integ = equilibrated(system, positions, batch, minimise_steps=100)
    t0 = time.perf_counter()
    integ.step(steps)
    context.getState(getPositions=True)
    return steps * batch.timestep_fs * 1e-6 / (time.perf_counter() - t0)


def sample_seconds(results: Path, sid: str) -> float:
    """Wall seconds of the sample job of ``sid`` (Snakemake's benchmark file)."""
    files = sorted((results / "benchmarks").rglob(f"*{sid}*forecast*.tsv"))
    if not files:
        return float("nan")
    return float(pd.read_csv(files[0], sep="\t")["s"].iloc[0])


def seeded(cfg: dict, seed: int) -> dict:
    """``cfg`` with the train, sample and evaluate seeds set to ``seed`` and results of its own
    (``{results}_seed{seed}``), so that runs of several seeds sit side by side."""
    out = {**cfg, "results": f"{cfg['results']}_seed{seed}"}
    for stage in ("train", "sample", "evaluate"):
        out[stage] = {**cfg.get(stage, {}), "seed": seed}
    return out


def summarise(reports: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (system, metric) the model's value in each run with mean and spread (max − min), and
    per target in how many runs it is met. ``reports`` are ``table.json`` contents, one per seed."""
    rows = {}
    for name in reports[0]["tables"]:
        for metric in reports[0]["tables"][name]["model"]:
            values = [float(r["tables"][name]["model"][metric]) for r in reports]
            rows[(name, metric)] = {
                **{f"run {i}": v for i, v in enumerate(values)},
                "mean": float(np.mean(values)),
                "spread": float(np.max(values) - np.min(values)),
            }
    met: dict[str, int] = {}
    for r in reports:
        for t in r["targets"]:
            met[t["target"]] = met.get(t["target"], 0) + bool(t["met"])
    targets = pd.DataFrame({"met in": {k: f"{v} of {len(reports)}" for k, v in met.items()}})
    return pd.DataFrame(rows).T, targets


def learning_html(report: dict) -> str:
    """The benchmark's tables and targets as an HTML fragment for the run's report."""
    parts = [
        "<h2>Learning benchmark (held-out data, pooled ensembles)</h2>",
        "<p>Model forecast against held-out MD; <code>md_yardstick</code> is MD itself (the "
        "training replicas pooled) against the same reference. Figures "
        "<code>learning_*.png</code> below.</p>",
    ]
    for name, rows in report["tables"].items():
        frame = pd.DataFrame(rows).T
        parts += [f"<h3>{name}</h3>", frame.to_html(float_format=lambda v: f"{v:.3g}", border=0,
                                                    classes="metrics")]  # fmt: skip
    targets = pd.DataFrame(report["targets"], columns=["target", "met", "numbers"])
    parts += ["<h3>Targets</h3>", targets.to_html(index=False, border=0, classes="metrics")]
    return "\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "config" / "peptides.yaml"))
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--no-run", action="store_true", help="analyse an existing run")
    p.add_argument("--seed", type=int, help="set every seed to this, results in {results}_seed{N}")
    p.add_argument("--summarise", nargs="+", metavar="RESULTS", help="finished runs to combine")
    a = p.parse_args()
    if a.summarise:
        reports = [
            json.loads((Path(r) / "learning" / "table.json").read_text()) for r in a.summarise
        ]
        values, targets = summarise(reports)
        print(values.to_markdown(floatfmt=".3g"), "", targets.to_markdown(), sep="\n")
        return
    cfg = yaml.safe_load(Path(a.config).read_text())
    config = Path(a.config)
    if a.seed is not None:
        cfg = seeded(cfg, a.seed)
        config = REPO / cfg["results"] / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    results = REPO / cfg["results"]
    wall = float("nan") if a.no_run else run_workflow(config, a.cores)
    run_dir = results / "runs" / cfg["train"]["run"]
    out = results / "learning"
    figures = run_dir / "eval" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    table = pd.read_parquet(results / "manifest.parquet").set_index("system_id")
    rng = np.random.default_rng(0)
    report: dict = {"workflow_seconds": wall, "tables": {}, "targets": []}

    # Alanine dipeptide: held-out replicas pooled against the model, the yardstick, baselines.
    sid = f"{ALA}_R5"
    gen, dt = generated(run_dir / "samples" / sid / "forecast.npz")
    systems = {k: load(results, table.loc[f"{ALA}_R{k}"]) for k in range(1, 7)}
    system = systems[5]
    ref = Ensemble([strided(systems[k], dt) for k in (5, 6)], dt)
    start = systems[5].coords[0].astype(np.float64)
    n = sum(len(g) for g in gen)
    methods = {
        "model": Ensemble(gen, dt),
        "md_yardstick": Ensemble([strided(systems[k], dt) for k in (1, 2, 3, 4)], dt),
        "static": Ensemble([np.repeat(start[None], n, 0)], dt),
        "noise": Ensemble([noise_baseline(systems[5].coords, n, rng)], dt),
    }
    ala = compare(methods, ref, system, start)
    report["tables"]["ala2"] = ala.to_dict("index")
    report["targets"] += ala2_targets(ala)
    angles = {k: [phi_psi(system, t) for t in e.trajectories] for k, e in methods.items()}
    angles["MD reference"] = [phi_psi(system, t) for t in ref.trajectories]
    pooled = {k: tuple(np.concatenate(x) for x in zip(*v, strict=True)) for k, v in angles.items()}
    for folder in (out, figures):
        folder.mkdir(parents=True, exist_ok=True)
        ramachandran_figure(
            pooled, folder / "learning_ala2_ramachandran.png", "ACE-ALA-NME, held out"
        )
        populations_figure(
            {k: angles[k] for k in ("MD reference", "model", "md_yardstick")},
            dt,
            folder / "learning_ala2_populations.png",
        )

    # Held-out peptides (OOD): forecast from R1 against R1, replica R2.
    for sid in cfg["sample"]["systems"]:
        if sid.startswith(ALA):
            continue
        name = sid.rsplit("_R", 1)[0]
        gen, dt = generated(run_dir / "samples" / sid / "forecast.npz")
        r1, r2 = load(results, table.loc[f"{name}_R1"]), load(results, table.loc[f"{name}_R2"])
        start = r1.coords[0].astype(np.float64)
        n = sum(len(g) for g in gen)
        methods = {
            "model": Ensemble(gen, dt),
            "replica": Ensemble([strided(r2, dt)], dt),
            "static": Ensemble([np.repeat(start[None], n, 0)], dt),
            "noise": Ensemble([noise_baseline(r1.coords, n, rng)], dt),
        }
        t = compare(methods, Ensemble([strided(r1, dt)], dt), r1, start)
        report["tables"][name] = t.to_dict("index")
        report["targets"] += ood_targets(name.split(".")[-1], t)

    # Speed: generated ns per wall second next to OpenMM on alanine dipeptide.
    seconds = sample_seconds(results, f"{ALA}_R5")
    gen, dt = generated(run_dir / "samples" / f"{ALA}_R5" / "forecast.npz")
    gen_span = sum(max(len(g) - 1, 0) for g in gen) * dt
    md = openmm_ns_per_s()
    report["speed"] = {
        "generated_ns": gen_span,
        "sample_job_seconds": seconds,
        "model_ns_per_s": gen_span / seconds,
        "openmm_ns_per_s": md,
        "ratio": gen_span / seconds / md,
    }

    lines = ["# Learning benchmark", ""]
    for name, rows in report["tables"].items():
        lines += [f"## {name}", "", pd.DataFrame(rows).T.to_markdown(floatfmt=".3g"), ""]
    lines += ["## Targets", "", "| target | met | numbers |", "|---|---|---|"]
    lines += [f"| {t} | {'yes' if ok else 'NO'} | {v} |" for t, ok, v in report["targets"]]
    s = report["speed"]
    lines += [
        "",
        f"Speed: {s['model_ns_per_s']:.3g} generated ns/s (sample job, {s['generated_ns']:.1f} ns "
        f"in {s['sample_job_seconds']:.0f} s) vs OpenMM {s['openmm_ns_per_s']:.3g} ns/s on one "
        f"alanine dipeptide: {s['ratio']:.2f}x. Workflow wall time: {wall:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    section = out / "table.html"
    section.write_text(learning_html(report))
    configs = [f"--config={run_dir / f'{stage}_config.json'}" for stage in STAGES]
    subprocess.run(
        [sys.executable, "-m", "boltzkinema", "report", "--eval-dir", str(run_dir / "eval"),
         "--run", cfg["train"]["run"], "--output", str(run_dir / "report.html"),
         "--section", str(section), "--train-log", str(run_dir / "train_log.parquet"),
         "--resolved-checkpoint", str(run_dir / "checkpoint.json"),
         "--manifest", str(results / "manifest.parquet"), *configs],
        check=True,
    )  # fmt: skip
    report["targets"] = [
        {"target": t, "met": bool(ok), "numbers": v} for t, ok, v in report["targets"]
    ]
    (out / "table.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(text)


if __name__ == "__main__":
    main()
