"""Built-in trunk: deterministic, right shapes, cached once per topology in float16."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.store import ShardReader
from boltzkinema.errors import ConfigError
from boltzkinema.io import mdcath
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.cache import build_trunk_cache, load_embedding
from conftest import EXAMPLE


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trunk")
    refs = mdcath.discover("c", [str(EXAMPLE / "mdcath" / "*.h5")])
    preprocess_shard(
        refs, tmp / "processed" / "s.h5", tmp / "r.json", ProcessOptions(frame_dt_ns=0.001)
    )
    return tmp / "processed" / "s.h5"


def test_builtin_embeddings_have_the_contract_shapes_and_repeat_exactly(shard):
    backend = get_backend("builtin", c_s=24, c_z=8)
    with ShardReader(shard) as r:
        system = r.load(r.system_ids()[0], frames=[0])
    a, b = backend.embed(system), get_backend("builtin", c_s=24, c_z=8).embed(system)
    a.validate(system.n_tokens, 24, 8)
    for name in ("s_inputs", "s_trunk", "z_trunk"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert np.isfinite(a.z_trunk).all()
    # Pair features are not trivial: neighbours and distant tokens differ.
    assert np.abs(a.z_trunk[0, 1] - a.z_trunk[0, -1]).max() > 0.1


def test_replicas_share_one_cache_entry_and_reruns_reuse_it(shard, tmp_path):
    backend = get_backend("builtin", c_s=16, c_z=4)
    root = shard.parent.parent
    idx = build_trunk_cache(shard, tmp_path / "i.json", root / "emb", backend, root)
    assert idx.computed == 1 and idx.reused == 1
    keys = {v["key"] for v in idx.systems.values()}
    assert len(keys) == 1
    again = build_trunk_cache(shard, tmp_path / "j.json", root / "emb", backend, root)
    assert again.computed == 0 and again.reused == 2
    entry = next(iter(idx.systems.values()))
    path = root / entry["path"]
    with safe_open(str(path), framework="numpy") as f:
        assert f.get_tensor("z_trunk").dtype == np.float16
        assert json.loads(f.metadata()["boltzkinema"])["backend"] == "builtin"
    assert load_embedding(path)[1]["topology_hash"] == entry["topology_hash"]
    saved = json.loads((tmp_path / "i.json").read_text())
    assert saved["systems"] == idx.systems


def test_changed_backend_parameters_give_a_new_entry(shard, tmp_path):
    root = shard.parent.parent
    a = build_trunk_cache(
        shard, tmp_path / "a.json", root / "emb2", get_backend("builtin", c_s=16, c_z=4), root
    )
    b = build_trunk_cache(
        shard,
        tmp_path / "b.json",
        root / "emb2",
        get_backend("builtin", c_s=16, c_z=4, seed=1),
        root,
    )
    assert {v["key"] for v in a.systems.values()}.isdisjoint({v["key"] for v in b.systems.values()})


def test_corrupt_entry_is_recomputed_not_trusted(shard, tmp_path):
    root = shard.parent.parent
    backend = get_backend("builtin", c_s=8, c_z=2)
    idx = build_trunk_cache(shard, tmp_path / "a.json", root / "emb3", backend, root)
    path = root / next(iter(idx.systems.values()))["path"]
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="rerun"):
        load_embedding(path)
    again = build_trunk_cache(shard, tmp_path / "b.json", root / "emb3", backend, root)
    assert again.computed == 1
    load_embedding(path)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="builtin"):
        get_backend("boltz3")


def test_entries_are_keyed_by_topology_and_the_shipped_reference_structure(tmp_path):
    from boltzkinema.io import atlas

    refs = atlas.discover("a", [str(EXAMPLE / "atlas")]) + mdcath.discover(
        "c", [str(EXAMPLE / "mdcath" / "*.h5")]
    )
    shard = tmp_path / "processed" / "s.h5"
    report = preprocess_shard(refs, shard, tmp_path / "r.json", ProcessOptions(frame_dt_ns=0.001))
    assert {e["topology_hash"] for e in report.systems} == {report.systems[0]["topology_hash"]}
    idx = build_trunk_cache(
        shard, tmp_path / "i.json", tmp_path / "emb", get_backend("builtin", c_s=8, c_z=2), tmp_path
    )
    keys = {sid: v["key"] for sid, v in idx.systems.items()}
    assert keys["a.villin_hp35_R1"] == keys["a.villin_hp35_R2"]
    assert keys["c.villin_hp35_320K_r0"] == keys["c.villin_hp35_348K_r0"]
    assert keys["a.villin_hp35_R1"] != keys["c.villin_hp35_320K_r0"]
    assert idx.computed == 2
    with ShardReader(shard) as r:
        assert r.attrs("a.villin_hp35_R1")["reference_source"] == "topology"


def test_a_system_the_backend_refuses_is_left_out_and_the_others_go_on(example_results, tmp_path):
    import shutil

    from boltzkinema.data.manifest import build_manifest
    from boltzkinema.data.splits import SplitConfig
    from boltzkinema.errors import SystemRefused
    from boltzkinema.trunk.builtin import BuiltinTrunk

    class RefusesLigands(BuiltinTrunk):
        """The built-in featurizer, refusing complexes the way the Boltz-2 featurizer may."""

        def embed(self, system):
            if (system.mol_type == 3).any():
                raise SystemRefused(f"{system.system_id}: ligand refused. Fix: none")
            return super().embed(system)

    root = tmp_path / "results"
    shutil.copytree(example_results, root)
    widths = load_embedding(next((root / "trunk" / "embeddings").glob("*.safetensors")))[0]
    backend = RefusesLigands(c_s=widths.s_trunk.shape[1], c_z=widths.z_trunk.shape[2])
    indices = sorted((root / "trunk").glob("*/0000.json"))
    for index in indices:
        shard = root / "processed" / index.parent.name / "0000.h5"
        build_trunk_cache(shard, index, root / "trunk" / "new", backend, root)
    misato = json.loads((root / "trunk" / "misato_example" / "0000.json").read_text())
    assert misato["systems"] == {}
    assert "ligand refused" in misato["quarantined"]["misato_example.187L"]
    reports = sorted((root / "processed").glob("*/0000.report.json"))
    table = build_manifest(reports, indices, root, SplitConfig(seed=17))
    assert "misato_example.187L" not in set(table["system_id"]) and len(table) == 5
