"""Metrics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from boltzkinema.evaluate import metrics as mt


def ensemble(f=60, m=12, seed=0, spread=0.5):
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(0, 1.5, (m, 3)), axis=0)
    return base[None] + rng.normal(0, spread, (f, m, 3))


def test_identical_ensembles_score_perfectly():
    x = ensemble()
    p, r = mt.aligned(x, x)
    assert mt.pearson(mt.rmsf(p), mt.rmsf(r)) == pytest.approx(1.0)
    assert mt.rmwd(p, r) == pytest.approx(0.0, abs=1e-4)
    assert mt.pca_w2(p, r) == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(mt.torsion_jsd(np.zeros((5, 2)), np.zeros((5, 2))), 0.0)


def test_rmwd_of_shifted_gaussians_is_the_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1.0, (20000, 4, 3))
    b = a + np.array([3.0, 0.0, 0.0])
    assert mt.rmwd(a, b) == pytest.approx(3.0, rel=1e-3)


def test_rmwd_of_scaled_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1.0, (40000, 2, 3))
    # W2² between N(0, I) and N(0, 4I) in 3-D is 3 (2 - 1)² = 3.
    assert mt.rmwd(a, 2 * a) == pytest.approx(np.sqrt(3.0), rel=2e-2)


def test_rmsf_and_pairwise_rmsd_of_a_known_ensemble():
    x = np.zeros((2, 3, 3))
    x[1, :, 0] = [1.0, -1.0, 0.0]  # breathing motion, not removable by superposition
    assert np.allclose(mt.rmsf(x), [0.5, 0.5, 0.0])
    # No per-pair superposition; AlphaFlow's mean over all 2 × 2 pairs, the zero diagonal too.
    assert mt.pairwise_rmsd(x) == pytest.approx(np.sqrt(2 / 3) / 2)
    assert mt.pairwise_rmsd(x, include_self=False) == pytest.approx(np.sqrt(2 / 3))


def test_contact_sets_on_a_hand_made_trajectory():
    ref0 = np.array(
        [[0, 0, 0], [3.8, 0, 0], [7.6, 0, 0], [11.4, 0, 0], [15.2, 0, 0], [4.0, 5.0, 0]], float
    )
    frames = np.repeat(ref0[None], 10, axis=0)
    frames[:5, 5] = [30.0, 30.0, 0.0]  # atom 5 leaves half the time: its contacts are weak
    frames[:3, 4] = [2.0, 3.0, 0.0]  # atom 4 visits atoms 0 and 1 in 30 % of frames
    weak, transient = mt.contact_sets(frames, ref0, min_separation=3)
    assert weak == {(0, 5), (1, 5), (2, 5)}
    assert transient == {(0, 4), (1, 4)}
    # AlphaFlow counts every pair: the sequence neighbours 3-4 part 30 % of the time.
    weak, transient = mt.contact_sets(frames, ref0)
    assert weak == {(0, 5), (1, 5), (2, 5), (3, 4)}
    assert transient == {(0, 4), (1, 4)}
    assert mt.jaccard({(0, 4)}, {(0, 4), (1, 5)}) == pytest.approx(0.5)


def test_decorrelation_time_of_a_slow_and_a_fast_signal():
    t = np.arange(800)
    slow = np.sin(2 * np.pi * t / 200)
    fast = np.random.default_rng(0).normal(size=800)
    t_slow, censored_slow = mt.decorrelation_time(slow, 1.0)
    t_fast, censored_fast = mt.decorrelation_time(fast, 1.0)
    assert not censored_slow and not censored_fast
    assert t_slow > 10 * t_fast


def test_dihedral_of_a_known_geometry():
    x = np.array([[[1.0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 1]]])
    assert float(mt.dihedrals(x, np.array([[0, 1, 2, 3]]))[0, 0]) == pytest.approx(-np.pi / 2)


def test_validity_counts_bond_violations_and_clashes():
    x = np.array([[[0, 0, 0], [1.5, 0, 0], [3.0, 0, 0], [0.5, 0.5, 0.0]]], float)
    bonds = np.array([[0, 1], [1, 2]])
    assert mt.bond_violations(x, bonds, np.array([1.5, 1.2])) == 0.5
    assert mt.clashes(x, bonds) == 2  # unbonded atom 3 sits on atoms 0 and 1


def test_mirror_image_flips_every_chiral_centre_and_breaks_nothing():
    x = ensemble(f=3, m=8, spread=0.0)
    centres = np.array([[0, 2, 3, 1], [4, 6, 7, 5]])
    assert mt.chirality_flips(x, x[0], centres) == 0.0
    mirrored = x * np.array([-1.0, 1.0, 1.0])
    assert mt.chirality_flips(mirrored, x[0], centres) == 1.0
    pairs = np.array([[0, 1], [1, 2]])
    stretched = x.copy()
    stretched[:, 2] += 20.0
    assert mt.chain_breaks(stretched, pairs) == 1.0


def test_pocket_contacts_all_kept_when_nothing_moves_and_lost_when_the_ligand_leaves():
    x = ensemble(f=4, m=10, spread=0.0)
    lig = np.zeros(10, bool)
    lig[-2:] = True
    x[:, -2:] = x[:, :2] + 1.0  # ligand atoms beside receptor atoms 0 and 1
    assert mt.pocket_contacts_kept(x, x[0], lig, ~lig) == 1.0
    gone = x.copy()
    gone[:, -2:] += 50.0
    assert mt.pocket_contacts_kept(gone, x[0], lig, ~lig) == 0.0


def test_tica_projection_of_a_two_state_switch_has_its_relaxation_time():
    # Three angles switch together between two basins with probability p per step: the slow
    # process relaxes as (1 − 2p)^k, so TICA-0 decorrelates and the slowest implied timescale
    # is −1 / ln(1 − 2p) steps (about 100 switches: ~10 % statistical error); a model that
    # copies the reference has zero JSDs.
    rng = np.random.default_rng(0)
    n, p = 5000, 0.02
    state = np.cumsum(rng.random(n) < p) % 2
    angles = np.where(state == 0, -1.0, 2.0)[:, None] + 0.3 * rng.normal(size=(n, 3))
    feats = mt.torsion_features(angles)
    kw = {"n_clusters": 20, "n_metastable": 2}  # MDGen: 100 and 10 (slow PCCA+ fits)
    out = mt.kinetics(feats, [feats[: n // 2], feats[n // 2 :]], 1.0, 1.0, **kw)
    tau = -1 / np.log(1 - 2 * p)
    assert out["its_slowest_ns_ref"] == pytest.approx(tau, rel=0.25)
    assert out["decorrelation_ns_ref"] == pytest.approx(tau, rel=0.25)
    assert not out["decorrelation_ns_ref_censored"]
    assert out["tica0_jsd"] == pytest.approx(0.0, abs=1e-9)
    assert out["msm_state_jsd"] == pytest.approx(0.0, abs=1e-9)
    stuck = mt.torsion_features(np.full((500, 3), -1.0) + 0.3 * rng.normal(size=(500, 3)))
    out = mt.kinetics(feats, [stuck], 1.0, 1.0, **kw)
    # Half the reference in the model's basin: JSD² = ½ ln(4/3) + ¼ ln(2/3) + ¼ ln 2 per histogram
    # of the same shape, and at least the other basin's population is missing twice over in L1.
    half = np.sqrt(0.5 * np.log(4 / 3) + 0.25 * np.log(2 / 3) + 0.25 * np.log(2))
    assert out["tica0_jsd"] == pytest.approx(half, abs=0.03)
    assert out["msm_state_l1"] >= 2 * state.mean() - 0.05  # state 1 is the other basin


def test_torch_tensors_on_any_device_give_the_numbers_numpy_does():
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = ensemble(seed=3), ensemble(seed=4)
    tx, ty = torch.tensor(x, device=dev), torch.tensor(y, device=dev)
    for metric in (mt.rmwd, mt.pca_w2, mt.pairwise_rmsd):
        args = (x,) if metric is mt.pairwise_rmsd else (x, y)
        targs = (tx,) if metric is mt.pairwise_rmsd else (tx, ty)
        assert metric(*targs) == pytest.approx(metric(*args), rel=1e-9)
    assert mt.contact_sets(tx, ty[0]) == mt.contact_sets(x, y[0])


def test_long_trajectories_stream_in_chunks():
    x = ensemble(f=3 * mt.CHUNK + 5, m=6)
    full = np.mean([np.linalg.norm(f[:, None] - f[None], axis=-1) < 8.0 for f in x], axis=0)
    assert np.allclose(mt.contact_fraction(x).numpy(), full)
    # Pairwise RMSD looks at an even subsample of at most max_frames frames.
    assert mt.pairwise_rmsd(x, max_frames=20) == pytest.approx(mt.pairwise_rmsd(x), rel=0.2)
