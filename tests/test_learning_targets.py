"""The learning benchmark's held-out-peptide targets: beat static and noise on every metric."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "learning.py"


@pytest.fixture(scope="module")
def learning():
    spec = importlib.util.spec_from_file_location("learning_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(**model: float) -> pd.DataFrame:
    """A held-out peptide's table: MD, a replica, static (a repeated MD frame) and noise."""
    reference = dict(
        phi_jsd=0.0,
        psi_jsd=0.0,
        pop_beta=0.5,
        pop_alpha_R=0.5,
        pop_alpha_L=0.0,
        alpha_beta_per_ns=7.0,
        tica_slowest_ns=0.1,
        clashes_per_frame=0.0,
        bond_rmse=0.034,
        chirality_flips=0.0,
    )
    static = dict(reference, phi_jsd=0.7, psi_jsd=0.8, pop_beta=0.0, pop_alpha_R=1.0)
    static.update(alpha_beta_per_ns=0.0, tica_slowest_ns=np.nan, bond_rmse=0.0)
    noise = dict(reference, phi_jsd=0.46, psi_jsd=0.55, pop_beta=0.2, pop_alpha_R=0.6)
    noise.update(pop_alpha_L=0.2, alpha_beta_per_ns=10.5, tica_slowest_ns=0.03)
    noise.update(clashes_per_frame=1.5, bond_rmse=0.9, chirality_flips=0.2)
    replica = dict(reference, phi_jsd=0.2, psi_jsd=0.23)
    good = dict(reference, phi_jsd=0.25, psi_jsd=0.25, pop_beta=0.52, pop_alpha_R=0.47)
    good.update(pop_alpha_L=0.004, alpha_beta_per_ns=6.0, tica_slowest_ns=0.15, bond_rmse=0.02)
    good.update(model)
    rows = dict(model=good, replica=replica, static=static, noise=noise, reference=reference)
    return pd.DataFrame(rows).T


def failed(learning, t: pd.DataFrame) -> list[str]:
    return [name for name, ok, _ in learning.ood_targets("phe2", t) if not ok]


def test_a_model_closer_to_md_than_both_baselines_meets_every_target(learning):
    results = learning.ood_targets("phe2", table())
    assert all(ok for _, ok, _ in results)
    compared = {name.split()[1] for name, _, _ in results if "better than" in name}
    assert compared == set(learning.OOD_METRICS)  # every metric, not only the JSDs


def test_a_population_further_from_md_than_noises_fails_only_that_comparison(learning):
    # αR 0.32 is 0.18 from MD's 0.5, noise's 0.6 only 0.1; β 0.67 is still nearer than noise's 0.2.
    assert failed(learning, table(pop_alpha_R=0.32, pop_beta=0.67)) == [
        "phe2 pop_alpha_R better than noise"
    ]


def test_a_timescale_is_compared_by_the_factor_to_md(learning):
    # 0.3 ns is 3x MD's 0.1; noise's 0.03 is 3.3x too fast, so 0.3 still wins, 0.4 does not.
    assert failed(learning, table(tica_slowest_ns=0.3)) == []
    assert failed(learning, table(tica_slowest_ns=0.4)) == [
        "phe2 tica_slowest_ns better than noise"
    ]


def test_a_missing_timescale_is_infinitely_far_from_md(learning):
    assert learning.distance_to_reference(table(), "static", "tica_slowest_ns") == np.inf


def test_validity_at_mds_own_level_matches_a_static_copy_of_an_md_frame(learning):
    assert failed(learning, table(bond_rmse=0.034)) == []
    assert failed(learning, table(bond_rmse=0.05)) == ["phe2 bond_rmse better than static"]
    assert failed(learning, table(clashes_per_frame=0.1)) == [
        "phe2 clashes_per_frame better than static"
    ]


def test_seeds_are_summarised_as_mean_and_spread_with_targets_met_per_run(learning):
    def report(beta: float, met: bool) -> dict:
        return {
            "tables": {"ala2": {"model": {"pop_beta": beta}}},
            "targets": [{"target": "beta population within 0.05", "met": met}],
        }

    values, targets = learning.summarise([report(0.645, True), report(0.682, False)])
    row = values.loc[("ala2", "pop_beta")]
    assert row["mean"] == pytest.approx(0.6635) and row["spread"] == pytest.approx(0.037)
    assert targets.loc["beta population within 0.05", "met in"] == "1 of 2"


def test_a_seeded_run_sets_every_seed_and_gets_its_own_results(learning):
    cfg = {"results": "results/peptides", "train": {"seed": 0, "steps": 4}, "sample": {}}
    out = learning.seeded(cfg, 1)
    assert out["results"] == "results/peptides_seed1"
    assert [out[s]["seed"] for s in ("train", "sample", "evaluate")] == [1, 1, 1]
    assert out["train"]["steps"] == 4 and cfg["train"]["seed"] == 0


def test_alanine_populations_are_judged_within_005_and_shown_with_their_errors(learning):
    row = dict(
        phi_jsd=0.09,
        psi_jsd=0.13,
        alpha_beta_per_ns=14.0,
        tica_slowest_ns=0.04,
        clashes_per_frame=0.0,
        bond_rmse=0.02,
        chirality_flips=0.0,
        **{f"pop_{s}_se": 0.02 for s in ("beta", "alpha_R", "alpha_L")},
    )
    pops = {"pop_beta": 0.62, "pop_alpha_R": 0.38, "pop_alpha_L": 0.0}
    near = {"pop_beta": 0.66, "pop_alpha_R": 0.34, "pop_alpha_L": 0.0}
    far = {"pop_beta": 0.68, "pop_alpha_R": 0.32, "pop_alpha_L": 0.0}
    frame = pd.DataFrame(
        {"model": row | near, "md_yardstick": row | pops, "reference": row | pops}
    ).T
    met = {name: (ok, numbers) for name, ok, numbers in learning.ala2_targets(frame)}
    ok, numbers = met["beta population within 0.05"]
    assert ok and "0.660 ± 0.020 vs 0.620 ± 0.020" in numbers
    frame.loc["model", list(far)] = list(far.values())
    met = {name: ok for name, ok, _ in learning.ala2_targets(frame)}
    assert not met["beta population within 0.05"] and not met["alpha_R population within 0.05"]
