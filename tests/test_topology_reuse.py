"""Per-topology work is done once per shard: replicas reuse it and come out as if alone."""

from __future__ import annotations

from dataclasses import fields

import h5py
import numpy as np
import pytest

from boltzkinema.data.preprocess import load_raw, preprocess_shard
from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.data.store import ShardReader
from boltzkinema.errors import InputError
from boltzkinema.io import mdcath, misato
from boltzkinema.io.topology_cache import TopologyCache, fingerprint
from conftest import EXAMPLE, EXAMPLE_GROUP, EXAMPLE_MISATO

OPTS = ProcessOptions(frame_dt_ns=0.001)
MAX_RES = OPTS.peptide_ligand_max_residues


def _replicas(misato_file, example_coords):
    """Three groups of one topology: the example, its frames reversed, and a jittered copy."""
    rng = np.random.default_rng(0)
    jitter = example_coords + rng.normal(0, 0.02, example_coords.shape).astype(np.float32)
    path = misato_file(
        {
            "A": {},
            "B": {"overrides": {"trajectory_coordinates": example_coords[::-1].copy()}},
            "C": {"overrides": {"trajectory_coordinates": jitter}},
        }
    )
    return [misato.SystemRef(f"t.{k}", "misato", str(path), group=k) for k in "ABC"]


def _same(a, b) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


def test_cache_computes_once_per_key_and_stores_nothing_on_error():
    cache = TopologyCache()
    calls = []
    assert cache.get("k", lambda: calls.append(1) or np.arange(3)).tolist() == [0, 1, 2]
    assert cache.get("k", lambda: calls.append(1) or np.arange(5)).tolist() == [0, 1, 2]
    assert (len(calls), cache.hits, cache.misses) == (1, 1, 1)
    with pytest.raises(ValueError):
        cache.get("bad", lambda: (_ for _ in ()).throw(ValueError("no")))
    assert cache.size == 1


def test_cached_arrays_are_read_only_so_a_replica_cannot_change_them():
    value = TopologyCache().get("k", lambda: (np.zeros(3), {"a": np.ones(2)}))
    with pytest.raises(ValueError):
        value[0][0] = 1.0
    with pytest.raises(ValueError):
        value[1]["a"][0] = 0.0


def test_a_cache_of_zero_entries_reuses_nothing():
    cache = TopologyCache(0)
    cache.get("k", lambda: 1)
    cache.get("k", lambda: 2)
    assert (cache.hits, cache.misses, cache.size) == (0, 2, 0)


def test_fingerprint_tells_content_apart_not_names():
    a = np.array(["CA", "CB"])
    assert fingerprint(a, np.arange(2)) == fingerprint(a.copy(), np.arange(2))
    assert fingerprint(a, np.arange(2)) != fingerprint(a, np.arange(2.0))
    assert fingerprint(a) != fingerprint(np.array(["CA", "CG"]))


def test_replicas_sharing_a_cache_come_out_as_if_each_were_processed_alone(
    misato_file, example_coords
):
    refs = _replicas(misato_file, example_coords)
    cache = TopologyCache()
    for ref in refs:
        shared = process(
            load_raw(ref, None, peptide_ligand_max_residues=MAX_RES, cache=cache), OPTS, cache
        )
        alone = process(load_raw(ref, None, peptide_ligand_max_residues=MAX_RES), OPTS)
        _same(shared[0], alone[0])
        assert shared[1] == alone[1]
    assert cache.hits >= 2 * 5  # the reader's topology, selection, bonds, lengths, ligand, hash


def test_a_replica_whose_geometry_does_not_fit_the_shared_bonds_gets_its_own_checks(
    misato_file, example_coords
):
    """A ligand collapsed onto one point still reaches its own RDKit check after a good replica."""
    with h5py.File(EXAMPLE_MISATO) as f:
        lig = int(f[EXAMPLE_GROUP]["molecules_begin_atom_index"][-1])
    collapsed = example_coords.copy()
    collapsed[:, lig:] = collapsed[:, lig : lig + 1]
    path = misato_file({"A": {}, "B": {"overrides": {"trajectory_coordinates": collapsed}}})
    good, bad = (misato.SystemRef(f"t.{k}", "misato", str(path), group=k) for k in "AB")
    cache = TopologyCache()
    process(load_raw(good, None, peptide_ligand_max_residues=MAX_RES, cache=cache), OPTS, cache)
    raw = load_raw(bad, None, peptide_ligand_max_residues=MAX_RES, cache=cache)
    with pytest.raises(InputError) as err:
        process(raw, OPTS, cache)
    assert err.value.code == "ligand_invalid"
    assert any("perceived for this system alone" in note for note in raw.notes)


def test_a_shard_of_replicas_shares_one_topology_hash(misato_file, example_coords, tmp_path):
    refs = _replicas(misato_file, example_coords)
    report = preprocess_shard(refs, tmp_path / "s.h5", tmp_path / "r.json", OPTS)
    assert report.n_ok == 3
    assert len({e["topology_hash"] for e in report.systems}) == 1
    with ShardReader(tmp_path / "s.h5") as r:
        bonds = [r.load(ref.system_id).bonds for ref in refs]
    assert all(np.array_equal(bonds[0], b) for b in bonds[1:])


def test_mdcath_replicas_read_their_domain_topology_once():
    refs = mdcath.discover("c", [str(EXAMPLE / "mdcath" / "*.h5")])
    cache = TopologyCache()
    raws = [mdcath.load(ref, cache=cache) for ref in refs]
    alone = [mdcath.load(ref) for ref in refs]
    assert len(refs) > 1 and cache.misses == len({(r.path, r.group.split("/")[0]) for r in refs})
    for a, b in zip(raws, alone, strict=True):
        assert np.array_equal(a.atom_names, b.atom_names)
        assert np.array_equal(a.coords, b.coords)
