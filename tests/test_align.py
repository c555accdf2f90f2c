"""Rigid superposition of a trajectory on its first frame (preprocessing)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from boltzkinema.data.align import superpose


def _moved_copies(n_frames: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 60-atom body far from the origin, rigidly moved in every frame, plus 5 atoms that
    move on their own; returns the frames and the body's mask."""
    rng = np.random.default_rng(seed)
    body = rng.normal(scale=8.0, size=(60, 3)) + np.array([40.0, -25.0, 70.0])
    frames = []
    for r in Rotation.random(n_frames, random_state=seed):
        free = rng.normal(scale=20.0, size=(5, 3))
        frames.append(np.vstack([r.apply(body) + rng.normal(scale=30.0, size=3), free]))
    mask = np.r_[np.ones(60, bool), np.zeros(5, bool)]
    return np.asarray(frames), mask


def test_rigidly_moved_frames_land_on_the_centred_first_frame():
    xyz, body = _moved_copies()
    out = superpose(xyz.astype(np.float32), body)
    assert out.dtype == np.float32
    assert np.allclose(out[0, body].mean(0), 0.0, atol=1e-4)
    assert np.abs(out[:, body] - out[0, body]).max() < 1e-3


def test_unselected_atoms_do_not_move_the_fit():
    xyz, body = _moved_copies()
    moved = xyz.copy()
    moved[:, ~body] += 500.0
    assert np.allclose(superpose(moved, body)[:, body], superpose(xyz, body)[:, body], atol=1e-9)


def test_float32_frames_match_a_float64_fit_to_their_precision():
    xyz, body = _moved_copies()
    xyz[1:, body] += np.random.default_rng(1).normal(scale=0.5, size=xyz[1:, body].shape)
    exact = superpose(xyz, body)
    assert np.abs(superpose(xyz.astype(np.float32), body) - exact).max() < 1e-4
