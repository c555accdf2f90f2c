"""The processed shard: DESIGN §2 layout, random frame access, never half-written."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.store import ShardReader, ShardWriter
from boltzkinema.io import mdcath
from conftest import EXAMPLE


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store")
    refs = mdcath.discover("c", [str(EXAMPLE / "mdcath" / "*.h5")])
    preprocess_shard(refs, tmp / "s.h5", tmp / "r.json", ProcessOptions(frame_dt_ns=0.001))
    return tmp / "s.h5"


def test_layout_matches_the_design_contract(shard):
    with h5py.File(shard) as f:
        g = f["systems"][sorted(f["systems"])[0]]
        f_, m = g["coords"].shape[:2]
        assert g["coords"].dtype == np.float32 and g["coords"].chunks == (1, m, 3)
        for name, shape in {
            "times_ns": (f_,),
            "atom_names": (m,),
            "elements": (m,),
            "residue_names": (m,),
            "residue_index": (m,),
            "chain_index": (m,),
            "mol_type": (m,),
            "token_index": (m,),
            "observed_mask": (m,),
            "bond_lengths": (len(g["bonds"]),),
        }.items():
            assert g[name].shape == shape, name
        assert g["bonds"].dtype == np.int32 and g["token_index"].dtype == np.int32
        for attr in (
            "source",
            "unit_detected",
            "unit_confidence",
            "unit_evidence",
            "frame_dt_ns",
            "topology_hash",
        ):
            assert attr in g.attrs


def test_random_frames_come_back_in_the_order_asked(shard):
    with ShardReader(shard) as r:
        sid = r.system_ids()[0]
        full = r.load(sid)
        idx = [7, 2, 2, 40]
        np.testing.assert_array_equal(r.frames(sid, idx), full.coords[idx])
        part = r.load(sid, frames=idx)
        np.testing.assert_array_equal(part.times_ns, full.times_ns[idx])


def test_replicas_share_a_topology_hash(shard):
    with ShardReader(shard) as r:
        hashes = {r.attrs(s)["topology_hash"] for s in r.system_ids()}
        assert len(r.system_ids()) == 2 and len(hashes) == 1


def test_a_failed_write_leaves_nothing(tmp_path, shard):
    with ShardReader(shard) as r:
        system = r.load(r.system_ids()[0])
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "x.h5") as w:
        w.add(system)
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_frames_are_superposed_on_the_reference_and_centred(shard):
    with ShardReader(shard) as r:
        s = r.load(r.system_ids()[0])
    assert np.allclose(s.coords[0].mean(0), 0.0, atol=1e-3)
    ca = s.atom_names == "CA"
    # Each frame is the best rigid fit: re-fitting it cannot lower the RMSD further.
    from boltzkinema.data.align import superpose

    refit = superpose(s.coords.astype(np.float64), np.ones(s.n_atoms, bool))
    rmsd_stored = np.sqrt(((s.coords[:, ca] - s.coords[0, ca]) ** 2).sum(-1).mean(-1))
    rmsd_refit = np.sqrt(((refit[:, ca] - refit[0, ca]) ** 2).sum(-1).mean(-1))
    assert np.all(rmsd_stored <= rmsd_refit + 0.05)
