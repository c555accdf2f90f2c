"""Trainer: parameter selection, NaN guard, exact resume, checkpoints that can be trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from boltzkinema.data.dataset import SegmentConfig, TrajectoryDataset
from boltzkinema.data.store import ShardReader
from boltzkinema.model.layers.frames import is_added_parameter
from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train import loop
from boltzkinema.train.loop import TrainConfig, Trainer
from conftest import TINY_MODEL

MODEL = TINY_MODEL


def config(**kw) -> TrainConfig:
    base = {
        "run": "t",
        "steps": 4,
        "batch_size": 2,
        "checkpoint_every": 2,
        "val_every": 2,
        "val_batches": 1,
        "segments": {"n_frames": 3, "max_atoms": 96, "max_tokens": 24},
        "model": MODEL,
    }
    return TrainConfig.from_dict({**base, **kw})


def trainer(results: Path, run_dir: Path, **kw) -> Trainer:
    return Trainer(config(**kw), results / "manifest.parquet", results, run_dir)


def test_segments_are_a_function_of_seed_epoch_and_index(example_results):
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    cfg = SegmentConfig(n_frames=3, max_atoms=64, max_tokens=16)
    a = TrajectoryDataset(manifest, example_results, cfg).item(1, 7)
    b = TrajectoryDataset(manifest, example_results, cfg).item(1, 7)
    c = TrajectoryDataset(manifest, example_results, cfg).item(1, 8)
    assert a["system_id"] == b["system_id"] and np.array_equal(a["coords"], b["coords"])
    assert np.array_equal(a["sigma_rel"], b["sigma_rel"])
    assert not (a["system_id"] == c["system_id"] and np.array_equal(a["coords"], c["coords"]))
    assert len(a["atom_to_token"]) <= 64 and len(a["s_trunk"]) <= 16
    assert abs(a["coords"][0].mean(0)).max() < 1e-3  # centred on the first frame


def _kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    from boltzkinema.data.dataset import rmsd_after_superposition

    return rmsd_after_superposition(a.astype(np.float64), b.astype(np.float64))


def test_reference_feature_is_the_systems_reference_whatever_the_window(example_results):
    """The reference-position feature carries no target: two windows of one system taken at
    different times get the same structure (up to its own rotation), which is the stored
    reference, never a frame of the window, and it is not turned like the targets."""
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    cfg = SegmentConfig(n_frames=4, max_atoms=4096, max_tokens=4096)
    ds = TrajectoryDataset(manifest, example_results, cfg, split=None)
    items = [ds.item(0, i) for i in range(40)]
    by_system: dict[str, list[dict]] = {}
    for it in items:
        by_system.setdefault(it["system_id"], []).append(it)
    checked = 0
    for sid, group in by_system.items():
        starts = {int(it["frames"][0]) for it in group}
        if len(starts) < 2:
            continue
        a, b = group[0], next(it for it in group if it["frames"][0] != group[0]["frames"][0])
        ref_a, ref_b = a["atom_features"][:, -3:] * 10, b["atom_features"][:, -3:] * 10
        assert _kabsch_rmsd(ref_a, ref_b) < 1e-3, sid
        assert not np.allclose(ref_a, ref_b, atol=0.1)  # each window its own rotation
        row = manifest.set_index("system_id").loc[sid]
        with ShardReader(example_results / row["shard"]) as reader:
            stored = reader.load(sid, frames=[0]).reference_coords
        assert _kabsch_rmsd(ref_a, stored) < 1e-3, sid
        centred = a["coords"][0] - a["coords"][0].mean(0)
        assert np.abs(ref_a - centred).max() > 1.0  # not in the targets' frame
        checked += 1
    assert checked >= 3


def test_reference_pose_lays_each_windows_first_frame_on_the_reference(example_results):
    """With ``pose: reference`` a window is turned so that its first frame is superposed on the
    system's reference structure: the same conformation always comes in the same pose."""
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    cfg = SegmentConfig(n_frames=4, max_atoms=4096, max_tokens=4096, pose="reference")
    ds = TrajectoryDataset(manifest, example_results, cfg, split=None)
    table = manifest.set_index("system_id")
    for i in range(12):
        it = ds.item(0, i)
        with ShardReader(example_results / table.loc[it["system_id"]]["shard"]) as reader:
            stored = reader.load(it["system_id"], frames=[0]).reference_coords.astype(np.float64)
        first = it["coords"][0].astype(np.float64)
        kabsch = _kabsch_rmsd(first, stored)
        direct = np.sqrt(((first - (stored - stored.mean(0))) ** 2).sum(1).mean())
        assert abs(direct - kabsch) < 1e-3, it["system_id"]
    randomly = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=4), split=None)
    it = randomly.item(0, 0)
    first = it["coords"][0].astype(np.float64)
    with ShardReader(example_results / table.loc[it["system_id"]]["shard"]) as reader:
        stored = reader.load(it["system_id"], frames=[0]).reference_coords.astype(np.float64)
    direct = np.sqrt(((first - (stored - stored.mean(0))) ** 2).sum(1).mean())
    assert direct > _kabsch_rmsd(first, stored) + 1.0  # a random pose is not the reference's


def test_backbone_pose_of_a_crop_uses_the_whole_systems_central_residue(example_results):
    """Training windows are posed on the residue sampling poses on (the whole system's central
    one) whenever the crop keeps it: its CA at the origin, its C on +x, its N in the xy plane."""
    from boltzkinema.data.pose import Pose

    manifest = pd.read_parquet(example_results / "manifest.parquet")
    cfg = SegmentConfig(n_frames=2, max_atoms=4096, max_tokens=4096, pose="backbone")
    ds = TrajectoryDataset(manifest, example_results, cfg, split=None)
    table = manifest.set_index("system_id")
    for i in range(6):
        it = ds.item(0, i)
        with ShardReader(example_results / table.loc[it["system_id"]]["shard"]) as reader:
            system = reader.load(it["system_id"], frames=[0])
        ref = system.reference_coords.astype(np.float64)
        n, ca, c = Pose.of("backbone", system.atom_names, system.token_index, ref).frame
        first = it["coords"][0]
        assert np.abs(first[ca]).max() < 1e-4, it["system_id"]
        assert np.abs(first[c, 1:]).max() < 1e-4 and first[c, 0] > 1.0
        assert abs(first[n, 2]) < 1e-4 and first[n, 1] > 0  # N in the xy plane


def test_an_unknown_pose_is_refused():
    with pytest.raises(ValueError, match="random"):
        SegmentConfig(pose="aligned")


def test_windows_never_hold_a_frame_equal_to_the_reference(example_results):
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=8), split=None)
    items = [ds.item(0, i) for i in range(60)]
    same = {sid for sid, is_first in ds._reference_is_frame0.items() if is_first}
    assert same  # the example has systems whose reference is their first frame
    assert all(0 not in it["frames"] for it in items if it["system_id"] in same)


def test_noised_frames_of_a_window_share_one_sigma(example_results):
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=6), split=None)
    for i in range(20):
        sigma = ds.item(0, i)["sigma_rel"]
        assert (sigma > 0).any() and len(set(sigma[sigma > 0].tolist())) == 1


def test_tasks_cover_every_history_length_and_interpolation_span():
    from boltzkinema.data.masking import TaskConfig, sample_relative_sigmas, window_length

    rng = np.random.default_rng(0)
    cfg = TaskConfig(max_history=3)
    histories, spans = set(), set()
    for _ in range(400):
        sigma, task = sample_relative_sigmas(8, cfg, rng, "forecast")
        histories.add(int((sigma == 0).sum()))
        n = window_length("interpolate", 8, rng)
        sigma, task = sample_relative_sigmas(n, cfg, rng, "interpolate")
        assert task == "interpolate" and sigma[0] == sigma[-1] == 0 and (sigma[1:-1] > 0).all()
        spans.add(n)
    assert histories == {1, 2, 3} and spans == set(range(3, 9))
    assert window_length("forecast", 8, rng) == 8
    per_frame = sample_relative_sigmas(8, TaskConfig(shared_sigma=False), rng, "equilibrium")[0]
    assert len(set(per_frame.tolist())) == 8


def test_only_listed_datasets_are_drawn(example_results):
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    cfg = SegmentConfig(n_frames=2, dataset_weights={"atlas_example": 1.0})
    ds = TrajectoryDataset(manifest, example_results, cfg, split=None)
    assert {ds.item(0, i)["system_id"].split(".")[0] for i in range(20)} == {"atlas_example"}


def test_frozen_parameters_stay_and_trainable_ones_move(example_results, tmp_path, caplog):
    caplog.set_level("INFO")
    tr = trainer(example_results, tmp_path / "run", freeze=["tokens.*"], steps=1)
    assert any("Frozen:" in r.message and "Trainable:" in r.message for r in caplog.records)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.run()
    for name, p in tr.model.named_parameters():
        if name.startswith("tokens."):
            assert torch.equal(p, before[name]) and p.grad is None, name
    moved = [
        n
        for n, p in tr.model.named_parameters()
        if not n.startswith("tokens.") and not torch.equal(p, before[n])
    ]
    assert moved
    optimised = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    assert all(
        id(p) not in optimised for n, p in tr.model.named_parameters() if n.startswith("tokens.")
    )


def test_lora_trains_adapters_and_temporal_blocks_only(example_results, tmp_path):
    tr = trainer(example_results, tmp_path / "run", lora_rank=2, steps=1)
    trainable = {n for n, p in tr.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or is_added_parameter(n) for n in trainable)
    assert any(n.startswith("frame_conditioning.") for n in trainable)
    base = {n: p.detach().clone() for n, p in tr.model.named_parameters() if ".base." in n}
    tr.run()
    assert all(torch.equal(p, base[n]) for n, p in tr.model.named_parameters() if n in base)


def test_resumed_run_ends_with_the_same_weights(example_results, tmp_path):
    straight = trainer(example_results, tmp_path / "a")
    straight.run()
    first = trainer(example_results, tmp_path / "b")
    first.run(stop_at=2)
    del first
    resumed = trainer(example_results, tmp_path / "b")
    assert resumed.step == 2
    resumed.run()
    for (n, p), (_, q) in zip(
        straight.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.equal(p, q), n
    log = pd.read_parquet(tmp_path / "b" / "train_log.parquet")
    assert list(log["step"]) == [0, 1, 2, 3]
    pd.testing.assert_series_equal(
        log["loss"], pd.read_parquet(tmp_path / "a" / "train_log.parquet")["loss"]
    )


def test_a_run_whose_start_changed_sets_its_checkpoints_aside_and_trains_again(
    example_results, tmp_path
):
    """A later phase whose earlier phase was retrained must not continue from weights that
    started elsewhere: its old checkpoints and log move to superseded/01 and it trains anew."""
    trainer(example_results, tmp_path / "p1", steps=2).run()
    start = str(tmp_path / "p1" / "checkpoints" / "step_00000002" / "model.safetensors")
    trainer(example_results, tmp_path / "p2", steps=2, init_from=start).run()
    assert trainer(example_results, tmp_path / "p2", steps=2, init_from=start).step == 2
    trainer(example_results, tmp_path / "p1", steps=4).run()
    newer = start.replace("00000002", "00000004")
    again = trainer(example_results, tmp_path / "p2", steps=2, init_from=newer)
    assert again.step == 0
    aside = tmp_path / "p2" / "superseded" / "01"
    assert (aside / "checkpoints" / "step_00000002" / "model.safetensors").exists()
    assert (aside / "train_log.parquet").exists()
    again.run()
    state = json.loads(
        (tmp_path / "p2" / "checkpoints" / "step_00000002" / "state.json").read_text()
    )
    assert state["base"]["path"] == str(Path(newer).resolve())


def test_worker_processes_give_the_same_run(example_results, tmp_path):
    """Batches are keyed by step: made by two DataLoader workers they are the same batches."""
    inline = trainer(example_results, tmp_path / "a", steps=3, val_every=0)
    inline.run()
    workers = trainer(example_results, tmp_path / "b", steps=3, val_every=0, workers=2)
    workers.run()
    for (n, p), (_, q) in zip(
        inline.model.named_parameters(), workers.model.named_parameters(), strict=True
    ):
        assert torch.equal(p, q), n


def test_non_finite_steps_are_skipped_then_stop(example_results, tmp_path, monkeypatch):
    tr = trainer(example_results, tmp_path / "run", max_bad_steps=2, steps=5)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    real = loop.total_loss
    monkeypatch.setattr(loop, "total_loss", lambda *a: (real(*a)[0] * float("nan"), real(*a)[1]))
    row = tr.train_step(0)
    assert row["skipped"] and all(torch.equal(p, before[n]) for n, p in tr.model.named_parameters())
    with pytest.raises(loop.BoltzKinemaError, match="non-finite steps in a row"):
        tr.train_step(1)


def test_cuda_out_of_memory_retries_with_a_smaller_crop(
    example_results, tmp_path, monkeypatch, caplog
):
    """CUDA cannot run here: the error is raised at the model boundary to test the handler."""
    tr = trainer(example_results, tmp_path / "run", steps=1)
    real = tr.train_step
    calls = []

    def once(step, batch=None):
        calls.append(step)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(step, batch)

    monkeypatch.setattr(tr, "train_step", once)
    tr.run()
    assert calls == [0, 0] and tr.train_ds.cfg.max_atoms == 48
    assert any("smaller crop" in r.message for r in caplog.records)


def test_checkpoint_holds_safetensors_and_state(example_results, tmp_path):
    tr = trainer(example_results, tmp_path / "run", steps=2)
    tr.run()
    folder = ckpt.list_checkpoints(tmp_path / "run")[-1][1]
    assert folder.name == "step_00000002"
    weights = load_file(str(folder / "model.safetensors"))
    assert set(weights) == {n for n, p in tr.model.named_parameters() if p.requires_grad}
    load_file(str(folder / "optimizer.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    assert {"step", "rng", "data_position", "config_hash", "optimizer"} <= set(state)
    assert np.isfinite(state["val_loss"])


def test_loading_reports_keys_strips_prefixes_and_refuses_bad_shapes(
    example_results, tmp_path, caplog
):
    caplog.set_level("INFO")
    tr = trainer(example_results, tmp_path / "run", steps=1)
    sd = {
        f"_orig_mod.module.{k}": v
        for k, v in tr.model.state_dict().items()
        if not k.startswith("decoder.")
    }
    sd["extra.weight"] = torch.zeros(2)
    save_file(sd, str(tmp_path / "w.safetensors"))
    report = ckpt.load_weights(tr.model, tmp_path / "w.safetensors")
    assert report["unexpected"] == ["extra.weight"]
    assert report["missing"] and all(k.startswith("decoder.") for k in report["missing"])
    assert any(
        f"Loaded {report['loaded']}/{report['total']} keys" in r.message for r in caplog.records
    )
    bad = {k: v for k, v in tr.model.state_dict().items()}
    bad["out.weight"] = torch.zeros(5, 5)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match=r"shape mismatch.*out\.weight"):
        ckpt.load_weights(tr.model, tmp_path / "bad.safetensors")


def test_checkpoints_record_coverage_and_the_old_layout_is_named(example_results, tmp_path):
    """state.json says what training drew (sampling checks it); a checkpoint without the frame
    conditioning (trained before it existed) is refused by name when sampling loads it."""
    from boltzkinema.sample.job import load_model

    run = tmp_path / "run"
    trainer(example_results, run, steps=2, save="all").run()
    info = ckpt.resolve_checkpoint(run, "latest")
    state = json.loads((Path(info.path) / "state.json").read_text())
    assert state["coverage"]["n_frames"] == 3 and state["coverage"]["max_history"] == 2
    assert state["coverage"]["dt_ns"] == [0.001, 0.001]  # the training systems' own spacing
    assert state["coverage"]["pose"] == "random"
    info.write(run / "checkpoint.json")
    load_model(run / "checkpoint.json")
    weights = load_file(info.weights)
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("frame_conditioning.")},
        info.weights,
    )
    with pytest.raises(loop.BoltzKinemaError, match="older layout"):
        load_model(run / "checkpoint.json")


def test_resolve_by_policy_and_refuse_placeholders(example_results, tmp_path):
    run = tmp_path / "run"
    trainer(example_results, run, steps=4).run()
    latest = ckpt.resolve_checkpoint(run, "latest")
    assert latest.step == 4 and len(latest.sha256) == 64
    best = ckpt.resolve_checkpoint(run, "best")
    vals = {
        s: json.loads((p / "state.json").read_text())["val_loss"]
        for s, p in ckpt.list_checkpoints(run)
    }
    assert best.step == min(vals, key=vals.get)
    with pytest.raises(ckpt.CheckpointError, match="step_00000002"):
        ckpt.resolve_checkpoint(run, "explicit", str(run / "checkpoints" / "step_XXXXX"))
    with pytest.raises(ckpt.CheckpointError, match="no complete checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "empty", "latest")


def test_two_cpu_processes_train_with_ddp(example_results, tmp_path):
    cfg = tmp_path / "train.json"
    cfg.write_text(
        json.dumps(
            {
                "run": "ddp",
                "steps": 2,
                "batch_size": 1,
                "checkpoint_every": 2,
                "val_every": 0,
                "segments": {"n_frames": 2, "max_atoms": 48, "max_tokens": 12},
                "model": MODEL,
            }
        )
    )
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "boltzkinema",
            "train",
            "--manifest",
            str(example_results / "manifest.parquet"),
            "--results-root",
            str(example_results),
            "--config",
            str(cfg),
            "--run-dir",
            str(tmp_path / "run"),
            "--output",
            str(tmp_path / "done.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "done.json").read_text())["step"] == 2
    assert ckpt.list_checkpoints(tmp_path / "run")[-1][0] == 2


def test_metrics_go_to_parquet_and_lancedb_when_enabled(example_results, tmp_path):
    from boltzkinema.track import read_table

    root = tmp_path / "results"
    root.mkdir()
    for name in ("manifest.parquet", "processed", "trunk"):
        (root / name).symlink_to(example_results / name)
    tr = Trainer(
        config(lancedb=True, steps=4), root / "manifest.parquet", root, root / "runs" / "t"
    )
    tr.run()
    table = read_table(root / "lancedb", "train_metrics")
    assert sorted(table["step"]) == [0, 1, 2, 3]
    assert set(table["run"]) == {"t"}
    log = pd.read_parquet(root / "runs" / "t" / "train_log.parquet")
    assert {
        "loss",
        "structure",
        "bond",
        "lddt",
        "flexibility",
        "lr",
        "grad_norm",
        "val_loss",
    } <= set(log.columns)


def test_activation_checkpointing_gives_the_same_loss_and_gradients(example_results):
    from boltzkinema.data.collate import collate
    from boltzkinema.model.network import DiffusionNetwork, ModelConfig
    from boltzkinema.train.losses import LossWeights

    manifest = pd.read_parquet(example_results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=3, max_atoms=64))
    batch = collate([ds.item(0, 0), ds.item(0, 1)])
    c_s, c_z = batch["s_trunk"].shape[-1], batch["z_trunk"].shape[-1]
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        net = DiffusionNetwork(
            ModelConfig(c_s=c_s, c_z=c_z, activation_checkpointing=flag, **MODEL)
        )
        net.train()
        loss, _ = loop.denoise_loss(
            net, batch, LossWeights(), 16.0, torch.Generator().manual_seed(1)
        )
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads, strict=True))


def test_trunk_rows_and_columns_of_scattered_tokens_come_as_cached(example_results):
    from safetensors.numpy import load_file as load_arrays

    manifest = pd.read_parquet(example_results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=3, max_atoms=64))
    rel = ds.rows["trunk_path"].iloc[0]
    cached = load_arrays(str(example_results / rel))
    tokens = np.array([1, 4, 5, 9])
    s_in, s_tr, z = ds._trunk(rel, tokens)
    assert z.dtype == np.float16  # as stored; denoise_loss widens it on the device
    assert np.array_equal(s_in, cached["s_inputs"][tokens])
    assert np.array_equal(s_tr, cached["s_trunk"][tokens])
    assert np.array_equal(z, cached["z_trunk"][np.ix_(tokens, tokens)])


def test_segments_do_not_depend_on_which_process_makes_them(example_results):
    from concurrent.futures import ProcessPoolExecutor

    manifest = pd.read_parquet(example_results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=3, max_atoms=64))
    here = [ds.item(2, i)["coords"] for i in range(4)]
    with ProcessPoolExecutor(2) as pool:
        there = list(pool.map(_item_coords, [example_results] * 4, range(4)))
    assert all(np.array_equal(a, b) for a, b in zip(here, there, strict=True))


def _item_coords(results: Path, index: int) -> np.ndarray:
    manifest = pd.read_parquet(results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, results, SegmentConfig(n_frames=3, max_atoms=64))
    return ds.item(2, index)["coords"]


def test_given_frame_noise_touches_only_the_given_frames(example_results):
    manifest = pd.read_parquet(example_results / "manifest.parquet")
    tasks = {"probabilities": {"forecast": 1.0}, "max_history": 2}
    plain = TrainConfig.from_dict({"segments": {"n_frames": 4}, "tasks": tasks})
    noisy = TrainConfig.from_dict(
        {"segments": {"n_frames": 4}, "tasks": {**tasks, "given_noise": 0.1}}
    )
    a = TrajectoryDataset(manifest, example_results, plain.segment_config()).item(0, 3)
    b = TrajectoryDataset(manifest, example_results, noisy.segment_config()).item(0, 3)
    given = a["sigma_rel"] == 0
    assert given.any() and (~given).any()
    assert np.array_equal(a["coords"][~given], b["coords"][~given])
    assert 0.05 < np.abs(a["coords"][given] - b["coords"][given]).mean() < 0.15


def test_the_networks_sigma_data_scales_the_training_noise(example_results):
    """One data scale: windows carry σ / σ_data, the trainer noises with the network's σ_data."""
    from boltzkinema.data.collate import collate
    from boltzkinema.train.losses import LossWeights

    manifest = pd.read_parquet(example_results / "manifest.parquet")
    ds = TrajectoryDataset(manifest, example_results, SegmentConfig(n_frames=3, max_atoms=64))
    batch = collate([ds.item(0, k) for k in range(8)])
    seen = {}

    class Echo(torch.nn.Module):
        def forward(self, batch, x_noisy, sigma):
            seen[len(seen)] = (x_noisy - batch["coords"], sigma)
            return x_noisy

    for sigma_data in (1.0, 4.0):
        loop.denoise_loss(
            Echo(), batch, LossWeights(), sigma_data, torch.Generator().manual_seed(1)
        )
    (noise_1, sigma_1), (noise_4, sigma_4) = seen[0], seen[1]
    assert torch.allclose(sigma_4, 4 * sigma_1) and torch.equal(sigma_1, batch["sigma_rel"])
    assert torch.allclose(noise_4, 4 * noise_1, atol=1e-4)
