"""Generation modes on a real system, and files that mdtraj and Biopython read back."""

from __future__ import annotations

import logging
from dataclasses import replace

import mdtraj
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from Bio.PDB import PDBParser

from boltzkinema.data.dataset import rmsd_after_superposition
from boltzkinema.data.pose import Pose
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.model.layers.frames import old_layout_hint
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.sample import coverage, modes
from boltzkinema.sample.job import SampleConfig, sample_system
from boltzkinema.sample.sampler import SamplerConfig
from boltzkinema.sample.writers import write_samples
from boltzkinema.train.state import TrainingState
from conftest import REPO, resolved_record

FAST = SamplerConfig(n_steps=3)
SMALL = {
    "c_atom": 16,
    "c_token": 16,
    "atom_heads": 2,
    "token_heads": 2,
    "atom_encoder_blocks": 1,
    "token_blocks": 1,
    "atom_decoder_blocks": 1,
}


@pytest.fixture(scope="module")
def system(example_results):
    m = pd.read_parquet(example_results / "manifest.parquet").set_index("system_id")
    row = m.loc["misato_example.187L"]
    return modes.load_system(example_results, row["shard"], row.name, row["trunk_path"])


@pytest.fixture(scope="module")
def model(system):
    torch.manual_seed(0)
    c_s, c_z = system.features["s_trunk"].shape[1], system.features["z_trunk"].shape[2]
    return DiffusionNetwork(ModelConfig(c_s=c_s, c_z=c_z, **SMALL)).eval()


def _gen():
    return torch.Generator().manual_seed(0)


def test_forecast_extends_the_history_window_by_window(model, system):
    hist = torch.from_numpy(system.system.coords[:2])
    traj, times = modes.forecast(model, system, hist, 5, 0.002, 3, FAST, _gen(), n_samples=2)
    assert traj.shape == (2, 7, system.n_atoms, 3)
    assert np.allclose(times, np.arange(7) * 0.002)
    assert torch.equal(traj[:, :2], hist[None].expand(2, -1, -1, -1))


def test_a_posed_window_turns_with_its_history(model, system):
    """Windows of a network trained with ``pose: reference`` are generated on the reference and
    turned back: a rotated and shifted history gives the same sample, rotated and shifted."""
    sys = system.system
    pose = Pose.of("reference", sys.atom_names, sys.token_index, sys.coords[0].astype(float))
    posed = modes.SystemInputs(sys, system.features, pose=pose)
    hist = torch.from_numpy(system.system.coords[:2])
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3)))
    q = q * torch.sign(torch.linalg.det(q))
    shift = torch.tensor([4.0, -2.0, 7.0])
    a, _ = modes.forecast(model, posed, hist, 2, 0.002, 3, FAST, _gen())
    b, _ = modes.forecast(model, posed, hist @ q + shift, 2, 0.002, 3, FAST, _gen())
    assert torch.allclose(a @ q + shift, b, atol=2e-3)
    c, _ = modes.forecast(model, system, hist @ q + shift, 2, 0.002, 3, FAST, _gen())
    assert not torch.allclose(a @ q + shift, c, atol=0.1)  # unposed: the network sees the turn


def test_interpolation_keeps_both_ends(model, system):
    a, b = (torch.from_numpy(system.system.coords[i]) for i in (0, 5))
    traj, times = modes.interpolate(model, system, a, b, 3, 0.001, FAST, _gen(), 2)
    assert traj.shape[1] == 5 and np.allclose(times, [0, 0.001, 0.002, 0.003, 0.004])
    assert torch.equal(traj[:, 0], a[None].expand(2, -1, -1))
    assert torch.equal(traj[:, -1], b[None].expand(2, -1, -1))


def test_hierarchical_puts_fine_frames_between_coarse_anchors(model, system):
    start = torch.from_numpy(system.system.coords[0])
    traj, times = modes.hierarchical(
        model,
        system,
        start,
        n_coarse=2,
        coarse_dt_ns=0.003,
        fine_dt_ns=0.001,
        window=3,
        cfg=FAST,
        generator=_gen(),
        n_samples=1,
    )
    assert traj.shape[1] == 2 * 3 + 1
    assert np.allclose(times, np.arange(7) * 0.001)
    with pytest.raises(ValueError, match="whole multiple"):
        modes.hierarchical(model, system, start, 2, 0.0025, 0.001, 3, FAST, _gen())


def test_unbinding_bounds_the_history_and_tracks_the_ligand(model, system):
    cfg = SampleConfig(
        n_frames=3, window=4, history=3, max_history=1, n_samples=1, sampler={"n_steps": 2}
    )
    calls = []
    real = modes.sample_window

    def spy(model_, inputs, known, mask, times, sampler, gen):
        calls.append(int(mask.sum()))
        return real(model_, inputs, known, mask, times, sampler, gen)

    modes.sample_window = spy
    try:
        coords, _, extras = sample_system(model, system, "unbinding", cfg, 0.001)
    finally:
        modes.sample_window = real
    assert set(calls) == {1}
    assert extras["ligand_centre_distance"].shape == (1, coords.shape[1])


def test_written_files_read_back_in_mdtraj_and_biopython(model, system, tmp_path):
    coords = np.stack([system.system.coords[:4]] * 2)
    paths = write_samples(system.system, coords, np.arange(4) * 0.001, tmp_path, "forecast")
    traj = mdtraj.load(str(paths["xtc1"]), top=str(paths["pdb"]))
    assert traj.n_frames == 4 and traj.n_atoms == system.n_atoms
    np.testing.assert_allclose(traj.xyz * 10, coords[1], atol=0.01)
    # MISATO molecules become chains: the protein, then the ligand as one residue of its own.
    assert traj.topology.n_chains == 2 and traj.topology.n_residues == 163
    assert [r.name for r in traj.topology.chain(1).residues] == ["MOL"]
    structure = PDBParser(QUIET=True).get_structure("s", str(paths["pdb"]))
    elements = [a.element for a in structure.get_atoms()]
    assert elements.count("C") == int((system.system.elements == "C").sum())
    conect = [ln for ln in paths["pdb"].read_text().splitlines() if ln.startswith("CONECT")]
    assert len(conect) == 8  # p-xylene: 6 ring bonds + 2 methyls
    data = np.load(paths["npz"])
    assert data["coords"].shape == coords.shape and np.allclose(data["times_ns"][1], 0.001)


def test_every_sample_setting_has_an_effect(model, system):
    base = SampleConfig(n_frames=2, window=3, n_samples=1, sampler={"n_steps": 2})
    ref = sample_system(model, system, "forecast", base, 0.001)[0]
    changes = {
        "n_frames": 3,
        "window": 2,
        "history": 2,
        "n_samples": 2,
        "seed": 1,
        "sampler": {"n_steps": 3},
    }
    for key, value in changes.items():
        cfg = SampleConfig(**{**base.__dict__, key: value})
        other = sample_system(model, system, "forecast", cfg, 0.001)[0]
        assert other.shape != ref.shape or not np.allclose(other, ref), key
    hier = SampleConfig(n_coarse=1, coarse_factor=2, window=3, n_samples=1, sampler={"n_steps": 2})
    a = sample_system(model, system, "hierarchical", hier, 0.001)[0]
    b = sample_system(
        model, system, "hierarchical", SampleConfig(**{**hier.__dict__, "coarse_factor": 3}), 0.001
    )[0]
    c = sample_system(
        model, system, "hierarchical", SampleConfig(**{**hier.__dict__, "n_coarse": 2}), 0.001
    )[0]
    assert a.shape[1] == 3 and b.shape[1] == 4 and c.shape[1] == 5
    # systems and modes choose the workflow's jobs, max_history acts in the unbinding test
    # above, dt_ns in test_evaluate's sampling-job test.


def test_sampling_reference_is_the_systems_reference_turned_by_the_seed(example_results):
    """Sampling builds the reference-position feature as training does: the stored reference
    structure, centred, in a rotation of its own (drawn from the seed), not the start frame."""
    m = pd.read_parquet(example_results / "manifest.parquet").set_index("system_id")
    row = m.loc["atlas_example.villin_hp35_R1"]

    def ref_feature(seed: int) -> tuple[np.ndarray, modes.SystemInputs]:
        inputs = modes.load_system(
            example_results, row["shard"], row.name, row["trunk_path"], reference_seed=seed
        )
        return inputs.features["atom_features"][:, -3:].numpy() * 10, inputs

    a, inputs = ref_feature(0)
    b, _ = ref_feature(0)
    c, _ = ref_feature(1)
    stored = inputs.system.reference_coords.astype(np.float64)
    assert np.array_equal(a, b) and not np.allclose(a, c, atol=0.1)
    assert rmsd_after_superposition(a, stored) < 1e-3 and rmsd_after_superposition(c, a) < 1e-3
    assert abs(a.mean(0)).max() < 1e-3
    start = inputs.system.coords[0] - inputs.system.coords[0].mean(0)
    assert np.abs(a - start).max() > 1.0


TRAINED = {"n_frames": 8, "max_history": 3, "dt_ns": [0.001, 0.004], "tasks": {"forecast": 1}}


@pytest.mark.parametrize(
    "change,mode,dt,words",
    [
        ({"window": 9}, "forecast", 0.001, "sample.window 9"),
        ({"max_history": 5}, "forecast", 0.001, "5 history frames"),
        ({"n_frames": 7}, "interpolate", 0.001, "interpolation spans 9"),
        ({"coarse_factor": 8}, "hierarchical", 0.0005, "interpolation spans 9"),
        ({}, "interpolate", 0.001, "interpolate task"),
    ],
)
def test_sampling_outside_what_was_trained_is_named_with_its_fix(change, mode, dt, words):
    cfg = SampleConfig(**{"window": 8, "max_history": 3, "n_frames": 6, **change})
    errors, _ = coverage.problems(TRAINED, coverage.needs(cfg, mode, dt))
    assert any(words in e for e in errors), errors
    assert all("set " in e or "give it" in e for e in errors)


def test_frame_spacing_outside_the_trained_range_is_a_warning():
    cfg = SampleConfig(window=8, max_history=3, n_frames=6, coarse_factor=3)
    errors, warnings = coverage.problems(TRAINED, coverage.needs(cfg, "forecast", 0.01))
    assert not errors and "0.01 ns is outside" in warnings[0]
    _, warnings = coverage.problems(TRAINED, coverage.needs(cfg, "hierarchical", 0.002))
    assert len(warnings) == 1 and "0.006 ns" in warnings[0]  # the coarse spacing
    assert coverage.problems(TRAINED, coverage.needs(cfg, "forecast", 0.004)) == ([], [])


def test_check_warns_or_refuses_and_tolerates_checkpoints_without_coverage(tmp_path, caplog):
    folder = tmp_path / "step"
    folder.mkdir()
    state = TrainingState(step=1, model_config={}, optimizer={}, rng={}, coverage=TRAINED)
    state.write(folder)
    info = tmp_path / "checkpoint.json"
    resolved_record(folder).write(info)
    cfg = SampleConfig(window=10, max_history=3)
    with caplog.at_level(logging.WARNING, logger="boltzkinema.sample.coverage"):
        coverage.check(info, cfg, "forecast", 0.001)
    assert "sample.window 10" in caplog.text
    with pytest.raises(BoltzKinemaError, match=r"sample\.window 10"):
        coverage.check(info, cfg, "forecast", 0.001, strict=True)
    replace(state, coverage=None).write(folder)  # a checkpoint from before coverage
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="boltzkinema.sample.coverage"):
        coverage.check(info, cfg, "forecast", 0.001, strict=True)
    assert "records no training coverage" in caplog.text


def test_the_example_config_trains_what_it_samples():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    train, sample = cfg["train"], cfg["sample"]
    spacings = [r for r in train["segments"]["dt_ns"].values()]
    trained = {
        "n_frames": train["segments"]["n_frames"],
        "max_history": train["tasks"]["max_history"],
        "dt_ns": [min(r[0] for r in spacings), max(r[1] for r in spacings)],
        "tasks": {"forecast": 0.5, "interpolate": 0.3, "equilibrium": 0.2},
    }
    settings = SampleConfig.from_dict(sample)
    for mode in sample["modes"]:
        for dataset in cfg["datasets"].values():
            need = coverage.needs(settings, mode, dataset["frame_dt_ns"])
            assert coverage.problems(trained, need) == ([], []), (mode, dataset)
    assert "sampler" not in sample  # the measured defaults, not the old 8 steps


def test_checkpoints_without_the_frame_conditioning_are_named_as_the_old_layout():
    assert "older layout" in old_layout_hint(
        ["frame_conditioning.given.0", "frame_conditioning.time.1.weight"]
    )
    assert old_layout_hint(["decoder.0.out.weight", "frame_conditioning.given.0"]) == ""


def test_given_frames_are_as_far_apart_as_the_frames_sampled_after_them(model, system):
    frame_dt = float(system.system.attrs["frame_dt_ns"])
    cfg = SampleConfig(n_samples=1, window=4, history=2, n_frames=2, sampler={"n_steps": 2})
    coords, _, extras = sample_system(model, system, "forecast", cfg, 3 * frame_dt)
    assert np.allclose(coords[0, :2], system.system.coords[[0, 3]])
    assert extras["given"].tolist() == [True, True, False, False]
    coords, _, _ = sample_system(model, system, "interpolate", cfg, 3 * frame_dt)
    assert np.allclose(coords[0, [0, -1]], system.system.coords[[0, 9]])
