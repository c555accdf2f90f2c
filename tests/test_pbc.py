"""Periodic wrapping is undone: molecules whole and continuous, box given or not."""

from __future__ import annotations

import numpy as np

from boltzkinema.data.bonds import perceive_bonds
from boltzkinema.data.pbc import unwrap
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.store import ShardReader
from boltzkinema.io import misato

OPTS = ProcessOptions(frame_dt_ns=0.001)
BOX = np.array([100.0, 100.0, 100.0])


def _drift_and_wrap(coords: np.ndarray) -> np.ndarray:
    """Move the complex 2 Å per frame along x and y and wrap every atom into the box."""
    drift = np.arange(len(coords))[:, None, None] * np.array([2.0, 2.0, 0.0])
    moved = coords - coords[0].mean(0) + BOX / 2 + drift
    return np.mod(moved, BOX)


def _process(path, keys, tmp_path):
    refs = [misato.SystemRef(f"t.{k}", "misato", str(path), group=k) for k in keys]
    report = preprocess_shard(refs, tmp_path / "s.h5", tmp_path / "r.json", OPTS)
    assert report.n_ok == len(keys), report
    return ShardReader(tmp_path / "s.h5"), report


def test_atoms_wrapped_into_an_unknown_box_are_restored(misato_file, example_coords, tmp_path):
    wrapped = _drift_and_wrap(example_coords)
    path = misato_file({"ORIG": {}, "WRAP": {"overrides": {"trajectory_coordinates": wrapped}}})
    reader, report = _process(path, ["ORIG", "WRAP"], tmp_path)
    with reader:
        a, b = reader.load("t.ORIG"), reader.load("t.WRAP")
    # The box is inferred from the wraps (about 0.02 Å off here); with a stored box it is exact.
    np.testing.assert_allclose(a.coords, b.coords, atol=0.05)
    info = next(e for e in report.systems if e["system_id"] == "t.WRAP")
    assert b.attrs["unwrap"]["box"] == "inferred"
    assert np.allclose(b.attrs["unwrap"]["inferred_box_angstrom"][:2], 100.0, atol=0.05)
    assert (
        info["n_bonds"] == next(e for e in report.systems if e["system_id"] == "t.ORIG")["n_bonds"]
    )


def test_ligand_jumping_one_box_length_is_made_continuous(misato_file, example_coords, tmp_path):
    start = int(_ligand_start())
    jumped = example_coords.copy()
    jumped[10:20, start:, 0] += 87.0  # the ligand visits a periodic image for ten frames
    path = misato_file({"ORIG": {}, "JUMP": {"overrides": {"trajectory_coordinates": jumped}}})
    reader, _ = _process(path, ["ORIG", "JUMP"], tmp_path)
    with reader:
        a, b = reader.load("t.ORIG").coords, reader.load("t.JUMP").coords
    # Two centre jumps pin the box length only to within the ligand's motion in one frame.
    assert np.abs(a - b).max() < 0.5
    ligand = slice(-8, None)
    steps = np.linalg.norm(np.diff(b[:, ligand].mean(1), axis=0), axis=-1)
    assert steps.max() < 2.0  # continuous: no 87 Å jumps left
    np.testing.assert_allclose(a[:, :-8], b[:, :-8], atol=2e-3)  # the protein is untouched


def test_known_box_makes_split_molecules_whole():
    rng = np.random.default_rng(0)
    chain = np.cumsum(np.tile([[1.5, 0.0, 0.0]], (12, 1)), axis=0) + rng.normal(0, 0.05, (12, 3))
    elements = np.array(["C"] * 12)
    frames = np.stack([chain + np.array([t * 3.0, 0, 0]) for t in range(5)])
    box = np.tile([20.0, 20.0, 20.0], (5, 1))
    bonds = perceive_bonds(chain, elements)
    out, info = unwrap(np.mod(frames, 20.0), bonds, box)
    steps = np.linalg.norm(np.diff(out, axis=1), axis=-1)
    assert steps.max() < 2.0
    np.testing.assert_allclose(out - out[:, :1], frames - frames[:, :1], atol=1e-9)
    assert info["box"] == "given"


def _ligand_start():
    import h5py

    from conftest import EXAMPLE_GROUP, EXAMPLE_MISATO

    with h5py.File(EXAMPLE_MISATO) as f:
        return f[EXAMPLE_GROUP]["molecules_begin_atom_index"][()][-1]


def test_molecule_centres_agree_between_the_dense_and_the_sparse_product(monkeypatch):
    from boltzkinema.data import pbc

    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(5, 40, 3)) * 10
    labels = np.repeat(np.arange(4), 10)
    dense = pbc._centroids(xyz, labels, 4)
    monkeypatch.setattr(pbc, "DENSE_CENTROIDS", 0)
    sparse = pbc._centroids(xyz, labels, 4)
    np.testing.assert_allclose(dense, sparse, atol=1e-12)
    np.testing.assert_allclose(dense[:, 1], xyz[:, 10:20].mean(1), atol=1e-12)
