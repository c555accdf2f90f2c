"""Evaluation: any two trajectories by command line, a run's samples with baselines per split,
and LanceDB rows that survive parallel writers."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boltzkinema.evaluate.run import (
    EvaluateConfig,
    evaluate_samples,
    record,
    summarise,
    write_tables,
)
from boltzkinema.sample.run import SampleConfig, run_sampling
from boltzkinema.track import log_rows, read_table
from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train.loop import TrainConfig, Trainer
from conftest import EXAMPLE

ATLAS = EXAMPLE / "atlas" / "villin_hp35"


def _evaluate_cli(pred: Path, ref: Path, top: Path, out: Path) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "boltzkinema",
            "evaluate",
            "--pred",
            str(pred),
            "--ref",
            str(ref),
            "--topology",
            str(top),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_any_two_mdtraj_trajectories_can_be_compared(tmp_path):
    top = ATLAS / "villin_hp35.pdb"
    same = _evaluate_cli(
        ATLAS / "villin_hp35_R1.xtc", ATLAS / "villin_hp35_R1.xtc", top, tmp_path / "same.json"
    )
    other = _evaluate_cli(
        ATLAS / "villin_hp35_R2.xtc", ATLAS / "villin_hp35_R1.xtc", top, tmp_path / "other.json"
    )
    assert same["rmwd"] == pytest.approx(0.0, abs=1e-3) and same["rmsf_r_ca"] > 0.999
    assert same["torsion_jsd"] == pytest.approx(0.0, abs=1e-3)
    assert other["rmwd"] > 0.1 and 0 < other["torsion_jsd"] < 1
    for key in (
        "pairwise_rmsd_pred",
        "pca_w2",
        "weak_contacts_jaccard",
        "bond_violations",
        "clashes_per_frame",
        "decorrelation_ns_ref",
    ):
        assert key in other


@pytest.fixture(scope="module")
def checkpoint(example_results, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig.from_dict(
        {
            "steps": 1,
            "save": "all",
            "val_every": 0,
            "segments": {"n_frames": 2, "max_atoms": 48},
            "model": {
                "c_atom": 16,
                "c_token": 16,
                "atom_heads": 2,
                "token_heads": 2,
                "atom_encoder_blocks": 1,
                "token_blocks": 1,
                "atom_decoder_blocks": 1,
            },
        }
    )
    Trainer(cfg, example_results / "manifest.parquet", example_results, run).run()
    info = ckpt.resolve_checkpoint(run, "latest")
    path = run / "checkpoint.json"
    ckpt.write_resolved(info, path)
    return path


def test_sampling_job_writes_files_at_the_configured_spacing(example_results, checkpoint, tmp_path):
    cfg = SampleConfig(n_frames=2, window=3, n_samples=1, dt_ns=0.004, sampler={"n_steps": 2})
    paths = run_sampling(
        checkpoint,
        example_results / "manifest.parquet",
        example_results,
        "atlas_example.villin_hp35_R1",
        "forecast",
        cfg,
        tmp_path,
    )
    times = np.load(paths["npz"])["times_ns"]
    assert np.allclose(np.diff(times), 0.004)


def test_run_evaluation_has_baselines_and_per_split_tables(example_results, checkpoint, tmp_path):
    cfg = SampleConfig(n_frames=3, window=3, n_samples=2, sampler={"n_steps": 2})
    files = []
    for sid in ("mdcath_example.villin_hp35_320K_r0", "misato_example.187L"):
        files.append(
            run_sampling(
                checkpoint,
                example_results / "manifest.parquet",
                example_results,
                sid,
                "forecast",
                cfg,
                tmp_path / "samples" / sid,
            )["npz"]
        )
    table = evaluate_samples(
        files,
        example_results / "manifest.parquet",
        example_results,
        EvaluateConfig(),
        tmp_path / "eval",
    )
    methods = table.groupby("system_id")["method"].apply(set).to_dict()
    assert methods["mdcath_example.villin_hp35_320K_r0"] == {"model", "noise", "replica"}
    assert methods["misato_example.187L"] == {"model", "noise"}
    assert "ligand_rmsd" in table.columns
    assert any((tmp_path / "eval" / "figures").glob("misato_example.187L.forecast.ligand.png"))
    paths = write_tables(table, tmp_path / "eval")
    summary = pd.read_parquet(paths["summary"])
    assert set(summary["system_id"]) == {"median"} and summary["n"].min() >= 1
    assert sorted(p.name for p in (tmp_path / "eval").glob("split_*.parquet"))
    med = summarise(table[table["method"] == "model"])
    assert len(med) == table[table["method"] == "model"].groupby(["split", "ood"]).ngroups


def _append(args: tuple[str, int]) -> None:
    db, worker = args
    for i in range(10):
        log_rows(db, "eval", [{"worker": worker, "i": i, "value": float(i)}], key=["worker", "i"])


def test_parallel_writers_lose_no_rows(tmp_path):
    db = str(tmp_path / "lancedb")
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_append, [(db, w) for w in range(4)]))
    table = read_table(db, "eval")
    assert len(table) == 40
    assert sorted(table.groupby("worker").size()) == [10, 10, 10, 10]


def test_a_rerun_evaluation_records_each_row_once(tmp_path):
    per_system = pd.DataFrame(
        {
            "system_id": ["a", "a", "b"],
            "mode": ["forecast"] * 3,
            "method": ["model", "noise", "model"],
            "split": ["test"] * 3,
            "ood": [False, False, True],
            "rmsf_pearson": [0.5, 0.1, 0.7],
        }
    )
    ckpt = {"path": "runs/r/checkpoints/step_4", "step": 4, "sha256": "ab" * 32}
    db = tmp_path / "lancedb"
    record(db, "r", ckpt, per_system)  # a job killed after recording
    record(db, "r", ckpt, per_system.assign(rmsf_pearson=[0.6, 0.1, 0.7]))  # and its rerun
    assert len(read_table(db, "runs")) == 1
    assert len(read_table(db, "systems")) == 2
    table = read_table(db, "eval")
    assert len(table) == 3
    assert sorted(table["rmsf_pearson"]) == [0.1, 0.6, 0.7]
    record(db, "r", {**ckpt, "sha256": "cd" * 32}, per_system)  # a new checkpoint adds rows
    assert len(read_table(db, "eval")) == 6


def test_rows_repeating_a_key_are_refused(tmp_path):
    with pytest.raises(ValueError, match="repeat a key"):
        log_rows(tmp_path / "db", "t", [{"k": 1}, {"k": 1}], key=["k"])
