"""Peptide backbone states: basins cover the plane, transitions need a core-to-core crossing."""

from __future__ import annotations

import numpy as np

from boltzkinema.evaluate.ramachandran import (
    ALPHA_R,
    BETA,
    basin,
    conditional_probabilities,
    population_errors,
    populations,
    stationary_populations,
    transition_rate_per_ns,
    transitions,
)


def rad(*deg: float) -> np.ndarray:
    return np.radians(np.array(deg, dtype=float))


def test_the_three_basins_sit_where_alanine_dipeptide_has_them():
    phi, psi = rad(-70, -150, -70, 60, 60), rad(-40, 150, 150, 40, -60)
    assert basin(phi, psi).tolist() == [1, 0, 0, 2, 2]


def test_populations_are_fractions_of_frames():
    phi, psi = rad(-70, -70, -70, -150), rad(-40, -40, 150, 150)
    assert populations(phi, psi) == {"beta": 0.5, "alpha_R": 0.5, "alpha_L": 0.0}


def test_the_population_error_of_independent_frames_is_the_binomial_one():
    """Frames drawn independently (β with p = 0.6): blocks of 100 frames give back
    √(p(1 − p)/N) within sampling error."""
    rng = np.random.default_rng(0)
    n, p = 40_000, 0.6
    beta = rng.random(n) < p
    phi = np.full(n, np.radians(-70.0))
    psi = np.where(beta, np.radians(150.0), np.radians(-40.0))
    se = population_errors([(phi, psi)], dt_ns=0.01, block_ns=1.0)
    expected = np.sqrt(p * (1 - p) / n)
    assert abs(se["beta"] / expected - 1) < 0.25 and se["alpha_R"] == se["beta"]
    assert se["alpha_L"] == 0.0


def test_a_correlated_series_has_a_larger_population_error_than_its_frame_count_says():
    """State runs 200 frames long: the error is that of n / 200 independent frames, and one
    block too few gives NaN."""
    rng = np.random.default_rng(1)
    runs = np.repeat(rng.random(400) < 0.5, 200)
    phi = np.full(len(runs), np.radians(-70.0))
    psi = np.where(runs, np.radians(150.0), np.radians(-40.0))
    se = population_errors([(phi, psi)], dt_ns=0.01, block_ns=20.0)
    assert se["beta"] > 5 * np.sqrt(0.25 / len(runs))
    assert np.isnan(population_errors([(phi[:100], psi[:100])], 0.01, 20.0)["beta"])


def test_jitter_across_a_basin_boundary_is_no_transition():
    # ψ swings around the αR/β boundary at 50° without reaching the β core (ψ ≥ 90°)
    psi = rad(*([-40] + [45, 55] * 20 + [-40]))
    phi = rad(*([-70] * len(psi)))
    assert transitions([(phi, psi)], ALPHA_R, BETA) == 0


def test_core_to_core_crossings_are_counted_both_ways_per_ns():
    psi = rad(-40, 0, 100, 150, 60, -40, 150)  # α → β → α → β
    phi = rad(*([-70] * len(psi)))
    assert transitions([(phi, psi)], ALPHA_R, BETA) == 3
    assert transition_rate_per_ns([(phi, psi)], dt_ns=0.5) == 3 / (6 * 0.5)


def test_conditional_probabilities_count_where_each_start_ends():
    start = np.array([BETA, BETA, BETA, BETA, ALPHA_R, ALPHA_R])
    end = np.array([BETA, BETA, BETA, ALPHA_R, BETA, ALPHA_R])
    p = conditional_probabilities(start, end)
    assert np.allclose(p[BETA], [0.75, 0.25, 0.0]) and np.allclose(p[ALPHA_R], [0.5, 0.5, 0.0])
    assert np.isnan(p[2]).all()


def test_the_stationary_populations_balance_the_flows_between_two_basins():
    """β → αR with 0.1, αR → β with 0.2: π_β · 0.1 = π_αR · 0.2, so π = (2/3, 1/3); a basin
    never started from gets 0."""
    p = np.full((3, 3), np.nan)
    p[BETA, :] = [0.9, 0.1, 0.0]
    p[ALPHA_R, :] = [0.2, 0.8, 0.0]
    assert np.allclose(stationary_populations(p), [2 / 3, 1 / 3, 0.0])
