"""Pad segments of different sizes into one batch with masks for atoms, tokens, frames, bonds
and stereo centres."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from boltzkinema.data.bonds import stereo_centres


def _pad(arrays: list[np.ndarray], shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    size = (len(arrays), *shape)
    # Zeros come from calloc, written once by the copies below (np.full writes everything twice).
    out = np.zeros(size, arrays[0].dtype) if fill == 0 else np.full(size, fill, arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[(i, *tuple(slice(0, s) for s in a.shape))] = a
    return out


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch of padded tensors; ``*_mask`` entries say what is real.

    Extra ``atom.*`` / ``token.*`` entries are padded along atoms / tokens (-1 for integers).
    """
    t = max(len(it["times"]) for it in items)
    m = max(len(it["atom_to_token"]) for it in items)
    n = max(len(it["s_trunk"]) for it in items)
    nb = max(max(len(it["bonds"]) for it in items), 1)
    c_s, c_z = items[0]["s_trunk"].shape[1], items[0]["z_trunk"].shape[2]
    frame_mask = _pad([np.ones(len(it["times"]), bool) for it in items], (t,), False)
    atom_mask = _pad([np.ones(len(it["atom_to_token"]), bool) for it in items], (m,), False)
    token_mask = _pad([np.ones(len(it["s_trunk"]), bool) for it in items], (n,), False)
    bond_mask = _pad([np.ones(len(it["bonds"]), bool) for it in items], (nb,), False)
    centres = [stereo_centres(len(it["atom_to_token"]), it["bonds"]) for it in items]
    nc = max(max(len(c) for c in centres), 1)
    times = _pad([it["times"] for it in items], (t,))
    # Padded frames continue the time axis so that distances stay finite.
    for i, it in enumerate(items):
        k = len(it["times"])
        if k < t:
            step = it["times"][-1] - it["times"][-2] if k > 1 else 1.0
            times[i, k:] = it["times"][-1] + step * np.arange(1, t - k + 1)
    batch = {
        "system_id": [it["system_id"] for it in items],
        "task": [it["task"] for it in items],
        "coords": _pad([it["coords"] for it in items], (t, m, 3)),
        "times": times,
        "sigma_rel": _pad([it["sigma_rel"] for it in items], (t,)),
        "atom_features": _pad(
            [it["atom_features"] for it in items], (m, items[0]["atom_features"].shape[1])
        ),
        "atom_to_token": _pad([it["atom_to_token"] for it in items], (m,)),
        "mol_type": _pad([it["mol_type"] for it in items], (m,), 4),
        "is_ligand": _pad([it["is_ligand"] for it in items], (m,), False),
        "bonds": _pad([it["bonds"].reshape(-1, 2) for it in items], (nb, 2)),
        "centres": _pad(centres, (nc, 4)),
        "s_inputs": _pad([it["s_inputs"] for it in items], (n, c_s)),
        "s_trunk": _pad([it["s_trunk"] for it in items], (n, c_s)),
        "z_trunk": _pad([it["z_trunk"] for it in items], (n, n, c_z)),
        "frame_mask": frame_mask,
        "atom_mask": atom_mask,
        "token_mask": token_mask,
        "bond_mask": bond_mask,
        "centre_mask": _pad([np.ones(len(c), bool) for c in centres], (nc,), False),
    }
    for key in items[0]:
        if key.startswith(("atom.", "token.")):
            rows = m if key.startswith("atom.") else n
            values = [it[key] for it in items]
            fill = -1 if values[0].dtype.kind in "iu" else 0
            batch[key] = _pad(values, (rows, *values[0].shape[1:]), fill)
    batch["sigma_rel"] = np.where(frame_mask, batch["sigma_rel"], 0.0).astype(np.float32)
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
