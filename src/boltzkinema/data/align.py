"""Rigid superposition of every frame on the reference frame (Kabsch), vectorised over frames."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def kabsch_rotations(mobile: Array, target: Array) -> Array:
    """Rotation (F, 3, 3) best mapping centred ``mobile`` (F, K, 3) onto centred ``target`` (K, 3).

    Apply as ``mobile @ R``. The one Kabsch of the package: preprocessing and training data
    call it on NumPy arrays (computed in NumPy, so that forked data workers never enter torch's
    thread pool), evaluation on torch tensors (any device); the result has the input's type.
    """
    numpy = isinstance(mobile, np.ndarray)
    xp, linalg = (np, np.linalg) if numpy else (torch, torch.linalg)
    t = (
        np.asarray(target, dtype=mobile.dtype)
        if numpy
        else torch.as_tensor(target, dtype=mobile.dtype, device=mobile.device)
    )
    h = xp.swapaxes(mobile, 1, 2) @ t
    u, _, vt = linalg.svd(h)
    fix = xp.ones_like(u[:, 0])
    fix[:, 2] = xp.sign(linalg.det(u @ vt))
    return (u * fix[:, None, :]) @ vt


def onto_target(mobile: Array, target: Array) -> tuple[Array, Array]:
    """Centres (F, 1, 3) and rotations (F, 3, 3) that put each ``mobile`` (F, K, 3) on
    ``target`` (K, 3): ``(mobile - centre) @ rotation`` is superposed on the centred target."""
    centre = mobile.mean(axis=-2, keepdims=True)
    return centre, kabsch_rotations(mobile - centre, target - target.mean(axis=0))


def superpose(xyz: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """Superpose all frames on frame 0 by ``selection`` atoms; frame 0's selection centred at 0.

    Centres and rotations come from float64 sums, whatever the input precision, and no
    centred copy of the frames is made: against a centred target the uncentred covariance is
    the centred one, ``(x - c) @ R`` is ``x @ R - c @ R`` (subtracted one coordinate at a time:
    a broadcast over a last axis of length 3 is several times slower), and unselected atoms
    get zero weight instead of being gathered.
    """
    x64 = xyz.astype(np.float64)
    centres = (selection / selection.sum()) @ x64  # (F, 3)
    target = np.where(selection[:, None], x64[0] - centres[0], 0.0)
    rot = kabsch_rotations(x64, target).astype(xyz.dtype)
    rot[0] = np.eye(3)
    out = np.matmul(xyz, rot)
    shift = np.matmul(centres[:, None].astype(xyz.dtype), rot)  # (F, 1, 3)
    for k in range(3):
        out[..., k] -= shift[..., k]
    return out
