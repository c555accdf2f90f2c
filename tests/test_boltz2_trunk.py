"""Backend boltz2: our features equal Boltz-2's own featuriser's, and the real trunk runs.

``tests/data/boltz2/trunk_io.safetensors`` holds, for the small systems of ``trunk_systems.json``
(bits of the bundled example: T4 lysozyme + p-xylene, capped alanine dipeptide, a two-chain copy,
DNA/RNA + glycerol, a ligand bonded to a residue), the features that boltz 2.2.1's own input
pipeline made, and the trunk outputs (``Boltz2.forward``) of ``tiny_boltz2.ckpt`` and of
``tiny_boltz2_trunk_v2.ckpt`` (the released model's switches on, templates included); see
``scripts/make_boltz2_trunk_fixture.py``. The feature tests run everywhere; the end-to-end ones
need the Boltz environment (``make boltz-env``) and are skipped, saying so, without it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors import safe_open
from safetensors.numpy import load_file

from boltzkinema.data.store import ProcessedSystem, ShardReader, ShardWriter
from boltzkinema.errors import BoltzKinemaError, ConfigError
from boltzkinema.settings import SCHEMA_FILE
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.boltz2_features import (
    FEATURE_DTYPES,
    FEATURES,
    METHOD_TYPE_IDS,
    FeatureError,
    build_features,
    expand_features,
    ligand_reference,
    pack_features,
)
from boltzkinema.trunk.cache import build_trunk_cache, load_embedding
from conftest import REPO, settings_file

DATA = REPO / "tests" / "data" / "boltz2"
CHECKPOINT = DATA / "tiny_boltz2.ckpt"
SYSTEMS = json.loads((DATA / "trunk_systems.json").read_text())["systems"]
SYSTEM_IDS = [s["system_id"] for s in SYSTEMS]
BOLTZ_PYTHON = REPO / ".venv-boltz" / "bin" / "python"
# Cached embeddings are float16: a float32 value x comes back within 2**-11 |x| (half an ulp).
# The worker's trunk and Boltz2.forward differ by float32 rounding (<= 6.4e-6 measured): atol.
F16_RTOL, F32_ATOL = 2.0**-11, 1e-5


@cache
def recorded() -> tuple[dict[str, np.ndarray], dict]:
    path = DATA / "trunk_io.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["boltzkinema"])
    return load_file(str(path)), meta


def system_of(entry: dict) -> ProcessedSystem:
    ref = np.asarray(entry["reference_coords"], dtype=np.float32).reshape(-1, 3)
    bonds = np.asarray(entry["bonds"], dtype=np.int32).reshape(-1, 2)
    return ProcessedSystem(
        entry["system_id"],
        ref[None],
        np.zeros(1),
        np.asarray(entry["atom_names"], dtype=str),
        np.asarray(entry["elements"], dtype=str),
        np.asarray(entry["residue_names"], dtype=str),
        np.asarray(entry["residue_index"], dtype=np.int32),
        np.asarray(entry["chain_index"], dtype=np.int32),
        np.asarray(entry["mol_type"], dtype=np.int8),
        np.asarray(entry["token_index"], dtype=np.int32),
        np.ones(len(ref), dtype=bool),
        bonds,
        np.linalg.norm(ref[bonds[:, 1]] - ref[bonds[:, 0]], axis=1).astype(np.float32),
        attrs=copy.deepcopy(entry["attrs"]),
        reference_coords=ref,
    )


def by_id(system_id: str) -> ProcessedSystem:
    return system_of(SYSTEMS[SYSTEM_IDS.index(system_id)])


def boltz_features(system_id: str) -> dict[str, np.ndarray]:
    arrays, _ = recorded()
    return expand_features({k: arrays[f"feats.{system_id}.{k}"] for k in FEATURES})


# ---------------------------------------------------------------------------- features
@pytest.mark.parametrize("system_id", SYSTEM_IDS)
def test_features_equal_boltz2_featurizer_output(system_id):
    _, meta = recorded()
    assert meta["feature_dtypes"] == FEATURE_DTYPES
    assert meta["systems"] == SYSTEM_IDS
    ours = expand_features(build_features(by_id(system_id)))
    theirs = boltz_features(system_id)
    assert sorted(ours) == sorted(theirs) == sorted(FEATURES)
    for key in FEATURES:
        a, b = ours[key], theirs[key]
        assert a.dtype == b.dtype == np.dtype(FEATURE_DTYPES[key]), key
        assert a.shape == b.shape, (key, a.shape, b.shape)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_fixture_systems_cover_what_they_claim():
    """Caps, ligands, entities and nucleotides really are in the recorded features."""
    t4l, ala2, dimer, nucleic, covalent = (boltz_features(s) for s in SYSTEM_IDS)
    assert ala2["modified"].tolist() == [1, 0, 1]  # ACE, ALA, NME
    assert np.diagonal(ala2["type_bonds"]).tolist() == [2, 0, 2]  # caps' own bonds
    assert (t4l["mol_type"] == 3).sum() == 8 and (t4l["type_bonds"] == 5).any()  # aromatic
    assert dimer["entity_id"].tolist() == [0] * 8 + [1] * 8
    assert dimer["sym_id"].tolist() == [0] * 4 + [1] * 4 + [0] * 8
    assert set(nucleic["mol_type"].tolist()) == {1, 2, 3}
    assert t4l["ref_pos"].shape[0] % 32 == 0 and t4l["atom_pad_mask"].sum() == 60
    assert covalent["type_bonds"][2, 6] == covalent["type_bonds"][6, 2] == 6  # COVALENT + 1
    assert (t4l["type_bonds"] == 6).sum() == 0


def test_packing_round_trips_and_is_small():
    packed = build_features(by_id("t4l_xylene"))
    full = expand_features(packed)
    again = pack_features(full)
    for key in FEATURES:
        np.testing.assert_array_equal(again[key], packed[key])
    assert sum(v.nbytes for v in packed.values()) < sum(v.nbytes for v in full.values()) / 10


def test_method_is_a_parameter():
    md = build_features(by_id("ala2"), method="MD")
    assert md["method_feature"].tolist() == [METHOD_TYPE_IDS["md"]] * 3 == [0, 0, 0]
    assert build_features(by_id("ala2"))["method_feature"].tolist() == [1, 1, 1]
    with pytest.raises(FeatureError, match="unknown Boltz method"):
        build_features(by_id("ala2"), method="cryo")


def test_features_are_deterministic_and_follow_the_seed():
    a, b = build_features(by_id("t4l_xylene")), build_features(by_id("t4l_xylene"))
    for key in FEATURES:
        np.testing.assert_array_equal(a[key], b[key])
    # Rigid p-xylene embeds alike for any seed, flexible glycerol does not. (RDKit 2026.09 gives
    # seeds 0 and 1 the same embedding, hence 2.)
    g0, g1 = (build_features(by_id("nucleic"), seed=seed) for seed in (0, 2))
    lig = np.isin(g0["atom_to_token"], np.flatnonzero(g0["mol_type"] == 3))
    assert lig.sum() == 6
    assert not np.allclose(g0["ref_pos"][lig], g1["ref_pos"][lig], atol=1e-3)
    np.testing.assert_array_equal(g0["ref_pos"][~lig], g1["ref_pos"][~lig])


def test_chain_order_is_ours_entities_follow_first_appearance():
    """pep, ligand, pep (an order a Boltz YAML cannot give): one token per token of ours."""
    dimer = by_id("dimer")
    tok = dimer.token_index
    order = np.concatenate(
        [np.flatnonzero(tok < 4), np.flatnonzero(tok >= 8), np.flatnonzero((tok >= 4) & (tok < 8))]
    )
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    new_tok = {t: i for i, t in enumerate(dict.fromkeys(tok[order].tolist()))}
    moved = ProcessedSystem(
        "moved",
        dimer.coords[:, order],
        dimer.times_ns,
        dimer.atom_names[order],
        dimer.elements[order],
        dimer.residue_names[order],
        dimer.residue_index[order],
        dimer.chain_index[order],
        dimer.mol_type[order],
        np.array([new_tok[t] for t in tok[order]], dtype=np.int32),
        dimer.observed_mask[order],
        remap[dimer.bonds],
        dimer.bond_lengths,
        attrs=dimer.attrs,
        reference_coords=dimer.reference_coords[order],
    )
    f = build_features(moved)
    assert f["asym_id"].tolist() == [0] * 4 + [1] * 8 + [2] * 4
    assert f["entity_id"].tolist() == [0] * 4 + [1] * 8 + [0] * 4
    assert f["sym_id"].tolist() == [0] * 12 + [1] * 4
    assert f["residue_index"].tolist() == [0, 1, 2, 3] + [0] * 8 + [0, 1, 2, 3]


def test_ligand_bonded_to_a_residue_is_a_covalent_token_bond():
    system = by_id("t4l_xylene")
    lig = int(np.flatnonzero(system.mol_type == 3)[0])
    ca = int(np.flatnonzero((system.token_index == 2) & (system.atom_names == "CA"))[0])
    system.bonds = np.concatenate([system.bonds, [[ca, lig]]]).astype(np.int32)
    f = build_features(system)
    t = int(system.token_index[lig])
    assert f["type_bonds"][2, t] == f["type_bonds"][t, 2] == 6  # COVALENT + 1
    assert f["token_bonds"][2, t] == 1


def test_ligand_atoms_map_onto_ours_and_keep_the_reference_stereo():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    for chiral in ("C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"):
        mol = Chem.AddHs(Chem.MolFromSmiles(chiral))
        AllChem.EmbedMolecule(mol, randomSeed=3)
        heavy = Chem.RemoveHs(mol)
        perm = [4, 2, 0, 3, 1, 5]  # a topology order unlike the SMILES order
        mol_ours = Chem.RenumberAtoms(heavy, perm)
        elements = np.array([a.GetSymbol() for a in mol_ours.GetAtoms()])
        bonds = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol_ours.GetBonds()])
        xyz = mol_ours.GetConformer().GetPositions()
        lig = ligand_reference(elements, bonds, xyz, "CC(N)C(=O)O", seed=0)
        assert lig.smiles == Chem.MolToSmiles(Chem.MolFromSmiles(chiral))
        assert [Chem.GetPeriodicTable().GetElementSymbol(z) for z in lig.elements] == list(elements)
        ours = {tuple(sorted(map(int, b))) for b in bonds}
        assert {(i, j) for i, j, _ in lig.bonds} == ours
        assert all(len(n) <= 4 for n in lig.names)


def test_hydrogen_ligand_tokens_are_refused_with_the_fix():
    system = by_id("t4l_xylene")
    system.elements = system.elements.copy()
    system.elements[-1] = "H"
    with pytest.raises(FeatureError, match=r"t4l_xylene.*hydrogens: false"):
        build_features(system)


# ---------------------------------------------------------------------------- construction
def test_missing_checkpoint_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"not found at .*nope\.ckpt.*boltz2_conf\.ckpt"):
        get_backend("boltz2", checkpoint=str(tmp_path / "nope.ckpt"), python=sys.executable)
    with pytest.raises(ConfigError, match=r"needs trunk\.checkpoint"):
        get_backend("boltz2")


def test_missing_boltz_python_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(BoltzKinemaError, match=r"does not exist.*make boltz-env"):
        get_backend("boltz2", checkpoint=str(CHECKPOINT), python=str(tmp_path / "py"))
    monkeypatch.setattr("boltzkinema.trunk.boltz2.default_python", lambda: None)
    monkeypatch.delenv("BOLTZ_PYTHON", raising=False)
    with pytest.raises(BoltzKinemaError, match=r"boltz==2\.2\.1.*make boltz-env"):
        get_backend("boltz2", checkpoint=str(CHECKPOINT))


def test_python_without_boltz_fails_at_construction_naming_the_fix():
    """This (core) interpreter has torch but no boltz: the worker says so before any work."""
    with pytest.raises(BoltzKinemaError, match=r"(?s)boltz.*make boltz-env"):
        get_backend("boltz2", checkpoint=str(CHECKPOINT), python=sys.executable)


def test_bad_settings_are_config_errors():
    for bad in ({"msa": "server"}, {"method": "cryo"}, {"recycling_steps": -1}):
        with pytest.raises(ConfigError):
            get_backend("boltz2", checkpoint=str(CHECKPOINT), python=sys.executable, **bad)


def test_cli_reports_a_missing_checkpoint(tmp_path, caplog):
    from boltzkinema.cli import main

    code = main(
        [
            "trunk",
            "--shard",
            str(tmp_path / "s.h5"),
            "--output",
            str(tmp_path / "i.json"),
            "--embeddings",
            str(tmp_path / "emb"),
            "--settings",
            str(settings_file(tmp_path / "trunk.json", backend="boltz2")),
            "--boltz2-checkpoint",
            str(tmp_path / "missing.ckpt"),
        ]
    )
    assert code == 1
    assert "missing.ckpt" in caplog.text


@pytest.mark.parametrize(
    ("trunk", "ok"),
    [
        ({"backend": "boltz2"}, False),
        ({"backend": "boltz2", "checkpoint": "x.ckpt"}, True),
        ({"backend": "boltz2", "checkpoint": "x.ckpt", "method": "md", "recycling_steps": 0}, True),
        ({"backend": "boltz2", "checkpoint": "x.ckpt", "precision": "16"}, False),
        ({"backend": "builtin"}, True),
    ],
)
def test_config_schema_knows_the_boltz2_options(trunk, ok):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["trunk"] = trunk
    schema = str(SCHEMA_FILE)
    if ok:
        validate(cfg, schema)
        assert cfg["trunk"]["c_s"] == 384
    else:
        with pytest.raises(WorkflowError):
            validate(cfg, schema)


# ---------------------------------------------------------------------------- Boltz environment
@cache
def boltz_env_problem() -> str | None:
    if not BOLTZ_PYTHON.exists():
        return f"no Boltz environment at {BOLTZ_PYTHON} (make boltz-env)"
    proc = subprocess.run(
        [str(BOLTZ_PYTHON), "-c", "import boltz, torch, safetensors"],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return f"{BOLTZ_PYTHON} cannot import boltz/torch/safetensors: {proc.stderr[-300:]}"
    return None


needs_boltz = pytest.mark.skipif(boltz_env_problem() is not None, reason=str(boltz_env_problem()))


def write_shard(path: Path, systems: list[ProcessedSystem] | None = None) -> None:
    from boltzkinema.data.process import topology_hash

    with ShardWriter(path) as w:
        for s in systems or [system_of(entry) for entry in SYSTEMS]:
            s.attrs = {**s.attrs, "topology_hash": topology_hash(vars(s))}
            w.add(s)


@needs_boltz
def test_our_copies_of_boltz_tables_match_boltz():
    from boltzkinema.trunk import boltz2_features as bf

    code = (
        "import json; from boltz.data import const as c; print(json.dumps({"
        "'tokens': c.tokens, 'ref_atoms': c.ref_atoms, 'methods': c.method_types_ids, "
        "'bonds': c.bond_type_ids, 'chains': c.chain_type_ids, 'unk': c.unk_token, "
        "'contact': c.contact_conditioning_info, 'elements': c.num_elements}))"
    )
    proc = subprocess.run([str(BOLTZ_PYTHON), "-c", code], capture_output=True, text=True)
    c = json.loads(proc.stdout)
    assert c["tokens"] == bf.TOKENS
    assert {k: v for k, v in c["ref_atoms"].items() if k in bf.REF_ATOMS} == bf.REF_ATOMS
    assert set(c["ref_atoms"]) - set(bf.REF_ATOMS) == {"PAD", "-", "N", "DN"}
    assert c["methods"] == bf.METHOD_TYPE_IDS
    assert c["bonds"] == bf.BOND_TYPE_IDS and c["chains"] == bf.CHAIN_TYPE_IDS
    assert c["unk"] == bf.UNK_TOKEN and c["elements"] == bf.NUM_ELEMENTS
    assert c["contact"]["UNSPECIFIED"] == bf.CONTACT_UNSPECIFIED
    assert len(c["contact"]) == bf.NUM_CONTACT_CLASSES


@needs_boltz
@pytest.mark.parametrize(
    ("checkpoint", "prefix"),
    [("tiny_boltz2.ckpt", ""), ("tiny_boltz2_trunk_v2.ckpt", "v2.")],
    ids=["tiny", "tiny-released-switches"],
)
def test_boltz2_backend_end_to_end_reproduces_the_boltz_trunk_and_caches(
    tmp_path, checkpoint, prefix
):
    arrays, meta = recorded()
    shard = tmp_path / "processed" / "s.h5"
    write_shard(shard)
    backend = get_backend(
        "boltz2",
        checkpoint=str(DATA / checkpoint),
        python=str(BOLTZ_PYTHON),
        recycling_steps=int(meta["recycling_steps"]),
        seed=int(meta["seed"]),
    )
    try:
        assert (backend.c_s, backend.c_z) == (32, 16)
        if prefix:  # released-style hyper-parameters: unknown keys dropped, no v1 leftovers
            assert backend.info["dropped_hyper_parameters"] == ["future_option"]
            assert backend.info["unused_v1_weights"] == 0
        else:  # built with a v1 pairformer: its unused attention.norm_s weights are skipped
            assert backend.info["unused_v1_weights"] == 2
        first = build_trunk_cache(shard, tmp_path / "a.json", tmp_path / "emb", backend, tmp_path)
        again = build_trunk_cache(shard, tmp_path / "b.json", tmp_path / "emb", backend, tmp_path)
    finally:
        backend.close()
    assert first.backend == "boltz2" and first.computed == len(SYSTEMS)
    assert again.computed == 0 and again.reused == len(SYSTEMS)
    assert again.systems == {k: {**v, "computed": False} for k, v in first.systems.items()}
    with ShardReader(shard) as r:
        ids = r.system_ids()
    for sid in ids:
        emb, meta_entry = load_embedding(tmp_path / first.systems[sid]["path"])
        assert meta_entry["backend"] == "boltz2"
        for name in ("s_inputs", "s_trunk", "z_trunk"):
            got = getattr(emb, name)
            assert got.dtype == np.float16
            np.testing.assert_allclose(
                got.astype(np.float32),
                arrays[f"{prefix}{sid}.{name}"],
                rtol=F16_RTOL,
                atol=F32_ATOL,
                err_msg=f"{sid} {name}",
            )
    assert not backend._tmp.exists()  # the worker's scratch folder is gone


@needs_boltz
def test_trunk_job_quarantines_what_boltz2_cannot_express_and_cleans_up_on_sigterm(tmp_path):
    import signal
    import time

    hydrogen_ligand = by_id("t4l_xylene")
    hydrogen_ligand.elements = hydrogen_ligand.elements.copy()
    hydrogen_ligand.elements[-1] = "H"
    shard = tmp_path / "processed" / "s.h5"
    write_shard(shard, [by_id("ala2"), hydrogen_ligand])
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    def trunk_job(output: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "boltzkinema", "trunk", "--shard", str(shard)]
        cmd += ["--output", str(tmp_path / output), "--embeddings", str(tmp_path / "emb")]
        widths = settings_file(tmp_path / "trunk.json", backend="boltz2", c_s=32, c_z=16)
        cmd += ["--results-root", str(tmp_path), "--settings", str(widths)]
        cmd += [
            "--boltz2-checkpoint",
            str(CHECKPOINT),
            "--python",
            str(BOLTZ_PYTHON),
        ]
        env = dict(os.environ, TMPDIR=str(scratch))
        return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)

    job = trunk_job("a.json")
    assert job.wait(timeout=300) == 0, job.stderr.read()[-2000:]
    index = json.loads((tmp_path / "a.json").read_text())
    assert list(index["systems"]) == ["ala2"]
    assert "hydrogens: false" in index["quarantined"]["t4l_xylene"]
    assert list(scratch.glob("boltz2-trunk-*")) == []

    job = trunk_job("b.json")
    deadline = time.monotonic() + 60
    while not list(scratch.glob("boltz2-trunk-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(scratch.glob("boltz2-trunk-*")) == []  # the worker's scratch went with it
    assert not (tmp_path / "b.json").exists()


@needs_boltz
def test_worker_refuses_a_checkpoint_that_is_not_boltz2(tmp_path):
    import torch

    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"token_s": 8}}, bad)
    with pytest.raises(BoltzKinemaError, match="cannot build Boltz2"):
        get_backend("boltz2", checkpoint=str(bad), python=str(BOLTZ_PYTHON))


@needs_boltz
@pytest.mark.parametrize("widths", [{"c_s": 384, "c_z": 128}, {"c_s": 384}, {"c_z": 128}])
def test_config_widths_must_match_the_checkpoint(widths):
    with pytest.raises(ConfigError, match=r"trunk.c_s: 32"):
        get_backend("boltz2", checkpoint=str(CHECKPOINT), python=str(BOLTZ_PYTHON), **widths)


@needs_boltz
def test_one_matching_width_is_enough():
    backend = get_backend("boltz2", checkpoint=str(CHECKPOINT), python=str(BOLTZ_PYTHON), c_s=32)
    backend.close()
    assert (backend.c_s, backend.c_z) == (32, 16)


def test_env_var_names_the_boltz_python(monkeypatch):
    from boltzkinema.trunk.boltz2 import default_python

    monkeypatch.setenv("BOLTZ_PYTHON", "/opt/boltz/bin/python")
    assert default_python() == "/opt/boltz/bin/python"
    monkeypatch.delenv("BOLTZ_PYTHON")
    found = default_python()
    assert found is None or found.endswith(os.path.join(".venv-boltz", "bin", "python"))


@needs_boltz
def test_workflow_with_boltz2_trunk_and_weights_runs_to_the_evaluation(tmp_path):
    """The product path: Boltz-2 trunk embeddings, and a Boltz-2-layout network started from
    the same checkpoint's diffusion weights, trained, sampled and evaluated by Snakemake."""
    from conftest import example_config, snakemake_cmd, venv_env

    example_config(
        tmp_path,
        trunk={
            "backend": "boltz2",
            "checkpoint": str(CHECKPOINT),
            "python": str(BOLTZ_PYTHON),
            "c_s": 32,
            "c_z": 16,
            "recycling_steps": 1,
        },
        train={
            "model": {"architecture": "boltz2"},
            "init_from": str(CHECKPOINT),
            "steps": 6,
            "checkpoint_every": 3,
            "val_every": 3,
        },
        sample={"modes": ["forecast", "interpolate"]},
    )
    proc = subprocess.run(
        snakemake_cmd(tmp_path), capture_output=True, text=True, env=venv_env(), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    table = pd.read_parquet(results / "manifest.parquet")
    assert len(table) == 6
    for rel in sorted(set(table["trunk_path"])):
        emb, meta = load_embedding(results / rel)
        assert meta["backend"] == "boltz2"
        assert emb.s_trunk.shape[1] == 32 and emb.z_trunk.shape[2] == 16
        assert np.isfinite(emb.z_trunk.astype(np.float32)).all()
    resolved = json.loads((results / "runs" / "example" / "checkpoint.json").read_text())
    state = json.loads((tmp_path / resolved["path"] / "state.json").read_text())
    assert state["architecture"] == "boltz2"
    assert state["base"]["sha256"] == hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    assert "faithful start" not in (results / "logs" / "train" / "example.log").read_text()
    samples = sorted((results / "runs" / "example" / "samples").glob("*/*.npz"))
    assert len(samples) == 4
    assert all(np.isfinite(np.load(path)["coords"]).all() for path in samples)
    assert (results / "runs" / "example" / "eval" / "summary.parquet").exists()
