"""Peptide backbone states: basins cover the plane, transitions need a core-to-core crossing."""

from __future__ import annotations

import numpy as np

from boltzkinema.evaluate.ramachandran import (
    ALPHA_R,
    BETA,
    basin,
    populations,
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
