"""Deterministic train/val/test splits with in- and out-of-distribution test sets.

Systems are grouped into families: ligand systems by the Murcko scaffold of their ligand, others by
sequence-identity cluster of their polymer chains. A seeded hash sends a fraction of families out
of distribution (every system of such a family goes to val or test, none to train); inside the
remaining families a seeded hash holds single systems (replicas, temperatures) out as
in-distribution val/test, while every such family keeps at least one training system.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from Bio import Align

from boltzkinema.settings import settings

KMER = 3


@settings("splits")
class SplitConfig:
    """The ``splits`` section of the config."""

    seed: int
    sequence_identity: float
    ood_val_fraction: float
    ood_test_fraction: float
    id_val_fraction: float
    id_test_fraction: float
    # Chosen by hand, they win over the hash: (system-id glob, split, out of distribution) once
    # made, from the config's {systems, split, ood} entries.
    fixed: Sequence[tuple[str, str, bool]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", tuple(fixed_rule(entry) for entry in self.fixed))


def fixed_rule(entry: Mapping[str, Any] | tuple[str, str, bool]) -> tuple[str, str, bool]:
    """One ``splits.fixed`` entry (``{systems: GLOB, split: SPLIT, ood: bool}``, or that triple)
    as ``(glob, split, ood)``; training systems cannot be out of distribution."""
    if isinstance(entry, Mapping):
        entry = (entry["systems"], entry["split"], bool(entry.get("ood")))
    glob, split, ood = entry
    if split not in ("train", "val", "test"):
        raise ValueError(f"splits.fixed {glob!r}: split {split!r}, choose train, val or test")
    if split == "train" and ood:
        raise ValueError(f"splits.fixed {glob!r}: training systems cannot be out of distribution")
    return str(glob), split, bool(ood)


def unit_hash(seed: int, text: str) -> float:
    """A number in [0, 1) from a seed and a string, the same on every machine."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _kmers(seq: str) -> Counter[str]:
    return Counter(seq[i : i + KMER] for i in range(len(seq) - KMER + 1))


def sequence_identity(a: str, b: str, aligner: Align.PairwiseAligner) -> float:
    """Identical aligned positions over the length of the longer sequence (global alignment).

    Normalising by the longer sequence also demands coverage: a peptide is not 100 % identical
    to the protein it occurs in.
    """
    if not a or not b:
        return 0.0
    alignment = aligner.align(a, b)[0]
    return alignment.counts().identities / max(len(a), len(b))


def _may_reach(a: str, b: str, ka: Counter[str], kb: Counter[str], identity: float) -> bool:
    """False only when the pair provably cannot reach ``identity`` (length and k-mer bounds).

    With M identical positions, at least (L_short - k + 1) - k (L_short - M) k-mers survive in
    both sequences; the multiset intersection counts at least as many.
    """
    short, long_ = sorted((len(a), len(b)))
    if short < identity * long_:
        return False
    needed = (short - KMER + 1) - KMER * (short - identity * long_)
    return needed <= 0 or sum((ka & kb).values()) >= needed


def cluster_sequences(sequences: dict[str, str], identity: float) -> dict[str, str]:
    """Greedy clustering (longest first, like CD-HIT): key -> cluster id (hash of its
    representative sequence)."""
    aligner = Align.PairwiseAligner(
        mode="global",
        match_score=1.0,
        mismatch_score=0.0,
        open_gap_score=-1.0,
        extend_gap_score=-0.1,
    )
    unique = sorted(set(sequences.values()), key=lambda s: (-len(s), s))
    reps: list[tuple[str, Counter[str]]] = []
    rep_of: dict[str, str] = {}
    for seq in unique:
        kmers = _kmers(seq)
        for rep, rep_kmers in reps:
            if not _may_reach(seq, rep, kmers, rep_kmers, identity):
                continue
            if sequence_identity(seq, rep, aligner) >= identity:
                rep_of[seq] = rep
                break
        else:
            reps.append((seq, kmers))
            rep_of[seq] = seq
    ids = {rep: "seq" + hashlib.sha256(rep.encode()).hexdigest()[:12] for rep in rep_of.values()}
    return {key: ids[rep_of[seq]] for key, seq in sequences.items()}


def assign_splits(families: dict[str, str], cfg: SplitConfig) -> dict[str, tuple[str, bool]]:
    """system id -> (split, out_of_distribution) given system id -> family."""
    members: dict[str, list[str]] = {}
    for sid, fam in sorted(families.items()):
        members.setdefault(fam, []).append(sid)
    out: dict[str, tuple[str, bool]] = {}
    for fam, sids in members.items():
        u = unit_hash(cfg.seed, f"family:{fam}")
        if u < cfg.ood_test_fraction:
            out.update({s: ("test", True) for s in sids})
            continue
        if u < cfg.ood_test_fraction + cfg.ood_val_fraction:
            out.update({s: ("val", True) for s in sids})
            continue
        ranked = sorted(sids, key=lambda s: unit_hash(cfg.seed, f"system:{s}"))
        split = {}
        for s in ranked:
            v = unit_hash(cfg.seed, f"system:{s}")
            split[s] = (
                "test"
                if v < cfg.id_test_fraction
                else "val"
                if v < cfg.id_test_fraction + cfg.id_val_fraction
                else "train"
            )
        if "train" not in split.values():
            split[ranked[-1]] = "train"
        out.update({s: (split[s], False) for s in sids})
    for glob, split_name, ood in cfg.fixed:
        matched = fnmatch.filter(sorted(out), glob)
        if not matched:
            raise ValueError(f"fixed split {glob!r} matches no system; known: {sorted(out)[:8]}")
        out.update({s: (split_name, ood) for s in matched})
    return out
