"""``train.model.architecture: boltz2``: Boltz-2's structure module, started from a Boltz-2
checkpoint, trained and sampled on our data.

Runs everywhere: the built-in trunk at the tiny checkpoint's widths (c_s 32, c_z 16) stands in
for the Boltz-2 trunk (``test_boltz2_trunk.py`` runs the whole workflow with the real one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_boltz2_trunk import by_id

from boltzkinema.data.store import ShardReader
from boltzkinema.errors import CheckpointError, ConfigError
from boltzkinema.io.lightning_checkpoint import read_checkpoint
from boltzkinema.model.architectures import network_config
from boltzkinema.model.boltz2_network import Boltz2DiffusionNetwork
from boltzkinema.model.boltz2_weights import (
    CHECKPOINT_PREFIXES,
    checkpoint_weights,
    config_from_checkpoint,
)
from boltzkinema.model.layers.frames import is_added_parameter
from boltzkinema.sample.job import SampleConfig, run_sampling
from boltzkinema.settings import SCHEMA_FILE
from boltzkinema.train.checkpoint import resolve_checkpoint
from boltzkinema.train.loop import TrainConfig, Trainer
from boltzkinema.trunk.boltz2_atoms import diffusion_features, match_atoms
from boltzkinema.trunk.boltz2_features import build_features
from conftest import REPO, build_example_results

DATA = REPO / "tests" / "data" / "boltz2"
CKPT = DATA / "tiny_boltz2.ckpt"
SYSTEM = "misato_example.187L"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """The example's data stage with built-in trunk embeddings of the checkpoint's widths."""
    return build_example_results(tmp_path_factory.mktemp("boltz2") / "results", c_s=32, c_z=16)


def trainer(results: Path, run_dir: Path, **kw) -> Trainer:
    settings = {
        "run": "b",
        "steps": 4,
        "batch_size": 2,
        "checkpoint_every": 2,
        "val_every": 2,
        "val_batches": 1,
        "segments": {"n_frames": 3, "max_atoms": 96, "max_tokens": 24},
        "model": {"architecture": "boltz2"},
        "init_from": str(CKPT),
        **kw,
    }
    return Trainer(TrainConfig.from_dict(settings), results / "manifest.parquet", results, run_dir)


def system_187l(results: Path):
    with ShardReader(results / "processed" / "misato_example" / "0000.h5") as reader:
        return reader.load(SYSTEM, frames=[0])


# ------------------------------------------------------------------------- atom features
def test_atoms_boltz_knows_carry_exactly_its_features(results):
    system = system_187l(results)
    packed = build_features(system)
    feats = diffusion_features(system)
    index = match_atoms(system, packed)
    known = index >= 0
    assert known.sum() == (packed["atom_pad_mask"] > 0).sum()  # every Boltz atom is one of ours
    for ours, boltz in [
        ("ref_pos", "ref_pos"),
        ("ref_charge", "ref_charge"),
        ("ref_element", "ref_element"),
        ("ref_atom_name_chars", "ref_atom_name_chars"),
        ("ref_space_uid", "ref_space_uid"),
    ]:
        np.testing.assert_array_equal(feats[f"atom.{ours}"][known], packed[boltz][index[known]])
    np.testing.assert_array_equal(feats["token.asym_id"], packed["asym_id"])
    np.testing.assert_array_equal(feats["token.res_type"], packed["res_type"])


def test_an_atom_boltz_lacks_sits_beside_its_bonded_atoms(results):
    system = system_187l(results)
    feats = diffusion_features(system)
    oxt = int(np.flatnonzero(system.atom_names == "OXT")[0])
    residue = np.flatnonzero(system.token_index == system.token_index[oxt])
    c = residue[system.atom_names[residue] == "C"][0]
    assert feats["atom.ref_element"][oxt] == 8
    assert "".join(chr(v + 32) for v in feats["atom.ref_atom_name_chars"][oxt]).strip() == "OXT"
    assert feats["atom.ref_charge"][oxt] == 0
    assert feats["atom.ref_space_uid"][oxt] == feats["atom.ref_space_uid"][c]
    # Placed from its nearest atoms (C, O, CA): a carboxylate C–O bond from C, C its nearest.
    dist = np.linalg.norm(feats["atom.ref_pos"][residue] - feats["atom.ref_pos"][oxt], axis=1)
    ours = np.linalg.norm(system.coords[0, oxt] - system.coords[0, c])
    assert dist[residue == c] == pytest.approx(ours, abs=0.1)
    assert residue[np.argsort(dist)[1]] == c


def test_hydrogens_keep_their_bonds_in_the_reference_frame(tmp_path):
    """Hydrogens are not Boltz atoms: each is placed from the atoms it is bonded to."""
    from boltzkinema.data.index import discover
    from boltzkinema.data.preprocess import preprocess_shard
    from boltzkinema.data.process import ProcessOptions

    refs = discover("atlas", "atlas", [str(REPO / "resources" / "example" / "atlas")])[:1]
    opts = ProcessOptions(frame_dt_ns=0.001, hydrogens=True)
    preprocess_shard(refs, tmp_path / "s.h5", tmp_path / "r.json", opts)
    with ShardReader(tmp_path / "s.h5") as reader:
        system = reader.load(reader.system_ids()[0], frames=[0])
    known = match_atoms(system, build_features(system)) >= 0
    assert (system.elements[~known] == "H").sum() > 250  # villin's hydrogens (and OXT)
    ref = diffusion_features(system)["atom.ref_pos"]
    bonds = system.bonds[~known[system.bonds].all(axis=1)]
    ours = np.linalg.norm(np.subtract(*system.coords[0][bonds.T]), axis=1)
    placed = np.linalg.norm(np.subtract(*ref[bonds.T]), axis=1)
    assert np.abs(placed - ours).max() < 0.1  # measured 0.086 Å (by the 3 nearest: 1.14 Å)


def test_old_nucleic_atom_names_find_their_ccd_atoms():
    system = by_id("nucleic")
    expected = match_atoms(system, build_features(system))
    old = {"OP1": "O1P", "OP2": "O2P"}
    system.atom_names = np.array([old.get(n, n.replace("'", "*")) for n in system.atom_names])
    assert (system.atom_names == "O1P").any() and any("*" in n for n in system.atom_names)
    np.testing.assert_array_equal(match_atoms(system, build_features(system)), expected)


# ------------------------------------------------------------------------- network
def batch_from_recorded(recorded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch of ours carrying the fixture's Boltz features as class indices."""
    f = {k.removeprefix("feats."): v for k, v in recorded.items() if k.startswith("feats.")}

    def index(one_hot: torch.Tensor) -> torch.Tensor:
        return torch.where(one_hot.sum(-1) > 0, one_hot.argmax(-1), -1)

    atom_mask = f["atom_pad_mask"].bool()
    batch = {
        "atom.ref_pos": f["ref_pos"],
        "atom.ref_charge": f["ref_charge"],
        "atom.ref_element": index(f["ref_element"]),
        "atom.ref_atom_name_chars": index(f["ref_atom_name_chars"]),
        "atom.ref_space_uid": f["ref_space_uid"],
        "atom_to_token": index(f["atom_to_token"]).clamp_min(0),
        "atom_mask": atom_mask,
        "token_mask": f["token_pad_mask"].bool(),
        "token.res_type": index(f["res_type"]) if "res_type" in f else -f["asym_id"].ge(0).long(),
        "times": torch.zeros(1, 1),
        "frame_mask": torch.ones(1, 1, dtype=torch.bool),
        **{k: recorded[k] for k in ("s_inputs", "s_trunk", "z_trunk")},
    }
    for key in ("residue_index", "asym_id", "entity_id", "sym_id", "token_index"):
        batch[f"token.{key}"] = f[key]
    for key in ("cyclic_period", "modified", "mol_type"):
        batch[f"token.{key}"] = f.get(key, torch.zeros_like(f["asym_id"]))
    return batch


@pytest.mark.parametrize("level", [0, 1])
def test_a_batch_of_ours_reproduces_boltz2_denoiser(level):
    from boltzkinema.model.boltz2_weights import network_from_checkpoint

    recorded = load_file(DATA / "diffusion_io.safetensors")
    net, _ = network_from_checkpoint(CKPT)
    batch = batch_from_recorded(recorded)
    x, sigma = recorded[f"x_noisy.{level}"], recorded[f"sigma.{level}"]
    with torch.no_grad():
        out = net.eval()(batch, x[:, None], sigma[:, None])[:, 0]
    real = batch["atom_mask"][0]
    expected = recorded[f"denoised.{level}"][:, real]
    assert ((out[:, real] - expected).norm() / expected.norm()).item() < 1e-5
    assert torch.equal(out[:, ~real], torch.zeros_like(out[:, ~real]))


# ------------------------------------------------------------------------- training
def test_training_starts_from_the_boltz2_weights_and_moves_them(results, tmp_path, caplog):
    tr = trainer(results, tmp_path / "run")
    assert "these trunk embeddings come from ['builtin" in caplog.text  # not Boltz-2's own
    assert isinstance(tr.model, Boltz2DiffusionNetwork)
    ckpt = read_checkpoint(CKPT)
    assert tr.model.cfg == config_from_checkpoint(ckpt)
    own = tr.model.state_dict()
    for key, value in checkpoint_weights(ckpt).items():
        prefix = next((p for p in CHECKPOINT_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            assert torch.equal(own[CHECKPOINT_PREFIXES[prefix] + key[len(prefix) :]], value), key
    start = {k: v.clone() for k, v in own.items()}
    tr.run()
    state = tmp_path / "run" / "checkpoints" / "step_00000004" / "state.json"
    state = json.loads(state.read_text())
    assert state["architecture"] == "boltz2" and state["base"]["format"] == "boltz2"
    moved = [k for k, v in tr.model.state_dict().items() if not torch.equal(v, start[k])]
    assert any(".temporal." in k for k in moved) and any("score_model." in k for k in moved)


def test_resumed_boltz2_run_ends_with_the_same_weights(results, tmp_path):
    straight = trainer(results, tmp_path / "a")
    straight.run()
    first = trainer(results, tmp_path / "b")
    first.run(stop_at=2)
    resumed = trainer(results, tmp_path / "b")
    assert resumed.step == 2
    resumed.run()
    for (name, p), (_, q) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name


def test_adapter_checkpoint_samples_on_its_base_and_refuses_a_changed_base(results, tmp_path):
    base = tmp_path / "boltz2_conf.ckpt"
    shutil.copy(CKPT, base)
    run = tmp_path / "run"
    trainer(results, run, init_from=str(base), lora_rank=2, steps=2).run()
    saved = load_file(run / "checkpoints" / "step_00000002" / "model.safetensors")
    assert saved and all("lora_" in k or is_added_parameter(k) for k in saved)
    resolve_checkpoint(run, "latest").write(run / "checkpoint.json")
    cfg = SampleConfig(n_samples=2, n_frames=2, window=3, sampler={"n_steps": 3})
    manifest = results / "manifest.parquet"
    paths = run_sampling(
        run / "checkpoint.json", manifest, results, SYSTEM, "forecast", cfg, tmp_path / "s"
    )
    coords = np.load(paths["npz"])["coords"]
    assert coords.shape[:2] == (2, 3) and np.isfinite(coords).all()
    first = system_187l(results).coords[0]
    assert all(np.array_equal(sample[0], first) for sample in coords)  # σ = 0: given as is
    with open(base, "ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="has changed since the run started"):
        run_sampling(run / "checkpoint.json", manifest, results, SYSTEM, "forecast", cfg, tmp_path)


def test_checkpoint_sizes_are_not_set_in_the_config(results, tmp_path):
    with pytest.raises(ConfigError, match=r"\[.atom_s.\] are set by the checkpoint"):
        trainer(results, tmp_path / "run", model={"architecture": "boltz2", "atom_s": 64})


def test_trunk_of_other_widths_names_the_boltz2_trunk(example_results, tmp_path):
    with pytest.raises(ConfigError, match=r"trunk\.backend: boltz2"):
        trainer(example_results, tmp_path / "run")


def test_a_run_folder_keeps_its_architecture(results, tmp_path):
    trainer(results, tmp_path / "run", steps=2).run()
    native = {"architecture": "native", "c_atom": 16, "c_token": 32, "token_blocks": 1}
    with pytest.raises(CheckpointError, match="holds a boltz2 network"):
        trainer(results, tmp_path / "run", model=native, init_from=None)


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        ({"architecture": "boltz2"}, True),
        ({"architecture": "boltz2", "atom_s": 64, "causal": True}, True),
        ({"architecture": "boltz2", "c_atom": 16}, True),  # the other's settings: ignored
        ({"architecture": "boltz2", "atom_width": 16}, False),
        ({"architecture": "alphafold"}, False),
    ],
)
def test_config_schema_knows_both_architectures(model, ok):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["train"]["model"] = model
    schema = str(SCHEMA_FILE)
    if ok:
        validate(cfg, schema)
    else:
        with pytest.raises(WorkflowError):
            validate(cfg, schema)


def test_the_other_architectures_settings_are_ignored_with_a_warning(caplog):
    settings = {"architecture": "boltz2", "c_atom": 16, "atom_s": 8, "token_transformer_depth": 1}
    cfg = network_config(settings, (32, 16))
    assert (cfg.atom_s, cfg.token_s, cfg.token_transformer_depth) == (8, 32, 1)
    assert "['c_atom'] do not apply to the boltz2 architecture" in caplog.text
    with pytest.raises(ConfigError, match=r"token_s.* come from the trunk"):
        network_config({"architecture": "boltz2", "token_s": 64}, (32, 16))


def test_the_boltz2_layout_trains_from_scratch_at_the_configured_size(results, tmp_path):
    small = {
        "architecture": "boltz2",
        "atom_s": 8,
        "atom_z": 4,
        "token_transformer_depth": 1,
        "token_transformer_heads": 2,
        "atom_encoder_heads": 2,
        "atom_decoder_heads": 2,
    }
    run = tmp_path / "run"
    tr = trainer(results, run, model=small, init_from=None, steps=2)
    cfg = tr.model.cfg
    assert (cfg.atom_s, cfg.token_s, cfg.atom_feature_dim) == (8, 32, 388)
    tr.run()
    assert np.isfinite(pd.read_parquet(run / "train_log.parquet")["loss"]).all()
    # No base to give frozen weights back (Boltz-2's Fourier features): the checkpoint has all.
    resolve_checkpoint(run, "latest").write(run / "checkpoint.json")
    cfg = SampleConfig(n_samples=1, n_frames=1, window=2, sampler={"n_steps": 2})
    manifest = results / "manifest.parquet"
    run_sampling(run / "checkpoint.json", manifest, results, SYSTEM, "forecast", cfg, tmp_path)


def test_a_later_phase_starts_where_an_earlier_boltz2_run_ended(results, tmp_path):
    first, second = tmp_path / "phase1", tmp_path / "phase2"
    phase1 = trainer(results, first, steps=2)
    phase1.run()
    resolve_checkpoint(first, "latest").write(first / "checkpoint.json")
    phase2 = trainer(results, second, init_from=str(first / "checkpoint.json"), steps=2)
    assert phase2.model.cfg == phase1.model.cfg  # sized by phase 1, not by defaults
    for (name, p), (_, q) in zip(
        phase1.model.state_dict().items(), phase2.model.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name  # frozen ones come back from phase 1's Boltz-2 base
    phase2.run()
    state = json.loads((second / "checkpoints" / "step_00000002" / "state.json").read_text())
    assert state["base"]["path"].endswith("phase1/checkpoints/step_00000002/model.safetensors")
    assert state["base"]["base"]["format"] == "boltz2"
    resolve_checkpoint(second, "latest").write(second / "checkpoint.json")
    cfg = SampleConfig(n_samples=1, n_frames=1, window=2, sampler={"n_steps": 2})
    manifest = results / "manifest.parquet"
    run_sampling(second / "checkpoint.json", manifest, results, SYSTEM, "forecast", cfg, tmp_path)


def test_a_boltz2_checkpoint_given_to_the_native_network_names_the_architecture(results, tmp_path):
    native = {"architecture": "native", "c_atom": 16, "c_token": 32, "token_blocks": 1}
    with pytest.raises(CheckpointError, match=r"needs train\.model\.architecture: boltz2"):
        trainer(results, tmp_path / "run", model=native)


def test_a_system_without_boltz2_features_is_named_with_the_way_out(results):
    from boltzkinema.data.dataset import SegmentConfig, TrajectoryDataset
    from boltzkinema.errors import BoltzKinemaError
    from boltzkinema.trunk.boltz2_features import FeatureError

    def refuse(system, entry):
        raise FeatureError(f"boltz2 trunk, system {system.system_id}: hydrogen ligand tokens")

    manifest = pd.read_parquet(results / "manifest.parquet")
    data = TrajectoryDataset(manifest, results, SegmentConfig(n_frames=2), None, refuse)
    with pytest.raises(BoltzKinemaError, match=r"quarantines such systems") as err:
        data.item(0, 0)
    sid, shard = str(err.value).split(" ", 2)[:2]  # "<system> (<shard>): ..."
    assert sid in set(data.rows["system_id"]) and shard.startswith("(processed/")


def test_features_kept_for_few_systems_give_the_same_items(results):
    """The per-system feature cache is bounded; an evicted system's features come back equal."""
    from boltzkinema.data.dataset import SegmentConfig, TrajectoryDataset
    from boltzkinema.trunk.boltz2_atoms import features_for_entry

    manifest = pd.read_parquet(results / "manifest.parquet")
    seg = SegmentConfig(n_frames=2, max_atoms=64, max_tokens=16)
    roomy = TrajectoryDataset(manifest, results, seg, None, features_for_entry)
    tight = TrajectoryDataset(manifest, results, seg, None, features_for_entry, cached_systems=1)
    for index in range(8):
        a, b = roomy.item(0, index), tight.item(0, index)
        for key in a:
            if key.startswith(("atom.", "token.")):
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert len(tight._features) == 1 and len(roomy._features) > 1
