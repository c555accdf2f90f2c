"""``inspect``: every intermediate artifact gets a readable summary, and anything else a clear
error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_train import trainer

from boltzkinema.cli import main
from boltzkinema.data.shard_report import ShardReport
from boltzkinema.train import checkpoint as ckpt


def inspect(capsys, *paths) -> str:
    assert main(["inspect", *map(str, paths)]) == 0
    return capsys.readouterr().out


def test_a_shard_lists_systems_units_spacing_and_its_quarantine(example_results, capsys):
    shard = sorted((example_results / "processed").rglob("0000.h5"))[0]
    out = inspect(capsys, shard)
    report = json.loads(shard.with_suffix(".report.json").read_text())
    assert f"{report['n_ok']} of {report['n_systems']} systems processed" in out
    first = next(e for e in report["systems"] if e["status"] == "ok")
    assert f"{first['system_id']}: {first['n_frames']} frames x {first['n_atoms']} atoms" in out
    assert "unit nm" in out or "unit angstrom" in out
    assert f"every {first['frame_dt_ns']:g} ns" in out


def test_a_report_names_each_quarantined_system_with_its_fix(tmp_path, capsys):
    report = tmp_path / "0000.report.json"
    bad = {"system_id": "d.x", "status": "quarantined", "file": "x.xtc", "group": "", "code": "c"}
    bad |= {"reason": "truncated", "fix": "re-copy it"}
    ShardReport("d", "0000.h5", 1, 0, 1, 0.1, {}, [bad]).write(report)
    out = inspect(capsys, report)
    assert "QUARANTINED d.x (c): x.xtc: truncated" in out and "fix: re-copy it" in out


def test_trunk_entry_and_manifest(example_results, capsys):
    table = pd.read_parquet(example_results / "manifest.parquet")
    entry = example_results / table["trunk_path"].iloc[0]
    out = inspect(capsys, entry, example_results / "manifest.parquet")
    assert "backend: builtin" in out and "s_trunk: (" in out
    assert f"{len(table)} systems" in out
    n_train = int(((table["split"] == "train") & ~table["ood"]).sum())
    assert f"train in distribution: {n_train}" in out


def test_checkpoint_log_and_samples(example_results, tmp_path, capsys):
    run = tmp_path / "run"
    tr = trainer(example_results, run, steps=2, ema_decay=0.9, val_every=0)
    tr.run()
    ckpt.resolve_checkpoint(run, "latest").write(run / "checkpoint.json")
    npz = tmp_path / "forecast.npz"
    given = np.array([True, False, False])
    np.savez(npz, coords=np.zeros((2, 3, 5, 3)), times_ns=np.array([0, 0.1, 0.2]), given=given)
    out = inspect(capsys, run / "checkpoint.json", run / "train_log.parquet", npz)
    n_params = sum(p.numel() for p in tr.model.parameters())
    assert "policy latest, step 2" in out and f"{n_params:,} in the network" in out
    assert "weight average: yes" in out and "ema.safetensors" in out
    assert "training log" in out and "2 steps (0 skipped)" in out
    assert "2 samples x 3 frames x 5 atoms" in out and "1 given (conditioning) frames, 2" in out
    folder = ckpt.list_checkpoints(run)[-1][1]
    assert "step 2, architecture native" in inspect(capsys, folder)


def test_an_unknown_file_is_a_clear_error(tmp_path, caplog):
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    assert main(["inspect", str(odd)]) == 1
    assert "not an artifact inspect knows" in caplog.text
    assert main(["inspect", str(tmp_path / "missing.h5")]) == 1
    assert "no such file" in caplog.text


@pytest.mark.parametrize("name", ["model.safetensors", "state.json"])
def test_a_file_inside_a_checkpoint_describes_the_checkpoint(
    example_results, tmp_path, capsys, name
):
    run = tmp_path / "run"
    trainer(example_results, run, steps=2, val_every=0).run()
    folder = ckpt.list_checkpoints(run)[-1][1]
    assert "weight average: no" in inspect(capsys, folder / name)
