"""Physical steering at sampling time, on the shipped alanine dipeptide MD: it leaves a real
structure alone, puts noisy bonds and a mirror image back, and only touches generated frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boltzkinema.evaluate import metrics as mt
from boltzkinema.evaluate.pooled import bond_length_rmse
from boltzkinema.sample.job import SampleConfig, steering_for
from boltzkinema.sample.sampler import SamplerConfig, sample
from boltzkinema.sample.steering import SteeringConfig, energy, restraints, steer

ON = SteeringConfig(bonds=1.0, chirality=1.0, clashes=1.0, steps=30)


@pytest.fixture
def ala2(ala2_md):
    return ala2_md[0]


def frames(system, n: int = 4) -> torch.Tensor:
    return torch.from_numpy(system.coords[:n].astype(np.float32))[None]  # (1, T, M, 3)


def flips(system, x: torch.Tensor) -> float:
    held = restraints(system, SteeringConfig().pair_cutoff)
    tetra = held.centres[held.handedness != 0].numpy()
    return mt.chirality_flips(x[0].double().numpy(), system.coords[0], tetra)


def test_restraints_come_from_the_topology_and_its_reference(ala2):
    held = restraints(ala2, SteeringConfig().pair_cutoff)
    assert len(held.bonds) == len(ala2.bonds) and len(held.lengths) == len(ala2.bonds)
    names = [ala2.atom_names[c] for c in held.centres[held.handedness != 0, 0]]
    assert "CA" in names  # alanine's Cα is a stereo centre; carbonyl carbons are planar
    assert held.planar.sum() >= 2
    bonded = {tuple(sorted(b)) for b in ala2.bonds.tolist()}
    assert not bonded & {tuple(p) for p in held.pairs.tolist()}


def test_a_real_structure_costs_nothing_and_is_left_alone(ala2):
    x = frames(ala2, 1)
    held = restraints(ala2, SteeringConfig().pair_cutoff)
    assert float(energy(x, held, ON)) == 0.0
    assert torch.equal(steer(x, held, ON), x)


def test_noisy_bonds_come_back_within_their_tolerance(ala2):
    x = frames(ala2)
    noisy = x + 0.15 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    before = bond_length_rmse(noisy[0].double().numpy(), ala2)
    after = bond_length_rmse(
        steer(noisy, restraints(ala2, SteeringConfig().pair_cutoff), ON)[0].double().numpy(), ala2
    )
    assert before > 0.1 and after < 0.03


def test_a_mirror_image_gets_its_handedness_back(ala2):
    x = frames(ala2)
    mirror = x * torch.tensor([-1.0, 1.0, 1.0])
    held = restraints(ala2, SteeringConfig().pair_cutoff)
    assert flips(ala2, mirror) == 1.0 and float(energy(mirror, held, ON)) > 0
    fixed = steer(mirror, held, SteeringConfig(chirality=1.0, bonds=1.0, steps=200))
    assert flips(ala2, fixed) == 0.0
    assert bond_length_rmse(fixed[0].double().numpy(), ala2) < 0.05


def test_the_sampler_steers_generated_frames_only(ala2):
    x = frames(ala2)
    mirror = x * torch.tensor([-1.0, 1.0, 1.0])
    mask = torch.tensor([[True, False, False, False]])
    held = restraints(ala2, SteeringConfig().pair_cutoff)

    def denoise(y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return mirror  # a network that always answers with the mirror image

    cfg = SamplerConfig(n_steps=6)
    steer_fn = lambda y: steer(y, held, SteeringConfig(chirality=1.0, bonds=1.0, steps=40))  # noqa: E731
    plain = sample(denoise, x, mask, cfg, torch.Generator().manual_seed(0))
    steered = sample(denoise, x, mask, cfg, torch.Generator().manual_seed(0), steer_fn)
    assert torch.equal(steered[:, 0], x[:, 0])  # the given frame is untouched
    assert flips(ala2, plain[:, 1:]) == 1.0 and flips(ala2, steered[:, 1:]) == 0.0


def test_steering_is_off_unless_a_weight_is_set(ala2):
    device = torch.device("cpu")
    assert steering_for(ala2, SampleConfig(), device) is None
    assert steering_for(ala2, SampleConfig(steering={"bonds": 1.0, "steps": 0}), device) is None
    assert steering_for(ala2, SampleConfig(steering={"bonds": 1.0}), device) is not None
