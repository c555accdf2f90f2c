"""``python -m boltzkinema <step>``: thin command lines over the pure functions of each stage.

Every step takes explicit input and output paths, so a rule, a SLURM job and a person at a shell
run exactly the same thing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from boltzkinema.errors import BoltzKinemaError
from boltzkinema.settings import default, read_settings

log = logging.getLogger("boltzkinema")


def _add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="list a dataset's systems and assign them to shards")
    p.add_argument("--dataset", required=True, help="dataset name (prefix of system ids)")
    p.add_argument("--format", required=True, choices=["misato", "mdcath", "atlas", "mdtraj"])
    p.add_argument(
        "--input",
        action="append",
        required=True,
        help="input file, folder (atlas) or glob pattern; repeatable",
    )
    p.add_argument("--topology", help="topology file for format mdtraj")
    p.add_argument("--shard-size", type=int, default=default("preprocess.shard_size"))
    p.add_argument("--output", required=True, help="index JSON to write")


SETTINGS_HELP = (
    "settings JSON (what the workflow writes under results/settings/); a setting it does not "
    "name takes its default from the config schema"
)


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="raw MD -> processed HDF5 shard + JSON report")
    src = p.add_argument_group("systems: either an index shard or raw inputs")
    src.add_argument("--index", help="index JSON written by 'index'")
    src.add_argument("--shard", help="shard name within the index")
    src.add_argument("--format", choices=["misato", "mdcath", "atlas", "mdtraj"])
    src.add_argument("--input", action="append", help="raw input (repeatable), with --format")
    src.add_argument("--topology", help="topology for format mdtraj")
    p.add_argument("--dataset", default="", help="dataset name (default: output folder name)")
    p.add_argument(
        "--settings",
        help=f"{SETTINGS_HELP}: the preprocess section with the dataset's own settings on top "
        '(e.g. {"frame_dt_ns": 0.0005} for a dcd, which holds no times)',
    )
    p.add_argument("--qm", help="MISATO QM HDF5 with ligand bonds and charges")
    p.add_argument("--output", required=True, help="shard HDF5 to write")
    p.add_argument("--report", required=True, help="report JSON to write")


def _add_trunk(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trunk", help="trunk embeddings for every unique topology of a shard")
    p.add_argument("--shard", required=True)
    p.add_argument("--output", required=True, help="shard trunk index JSON")
    p.add_argument("--embeddings", required=True, help="folder of cached embeddings")
    p.add_argument("--results-root", default=default("results"))
    p.add_argument("--settings", help=f"{SETTINGS_HELP}: the trunk section")
    b = p.add_argument_group("backend boltz2")
    b.add_argument("--boltz2-checkpoint", help="Boltz-2 weights (boltz2_conf.ckpt)")
    b.add_argument(
        "--python",
        help="python of the environment with boltz==2.2.1 "
        "(default: $BOLTZ_PYTHON, else .venv-boltz/bin/python)",
    )


def _add_manifest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("manifest", help="shard reports + trunk indices -> manifest.parquet")
    p.add_argument("--reports", nargs="+", required=True)
    p.add_argument("--trunk-indices", nargs="+", required=True)
    p.add_argument("--results-root", default=default("results"))
    p.add_argument("--output", required=True)
    p.add_argument("--settings", help=f"{SETTINGS_HELP}: the splits section")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the diffusion model from the manifest")
    p.add_argument("--manifest", required=True)
    p.add_argument("--results-root", default=default("results"))
    p.add_argument("--config", required=True, help="train settings (JSON, the config's 'train')")
    p.add_argument("--run-dir", required=True, help="results/runs/{run}")
    p.add_argument("--output", help="file to touch when training finished (for the workflow)")
    p.add_argument(
        "--devices",
        type=int,
        help="processes (GPUs) per node, where the scheduler decides it (default: the config's)",
    )


def _add_resolve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resolve-checkpoint", help="pick a checkpoint by policy")
    p.add_argument("--run-dir", required=True)
    p.add_argument(
        "--policy", choices=["latest", "best", "explicit"], default=default("checkpoint.policy")
    )
    p.add_argument("--path", help="checkpoint folder or weights file for policy 'explicit'")
    p.add_argument("--output", required=True, help="checkpoint.json to write")


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate trajectories of one system in one mode")
    p.add_argument(
        "--resolved-checkpoint", required=True, help="checkpoint.json from resolve-checkpoint"
    )
    p.add_argument("--manifest", required=True)
    p.add_argument("--results-root", default=default("results"))
    p.add_argument("--system", required=True)
    p.add_argument(
        "--mode", required=True, choices=["forecast", "interpolate", "hierarchical", "unbinding"]
    )
    p.add_argument("--config", required=True, help="sample settings (JSON, the config's 'sample')")
    p.add_argument("--output-dir", required=True)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics of generated trajectories against reference MD")
    pair = p.add_argument_group("any two trajectories of one system")
    pair.add_argument("--pred", help="generated trajectory (any format mdtraj reads)")
    pair.add_argument("--ref", help="reference trajectory")
    pair.add_argument("--topology", help="topology of both")
    run = p.add_argument_group("a run's samples")
    run.add_argument("--samples", nargs="+", help="{mode}.npz files written by 'sample'")
    run.add_argument("--manifest")
    run.add_argument("--results-root", default="results")
    run.add_argument("--resolved-checkpoint", help="checkpoint.json (recorded with the metrics)")
    run.add_argument("--config", help="evaluate settings (JSON)")
    run.add_argument("--run", default="run")
    run.add_argument("--output-dir", help="tables and figures go here")
    p.add_argument("--output", required=True, help="metrics JSON (pair) or summary.parquet (run)")


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="readable summary of an intermediate file")
    p.add_argument(
        "path",
        nargs="+",
        help="shard .h5, shard report, trunk entry, manifest, checkpoint (folder, state.json "
        "or checkpoint.json), train_log.parquet or a sample set .npz",
    )


def run_inspect(a: argparse.Namespace) -> None:
    from boltzkinema.inspection import describe

    for path in a.path:
        print("\n".join(describe(path)))


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report of an evaluated run")
    p.add_argument("--eval-dir", required=True)
    p.add_argument("--run", default="run")
    p.add_argument("--output", required=True)
    p.add_argument(
        "--section",
        action="append",
        default=[],
        help="an HTML fragment to include after the summary (repeatable), e.g. a benchmark table",
    )
    p.add_argument("--train-log", help="train_log.parquet: the training curves")
    p.add_argument("--resolved-checkpoint", help="the checkpoint.json (provenance)")
    p.add_argument("--manifest", help="manifest.parquet (data hashes)")
    p.add_argument("--config", action="append", default=[], help="a stage config JSON")


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate-example", help="rerun the OpenMM simulations of the example")
    p.add_argument("--inputs", default="resources/example/inputs")
    p.add_argument("--work", required=True, help="folder for the raw simulation output")
    p.add_argument("--output", default="resources/example", help="where the layouts go")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", action="append", help="run only these runs (repeatable)")


def _add_simulate_peptides(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate-peptides", help="run the OpenMM peptide MD of the learning benchmark"
    )
    p.add_argument("--work", required=True, help="folder for the raw simulation output")
    p.add_argument("--output", default="resources/peptides", help="where the ATLAS folders go")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", action="append", help="run only these runs (repeatable)")


def run_index(a: argparse.Namespace) -> None:
    from boltzkinema.data.index import build_index, write_index

    inputs: list = a.input
    if a.format == "mdtraj":
        if not a.topology:
            raise BoltzKinemaError("format mdtraj needs --topology")
        inputs = [{"topology": a.topology, "trajectories": a.input}]
    index = build_index(a.dataset, a.format, inputs, a.shard_size)
    write_index(index, a.output)
    log.info("%s: %d systems in %d shards", a.dataset, index["n_systems"], len(index["shards"]))


def run_preprocess(a: argparse.Namespace) -> None:
    from boltzkinema.data.index import discover, read_shard_refs
    from boltzkinema.data.preprocess import DEFAULT_FRAME_DT_NS, preprocess_shard
    from boltzkinema.data.process import ProcessOptions

    dataset = a.dataset or Path(a.output).parent.name
    if a.index:
        if not a.shard:
            raise BoltzKinemaError("--index needs --shard")
        refs = read_shard_refs(a.index, a.shard)
        fmt = refs[0].format if refs else "mdtraj"
    elif a.format and a.input:
        inputs: list = a.input
        if a.format == "mdtraj":
            inputs = [{"topology": a.topology or a.input[0], "trajectories": a.input}]
        refs = discover(dataset, a.format, inputs)
        fmt = a.format
    else:
        raise BoltzKinemaError("give either --index and --shard, or --format and --input")
    opts = replace(
        read_settings(ProcessOptions, a.settings, "preprocess"),
        default_frame_dt_ns=DEFAULT_FRAME_DT_NS[fmt],
    )
    report = preprocess_shard(
        refs,
        a.output,
        a.report,
        opts,
        dataset=dataset,
        qm_path=a.qm,
    )
    log.info(
        "%s: %d ok, %d quarantined in %.1f s",
        a.output,
        report.n_ok,
        report.n_quarantined,
        report.seconds,
    )


def run_trunk(a: argparse.Namespace) -> None:
    from boltzkinema.trunk.backend import TrunkSettings, get_backend
    from boltzkinema.trunk.cache import build_trunk_cache

    trunk = read_settings(TrunkSettings, a.settings, "trunk")
    params = trunk.backend_params()
    if trunk.backend == "boltz2":
        params |= {"checkpoint": a.boltz2_checkpoint, "python": a.python}
    backend = get_backend(trunk.backend, **params)
    try:
        index = build_trunk_cache(a.shard, a.output, a.embeddings, backend, a.results_root)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    log.info("%s: %d embeddings computed, %d reused", a.shard, index.computed, index.reused)


def run_manifest(a: argparse.Namespace) -> None:
    from boltzkinema.data.manifest import build_manifest, write_manifest
    from boltzkinema.data.splits import SplitConfig

    cfg = read_settings(SplitConfig, a.settings, "splits")
    table = build_manifest(a.reports, a.trunk_indices, a.results_root, cfg)
    write_manifest(table, a.output)
    counts = table.groupby(["split", "ood"]).size().to_dict() if len(table) else {}
    log.info(
        "%s: %d systems; split sizes %s",
        a.output,
        len(table),
        json.dumps({f"{k[0]}{'/ood' if k[1] else ''}": v for k, v in counts.items()}),
    )


def run_train(a: argparse.Namespace) -> None:
    import hashlib
    from dataclasses import replace

    from boltzkinema.train.launch import launch_command
    from boltzkinema.train.loop import TrainConfig, Trainer
    from boltzkinema.util import atomic_write_text, keep_freed_memory

    text = Path(a.config).read_text()
    cfg = TrainConfig.from_dict(json.loads(text))
    if a.devices is not None:
        cfg = replace(cfg, devices=a.devices)
    command = launch_command(sys.argv[1:], cfg.devices, cfg.nodes, cfg.rendezvous_port, os.environ)
    if command is not None:
        log.info("starting the training processes: %s", shlex.join(command))
        os.execvp(command[0], command)
    keep_freed_memory()
    trainer = Trainer(
        cfg,
        a.manifest,
        a.results_root,
        a.run_dir,
        config_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
    result = trainer.run()
    if a.output and trainer.rank == 0:
        atomic_write_text(a.output, json.dumps(result) + "\n")


def run_resolve(a: argparse.Namespace) -> None:
    from boltzkinema.train.checkpoint import resolve_checkpoint

    info = resolve_checkpoint(a.run_dir, a.policy, a.path)
    info.write(a.output)
    log.info("%s: step %s (%s) sha256 %s", a.output, info.step, a.policy, info.sha256[:12])


def run_sample(a: argparse.Namespace) -> None:
    from boltzkinema.sample.job import SampleConfig, run_sampling
    from boltzkinema.util import keep_freed_memory

    keep_freed_memory()
    cfg = SampleConfig.from_dict(json.loads(Path(a.config).read_text()))
    run_sampling(
        a.resolved_checkpoint, a.manifest, a.results_root, a.system, a.mode, cfg, a.output_dir
    )


def run_evaluate(a: argparse.Namespace) -> None:
    from boltzkinema.util import atomic_write_text

    if a.pred and a.ref and a.topology:
        from boltzkinema.evaluate.pair import evaluate_pair

        metrics = evaluate_pair(a.pred, a.ref, a.topology)
        atomic_write_text(a.output, json.dumps(metrics, indent=1) + "\n")
        log.info(
            "%s: %s", a.output, {k: round(v, 3) for k, v in metrics.items() if isinstance(v, float)}
        )
        return
    if not (a.samples and a.manifest and a.output_dir):
        raise BoltzKinemaError(
            "give --pred, --ref and --topology, or --samples, --manifest and --output-dir"
        )
    from boltzkinema.evaluate.job import (
        EvaluateConfig,
        evaluate_samples,
        record,
        write_tables,
    )
    from boltzkinema.train.resolved import ResolvedCheckpoint

    cfg = EvaluateConfig.from_dict(json.loads(Path(a.config).read_text()) if a.config else {})
    per_system = evaluate_samples(a.samples, a.manifest, a.results_root, cfg, a.output_dir)
    paths = write_tables(per_system, Path(a.output_dir))
    if Path(a.output) != paths["summary"]:
        raise BoltzKinemaError(f"--output must be {paths['summary']}")
    if cfg.lancedb and a.resolved_checkpoint:
        checkpoint = ResolvedCheckpoint.read(a.resolved_checkpoint)
        record(Path(a.results_root) / "lancedb", a.run, checkpoint, per_system)


def run_report(a: argparse.Namespace) -> None:
    import pandas as pd

    from boltzkinema.evaluate.report import Provenance, write_report

    eval_dir = Path(a.eval_dir)
    write_report(
        a.run,
        pd.read_parquet(eval_dir / "per_system.parquet"),
        pd.read_parquet(eval_dir / "summary.parquet"),
        sorted((eval_dir / "figures").glob("*.png")),
        a.output,
        [Path(s) for s in a.section],
        Provenance(
            Path(a.resolved_checkpoint) if a.resolved_checkpoint else None,
            tuple(Path(c) for c in a.config),
            Path(a.manifest) if a.manifest else None,
            Path(a.train_log) if a.train_log else None,
        ),
    )


def run_simulate(a: argparse.Namespace) -> None:
    from boltzkinema.example import build_example

    build_example(Path(a.inputs), Path(a.work), Path(a.output), threads=a.threads, only=a.only)


def run_simulate_peptides(a: argparse.Namespace) -> None:
    from boltzkinema.peptides import build_peptides

    build_peptides(Path(a.work), Path(a.output), threads=a.threads, only=a.only)


COMMANDS = {
    "index": run_index,
    "preprocess": run_preprocess,
    "trunk": run_trunk,
    "manifest": run_manifest,
    "train": run_train,
    "resolve-checkpoint": run_resolve,
    "sample": run_sample,
    "evaluate": run_evaluate,
    "report": run_report,
    "inspect": run_inspect,
    "simulate-example": run_simulate,
    "simulate-peptides": run_simulate_peptides,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m boltzkinema", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (
        _add_index,
        _add_preprocess,
        _add_trunk,
        _add_manifest,
        _add_train,
        _add_resolve,
        _add_sample,
        _add_evaluate,
        _add_report,
        _add_inspect,
        _add_simulate,
        _add_simulate_peptides,
    ):
        add(sub)
    return p


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (Snakemake or SLURM stopping a job) unwinds like an error, so that temporary
    files and worker processes are cleaned up on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    from boltzkinema.util import setup_logging

    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        COMMANDS[args.command](args)
    except BoltzKinemaError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
