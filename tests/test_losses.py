"""Losses: zero where they should be, blind to padding, masked to target frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boltzkinema.data.bonds import stereo_centres
from boltzkinema.data.collate import collate
from boltzkinema.train.losses import (
    LossWeights,
    bond_loss,
    chirality_loss,
    flexibility_loss,
    geometry_weights,
    ligand_centre_loss,
    signed_volumes,
    smooth_lddt_loss,
    structure_loss,
    total_loss,
)

W = LossWeights()


def lddt(pred: torch.Tensor, batch: dict, chunk: int = W.chunk) -> torch.Tensor:
    return smooth_lddt_loss(pred, batch, W.lddt_cutoff, chunk)


def flexibility(pred: torch.Tensor, batch: dict) -> torch.Tensor:
    return flexibility_loss(pred, batch, W.lddt_cutoff, W.chunk)


def item(m: int = 40, t: int = 4, seed: int = 0, n_lig: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(0, 1.0, (m, 3)), axis=0)
    coords = base[None] + rng.normal(0, 0.5, (t, m, 3))
    mol_type = np.zeros(m, dtype=np.int64)
    mol_type[-n_lig:] = 3
    return {
        "system_id": f"s{seed}",
        "task": "forecast",
        "coords": coords.astype(np.float32),
        "times": np.arange(t, dtype=np.float32),
        "sigma_rel": np.r_[0.0, np.full(t - 1, 5.0)].astype(np.float32),
        "atom_features": np.zeros((m, 4), np.float32),
        "atom_to_token": np.arange(m) // 2,
        "mol_type": mol_type,
        "is_ligand": mol_type == 3,
        # A chain with a side branch on every fifth atom, so that some atoms are stereo centres.
        "bonds": np.concatenate(
            [
                np.stack([np.arange(m - 1), np.arange(1, m)], axis=1),
                np.stack([np.arange(1, m - 2, 5), np.arange(3, m, 5)], axis=1),
            ]
        ),
        "s_inputs": np.zeros(((m + 1) // 2, 4), np.float32),
        "s_trunk": np.zeros(((m + 1) // 2, 4), np.float32),
        "z_trunk": np.zeros(((m + 1) // 2, (m + 1) // 2, 2), np.float32),
    }


def _noisy(batch: dict, scale: float = 1.0, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return batch["coords"] + scale * torch.randn(batch["coords"].shape, generator=g)


TERMS = [
    lambda p, b: structure_loss(p, b, 16.0),
    bond_loss,
    lddt,
    flexibility,
    ligand_centre_loss,
    chirality_loss,
]


@pytest.mark.parametrize("term", TERMS)
def test_each_term_ignores_padding(term):
    small = collate([item(seed=0)])
    padded = collate([item(seed=0), item(m=90, t=6, seed=1)])
    pred_small = _noisy(small)
    pred_padded = _noisy(padded)
    pred_padded[0, : small["coords"].shape[1], : small["coords"].shape[2]] = pred_small[0]
    one = {k: v[:1] for k, v in padded.items()}
    a = term(pred_small, small)
    b = term(pred_padded[:1], one)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


def test_perfect_prediction_scores_best():
    batch = collate([item()])
    exact = batch["coords"].clone()
    assert structure_loss(exact, batch, 16.0) < 1e-8
    assert bond_loss(exact, batch) < 1e-10
    assert flexibility(exact, batch) < 1e-4
    assert lddt(exact, batch) < lddt(_noisy(batch), batch)


def test_structure_loss_ignores_a_rigid_motion_of_the_prediction():
    batch = collate([item()])
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    moved = batch["coords"] @ q + torch.tensor([3.0, -2.0, 1.0])
    assert structure_loss(moved, batch, 16.0) < 1e-6


def test_conditioning_frames_carry_no_loss():
    batch = collate([item()])
    pred = batch["coords"].clone()
    pred[:, 0] += 10.0  # frame 0 has σ = 0
    assert structure_loss(pred, batch, 16.0) < 1e-8 and bond_loss(pred, batch) == 0


def test_bond_loss_counts_only_real_bonds():
    batch = collate([item(), item(m=60, seed=2)])
    pred = batch["coords"].clone()
    pred[0, :, 45:] += 100.0  # padding atoms of the first item (it has 40)
    assert bond_loss(pred, batch) < 1e-10


def test_lddt_in_chunks_equals_one_chunk():
    batch = collate([item(m=70)])
    pred = _noisy(batch)
    assert torch.allclose(lddt(pred, batch, chunk=16), lddt(pred, batch, chunk=512))


def test_stereo_centres_are_atoms_with_three_bonded_neighbours():
    # Alanine dipeptide heavy atoms: ACE CH3 0, C 1, O 2; N 3, CA 4, CB 5, C 6, O 7; NME N 8, C 9.
    bonds = np.array([[0, 1], [1, 2], [1, 3], [3, 4], [4, 5], [4, 6], [6, 7], [6, 8], [8, 9]])
    centres = stereo_centres(10, bonds)
    assert centres.tolist() == [[1, 0, 2, 3], [4, 3, 5, 6], [6, 4, 7, 8]]


def test_stereo_centres_ignore_bond_direction_order_and_repeats():
    bonds = np.array([[0, 1], [1, 2], [1, 3], [3, 4], [4, 5], [4, 6], [6, 7], [6, 8], [8, 9]])
    messy = np.concatenate([bonds[::-1, ::-1], bonds[:3]])
    assert np.array_equal(stereo_centres(10, messy), stereo_centres(10, bonds))


def test_chirality_loss_sees_a_mirror_image_and_nothing_rigid():
    batch = collate([item()])
    assert batch["centre_mask"].sum() > 0
    exact = batch["coords"].clone()
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    q = q * torch.sign(torch.linalg.det(q))  # a proper rotation
    mirror = exact * torch.tensor([-1.0, 1.0, 1.0])
    assert chirality_loss(exact, batch) < 1e-10
    assert chirality_loss(exact @ q + 2.0, batch) < 1e-8
    # Distances cannot tell the mirror image apart; the chirality term can.
    assert bond_loss(mirror, batch) < 1e-8 and lddt(mirror, batch) < 1e-3 + (lddt(exact, batch))
    assert chirality_loss(mirror, batch) > 0.1


def test_signed_volume_of_a_tetrahedral_centre_is_its_handedness():
    tet = torch.tensor([[0.0, 0, 0], [1, 1, 1], [1, -1, -1], [-1, 1, -1]])[None, None]
    v = signed_volumes(tet, torch.tensor([[[0, 1, 2, 3]]]))
    assert abs(abs(float(v)) - 0.770) < 1e-3
    assert torch.allclose(signed_volumes(-tet, torch.tensor([[[0, 1, 2, 3]]])), -v)


def test_total_loss_reports_every_term():
    batch = collate([item()])
    total, terms = total_loss(_noisy(batch), batch, LossWeights(ligand_centre=1.0), 16.0)
    assert set(terms) == {"structure", "bond", "lddt", "flexibility", "ligand_centre", "chirality"}
    assert torch.isfinite(total) and terms["ligand_centre"] > 0


def test_losses_make_their_tensors_on_the_batch_device():
    """On a GPU every tensor a loss creates must sit beside the batch (meta stands in here)."""
    from boltzkinema.train.losses import atom_weights

    b, t, m = 1, 2, 12
    batch = {
        "coords": torch.zeros(b, t, m, 3, device="meta"),
        "atom_mask": torch.ones(b, m, dtype=torch.bool, device="meta"),
        "mol_type": torch.zeros(b, m, dtype=torch.long, device="meta"),
        "frame_mask": torch.ones(b, t, dtype=torch.bool, device="meta"),
        "sigma_rel": torch.ones(b, t, device="meta"),
    }
    assert atom_weights(batch).device.type == "meta"
    pred = torch.zeros(b, t, m, 3, device="meta")
    assert lddt(pred, batch, chunk=5).device.type == "meta"


GEOMETRIC = ("bond", "lddt", "flexibility", "chirality")


def _terms_at(sigma_rel: float, geometry_sigma: float | None) -> dict[str, float]:
    batch = collate([item()])
    batch["sigma_rel"] = torch.where(batch["sigma_rel"] > 0, sigma_rel, 0.0)
    weights = LossWeights(geometry_sigma=geometry_sigma)
    return total_loss(_noisy(batch), batch, weights, 16.0)[1]


def test_geometric_terms_fade_at_high_noise_by_s2_over_sigma2_plus_s2():
    """geometry_sigma s = 0.3 Å: at σ = 16 Å the bond, lDDT, flexibility and chirality terms
    count 0.09/256.09 of their full weight, at σ = 0.016 Å almost all of it; the denoising
    (structure) term does not change."""
    s = 0.3
    for sigma_rel in (1.0, 0.001):
        sigma = sigma_rel * 16.0
        full, faded = _terms_at(sigma_rel, None), _terms_at(sigma_rel, s)
        for name in GEOMETRIC:
            assert faded[name] == pytest.approx(full[name] * s**2 / (sigma**2 + s**2), rel=1e-5)
        assert faded["structure"] == full["structure"]


def test_without_geometry_sigma_every_noise_level_weighs_the_same():
    assert LossWeights().geometry_sigma is None
    assert geometry_weights(torch.tensor([0.01, 1.0, 100.0]), None).tolist() == [1.0, 1.0, 1.0]
