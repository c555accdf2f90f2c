"""Rigid superposition of every frame on the reference frame (Kabsch), vectorised over frames."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def kabsch_rotations(mobile: Array, target: Array) -> Array:
    """Rotation (F, 3, 3) best mapping centred ``mobile`` (F, K, 3) onto centred ``target`` (K, 3).

    Apply as ``mobile @ R``. The one Kabsch of the package: preprocessing calls it on NumPy
    arrays, evaluation on torch tensors (any device); the result has the input's type.
    """
    m = torch.as_tensor(mobile)
    t = torch.as_tensor(target, dtype=m.dtype, device=m.device)
    h = m.transpose(1, 2) @ t
    u, _, vt = torch.linalg.svd(h)
    fix = torch.ones_like(u[:, 0])
    fix[:, 2] = torch.sign(torch.linalg.det(u @ vt))
    rot = (u * fix[:, None, :]) @ vt
    return rot.numpy() if isinstance(mobile, np.ndarray) else rot


def onto_target(mobile: Array, target: Array) -> tuple[Array, Array]:
    """Centres (F, 1, 3) and rotations (F, 3, 3) that put each ``mobile`` (F, K, 3) on
    ``target`` (K, 3): ``(mobile - centre) @ rotation`` is superposed on the centred target."""
    centre = mobile.mean(axis=-2, keepdims=True)
    return centre, kabsch_rotations(mobile - centre, target - target.mean(axis=0))


def superpose(xyz: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """Superpose all frames on frame 0 by ``selection`` atoms; frame 0's selection centred at 0."""
    sel = xyz[:, selection]
    centres = sel.mean(axis=1, keepdims=True)
    target = sel[0] - centres[0]
    rot = kabsch_rotations(sel - centres, target)
    rot[0] = np.eye(3)
    return np.matmul(xyz - centres, rot)
