"""Window poses (data/pose.py): the backbone frame is one construction for every system."""

from __future__ import annotations

import numpy as np
import pytest

from boltzkinema.data.dataset import rmsd_after_superposition
from boltzkinema.data.pose import Pose


def _posed(pose: Pose, frames: np.ndarray) -> np.ndarray:
    centre, rot = pose.of_frames(frames)
    return (frames - centre) @ rot


def test_backbone_pose_puts_the_central_residue_in_its_own_frame(ala2_md):
    system = ala2_md[0]
    frames = system.coords[::50].astype(np.float64)
    pose = Pose.of("backbone", system.atom_names, system.token_index, frames[0])
    assert list(system.atom_names[pose.frame]) == ["N", "CA", "C"]
    x = _posed(pose, frames)
    n, ca, c = (x[:, i] for i in pose.frame)
    assert np.allclose(ca, 0, atol=1e-9)
    assert np.allclose(c[:, 1:], 0, atol=1e-9) and (c[:, 0] > 1.3).all()
    assert np.allclose(n[:, 2], 0, atol=1e-9) and (n[:, 1] > 0).all()
    # A rigid motion of the input does not change the posed coordinates.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    assert np.allclose(_posed(pose, frames @ q + 3.0), x, atol=1e-9)


def test_reference_pose_superposes_the_first_frame_on_the_reference(ala2_md):
    system = ala2_md[0]
    ref = system.coords[0].astype(np.float64)
    frames = system.coords[100:103].astype(np.float64)
    x = _posed(Pose.of("reference", system.atom_names, system.token_index, ref), frames)
    for posed, frame in zip(x, frames, strict=True):
        direct = np.sqrt(((posed - (ref - ref.mean(0))) ** 2).sum(1).mean())
        assert abs(direct - rmsd_after_superposition(frame, ref)) < 1e-9


def test_without_a_backbone_residue_the_backbone_pose_is_the_reference_pose(ala2_md):
    system = ala2_md[0]
    names = np.array(["C1"] * system.n_atoms)
    ref, frames = system.coords[0].astype(float), system.coords[5:7].astype(float)
    backbone = Pose.of("backbone", names, system.token_index, ref)
    reference = Pose.of("reference", names, system.token_index, ref)
    assert len(backbone.frame) == 0
    assert np.allclose(_posed(backbone, frames), _posed(reference, frames))


def test_an_unknown_pose_is_named():
    with pytest.raises(ValueError, match="backbone"):
        Pose.of("aligned", np.array(["CA"]), np.zeros(1, int), np.zeros((1, 3)))
