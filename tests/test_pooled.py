"""The learning benchmark's pooled comparison, on the shipped alanine dipeptide MD."""

from __future__ import annotations

import numpy as np
import pytest

from boltzkinema.evaluate.pooled import Ensemble, bond_length_rmse, ensemble_row, phi_psi


@pytest.fixture
def ala2(ala2_md):
    return ala2_md


def test_phi_psi_of_alanine_dipeptide_sit_in_its_basins(ala2):
    phi, psi = phi_psi(ala2[0], ala2[0].coords[:500])
    assert (np.degrees(phi) < 0).mean() > 0.95  # αL is rare in 5 ns at 300 K
    assert 0.2 < (np.abs(np.degrees(psi)) < 100).mean() < 0.8  # both αR and β visited


def test_md_bonds_keep_their_lengths_and_a_stretched_bond_shows(ala2):
    system = ala2[0]
    x = system.coords[:50].astype(np.float64)
    assert bond_length_rmse(x, system) < 0.05  # thermal vibration and xtc precision
    a, b = system.bonds[0]
    x[:, b] += 0.5 * (x[:, b] - x[:, a]) / np.linalg.norm(x[:, b] - x[:, a], axis=-1)[:, None]
    assert bond_length_rmse(x, system) > 0.5 / np.sqrt(len(system.bonds)) * 0.9


def test_an_ensemble_against_itself_scores_zero_distance_and_a_frozen_one_does_not(ala2):
    system = ala2[0]
    ref = Ensemble([system.coords[::10].astype(np.float64)], 0.01)
    start = system.coords[0].astype(np.float64)
    same = ensemble_row(ref, ref, system, start, tica_lag=10)
    assert same["phi_jsd"] == same["psi_jsd"] == 0.0
    frozen = Ensemble([np.repeat(start[None], 500, 0)], 0.01)
    row = ensemble_row(frozen, ref, system, start, tica_lag=10)
    assert row["psi_jsd"] > 0.5 and row["alpha_beta_per_ns"] == 0.0
    assert row["n_frames"] == 500 and row["span_ns"] == pytest.approx(4.99)


def test_ramachandran_pairs_match_each_residues_phi_and_psi(ala2):
    from boltzkinema.evaluate import metrics as mt
    from boltzkinema.evaluate.ensemble import ramachandran_pairs

    system = ala2[0]
    phi_q, psi_q = ramachandran_pairs(system)
    assert len(phi_q) == len(psi_q) == 1  # ACE-ALA-NME: only alanine has both
    phi, psi = phi_psi(system, system.coords[:20])
    np.testing.assert_allclose(mt.dihedrals(system.coords[:20], phi_q).cpu().numpy()[:, 0], phi)
    np.testing.assert_allclose(mt.dihedrals(system.coords[:20], psi_q).cpu().numpy()[:, 0], psi)
