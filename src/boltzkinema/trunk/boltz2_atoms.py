"""Boltz-2's conditioning features for every atom of ours: the inputs of the Boltz-2-layout
diffusion module (``model.architecture: boltz2``).

The Boltz-2 trunk sees Boltz's own atom list (:func:`~boltzkinema.trunk.boltz2_features.
build_features`): per residue the heavy atoms of ``const.ref_atoms`` (OXT and hydrogens are not
among them), per ligand token its one heavy atom. The diffusion module must move every atom of
the processed system, so :func:`diffusion_features` gives each of our atoms the features of its
Boltz counterpart (same token and atom name; a ligand token's only atom) and builds them for the
atoms Boltz does not have: our element and name, charge 0, the residue's ``ref_space_uid``, and a
reference position taken from our frame 0 by superposing (Kabsch) the matched atoms it is bonded
to (then theirs, then the nearest) onto their reference positions, so an OXT sits beside its C
and O, and a hydrogen beside its heavy atom, in the residue's reference frame.

The token features the diffusion module reads (relative-position ids, residue types) come along;
``token_index`` is not among them: as in Boltz, it counts the tokens of the (cropped) input.
Keys are ``atom.<name>`` (one row per atom of ours) and ``token.<name>`` (one row per token).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from boltzkinema.data.align import kabsch_rotations
from boltzkinema.io.chemistry import atomic_number
from boltzkinema.settings import default
from boltzkinema.trunk.boltz2_features import (
    DEFAULT_METHOD,
    FeatureError,
    build_features,
    name_chars,
)
from boltzkinema.trunk.cache import entry_metadata

if TYPE_CHECKING:
    from boltzkinema.data.store import ProcessedSystem

TOKEN_KEYS = (
    "residue_index",
    "asym_id",
    "entity_id",
    "sym_id",
    "cyclic_period",
    "res_type",
    "modified",
    "mol_type",
)
# Older PDB spellings of nucleic-acid atom names → the CCD names Boltz uses.
NAME_ALIASES = {"O1P": "OP1", "O2P": "OP2", "C5M": "C7"}
NEIGHBOURS = 3  # known atoms that place an atom Boltz does not have


def canonical_name(name: str) -> str:
    """An atom name as the CCD spells it (``C5*`` → ``C5'``, ``O1P`` → ``OP1``)."""
    n = str(name).strip().replace("*", "'")
    return NAME_ALIASES.get(n, n)


def _decode(chars: np.ndarray) -> str:
    return "".join(chr(int(c) + 32) for c in chars).rstrip()


def match_atoms(system: ProcessedSystem, packed: dict[str, np.ndarray]) -> np.ndarray:
    """For each atom of ours, the index of its Boltz atom in ``packed`` (-1 where Boltz has none).

    Within a token, atoms match by (canonical) name; a token with one atom on each side (a
    ligand atom) matches whatever the names.
    """
    real = packed["atom_pad_mask"] > 0
    b_token = packed["atom_to_token"][real].astype(np.int64)
    b_names = [_decode(c) for c in packed["ref_atom_name_chars"][real]]
    by_name = {(int(t), n): j for j, (t, n) in enumerate(zip(b_token, b_names, strict=True))}
    n_tokens = system.n_tokens
    ours_per_token = np.bincount(system.token_index, minlength=n_tokens)
    boltz_per_token = np.bincount(b_token, minlength=n_tokens)
    first_boltz = np.full(n_tokens, -1)
    first_boltz[b_token[::-1]] = np.arange(len(b_token))[::-1]
    index = np.full(system.n_atoms, -1, dtype=np.int64)
    for i, (t, name) in enumerate(zip(system.token_index, system.atom_names, strict=True)):
        t = int(t)
        if ours_per_token[t] == 1 and boltz_per_token[t] == 1:
            index[i] = first_boltz[t]
        else:
            index[i] = by_name.get((t, canonical_name(name)), -1)
    return index


def _anchors(i: int, known: np.ndarray, bonded: list[set[int]], x: np.ndarray) -> np.ndarray:
    """Up to :data:`NEIGHBOURS` known atoms that fix atom ``i``'s place: its bonded known atoms,
    then theirs, then the nearest known ones (by distance in our frame); a hydrogen on NH1 of
    arginine thus goes with NH1, CZ, NE and not with the near-mirror NH2."""
    chosen: list[int] = []
    shell = {i}
    seen = {i}
    while len(chosen) < NEIGHBOURS and shell:
        shell = {j for a in shell for j in bonded[a]} - seen
        seen |= shell
        ring = sorted((j for j in shell if known[j]), key=lambda j: np.linalg.norm(x[j] - x[i]))
        chosen += ring[: NEIGHBOURS - len(chosen)]
    rest = [j for j in np.argsort(np.linalg.norm(x - x[i], axis=1), kind="stable") if known[j]]
    chosen += [j for j in rest if j not in chosen][: NEIGHBOURS - len(chosen)]
    return np.asarray(chosen, dtype=np.int64)


def _fill_positions(
    x: np.ndarray, known: np.ndarray, bonded: list[set[int]], boltz_pos: np.ndarray
) -> np.ndarray:
    """Reference positions of one token's atoms (``x``: ours, frame 0): ``boltz_pos`` where
    known; an unknown atom is carried by the rigid motion that best maps its :func:`_anchors`
    onto their reference positions, so it keeps its local geometry even where the residue's
    conformation differs from the reference conformer."""
    out = np.asarray(boltz_pos, dtype=np.float64).copy()
    if not known.any():
        out[:] = x - x.mean(axis=0)
        return out
    for i in np.flatnonzero(~known):
        near = _anchors(int(i), known, bonded, x)
        src, dst = x[near], out[near]
        src_c, dst_c = src.mean(axis=0), dst.mean(axis=0)
        rot = np.eye(3)
        if len(near) >= 3:
            rot = kabsch_rotations((src - src_c)[None], dst - dst_c)[0]
        out[i] = (x[i] - src_c) @ rot + dst_c
    return out


def diffusion_features(
    system: ProcessedSystem, seed: int = default("trunk.seed"), method: str = DEFAULT_METHOD
) -> dict[str, np.ndarray]:
    """``atom.*`` (M rows) and ``token.*`` (N rows) Boltz-2 features for ``system``.

    ``seed`` is the ligand-conformer seed of the trunk (the same conformers the trunk saw).
    """
    packed = build_features(system, method=method, seed=seed)
    index = match_atoms(system, packed)
    known = index >= 0
    src = np.where(known, index, 0)
    ref = system.coords[0]
    pos = np.where(known[:, None], packed["ref_pos"][src], 0.0).astype(np.float64)
    uid = np.full(system.n_atoms, -1, dtype=np.int64)
    uid[known] = packed["ref_space_uid"][index[known]]
    for t in np.unique(system.token_index[~known]):
        ours = np.flatnonzero(system.token_index == t)
        local = {int(a): k for k, a in enumerate(ours)}
        bonded: list[set[int]] = [set() for _ in ours]
        for a, b in system.bonds:
            if int(a) in local and int(b) in local:
                bonded[local[int(a)]].add(local[int(b)])
                bonded[local[int(b)]].add(local[int(a)])
        x = ref[ours].astype(np.float64)
        pos[ours] = _fill_positions(x, known[ours], bonded, pos[ours])
        token_uids = uid[ours][known[ours]]
        uid[ours[~known[ours]]] = token_uids[0] if len(token_uids) else uid.max() + 1
    try:
        own_names = np.array([name_chars(n) for n in system.atom_names], dtype=np.int64)
    except ValueError as exc:
        raise FeatureError(
            f"boltz2 diffusion features, system {system.system_id}: {exc}. Fix: rename the atom"
        ) from None
    own_elements = np.array([atomic_number(e) for e in system.elements], dtype=np.int64)
    # Compact types: a training run keeps every system's features in memory (~26 bytes/atom).
    features = {
        "atom.ref_pos": pos.astype(np.float32),
        "atom.ref_charge": np.where(known, packed["ref_charge"][src], 0.0).astype(np.float32),
        "atom.ref_element": np.where(known, packed["ref_element"][src], own_elements).astype(
            np.int16
        ),
        "atom.ref_atom_name_chars": np.where(
            known[:, None], packed["ref_atom_name_chars"][src], own_names
        ).astype(np.int8),
        "atom.ref_space_uid": uid.astype(np.int32),
    }
    for key in TOKEN_KEYS:
        value = packed[key]
        features[f"token.{key}"] = value.astype(np.float32 if value.dtype.kind == "f" else np.int32)
    return features


def features_for_entry(system: ProcessedSystem, trunk_entry: Path) -> dict[str, np.ndarray]:
    """:func:`diffusion_features` with the ligand-conformer seed of the system's trunk entry
    (a ``boltz2`` entry records it; other backends built no conformers: seed 0)."""
    meta = entry_metadata(trunk_entry)
    params = json.loads(meta.get("params", "{}")) if meta.get("backend") == "boltz2" else {}
    return diffusion_features(system, seed=int(params.get("seed", default("trunk.seed"))))
