"""Per-atom input features of the diffusion model."""

from __future__ import annotations

import numpy as np

ELEMENTS = ["C", "N", "O", "S", "P", "H", "F", "Cl", "Br", "I", "Se"]  # + "other"
ATOM_NAME_CLASSES = {"N": 0, "CA": 1, "C": 2, "O": 3, "CB": 4}
N_ELEMENTS = len(ELEMENTS) + 1
N_MOL_TYPES = 5
N_ATOM_NAME_CLASSES = len(ATOM_NAME_CLASSES) + 1
ATOM_FEATURES = N_ELEMENTS + N_MOL_TYPES + N_ATOM_NAME_CLASSES + 3


def atom_features(
    elements: np.ndarray, mol_type: np.ndarray, atom_names: np.ndarray, ref: np.ndarray
) -> np.ndarray:
    """One-hot element, molecule type and backbone-name class, plus reference position / 10 Å."""
    m = len(elements)
    el = np.array([ELEMENTS.index(e) if e in ELEMENTS else N_ELEMENTS - 1 for e in elements])
    name = np.array([ATOM_NAME_CLASSES.get(str(a), N_ATOM_NAME_CLASSES - 1) for a in atom_names])
    feats = np.zeros((m, ATOM_FEATURES), dtype=np.float32)
    feats[np.arange(m), el] = 1.0
    feats[np.arange(m), N_ELEMENTS + mol_type.astype(int)] = 1.0
    feats[np.arange(m), N_ELEMENTS + N_MOL_TYPES + name] = 1.0
    feats[:, -3:] = ref / 10.0
    return feats
