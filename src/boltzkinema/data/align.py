"""Rigid superposition of every frame on the reference frame (Kabsch), vectorised over frames."""

from __future__ import annotations

import numpy as np


def kabsch_rotations(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation (F, 3, 3) best mapping centred ``mobile`` (F, K, 3) onto centred ``target`` (K, 3).

    Apply as ``mobile @ R``.
    """
    h = np.einsum("fki,kj->fij", mobile, target)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(h), 3))
    fix[:, 2] = d
    return (u * fix[:, None, :]) @ vt


def superpose(xyz: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """Superpose all frames on frame 0 by ``selection`` atoms; frame 0's selection centred at 0."""
    sel = xyz[:, selection]
    centres = sel.mean(axis=1, keepdims=True)
    target = sel[0] - centres[0]
    rot = kabsch_rotations(sel - centres, target)
    rot[0] = np.eye(3)
    return np.einsum("fni,fij->fnj", xyz - centres, rot)
