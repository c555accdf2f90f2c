"""The built-in trunk: a deterministic featurizer that needs no weights.

Token features (residue or element type, molecule type, atom count, bonds, chain ends) and
structure context from the reference frame (neighbour counts, neighbour-averaged features) are
projected to ``c_s`` by fixed random matrices drawn from a seeded generator; pair features
(per-chain relative position, same chain, token bonds, distance RBFs) are projected to ``c_z``.
Same topology and reference frame in, same numbers out, on any machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.io.chemistry import (
    DNA_RESIDUES,
    ONE_LETTER,
    PROTEIN_RESIDUES,
    RNA_RESIDUES,
    MolType,
)
from boltzkinema.settings import default
from boltzkinema.trunk.backend import TrunkEmbedding, register

RESIDUE_VOCAB = [*sorted(ONE_LETTER), "UNKP", "DA", "DC", "DG", "DT", "A", "C", "G", "U", "UNKN"]
ELEMENT_VOCAB = ["H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "metal"]
MAX_OFFSET = 32
RBF_CENTRES = np.linspace(2.0, 22.0, 16)
RBF_WIDTH = 1.25
NEIGHBOUR_RADII = (8.0, 12.0, 16.0)
_ROW_CHUNK = 256


def _residue_class(name: str, mol: int) -> int:
    if mol == MolType.PROTEIN:
        canon = PROTEIN_RESIDUES.get(name, name)
        return RESIDUE_VOCAB.index(canon) if canon in ONE_LETTER else RESIDUE_VOCAB.index("UNKP")
    if mol == MolType.DNA:
        return RESIDUE_VOCAB.index(DNA_RESIDUES.get(name, "UNKN")) if name in DNA_RESIDUES else -1
    if mol == MolType.RNA:
        return RESIDUE_VOCAB.index(RNA_RESIDUES[name]) if name in RNA_RESIDUES else -1
    return -1


def token_table(system: ProcessedSystem) -> dict[str, np.ndarray]:
    """Per-token arrays: first atom, centre, chain, residue index, type classes, atom count."""
    tok = system.token_index
    n = system.n_tokens
    first = np.flatnonzero(np.r_[True, tok[1:] != tok[:-1]])
    counts = np.bincount(tok, minlength=n).astype(np.float64)
    ref = (
        system.reference_coords if system.reference_coords is not None else system.coords[0]
    ).astype(np.float64)
    centre = np.zeros((n, 3))
    np.add.at(centre, tok, ref)
    centre /= counts[:, None]
    mol = system.mol_type[first].astype(np.int64)
    res_class = np.array(
        [
            _residue_class(str(system.residue_names[i]), int(m))
            for i, m in zip(first, mol, strict=True)
        ]
    )
    elem = [str(system.elements[i]) for i in first]
    elem_class = np.array(
        [ELEMENT_VOCAB.index(e) if e in ELEMENT_VOCAB else len(ELEMENT_VOCAB) - 1 for e in elem]
    )
    return {
        "first": first,
        "centre": centre,
        "count": counts,
        "mol": mol,
        "res_class": res_class,
        "elem_class": elem_class,
        "chain": system.chain_index[first].astype(np.int64),
        "residue": system.residue_index[first].astype(np.int64),
    }


def _one_hot(idx: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(idx), size))
    valid = idx >= 0
    out[np.flatnonzero(valid), idx[valid]] = 1.0
    return out


class BuiltinTrunk:
    """Deterministic featurizer; see the module docstring."""

    name = "builtin"
    version = "1"

    def __init__(
        self,
        c_s: int = default("trunk.c_s"),
        c_z: int = default("trunk.c_z"),
        seed: int = default("trunk.seed"),
    ):
        self.c_s, self.c_z, self.seed = int(c_s), int(c_z), int(seed)
        rng = np.random.default_rng(self.seed)
        self._d_single = len(RESIDUE_VOCAB) + len(ELEMENT_VOCAB) + len(MolType) + 5
        self._d_pair = 2 * MAX_OFFSET + 2 + 2 + len(RBF_CENTRES)
        self._w_in = rng.standard_normal((self._d_single, self.c_s)) / np.sqrt(self._d_single)
        d_ctx = self._d_single + len(NEIGHBOUR_RADII) + 1
        self._w_ctx = rng.standard_normal((d_ctx, self.c_s)) / np.sqrt(d_ctx)
        self._w_z = rng.standard_normal((self._d_pair, self.c_z)) / np.sqrt(self._d_pair)

    def params(self) -> dict[str, Any]:
        return {"c_s": self.c_s, "c_z": self.c_z, "seed": self.seed}

    def _single_features(self, system: ProcessedSystem, t: dict[str, np.ndarray]) -> np.ndarray:
        n = len(t["first"])
        degree = np.zeros(n)
        tb = system.token_index[system.bonds] if len(system.bonds) else np.zeros((0, 2), int)
        inter = tb[tb[:, 0] != tb[:, 1]]
        np.add.at(degree, inter.ravel(), 1.0)
        same_chain_next = np.r_[t["chain"][1:] == t["chain"][:-1], False]
        same_chain_prev = np.r_[False, t["chain"][1:] == t["chain"][:-1]]
        is_atom_token = np.isin(t["mol"], [MolType.LIGAND, MolType.OTHER])
        return np.concatenate(
            [
                _one_hot(t["res_class"], len(RESIDUE_VOCAB)),
                _one_hot(np.where(is_atom_token, t["elem_class"], -1), len(ELEMENT_VOCAB)),
                _one_hot(t["mol"], len(MolType)),
                np.log1p(t["count"])[:, None],
                degree[:, None] / 4.0,
                (~same_chain_prev)[:, None].astype(float),
                (~same_chain_next)[:, None].astype(float),
                np.ones((n, 1)),
            ],
            axis=1,
        )

    def _pair_features(
        self, t: dict[str, np.ndarray], rows: slice, token_bonds: np.ndarray
    ) -> np.ndarray:
        chain, res, centre = t["chain"], t["residue"], t["centre"]
        n = len(chain)
        same = chain[rows, None] == chain[None, :]
        offset = np.clip(res[None, :] - res[rows, None], -MAX_OFFSET, MAX_OFFSET) + MAX_OFFSET
        rel = np.where(same, offset, 2 * MAX_OFFSET + 1)
        r = rows.stop - rows.start
        feats = np.zeros((r, n, self._d_pair), dtype=np.float32)
        np.put_along_axis(feats, rel[..., None], 1.0, axis=2)
        feats[..., 2 * MAX_OFFSET + 2] = same
        feats[..., 2 * MAX_OFFSET + 3] = token_bonds[rows]
        d = np.linalg.norm(centre[rows, None] - centre[None, :], axis=-1)
        feats[..., 2 * MAX_OFFSET + 4 :] = np.exp(
            -(((d[..., None] - RBF_CENTRES) / RBF_WIDTH) ** 2)
        )
        return feats

    def embed(self, system: ProcessedSystem) -> TrunkEmbedding:
        t = token_table(system)
        n = len(t["first"])
        f = self._single_features(system, t)
        s_inputs = f @ self._w_in
        d = np.linalg.norm(t["centre"][:, None] - t["centre"][None, :], axis=-1)
        counts = np.stack([(d < r).sum(1) - 1 for r in NEIGHBOUR_RADII], axis=1).astype(float)
        near = (d < 10.0).astype(float)
        neighbour_mean = near @ f / near.sum(1, keepdims=True)
        radial = np.linalg.norm(t["centre"] - t["centre"].mean(0), axis=1, keepdims=True) / 20.0
        ctx = np.concatenate([neighbour_mean, np.log1p(counts), radial], axis=1)
        s_trunk = s_inputs + np.tanh(ctx @ self._w_ctx)
        token_bonds = np.zeros((n, n), dtype=np.float32)
        if len(system.bonds):
            tb = system.token_index[system.bonds]
            token_bonds[tb[:, 0], tb[:, 1]] = 1.0
            token_bonds[tb[:, 1], tb[:, 0]] = 1.0
            np.fill_diagonal(token_bonds, 0.0)
        z = np.empty((n, n, self.c_z), dtype=np.float16)  # (N, N, c_z) dominates memory
        w_z = self._w_z.astype(np.float32)
        for start in range(0, n, _ROW_CHUNK):
            rows = slice(start, min(n, start + _ROW_CHUNK))
            z[rows] = self._pair_features(t, rows, token_bonds) @ w_z
        return TrunkEmbedding(s_inputs.astype(np.float32), s_trunk.astype(np.float32), z)


@register("builtin")
def _factory(**params: int) -> BuiltinTrunk:
    return BuiltinTrunk(**params)
