"""Unit detection: nm vs Å from evidence, recorded, and refused when unsure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.store import ShardReader
from boltzkinema.io import misato
from boltzkinema.io.units import detect_unit
from conftest import MISATO_FIXTURES

OPTS = ProcessOptions(frame_dt_ns=0.001)


def _refs(path, keys):
    return [misato.SystemRef(f"t.{k}", "misato", str(path), group=k) for k in keys]


def test_same_trajectory_in_nm_and_angstrom_comes_out_identical(
    misato_file, example_coords, tmp_path
):
    path = misato_file(
        {
            "ANG": {},
            "NM": {"overrides": {"trajectory_coordinates": example_coords / 10.0}},
        }
    )
    report = preprocess_shard(
        _refs(path, ["ANG", "NM"]), tmp_path / "s.h5", tmp_path / "r.json", OPTS
    )
    assert report.n_ok == 2
    units = {e["system_id"]: e["unit"]["detected"] for e in report.systems}
    assert units == {"t.ANG": "angstrom", "t.NM": "nm"}
    with ShardReader(tmp_path / "s.h5") as r:
        a, b = r.load("t.ANG"), r.load("t.NM")
        assert np.array_equal(a.coords, b.coords)
        assert np.array_equal(a.bond_lengths, b.bond_lengths)
        assert a.attrs["topology_hash"] == b.attrs["topology_hash"]
        assert b.attrs["unit_evidence"]["metadata"]["says"] == "angstrom"


def test_geometry_overrules_a_format_convention():
    """A MISATO file (Å by convention) whose C–C bonds are 0.15 long is read as nm."""
    import h5py

    with h5py.File(MISATO_FIXTURES / "inference_from_pdb.hdf5") as f:
        xyz = f["11gs/atoms_coordinates_ref"][()] / 10.0
        z = f["11gs/atoms_number"][()]
    elements = np.where(z == 6, "C", np.where(z == 7, "N", np.where(z == 8, "O", "S")))
    decision = detect_unit(xyz, elements, hint="angstrom", hint_source="convention")
    assert decision.unit == "nm"
    assert decision.confidence > 0.99
    assert {"metadata", "nearest_neighbours", "extent"} <= set(decision.evidence)


def test_forced_unit_is_used_and_the_measurement_kept(misato_file, example_coords, tmp_path):
    path = misato_file({"NM": {"overrides": {"trajectory_coordinates": example_coords / 10.0}}})
    opts = ProcessOptions(frame_dt_ns=0.001, units="nm")
    report = preprocess_shard(_refs(path, ["NM"]), tmp_path / "s.h5", tmp_path / "r.json", opts)
    entry = report.systems[0]
    assert entry["status"] == "ok"
    assert entry["unit"]["forced"] is True
    assert entry["unit"]["evidence"]["measured"]["unit"] == "nm"
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["systems"][0]["unit"]["detected"] == "nm"


def test_forcing_a_wrong_unit_does_not_bypass_the_chemistry_checks(
    misato_file, example_coords, tmp_path
):
    path = misato_file({"ODD": {"overrides": {"trajectory_coordinates": example_coords / 3.2}}})
    opts = ProcessOptions(frame_dt_ns=0.001, units="angstrom")
    report = preprocess_shard(_refs(path, ["ODD"]), tmp_path / "s.h5", tmp_path / "r.json", opts)
    assert report.systems[0]["code"] == "ligand_invalid"


@pytest.mark.parametrize("scale,unit", [(1.0, "angstrom"), (0.1, "nm")])
def test_bonded_distances_decide_when_bonds_are_known(scale, unit):
    xyz = np.array([[0.0, 0, 0], [1.53, 0, 0], [2.04, 1.44, 0], [3.5, 1.6, 0.3]]) * scale
    elements = np.array(["C", "C", "C", "N"])
    bonds = np.array([[0, 1], [1, 2], [2, 3]])
    decision = detect_unit(xyz, elements, bonds)
    assert decision.unit == unit
    assert "bonded_distances" in decision.evidence
