"""Bad systems are quarantined with a reason and a fix; the rest of the shard is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from boltzkinema.data.preprocess import StrictModeError, preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.store import ShardReader
from boltzkinema.io import atlas, misato

OPTS = ProcessOptions(frame_dt_ns=0.001)


def _refs(path, keys):
    return [misato.SystemRef(f"t.{k}", "misato", str(path), group=k) for k in keys]


@pytest.fixture
def bad_misato(misato_file, example_coords):
    nan = example_coords.copy()
    nan[3, 10] = np.nan
    z = _arrays("atoms_number")
    unknown = z.copy()
    unknown[5] = 0
    lig_first = int(_arrays("molecules_begin_atom_index")[-1])
    mangled = example_coords.copy()
    mangled[:, lig_first:] = mangled[:, lig_first : 1 + lig_first]  # ligand atoms on one point
    return misato_file(
        {
            "GOOD": {},
            "NAN": {"overrides": {"trajectory_coordinates": nan}},
            "EMPTY": {"overrides": {"trajectory_coordinates": example_coords[:0]}},
            "SHORT": {"overrides": {"atoms_residue": _arrays("atoms_residue")[:-5]}},
            "UNKNOWN": {"overrides": {"atoms_number": unknown}},
            "BADLIG": {"overrides": {"trajectory_coordinates": mangled}},
            "NOCOORDS": {"drop": ("trajectory_coordinates",)},
        }
    )


def _arrays(name):
    import h5py

    from conftest import EXAMPLE_GROUP, EXAMPLE_MISATO

    with h5py.File(EXAMPLE_MISATO) as f:
        return f[EXAMPLE_GROUP][name][()]


EXPECTED = {
    "t.NAN": "non_finite",
    "t.EMPTY": "no_frames",
    "t.SHORT": "topology_mismatch",
    "t.UNKNOWN": "unknown_element",
    "t.BADLIG": "ligand_invalid",
    "t.NOCOORDS": "missing_dataset",
}


def test_each_bad_system_is_quarantined_and_the_good_one_written(bad_misato, tmp_path):
    keys = ["GOOD", "NAN", "EMPTY", "SHORT", "UNKNOWN", "BADLIG", "NOCOORDS"]
    report = preprocess_shard(_refs(bad_misato, keys), tmp_path / "s.h5", tmp_path / "r.json", OPTS)
    codes = {e["system_id"]: e.get("code") for e in report["systems"] if e["status"] != "ok"}
    assert codes == EXPECTED
    for e in report["systems"]:
        if e["status"] != "ok":
            assert e["reason"] and e["fix"] and e["file"] == str(bad_misato) and e["group"]
    with ShardReader(tmp_path / "s.h5") as r:
        assert r.system_ids() == ["t.GOOD"]


def test_strict_mode_fails_and_leaves_no_shard(bad_misato, tmp_path):
    with pytest.raises(StrictModeError, match=r"NAN.*NaN/Inf.*Fix:"):
        preprocess_shard(
            _refs(bad_misato, ["GOOD", "NAN"]),
            tmp_path / "s.h5",
            tmp_path / "r.json",
            OPTS,
            strict=True,
        )
    assert not (tmp_path / "s.h5").exists()
    assert not (tmp_path / "s.h5.tmp").exists()
    assert not (tmp_path / "r.json").exists()


def test_truncated_trajectory_loses_only_its_own_system(atlas_copy, tmp_path):
    refs = atlas.discover("a", [str(atlas_copy)])
    assert len(refs) == 2
    victim = refs[1].path
    data = Path(victim).read_bytes()
    Path(victim).write_bytes(data[: len(data) // 3])
    report = preprocess_shard(refs, tmp_path / "s.h5", tmp_path / "r.json", OPTS)
    status = {e["system_id"]: e["status"] for e in report["systems"]}
    assert status[refs[0].system_id] == "ok"
    assert status[refs[1].system_id] == "quarantined"
    bad = next(e for e in report["systems"] if e["status"] != "ok")
    assert bad["code"] in ("unreadable", "topology_mismatch")


def test_topology_and_trajectory_of_different_systems_disagree(tmp_path):
    from conftest import EXAMPLE

    ref = misato.SystemRef(
        "x.mismatch",
        "mdtraj",
        str(EXAMPLE / "mdtraj" / "ala2_tip3p.dcd"),
        topology=str(next((EXAMPLE / "atlas").rglob("*.pdb"))),
    )
    report = preprocess_shard([ref], tmp_path / "s.h5", tmp_path / "r.json", OPTS)
    assert report["systems"][0]["code"] == "topology_mismatch"
