"""The manifest: one row per good system, paths inside the results folder, splits attached."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from boltzkinema.data.manifest import COLUMNS, build_manifest, write_manifest
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.splits import SplitConfig
from boltzkinema.io import atlas, mdcath, misato
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.cache import build_trunk_cache
from conftest import EXAMPLE, EXAMPLE_MISATO

OPTS = ProcessOptions(frame_dt_ns=0.001)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    backend = get_backend("builtin", c_s=8, c_z=2)
    datasets = {
        "atlas": atlas.discover("atlas", [str(EXAMPLE / "atlas")]),
        "mdcath": mdcath.discover("mdcath", [str(EXAMPLE / "mdcath" / "*.h5")]),
        "misato": misato.discover("misato", [str(EXAMPLE_MISATO)]),
    }
    for name, refs in datasets.items():
        shard = root / "processed" / name / "0000.h5"
        preprocess_shard(refs, shard, shard.with_suffix(".report.json"), OPTS, dataset=name)
        build_trunk_cache(
            shard, root / "trunk" / name / "0000.json", root / "trunk" / "emb", backend, root
        )
    return root


def _inputs(root):
    reports = sorted(root.glob("processed/*/*.report.json"))
    return reports, sorted(root.glob("trunk/*/*.json"))


def test_manifest_has_one_row_per_system_with_relative_paths(results):
    table = build_manifest(*_inputs(results), results, SplitConfig())
    assert list(table.columns) == COLUMNS
    assert len(table) == 5
    for rel in list(table["shard"]) + list(table["trunk_path"]):
        assert not rel.startswith(("/", "..")) and (results / rel).exists()
    lig = table.set_index("system_id").loc["misato.187L"]
    assert lig["has_ligand"] and lig["family"] == "scaffold:c1ccccc1"
    villin = table[table["dataset"] != "misato"]
    assert villin["family"].nunique() == 1  # ATLAS and mdCATH villin share a sequence cluster
    assert set(table.loc[table["dataset"] == "mdcath", "temperature_k"]) == {320.0, 348.0}


def test_manifest_is_deterministic_and_round_trips_parquet(results, tmp_path):
    a = build_manifest(*_inputs(results), results, SplitConfig(seed=5))
    b = build_manifest(*_inputs(results), results, SplitConfig(seed=5))
    pd.testing.assert_frame_equal(a, b)
    write_manifest(a, tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "m.parquet"), a)


def test_quarantined_systems_are_left_out(results, tmp_path):
    reports, trunks = _inputs(results)
    edited = results / "processed" / "misato" / "edited.report.json"
    data = json.loads(reports[-1].read_text())
    data["systems"][0]["status"] = "quarantined"
    edited.write_text(json.dumps(data))
    try:
        table = build_manifest([*reports[:-1], edited], trunks, results, SplitConfig())
    finally:
        edited.unlink()
    assert "misato.187L" not in set(table["system_id"])
