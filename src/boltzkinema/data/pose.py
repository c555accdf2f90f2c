"""The pose a window is shown to the network in, from its first frame.

- ``random``: a uniform rotation (the network learns rotations from data);
- ``reference``: the first frame superposed on the system's reference structure (Kabsch); one
  pose per conformation of a system, but each system's own;
- ``backbone``: the first frame in the local frame of one residue's N, CA and C (the residue
  whose CA is nearest the reference's centre; origin at that CA), the same construction for
  every system, so that the pose means the same thing for systems never trained on.

Training (``train.segments.pose``) and sampling (from the checkpoint's coverage) share
:class:`Pose`; sampling turns each window into the pose and its output back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from boltzkinema.data.align import onto_target

POSES = ("random", "reference", "backbone")
FRAME_ATOMS = ("N", "CA", "C")


def frame_atoms(atom_names: np.ndarray, token_index: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Indices of N, CA, C of the residue whose CA is nearest the centre of ``ref`` (M, 3);
    empty when no residue has all three (then ``backbone`` falls back to ``reference``)."""
    names = np.asarray(atom_names).astype(str)
    best, best_d = np.zeros(0, dtype=np.int64), np.inf
    centre = ref.mean(axis=0)
    for token in np.unique(token_index[names == "CA"]):
        idx = [np.flatnonzero((token_index == token) & (names == n)) for n in FRAME_ATOMS]
        if any(len(i) != 1 for i in idx):
            continue
        d = float(np.linalg.norm(ref[idx[1][0]] - centre))
        if d < best_d:
            best, best_d = np.array([i[0] for i in idx]), d
    return best


def backbone_frames(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Rotations (F, 3, 3) whose columns are the residue frame axes (CA→C, the N direction
    orthogonalised, their cross product): ``x @ R`` gives coordinates in that frame."""
    e1 = c - ca
    e1 = e1 / np.linalg.norm(e1, axis=-1, keepdims=True)
    u = n - ca
    e2 = u - (u * e1).sum(-1, keepdims=True) * e1
    e2 = e2 / np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


@dataclass(frozen=True)
class Pose:
    """How windows of one system (or crop) are posed: ``kind``, the reference structure and
    the frame atoms (empty: none)."""

    kind: str
    reference: np.ndarray
    frame: np.ndarray

    @classmethod
    def of(cls, kind: str, atom_names: np.ndarray, token_index: np.ndarray, ref: np.ndarray):
        if kind not in POSES:
            raise ValueError(f"segments.pose {kind!r}: use one of {POSES}")
        frame = frame_atoms(atom_names, token_index, ref) if kind == "backbone" else None
        return cls(kind, ref, np.zeros(0, dtype=np.int64) if frame is None else frame)

    def of_frames(self, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centres (S, 1, 3) and rotations (S, 3, 3) putting first frames (S, M, 3) in the pose:
        ``(x - centre) @ rotation``. Not for ``random`` (the caller draws it)."""
        if self.kind == "backbone" and len(self.frame) == 3:
            n, ca, c = (first[:, i] for i in self.frame)
            return ca[:, None], backbone_frames(n, ca, c)
        return onto_target(first, self.reference)
