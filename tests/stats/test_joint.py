"""Joint facts on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from synthfin.errors import DataError
from synthfin.stats import joint

DAYS = 200_000


def equicorrelated(rho: float, assets: int, days: int, seed: int) -> np.ndarray:
    """Gaussian days (1, days, assets) of unit variance and pairwise correlation ``rho``."""
    covariance = np.full((assets, assets), rho) + (1 - rho) * np.eye(assets)
    return np.random.default_rng(seed).multivariate_normal(np.zeros(assets), covariance,
                                                           size=days)[None]


def test_mean_correlation_of_a_gaussian_matches_rho_within_6_standard_errors() -> None:
    rho = 0.5
    x = equicorrelated(rho, 4, DAYS, seed=0)
    standard_error = (1 - rho**2) / np.sqrt(DAYS)  # of one pairwise correlation
    assert abs(joint.mean_pairwise_correlation(x) - rho) < 6 * standard_error


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_tail_dependence_of_a_gaussian_matches_the_bivariate_normal_formula(rho: float) -> None:
    x = equicorrelated(rho, 3, DAYS, seed=1)
    expected = joint.gaussian_tail_dependence(rho)
    # P(both) ~ q * expected over DAYS days; the conditional's binomial std / q, times 4
    tolerance = 4 * np.sqrt(expected * (1 - expected) / (joint.TAIL_QUANTILE * DAYS))
    assert abs(joint.lower_tail_dependence(x) - expected) < tolerance


def test_gaussian_tail_dependence_is_q_for_independence_and_1_for_comonotone() -> None:
    assert joint.gaussian_tail_dependence(0.0) == pytest.approx(joint.TAIL_QUANTILE, abs=1e-6)
    assert joint.gaussian_tail_dependence(0.999999) == pytest.approx(1.0, abs=2e-3)


def test_shared_student_t_mixture_has_more_tail_dependence_than_a_gaussian_of_equal_rho() -> None:
    rho, dof = 0.5, 3.0
    rng = np.random.default_rng(2)
    gaussian = equicorrelated(rho, 3, DAYS, seed=2)
    scale = np.sqrt(dof / rng.chisquare(dof, size=(1, DAYS, 1)))  # one draw per day, shared
    student = gaussian * scale
    assert abs(joint.mean_pairwise_correlation(student) - rho) < 0.02
    assert joint.lower_tail_dependence(student) > joint.lower_tail_dependence(gaussian) + 0.05


def test_correlation_error_is_the_mean_absolute_off_diagonal_difference() -> None:
    a = np.array([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    b = np.array([[1.0, 0.5, 0.4], [0.5, 1.0, 0.0], [0.4, 0.0, 1.0]])
    assert joint.correlation_error(a, b) == pytest.approx((0.3 + 0.0 + 0.6) / 3, abs=1e-12)


def test_min_variance_weights_of_uncorrelated_assets_are_inverse_variances() -> None:
    rng = np.random.default_rng(3)
    std = np.array([1.0, 2.0, 4.0])
    x = rng.standard_normal((1, DAYS, 3)) * std
    expected = std**-2 / np.sum(std**-2)
    # each weight's relative error is of order sqrt(2 / DAYS) per variance estimate
    np.testing.assert_allclose(joint.min_variance_weights(x), expected, atol=0.01)


def test_portfolio_of_identical_assets_is_the_asset_and_var_es_match_the_gaussian() -> None:
    rng = np.random.default_rng(4)
    one = 0.01 * rng.standard_normal((1, DAYS, 1))
    x = np.repeat(one, 3, axis=2)
    portfolio = joint.portfolio_returns(x, joint.equal_weights(3))
    np.testing.assert_allclose(portfolio, one[..., 0], atol=1e-15)
    var, es = joint.value_at_risk(portfolio)
    z = 2.326348  # the 99 % normal quantile; ES = phi(z) / 0.01
    assert var == pytest.approx(0.01 * z, rel=0.02)
    assert es == pytest.approx(0.01 * 2.665214, rel=0.03)


def test_trailing_vol_uses_the_previous_21_days_of_the_same_window_only() -> None:
    rng = np.random.default_rng(5)
    x = 0.01 * rng.standard_normal((2, 40, 2))
    vol = joint.trailing_portfolio_vol(x)
    assert np.isnan(vol[:, :21]).all()
    portfolio = joint.portfolio_returns(x, [0.5, 0.5])
    assert vol[1, 30] == pytest.approx(portfolio[1, 9:30].std(ddof=1), rel=1e-12)


def test_correlation_rising_in_stress_is_seen_by_the_calm_and_stressed_split() -> None:
    rng = np.random.default_rng(6)
    windows = []
    for stressed in rng.random(400) < 0.5:  # whole windows of one regime
        rho, vol = (0.8, 0.03) if stressed else (0.1, 0.008)
        windows.append(vol * equicorrelated(rho, 3, 64, seed=int(rng.integers(1 << 31)))[0])
    x = np.stack(windows)
    calm, stressed = joint.regime_correlations(x, joint.stress_thresholds(x))
    assert calm == pytest.approx(0.1, abs=0.05)
    assert stressed == pytest.approx(0.8, abs=0.05)


def test_one_asset_is_a_one_line_error() -> None:
    with pytest.raises(DataError, match="assets >= 2"):
        joint.mean_pairwise_correlation(np.zeros((3, 10, 1)))


def test_windows_too_short_to_split_have_undefined_calm_and_stressed_correlation() -> None:
    x = equicorrelated(0.5, 3, 8 * 50, seed=7).reshape(50, 8, 3)
    statistics = joint.joint_statistics(x, joint.stress_thresholds(x),
                                        joint.min_variance_weights(x))
    assert np.isnan(statistics["calm_corr"]) and np.isnan(statistics["stressed_corr"])
    assert statistics["ew_acf_abs"].shape == (7,)
