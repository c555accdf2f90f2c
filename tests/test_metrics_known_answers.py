"""The DESIGN §5 definitions (AlphaFlow, MDGen) on cases whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from boltzkinema.evaluate import metrics as mt


def test_rmwd_of_two_gaussian_ensembles_matches_the_closed_form():
    # Per atom N(0, diag(1, 4, 9)) against N(μ, diag(4, 1, 1)): W2² = |μ|² + Σ(√a − √b)²
    # = |μ|² + (1 − 2)² + (2 − 1)² + (3 − 1)² = |μ|² + 6 (the covariances commute).
    rng = np.random.default_rng(0)
    n, m = 200_000, 3
    mu = np.array([1.0, 2.0, 2.0])  # |μ|² = 9
    a = rng.normal(size=(n, m, 3)) * np.sqrt([1.0, 4.0, 9.0])
    b = mu + rng.normal(size=(n, m, 3)) * np.sqrt([4.0, 1.0, 1.0])
    parts = mt.rmwd_parts(a, b)
    assert parts["rmwd_trans"] == pytest.approx(3.0, rel=1e-2)
    assert parts["rmwd_var"] == pytest.approx(np.sqrt(6.0), rel=1e-2)
    assert parts["rmwd"] == pytest.approx(np.sqrt(15.0), rel=1e-2)
    assert parts["rmwd"] ** 2 == pytest.approx(parts["rmwd_trans"] ** 2 + parts["rmwd_var"] ** 2)


def test_disjoint_histograms_give_the_maximum_jensen_shannon_distance():
    a = np.full((50, 2), -2.0)
    b = np.full((70, 2), 2.0)
    assert np.allclose(mt.torsion_jsd(a, b), np.sqrt(np.log(2)))
    assert mt.histogram_jsd(a, b, -np.pi, np.pi, 100) == pytest.approx(np.sqrt(np.log(2)))
    # Same histogram, different sample sizes: zero.
    assert mt.torsion_jsd(np.full((10, 1), 1.0), np.full((30, 1), 1.0))[0] == pytest.approx(0.0)


def test_two_state_ensemble_has_the_known_pairwise_rmsd():
    # n frames of A and n of B, B = A with atom 0 moved by D: RMSD(A, B) = D / √N, and the
    # mean over all (2n)² ordered pairs (AlphaFlow, diagonal included) is half of it.
    rng = np.random.default_rng(1)
    n, n_atoms, shift = 7, 10, 3.0
    a = rng.normal(size=(n_atoms, 3)) * 5
    b = a.copy()
    b[0, 0] += shift
    x = np.concatenate([np.repeat(a[None], n, 0), np.repeat(b[None], n, 0)])
    d = shift / np.sqrt(n_atoms)
    assert mt.pairwise_rmsd(x) == pytest.approx(d / 2)
    assert mt.pairwise_rmsd(x, include_self=False) == pytest.approx(d * n / (2 * n - 1))


def test_ar1_series_has_the_known_decorrelation_time():
    # x_t = a x_{t−1} + ε has autocorrelation a^k: it falls to 1/e after −1/ln a steps.
    rng = np.random.default_rng(2)
    a, n, dt = 0.8, 200_000, 0.5
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0]
    for t in range(1, n):
        x[t] = a * x[t - 1] + noise[t]
    time, censored = mt.decorrelation_time(x, dt)
    assert not censored
    assert time == pytest.approx(-dt / np.log(a), rel=0.03)
    # Split into independent pieces, pairs never cross pieces: the same answer.
    pieces = [x[i : i + 20_000] for i in range(0, n, 20_000)]
    assert mt.decorrelation_time(pieces, dt)[0] == pytest.approx(time, rel=0.02)


def test_a_decorrelation_longer_than_the_trajectory_is_censored_not_its_length():
    x = np.linspace(0.0, 1.0, 40)  # a drift: never decorrelates within the 4 lags examined
    time, censored = mt.decorrelation_time(x, 1.0)
    assert censored and np.isnan(time)
    times, flags = mt.torsion_decorrelation(np.linspace(-1, 1, 40)[:, None], 1.0)
    assert flags.tolist() == [True] and np.isnan(times[0])
    # The median of right-censored times ranks censored values above all observed ones.
    assert mt.censored_median([1.0, 2.0, np.nan], [False, False, True]) == (2.0, False)
    med, flag = mt.censored_median([1.0, np.nan, np.nan], [False, True, True])
    assert flag and np.isnan(med)


def test_mdgen_decorrelation_of_an_angle_is_that_of_its_sin_and_cos():
    # A constant angle has no fluctuation (NaN, not censored); a uniformly random one
    # decorrelates at once.
    times, flags = mt.torsion_decorrelation(np.full((30, 1), 0.7), 1.0)
    assert np.isnan(times[0]) and not flags[0]
    t, c = mt.decorrelation_time(mt.torsion_features(np.full((30, 1), 0.7)), 1.0)
    assert np.isnan(t) and not c
    rng = np.random.default_rng(3)
    angles = rng.uniform(-np.pi, np.pi, size=(5000, 1))
    t, c = mt.decorrelation_time(mt.torsion_features(angles), 1.0)
    assert not c and t < 1.0


def test_pca_w2_has_alphaflows_scale_on_a_case_computed_by_hand():
    # Two Cα; the reference's four frames put atom 0 at x = ±3 and atom 1 at y = ±1, so its
    # PCs are those two coordinates. The model is the reference with atom 0 moved by c in x:
    # projections shift by c, W2 = c, and AlphaFlow divides by √N_Cα: c / √2. The joint
    # ensemble's PCs are the same two coordinates (variance 3² + c²/4 > 1²).
    c = 2.0
    ref = np.zeros((4, 2, 3))
    ref[:, 0, 0] = [3.0, 3.0, -3.0, -3.0]
    ref[:, 1, 1] = [1.0, -1.0, 1.0, -1.0]
    pred = ref.copy()
    pred[:, 0, 0] += c
    assert mt.pca_w2(pred, ref, basis="ref") == pytest.approx(c / np.sqrt(2))
    assert mt.pca_w2(pred, ref, basis="joint") == pytest.approx(c / np.sqrt(2))
    # Moving atom 1 along z is invisible in the reference's top-2 PCs.
    hidden = ref.copy()
    hidden[:, 1, 2] += 5.0
    assert mt.pca_w2(hidden, ref, basis="ref") == pytest.approx(0.0, abs=1e-9)
    # The assignment pairs points optimally: {0, 4} against {1, 3} along PC1 costs 1 + 1.
    one = np.zeros((2, 1, 3))
    one[:, 0, 0] = [0.0, 4.0]
    other = np.zeros((2, 1, 3))
    other[:, 0, 0] = [3.0, 1.0]
    assert mt.pca_w2(other, one, n_components=1) == pytest.approx(1.0)
