"""Physical steering at sampling time: gradient steps on the denoised estimate.

Boltz-1x / Boltz-2 steer their diffusion sampler with potentials (bond lengths, chirality and
planarity, steric clashes) applied to the network's denoised coordinates at every step; the
sampler then steps towards the corrected estimate. Here the same idea keeps an autoregressive
rollout on the chemistry it started with: every target comes from the system itself (its bond
graph, the reference bond lengths the processed store keeps, and the handedness of the
reference structure), never from frames being generated. Each potential is a flat-bottom
square, so a structure inside its bounds is left as the network made it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.spatial import cKDTree

from boltzkinema.data.bonds import stereo_centres
from boltzkinema.data.dataset import reference_structure
from boltzkinema.data.store import ProcessedSystem
from boltzkinema.settings import settings
from boltzkinema.train.losses import signed_volumes

# |signed volume| of the reference above which a centre is a stereo centre (ideal ±0.77), and
# below which it is planar: alanine dipeptide's carbonyl carbons reach 0.27 at the 99.9th
# percentile of 5 ns of MD at 300 K (0.34 at most), its Cα stays above 0.46.
TETRAHEDRAL = 0.45
PLANAR = 0.35


@settings("sample.steering")
class SteeringConfig:
    """The ``sample.steering`` section: weights (0 = off), bounds and the descent."""

    bonds: float
    chirality: float
    clashes: float
    bond_tolerance: float
    volume_margin: float
    planar_tolerance: float
    clash_distance: float
    pair_cutoff: float
    steps: int
    step_size: float

    @property
    def active(self) -> bool:
        return self.steps > 0 and max(self.bonds, self.chirality, self.clashes) > 0


@dataclass(frozen=True)
class Restraints:
    """What the potentials hold a system to, from its topology and reference structure."""

    bonds: torch.Tensor  # (K, 2) atom pairs
    lengths: torch.Tensor  # (K,) Å
    centres: torch.Tensor  # (C, 4) [centre, a, b, c]
    handedness: torch.Tensor  # (C,) +1/-1 at stereo centres, 0 elsewhere
    volumes: torch.Tensor  # (C,) signed volumes of the reference
    planar: torch.Tensor  # (C,) bool
    pairs: torch.Tensor  # (P, 2) atoms neither bonded nor sharing a neighbour
    closest: torch.Tensor  # (P,) Å: the pair's distance in the reference

    def to(self, device: torch.device) -> Restraints:
        return Restraints(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def restraints(system: ProcessedSystem, pair_cutoff: float) -> Restraints:
    """Bonds with their reference lengths, stereo and planar centres with the reference's
    handedness, and the non-bonded pairs (beyond 1–3) within ``pair_cutoff`` Å in the reference
    with their distance there (a pair the reference holds closer than ``clash_distance``, such
    as a 1–4 pair, is only kept from coming closer than 90 % of that).

    The pair list is fixed from the reference, so that the cost stays linear in the contacts of
    one structure rather than M² per step; contacts that form farther than ``pair_cutoff`` from
    where they started are not steered.
    """
    ref = reference_structure(system).astype(np.float32)
    m = system.n_atoms
    bonds = np.asarray(system.bonds, dtype=np.int64).reshape(-1, 2)
    centres = stereo_centres(m, bonds)
    volumes = signed_volumes(torch.from_numpy(ref)[None, None], torch.from_numpy(centres)[None])
    volumes = volumes[0, 0]
    tetrahedral = volumes.abs() > TETRAHEDRAL
    handedness = torch.where(tetrahedral, torch.sign(volumes), torch.zeros_like(volumes))
    i, j = cKDTree(ref).query_pairs(pair_cutoff, output_type="ndarray").T.reshape(2, -1)
    adj = coo_matrix((np.ones(2 * len(bonds)), (bonds.ravel(), bonds[:, ::-1].ravel())), (m, m))
    adj = adj.tocsr()
    near = adj + adj @ adj  # bonded, or sharing a neighbour (sparse: linear in the bonds)
    keep = np.asarray(near[i, j]).ravel() == 0
    i, j = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
    dist = np.linalg.norm(ref[i] - ref[j], axis=-1)
    return Restraints(
        bonds=torch.from_numpy(bonds),
        lengths=torch.from_numpy(np.asarray(system.bond_lengths, dtype=np.float32)),
        centres=torch.from_numpy(centres),
        handedness=handedness,
        volumes=volumes,
        planar=volumes.abs() < PLANAR,
        pairs=torch.from_numpy(np.stack([i, j], axis=1).astype(np.int64)),
        closest=torch.from_numpy(dist.astype(np.float32)),
    )


def _flat_bottom(excess: torch.Tensor) -> torch.Tensor:
    return torch.relu(excess).square().sum()


def energy(x: torch.Tensor, r: Restraints, cfg: SteeringConfig) -> torch.Tensor:
    """The steering potential of coordinates (B, T, M, 3), summed over everything."""
    total = x.new_zeros(())
    if cfg.bonds > 0 and len(r.bonds):
        d = (x[..., r.bonds[:, 0], :] - x[..., r.bonds[:, 1], :]).norm(dim=-1)
        total = total + cfg.bonds * _flat_bottom((d - r.lengths).abs() - cfg.bond_tolerance)
    if cfg.chirality > 0 and len(r.centres):
        v = signed_volumes(x, r.centres[None].expand(x.shape[0], -1, -1))
        least = torch.clamp(0.9 * r.volumes.abs(), max=cfg.volume_margin)
        chiral = _flat_bottom((least - r.handedness * v)[..., r.handedness != 0])
        flat = _flat_bottom(v[..., r.planar].abs() - cfg.planar_tolerance)
        total = total + cfg.chirality * (chiral + flat)
    if cfg.clashes > 0 and len(r.pairs):
        d = (x[..., r.pairs[:, 0], :] - x[..., r.pairs[:, 1], :]).norm(dim=-1)
        bound = torch.clamp(0.9 * r.closest, max=cfg.clash_distance)
        total = total + cfg.clashes * _flat_bottom(bound - d)
    return total


def steer(x: torch.Tensor, r: Restraints, cfg: SteeringConfig) -> torch.Tensor:
    """``cfg.steps`` gradient steps of size ``cfg.step_size`` on :func:`energy` from ``x``."""
    y = x.detach().clone()
    with torch.enable_grad():
        for _ in range(cfg.steps):
            y.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(y, r, cfg), y)
            y = (y - cfg.step_size * grad).detach()
    return y
