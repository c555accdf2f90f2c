"""Splits: deterministic, families never straddle train and OOD, replicas stay together."""

from __future__ import annotations

import pytest

from boltzkinema.data.splits import SplitConfig, assign_splits, cluster_sequences

LYSOZYME = "MNIFEMLRIDEGLRLKIYKDTEGYYTIGIGHLLTKSPSLNAAKSELDKAIGRNTNGVITKDEAEKLFNQDVDAAVRGILRNAK"
VILLIN = "LSDEDFKAVFGMTRSAFANLPLWKQQHLKKEKGLF"


def test_identical_and_point_mutant_sequences_cluster_unrelated_ones_do_not():
    mutant = LYSOZYME[:40] + "A" + LYSOZYME[41:]
    clusters = cluster_sequences({"a": LYSOZYME, "b": mutant, "c": VILLIN}, 0.3)
    assert clusters["a"] == clusters["b"] != clusters["c"]


def test_a_fragment_is_not_called_identical_to_the_whole_protein():
    clusters = cluster_sequences({"full": LYSOZYME, "frag": LYSOZYME[:12]}, 0.3)
    assert clusters["full"] != clusters["frag"]


def test_assignment_is_deterministic_and_respects_families():
    families = {f"sys{i}_r{r}": f"fam{i}" for i in range(60) for r in range(3)}
    cfg = SplitConfig(
        seed=3,
        ood_val_fraction=0.15,
        ood_test_fraction=0.15,
        id_val_fraction=0.2,
        id_test_fraction=0.2,
    )
    a = assign_splits(families, cfg)
    assert a == assign_splits(dict(reversed(list(families.items()))), cfg)
    by_family: dict[str, set] = {}
    for sid, (split, ood) in a.items():
        by_family.setdefault(families[sid], set()).add((split, ood))
    for fam, labels in by_family.items():
        if any(ood for _, ood in labels):
            assert len(labels) == 1 and ("train", True) not in labels, fam
        else:
            assert ("train", False) in labels, fam
    splits = {v for v in a.values()}
    assert {("train", False), ("val", True), ("test", True)} <= splits
    assert ("test", False) in splits or ("val", False) in splits


def test_another_seed_gives_another_split():
    families = {f"s{i}": f"f{i}" for i in range(50)}
    cfg = SplitConfig(ood_test_fraction=0.3)
    assert assign_splits(families, cfg) != assign_splits(
        families, SplitConfig(seed=1, ood_test_fraction=0.3)
    )


def test_fixed_assignments_win_over_the_hash():
    families = {f"peptides.ala2_R{k}": "ala2" for k in range(1, 7)} | {
        "peptides.asn2_R1": "asn2",
        "peptides.val2_R1": "val2",
    }
    cfg = SplitConfig(
        ood_val_fraction=0.0,
        ood_test_fraction=0.0,
        id_val_fraction=0.0,
        id_test_fraction=0.0,
        fixed=[
            {"systems": "peptides.ala2_R[56]", "split": "test"},
            {"systems": "peptides.asn2_*", "split": "test", "ood": True},
        ],
    )
    out = assign_splits(families, cfg)
    assert out["peptides.ala2_R5"] == out["peptides.ala2_R6"] == ("test", False)
    assert out["peptides.asn2_R1"] == ("test", True)
    assert {out[f"peptides.ala2_R{k}"] for k in range(1, 5)} == {("train", False)}
    assert out["peptides.val2_R1"] == ("train", False)


def test_a_fixed_split_that_matches_nothing_or_is_malformed_is_refused():
    with pytest.raises(ValueError, match="matches no system"):
        assign_splits({"a": "f"}, SplitConfig(fixed=(("b*", "test", False),)))
    for bad in (
        {"systems": "a", "split": "holdout"},
        {"systems": "a", "split": "train", "ood": True},
    ):
        with pytest.raises(ValueError, match=r"splits\.fixed 'a'"):
            SplitConfig(fixed=[bad])
