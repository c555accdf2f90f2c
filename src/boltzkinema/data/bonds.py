"""Covalent bonds from geometry, and the molecules they define."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from boltzkinema.io.chemistry import covalent_radii

BOND_TOLERANCE = 0.45
MIN_BOND = 0.4


def perceive_bonds(
    xyz: np.ndarray, elements: np.ndarray, box: np.ndarray | None = None
) -> np.ndarray:
    """Atom pairs closer than their covalent radii plus a tolerance (Å), minimum-image in a box.

    ``box`` holds orthorhombic lengths; infinite entries mean that axis is not periodic.
    """
    n = len(xyz)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    radii = covalent_radii(elements)
    cutoff = 2 * radii.max() + BOND_TOLERANCE
    orthorhombic = box is not None and box.ndim == 1
    if orthorhombic and np.isfinite(box).all():
        tree = cKDTree(np.mod(xyz, box), boxsize=box)
    elif box is not None and not orthorhombic:  # triclinic: search in wrapped fractional space
        frac = xyz @ np.linalg.inv(box)
        frac -= np.floor(frac)
        tree = cKDTree(frac @ box)
    else:
        tree = cKDTree(xyz)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = xyz[pairs[:, 1]] - xyz[pairs[:, 0]]
    if box is not None:
        d = minimum_image(d, box if orthorhombic else box[None])
    dist = np.linalg.norm(d, axis=1)
    hh = (elements[pairs[:, 0]] == "H") & (elements[pairs[:, 1]] == "H")
    ok = (dist > MIN_BOND) & (dist < radii[pairs[:, 0]] + radii[pairs[:, 1]] + BOND_TOLERANCE) & ~hh
    bonds = np.sort(pairs[ok], axis=1)
    return bonds[np.lexsort((bonds[:, 1], bonds[:, 0]))].astype(np.int64)


def minimum_image(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Displacements ``d`` (..., 3) wrapped to the nearest periodic image.

    ``box`` broadcasts against ``d`` either as orthorhombic lengths (..., 3; an infinite length
    leaves its axis untouched) or, with one more axis, as triclinic cell vectors (..., 3, 3),
    rows a, b, c: the displacement is wrapped in fractional coordinates, which is the nearest
    image for any vector shorter than half the cell's narrowest width (bonds, steps between
    frames).
    """
    if box.ndim == d.ndim + 1:
        frac = np.einsum("...j,...jk->...k", d, np.linalg.inv(box))
        return np.einsum("...j,...jk->...k", frac - np.round(frac), box)
    with np.errstate(invalid="ignore"):
        shift = np.where(np.isfinite(box), np.round(d / box), 0.0)
    return d - np.where(np.isfinite(box), box, 0.0) * shift


def molecules(n_atoms: int, bonds: np.ndarray) -> np.ndarray:
    """Connected-component label of every atom under the bond graph."""
    if n_atoms == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n_atoms, n_atoms))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def bond_lengths(xyz: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """Bond lengths in one frame."""
    return np.linalg.norm(xyz[bonds[:, 1]] - xyz[bonds[:, 0]], axis=1)


def stereo_centres(n_atoms: int, bonds: np.ndarray) -> np.ndarray:
    """(K, 4) rows ``[centre, a, b, c]`` for every atom with three or more bonded neighbours,
    ``a < b < c`` its three lowest-numbered neighbours.

    The signed volume of ``(a, b, c)`` around the centre is the handedness of a tetrahedral
    centre (Cα: N, C, Cβ) and near zero for a planar one (a carbonyl carbon); the rows are a
    pure function of the bond graph. (The evaluation's chirality flips count Cα centres only,
    from ``backbone_geometry``: a planar centre's sign is noise.)
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if n_atoms == 0 or len(bonds) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    # Each bond both ways as one integer key, sorted by atom, then neighbour (np.unique of
    # integers, not of rows: 5x faster).
    keys = np.concatenate(
        [bonds[:, 0] * n_atoms + bonds[:, 1], bonds[:, 1] * n_atoms + bonds[:, 0]]
    )
    atom, neighbour = np.divmod(np.unique(keys), n_atoms)
    first = np.searchsorted(atom, np.arange(n_atoms))
    count = np.bincount(atom, minlength=n_atoms)
    centres = np.flatnonzero(count >= 3)
    rows = first[centres, None] + np.arange(3)
    return np.concatenate([centres[:, None], neighbour[rows]], axis=1).astype(np.int64)
