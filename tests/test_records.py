"""Records between stages: one writer and one reader each, versioned, refusing other layouts."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from boltzkinema.errors import CheckpointError
from boltzkinema.train.resolved import VERSION, ResolvedCheckpoint

RECORD = ResolvedCheckpoint(
    path="results/runs/r/checkpoints/step_00000004",
    weights="results/runs/r/checkpoints/step_00000004/model.safetensors",
    averaged=False,
    step=4,
    policy="latest",
    sha256="ab" * 32,
)


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
