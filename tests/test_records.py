"""Records between stages: one writer and one reader each, versioned, refusing other layouts."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from boltzkinema.data.shard_report import ShardReport
from boltzkinema.errors import CheckpointError, RecordError
from boltzkinema.train.resolved import VERSION, ResolvedCheckpoint
from boltzkinema.train.state import TrainingState
from boltzkinema.trunk.shard_index import TrunkIndex
from conftest import resolved_record

RECORD = resolved_record("results/runs/r/checkpoints/step_00000004")


def test_a_resolved_checkpoint_reads_back_as_written(tmp_path):
    RECORD.write(tmp_path / "checkpoint.json")
    assert ResolvedCheckpoint.read(tmp_path / "checkpoint.json") == RECORD
    assert json.loads((tmp_path / "checkpoint.json").read_text())["version"] == VERSION


def test_a_checkpoint_json_from_before_versions_is_version_one(tmp_path):
    old = {k: v for k, v in asdict(RECORD).items() if k != "version"}
    (tmp_path / "checkpoint.json").write_text(json.dumps(old))
    assert ResolvedCheckpoint.read(tmp_path / "checkpoint.json") == RECORD


def test_an_unknown_version_is_refused_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(asdict(RECORD) | {"version": 99}))
    with pytest.raises(CheckpointError, match="version 99") as err:
        ResolvedCheckpoint.read(path)
    assert str(path) in str(err.value) and "-R resolve_checkpoint" in str(err.value)


def test_a_record_without_its_weights_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({k: v for k, v in asdict(RECORD).items() if k != "weights"}))
    with pytest.raises(CheckpointError, match=r"lacks \['weights'\]"):
        ResolvedCheckpoint.read(path)


def test_a_record_whose_checkpoint_folder_is_gone_says_so(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\.json does not exist"):
        RECORD.state()


def test_a_state_from_before_versions_reads_with_that_layouts_defaults(tmp_path):
    """Old checkpoints hold no architecture, coverage or version: native, none, version 1."""
    (tmp_path / "state.json").write_text(
        json.dumps({"step": 3, "model_config": {"c_atom": 8}, "optimizer": {}, "rng": {}})
    )
    state = TrainingState.read(tmp_path)
    assert (state.architecture, state.coverage, state.version, state.lora_rank) == (
        "native",
        None,
        1,
        0,
    )


def test_a_state_of_another_version_or_without_its_network_is_refused(tmp_path):
    state = TrainingState(step=1, model_config={}, optimizer={}, rng={})
    state.write(tmp_path)
    assert TrainingState.read(tmp_path) == state
    (tmp_path / "state.json").write_text(json.dumps(asdict(state) | {"version": 7}))
    with pytest.raises(CheckpointError, match="version 7"):
        TrainingState.read(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps({"step": 1}))
    with pytest.raises(CheckpointError, match="lacks"):
        TrainingState.read(tmp_path)


def test_a_shard_report_reads_back_and_sorts_its_systems(tmp_path):
    ok = {"system_id": "d.A", "status": "ok", "n_frames": 3}
    bad = {"system_id": "d.B", "status": "quarantined", "code": "c", "reason": "r", "fix": "f"}
    report = ShardReport("d", "0000.h5", 2, 1, 1, 0.5, {"hydrogens": False}, [ok, bad])
    report.write(tmp_path / "0000.report.json")
    again = ShardReport.read(tmp_path / "0000.report.json")
    assert again == report and again.ok == [ok] and again.quarantined == [bad]


def test_a_trunk_index_of_the_unversioned_layout_is_refused_with_the_fix(tmp_path):
    """That layout kept the backend's version under "version"; it is refused by name."""
    path = tmp_path / "0000.json"
    old = {"backend": "builtin", "version": "builtin-1", "params": {}, "shard": "s.h5"}
    path.write_text(json.dumps(old | {"computed": 0, "reused": 0, "systems": {}}))
    with pytest.raises(RecordError, match="version builtin-1") as err:
        TrunkIndex.read(path)
    assert str(path) in str(err.value) and "-R trunk_cache" in str(err.value)


def test_a_trunk_index_reads_back_as_written(tmp_path):
    entry = {"key": "k", "path": "trunk/e/k.safetensors", "topology_hash": "h", "computed": True}
    index = TrunkIndex("builtin", "1", {"c_s": 8}, "s.h5", 1, 0, {"d.A": entry}, {"d.B": "why"})
    index.write(tmp_path / "0000.json")
    assert TrunkIndex.read(tmp_path / "0000.json") == index
