"""Evaluation: any two trajectories by command line, a run's samples with baselines per split,
and LanceDB rows that survive parallel writers."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boltzkinema.evaluate.ensemble import static_baseline
from boltzkinema.evaluate.job import (
    EvaluateConfig,
    _replica,
    evaluate_samples,
    generated_frames,
    record,
    reference_frames,
    summarise,
    write_tables,
)
from boltzkinema.sample.job import SampleConfig, run_sampling
from boltzkinema.track import log_rows, read_table
from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train.loop import TrainConfig, Trainer
from conftest import EXAMPLE, resolved_record

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
        "pca_w2_ref",
        "pca_w2_joint",
        "rmwd_trans",
        "rmwd_var",
        "tica0_jsd",
        "torsion_decorrelation_ns_ref_censored",
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
    info.write(path)
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
    data = np.load(paths["npz"])
    assert np.allclose(np.diff(data["times_ns"]), 0.004)
    assert data["given"].tolist() == [True, False, False]  # history 1, then 2 generated
    assert int(data["start_frame"]) == 0


def test_run_evaluation_has_baselines_and_per_split_tables(example_results, checkpoint, tmp_path):
    cfg = SampleConfig(n_frames=3, window=3, n_samples=2, sampler={"n_steps": 2})
    files = []
    sids = (
        "mdcath_example.villin_hp35_320K_r0",
        "misato_example.187L",
        "atlas_example.villin_hp35_R1",
    )
    for sid in sids:
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
    # villin's other mdCATH run is at 348 K: not a replica of the 320 K one; ATLAS R2 is.
    assert methods["mdcath_example.villin_hp35_320K_r0"] == {"model", "noise", "static"}
    assert methods["misato_example.187L"] == {"model", "noise", "static"}
    assert methods["atlas_example.villin_hp35_R1"] == {"model", "noise", "static", "replica"}
    rep = table[table["method"] == "replica"].iloc[0]
    assert rep["replica_of"] == "atlas_example.villin_hp35_R2"
    # Only the 3 generated frames of each of 2 samples; the reference over the same 3 frames.
    model = table[table["method"] != "replica"]
    assert (model["n_frames_pred"] == 6).all() and (table["n_frames_ref"] == 3).all()
    assert (table["span_ns_pred"] == table["span_ns_ref"]).all()
    assert np.allclose(table["dt_ns_pred"], table["dt_ns_ref"])
    assert rep["n_frames_pred"] == 3
    assert "ligand_rmsd" in table.columns
    figures = tmp_path / "eval" / "figures"
    for kind in ("ligand", "ramachandran", "rmsf"):
        assert (figures / f"misato_example.187L.forecast.{kind}.png").exists(), kind
    paths = write_tables(table, tmp_path / "eval")
    summary = pd.read_parquet(paths["summary"])
    assert set(summary["system_id"]) == {"median"} and summary["n"].min() >= 1
    assert sorted(p.name for p in (tmp_path / "eval").glob("split_*.parquet"))
    med = summarise(table[table["method"] == "model"])
    assert len(med) == table[table["method"] == "model"].groupby(["split", "ood"]).ngroups


VILLIN = "mdcath_example.villin_hp35_320K_r0"


def _write_npz(path: Path, coords: np.ndarray, times: np.ndarray, **extra: np.ndarray) -> Path:
    np.savez(
        path, coords=coords.astype(np.float32), times_ns=times, system_id=np.array(VILLIN), **extra
    )
    return path


def test_evaluation_never_scores_given_frames(example_results, tmp_path, caplog):
    from boltzkinema.data.store import ShardReader

    table = pd.read_parquet(example_results / "manifest.parquet").set_index("system_id")
    with ShardReader(example_results / table.loc[VILLIN, "shard"]) as reader:
        ref = reader.load(VILLIN).coords.astype(np.float64)
    dt = float(table.loc[VILLIN, "frame_dt_ns"])
    # A "perfect model": two samples copying reference frames 1-6 after one given frame that is
    # wildly wrong (the start structure blown up 50-fold).
    coords = np.stack([ref[:7], ref[:7]])
    coords[:, 0] = ref[0] * 50.0
    times = np.arange(7) * dt
    given = np.arange(7) < 1
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    new = _write_npz(
        tmp_path / "new" / "forecast.npz", coords, times, given=given, start_frame=np.array(0)
    )
    gen = generated_frames(new)
    assert gen.coords.shape[:2] == (2, 6) and gen.n_given == 1
    assert np.allclose(gen.coords, ref[1:7], atol=1e-3)
    cfg = EvaluateConfig()
    rows = evaluate_samples(
        [new], example_results / "manifest.parquet", example_results, cfg, tmp_path / "e"
    )
    rows = rows.set_index("method")
    m = rows.loc["model"]
    assert m["n_frames_pred"] == 12 and m["n_frames_ref"] == 6 and m["n_given"] == 1
    assert m["span_ns_pred"] == pytest.approx(5 * dt) and m["span_ns_ref"] == pytest.approx(5 * dt)
    assert m["rmwd"] == pytest.approx(0.0, abs=1e-2)
    assert m["pca_w2_ref"] == pytest.approx(0.0, abs=1e-2)
    assert m["torsion_jsd"] == pytest.approx(0.0, abs=1e-9)
    assert m["clashes_per_frame"] == 0 and m["rmsf_r_all"] > 0.999
    # The static baseline is the start frame repeated, as many frames as the model's.
    s = rows.loc["static"]
    assert s["n_frames_pred"] == 12 and s["rmsf_pred_mean"] == pytest.approx(0.0, abs=1e-9)
    assert s["rmwd"] > m["rmwd"] + 0.01 and rows.loc["noise"]["rmwd"] > m["rmwd"] + 0.01
    frozen = static_baseline(ref[0], (2, 6))
    assert frozen.shape == (2, 6, *ref.shape[1:]) and (frozen == ref[0]).all()
    assert "replica" not in rows.index  # the 348 K run is no replica of the 320 K one
    # Without the mask (an older file) every frame counts, and the wild frame shows.
    old = _write_npz(tmp_path / "old" / "forecast.npz", coords, times)
    with caplog.at_level("WARNING"):
        rows = evaluate_samples(
            [old], example_results / "manifest.parquet", example_results, cfg, tmp_path / "e2"
        )
    assert "no 'given' frames mask" in caplog.text
    assert rows.set_index("method").loc["model", "rmwd"] > 10.0


def test_reference_is_cut_to_the_generated_span_and_spacing():
    idx, note = reference_frames(np.array([0.003, 0.006, 0.009]), 10, 0.001, 100)
    assert idx.tolist() == [13, 16, 19] and note == ""
    idx, note = reference_frames(np.array([0.003, 0.006, 0.009]), 10, 0.001, 18)
    assert idx.tolist() == [13, 16] and "2 of 3 reference frames" in note
    idx, note = reference_frames(np.array([0.0015, 0.003, 0.0045]), 0, 0.001, 100)
    assert idx.tolist() == [2, 3, 4] and "not a multiple" in note


def test_a_replica_is_the_same_system_under_the_same_conditions():
    table = pd.DataFrame(
        {
            "topology_hash": ["h", "h", "h", "h", "h", "g"],
            "dataset": ["md", "md", "md", "other", "atlas", "md"],
            "temperature_k": pd.array([320.0, 348.0, 320.0, 320.0, None, 320.0], "Float64"),
        },
        index=["a320", "a348", "b320", "c320", "atlas1", "g320"],
    )
    table.loc["atlas2"] = ["h", "atlas", pd.NA]
    assert _replica(table, table.loc["a320"]) == "b320"  # not a348, c320 (dataset), g320
    assert _replica(table, table.loc["a348"]) is None  # refused across temperatures
    assert _replica(table, table.loc["atlas1"]) == "atlas2"  # both temperatures unknown
    assert _replica(table.drop(index="b320"), table.loc["a320"]) is None


def test_summary_medians_of_censored_times_are_not_the_observed_ones():
    rows = pd.DataFrame(
        {
            "split": ["test"] * 3,
            "ood": [False] * 3,
            "mode": ["forecast"] * 3,
            "method": ["model"] * 3,
            "system_id": ["a", "b", "c"],
            "decorrelation_ns_pred": [1.0, np.nan, np.nan],
            "decorrelation_ns_pred_censored": [False, True, True],
            "rmwd": [1.0, 2.0, 6.0],
        }
    )
    med = summarise(rows).iloc[0]
    assert np.isnan(med["decorrelation_ns_pred"]) and bool(med["decorrelation_ns_pred_censored"])
    assert med["rmwd"] == 2.0 and med["n"] == 3
    rows.loc[1, ["decorrelation_ns_pred", "decorrelation_ns_pred_censored"]] = [3.0, False]
    med = summarise(rows).iloc[0]
    assert med["decorrelation_ns_pred"] == 3.0 and not med["decorrelation_ns_pred_censored"]


def _append(args: tuple[str, int]) -> None:
    db, worker = args
    for i in range(10):
        log_rows(db, "eval", [{"worker": worker, "i": i, "value": float(i)}], key=["worker", "i"])


def test_parallel_writers_lose_no_rows(tmp_path):
    """Four processes, as four evaluate jobs are: fresh ones (spawn), since a forked child of a
    process that already used LanceDB inherits its runtime's threads as dead copies and hangs."""
    db = str(tmp_path / "lancedb")
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
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
    ckpt = resolved_record("runs/r/checkpoints/step_4")
    db = tmp_path / "lancedb"
    record(db, "r", ckpt, per_system)  # a job killed after recording
    record(db, "r", ckpt, per_system.assign(rmsf_pearson=[0.6, 0.1, 0.7]))  # and its rerun
    assert len(read_table(db, "runs")) == 1
    assert len(read_table(db, "systems")) == 2
    table = read_table(db, "eval")
    assert len(table) == 3
    assert sorted(table["rmsf_pearson"]) == [0.1, 0.6, 0.7]
    record(db, "r", replace(ckpt, sha256="cd" * 32), per_system)  # a new checkpoint adds rows
    assert len(read_table(db, "eval")) == 6


def test_rows_repeating_a_key_are_refused(tmp_path):
    with pytest.raises(ValueError, match="repeat a key"):
        log_rows(tmp_path / "db", "t", [{"k": 1}, {"k": 1}], key=["k"])
