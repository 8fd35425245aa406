"""Tests of synthfin.stats.facts and the catalogue summary: cross-checks, S&P 500 facts, edges."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.tsa.stattools import acf as statsmodels_acf

from synthfin.stats import facts, stylized_facts

BUNDLED = files("synthfin.data") / "bundled"


def _chop(returns: np.ndarray, window_len: int) -> np.ndarray:
    """Non-overlapping windows, incomplete tail dropped: (n, window_len[, assets])."""
    n = len(returns) // window_len
    return returns[: n * window_len].reshape(n, window_len, *returns.shape[1:])


@pytest.fixture(scope="module")
def sp500() -> np.ndarray:
    """Daily S&P 500 log returns 1990-2022, shape (T,)."""
    with (BUNDLED / "sp500_index.csv.gz").open("rb") as handle:
        prices = pd.read_csv(handle, compression="gzip")["SP500"].to_numpy()
    return np.diff(np.log(prices))


@pytest.fixture(scope="module")
def stocks() -> np.ndarray:
    """Daily log returns of the 20 bundled stocks, shape (T, 20)."""
    with (BUNDLED / "sp500_dataset.csv.gz").open("rb") as handle:
        prices = pd.read_csv(handle, compression="gzip", index_col=0).to_numpy()
    return np.diff(np.log(prices), axis=0)


@pytest.fixture(scope="module")
def gaussian_windows() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((200, 100)) * 0.01


def _simulate_garch(n_days: int, seed: int) -> np.ndarray:
    """GARCH(1,1): sigma2_t = omega + alpha r_{t-1}^2 + beta sigma2_{t-1}, Gaussian shocks."""
    omega, alpha, beta = 1e-6, 0.1, 0.85
    shocks = np.random.default_rng(seed).standard_normal(n_days)
    returns = np.empty(n_days)
    variance = omega / (1 - alpha - beta)
    for day in range(n_days):
        returns[day] = np.sqrt(variance) * shocks[day]
        variance = omega + alpha * returns[day] ** 2 + beta * variance
    return returns


# ---------------------------------------------------------------- independent cross-checks (n=1)


@pytest.mark.parametrize("transform", [lambda r: r, np.abs, np.square], ids=["r", "abs", "sq"])
def test_acf_equals_statsmodels_adjusted_acf_to_1e_10(sp500, transform):
    ours = facts.acf(transform(sp500), max_lag=100)
    reference = statsmodels_acf(transform(sp500), nlags=100, adjusted=True, fft=False)[1:]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


def test_acf_abs_and_acf_sq_are_acf_of_transformed_returns(sp500):
    np.testing.assert_allclose(facts.acf_abs(sp500, 30), facts.acf(np.abs(sp500), 30), atol=1e-14)
    np.testing.assert_allclose(facts.acf_sq(sp500, 30), facts.acf(sp500**2, 30), atol=1e-14)


def test_kurtosis_and_skewness_equal_scipy(sp500):
    assert facts.excess_kurtosis(sp500) == pytest.approx(stats.kurtosis(sp500), abs=1e-12)
    assert facts.skewness(sp500) == pytest.approx(stats.skew(sp500), abs=1e-12)


@pytest.mark.parametrize("tail, sign", [("abs", None), ("left", -1.0), ("right", 1.0)])
def test_hill_tail_index_equals_direct_formula(sp500, tail, sign):
    tail_values = np.abs(sp500) if sign is None else sign * sp500
    k = int(0.05 * sp500.size)
    descending = np.sort(tail_values[tail_values > 0])[::-1]
    expected = 1.0 / (np.mean(np.log(descending[:k])) - np.log(descending[k]))
    assert facts.hill_tail_index(sp500, 0.05, tail) == pytest.approx(expected, rel=1e-12)


def test_hill_curve_matches_pointwise_estimates(sp500):
    fractions = [0.01, 0.025, 0.05, 0.1]
    curve = facts.hill_curve(sp500, fractions, tail="left")
    pointwise = [facts.hill_tail_index(sp500, f, tail="left") for f in fractions]
    np.testing.assert_allclose(curve, pointwise, rtol=1e-12)


def test_tail_quantiles_are_quantiles_of_standardized_returns(sp500):
    standardized = (sp500 - sp500.mean()) / sp500.std()
    expected = np.quantile(standardized, [0.005, 0.01, 0.99, 0.995])
    np.testing.assert_allclose(facts.tail_quantiles(sp500), expected, rtol=1e-12)


def test_leverage_equals_direct_correlation_formula(sp500):
    squared = sp500**2
    for lag in (1, 5, 20):
        covariance = np.mean((sp500[:-lag] - sp500.mean()) * (squared[lag:] - squared.mean()))
        expected = covariance / (sp500.std() * squared.std())
        assert facts.leverage_curve(sp500, 20)[lag - 1] == pytest.approx(expected, rel=1e-10)


def test_coarse_fine_volatility_equals_loop_implementation(sp500):
    returns, tau, max_lag = sp500[:1500], 5, 10
    coarse = np.array([abs(returns[t - tau : t].sum()) for t in range(tau, len(returns) + 1)])
    fine = np.array([np.abs(returns[t - tau : t]).sum() for t in range(tau, len(returns) + 1)])

    def lagged_corr(lead: np.ndarray, lag_series: np.ndarray, k: int) -> float:
        a, b = lead - lead.mean(), lag_series - lag_series.mean()
        return np.mean(a[: len(a) - k] * b[k:]) / (a.std() * b.std())

    expected = [lagged_corr(coarse, fine, -k) for k in range(-max_lag, 0)]
    expected += [lagged_corr(fine, coarse, k) for k in range(0, max_lag + 1)]
    lags, rho, delta_rho = facts.coarse_fine_volatility(returns, tau, max_lag)
    np.testing.assert_array_equal(lags, np.arange(-max_lag, max_lag + 1))
    np.testing.assert_allclose(rho, expected, rtol=1e-10)
    np.testing.assert_allclose(delta_rho, rho[max_lag + 1 :] - rho[max_lag - 1 :: -1], atol=1e-15)


def test_aggregated_kurtosis_equals_kurtosis_of_block_sums(sp500):
    windows = _chop(sp500, 64)
    weekly = windows[:, :60].reshape(len(windows), 12, 5).sum(axis=2)
    horizon_1, horizon_5, horizon_100 = facts.aggregated_kurtosis(windows, (1, 5, 100))
    assert horizon_1 == pytest.approx(facts.excess_kurtosis(windows), rel=1e-12)
    assert horizon_5 == pytest.approx(stats.kurtosis(weekly.ravel()), rel=1e-12)
    assert np.isnan(horizon_100)


def test_one_dimensional_input_is_one_path(sp500):
    np.testing.assert_array_equal(facts.acf_abs(sp500, 10), facts.acf_abs(sp500[None, :], 10))


def test_power_law_beta_recovers_exact_exponent_and_skips_non_positive_values():
    lags = np.arange(1, 51)
    curve = 0.4 * lags**-0.3
    curve[[10, 20]] = [-0.01, 0.0]
    assert facts.power_law_beta(curve, lags) == pytest.approx(0.3, abs=1e-12)
    assert np.isnan(facts.power_law_beta(np.array([0.1, -0.1, 0.0]), np.array([1, 2, 3])))


# ---------------------------------------------------------------- pooling inside windows


def test_pooled_acf_abs_on_64_day_windows_matches_full_series_within_standard_error(sp500):
    standard_error = 1.0 / np.sqrt(sp500.size)
    full_series = facts.acf_abs(sp500, 1)[0]
    pooled = facts.acf_abs(_chop(sp500, 64), 1)[0]
    assert abs(pooled - full_series) < 3 * standard_error


def test_mean_of_per_window_acf_abs_is_negative_at_24_days_while_pooled_is_not(sp500):
    windows = _chop(sp500, 24)
    full_series = facts.acf_abs(sp500, 1)[0]
    assert facts.acf_abs(windows, 1, per_window=True)[0] < 0
    assert abs(facts.acf_abs(windows, 1)[0] - full_series) < 3 / np.sqrt(sp500.size)


def test_pooled_acf_never_multiplies_across_the_seam_between_windows():
    # Constant sign inside a window, alternating between windows: inside a window every lagged
    # product is +1, whereas the concatenated series would see -1 at each seam.
    signs = np.where(np.arange(500) % 2 == 0, 1.0, -1.0)
    windows = np.repeat(signs[:, None], 4, axis=1)  # (500, 4)
    np.testing.assert_allclose(facts.acf(windows, 3), 1.0, atol=1e-12)
    # concatenated, one lag-1 product in four crosses a seam: (3 - 1) / 4
    assert facts.acf(windows.ravel(), 1)[0] == pytest.approx(0.5, abs=1e-2)


def test_copy_of_last_day_into_next_window_creates_no_spurious_correlation():
    windows = np.random.default_rng(2).standard_normal((2000, 8))
    windows[1:, 0] = windows[:-1, -1]  # a seam-crossing lag-1 dependence only
    bound = 4 / np.sqrt(windows.size)
    assert abs(facts.acf(windows, 1)[0]) < bound
    assert facts.acf(windows.ravel(), 1)[0] > 0.1


# ---------------------------------------------------------------- iid and simulated benchmarks


def test_iid_gaussian_has_no_autocorrelation_kurtosis_or_leverage(gaussian_windows):
    bound = 4 / np.sqrt(gaussian_windows.size)
    for curve in (
        facts.acf(gaussian_windows, 10),
        facts.acf_abs(gaussian_windows, 10),
        facts.acf_sq(gaussian_windows, 10),
        facts.leverage_curve(gaussian_windows, 10),
    ):
        assert np.all(np.abs(curve) < bound)
    kurtosis_bound = 4 * np.sqrt(24 / gaussian_windows.size)
    assert abs(facts.excess_kurtosis(gaussian_windows)) < kurtosis_bound


def test_student_t3_hill_index_is_near_3_within_asymptotic_error():
    sample = np.random.default_rng(0).standard_t(3, size=100_000)
    k_fraction = 0.01
    asymptotic_std = 3.0 / np.sqrt(k_fraction * sample.size)
    assert abs(facts.hill_tail_index(sample, k_fraction) - 3.0) < 4 * asymptotic_std


def test_garch_simulation_shows_volatility_clustering():
    returns = _simulate_garch(20_000, seed=3)
    windows = _chop(returns, 100)
    assert np.all(facts.acf_abs(windows, 5) > 4 / np.sqrt(returns.size))


def _iid_t_times_window_level(n: int, length: int, seed: int) -> np.ndarray:
    """iid Student-t(4) days, each window scaled by its own lognormal level (sd 0.5 of the log)."""
    rng = np.random.default_rng(seed)
    level = np.exp(0.5 * rng.standard_normal((n, 1)))
    return 0.01 * level * rng.standard_t(4, size=(n, length))


def test_acf_abs_within_of_iid_days_with_a_level_per_window_is_minus_one_over_l_minus_one():
    """Levels that differ between windows make the pooled acf_abs positive; divided out, iid
    days give -1/(L-1) (a window's relative |r| sums to zero) within 4 standard errors of a
    pooled correlation of n (L - k) iid pairs, while acf_abs is positive by far more."""
    n, length, max_lag = 2000, 64, 5
    windows = _iid_t_times_window_level(n, length, seed=7)
    se = 1 / np.sqrt(n * (length - np.arange(1, max_lag + 1)))
    within = facts.acf_abs_within(windows, max_lag)
    assert np.all(np.abs(within + 1 / (length - 1)) < 4 * se), (within, se)
    assert np.all(facts.acf_abs(windows, max_lag) > 20 * se)


def test_acf_abs_within_of_garch_windows_is_positive_at_lag_one():
    """GARCH(1,1) clusters inside 64-day windows: lag 1 above 5 standard errors of the iid
    value (1 / sqrt(n (L - 1)) for n windows)."""
    windows = _chop(_simulate_garch(64_000, seed=3), 64)
    se = 1 / np.sqrt(windows.shape[0] * 63)
    assert facts.acf_abs_within(windows, 1)[0] > 5 * se


def test_acf_abs_within_is_the_acf_of_relative_abs_and_leaves_out_windows_of_zeros():
    windows = _iid_t_times_window_level(50, 32, seed=1)
    relative = facts.relative_abs(windows)
    np.testing.assert_allclose(relative.sum(axis=1), 0.0, atol=1e-12)
    expected = facts.acf(relative, 4)
    np.testing.assert_allclose(facts.acf_abs_within(windows, 4), expected, rtol=1e-12)
    with_zeros = np.concatenate([np.zeros((2, 32)), windows])
    np.testing.assert_allclose(facts.acf_abs_within(with_zeros, 4), expected, rtol=1e-12)
    assert np.isnan(facts.acf_abs_within(np.zeros((3, 32)), 4)).all()


# ---------------------------------------------------------------- stylized facts of the S&P 500


def test_sp500_shows_the_classic_stylized_facts(sp500):
    assert facts.acf_abs(sp500, 1)[0] > 0.15
    assert facts.leverage_curve(sp500, 1)[0] < 0
    assert facts.excess_kurtosis(sp500) > 5
    assert np.all(np.diff(facts.aggregated_kurtosis(sp500, (1, 5, 20))) < 0)
    assert 2.0 < facts.hill_tail_index(sp500, 0.05) < 4.0
    assert 0.2 < facts.power_law_beta(facts.acf_abs(sp500, 100), np.arange(1, 101)) < 0.6


def test_sp500_coarse_volatility_predicts_fine_volatility_better_than_reverse(sp500):
    _, _, delta_rho = facts.coarse_fine_volatility(sp500, tau=5, max_lag=20)
    assert np.mean(delta_rho[:5]) < 0


def test_sp500_losses_are_reached_faster_than_gains_on_64_day_windows(sp500):
    summary = facts.gain_loss_asymmetry(_chop(sp500, 64), theta=0.05)
    assert summary["median_gain_minus_loss_days"] > 0


# ---------------------------------------------------------------- first passages


def test_first_passage_times_on_hand_computed_path():
    # log price 0, .25, .5, 0, -.5, 0, .5 (exact in binary floating point)
    path = np.array([0.25, 0.25, -0.5, -0.5, 0.5, 0.5])
    gain_days, loss_days = facts.first_passage_times(path, theta=0.5)
    np.testing.assert_array_equal(gain_days, [2, 3, 1, 1])  # starts 0, 3, 4, 5
    np.testing.assert_array_equal(loss_days, [4, 3, 1, 1])  # starts 0, 1, 2, 3
    summary = facts.gain_loss_asymmetry(path, theta=0.5)
    assert summary["median_gain_days"] == 1.5
    assert summary["median_loss_days"] == 2.0
    assert summary["median_gain_minus_loss_days"] == -0.5
    assert summary["mode_gain_days"] == summary["mode_loss_days"] == 1.0


def test_first_passage_is_censored_at_the_window_end():
    windows = np.full((2, 2), 0.25)  # concatenated, +0.75 would be reached after 3 days
    gain_days, loss_days = facts.first_passage_times(windows, theta=0.75)
    assert gain_days.size == loss_days.size == 0
    assert np.isnan(facts.gain_loss_asymmetry(windows, theta=0.75)["median_gain_days"])


# ---------------------------------------------------------------- multi-asset


def test_cross_correlation_recovers_known_correlation():
    rng = np.random.default_rng(4)
    first, noise = rng.standard_normal((2, 50, 200))
    paths = np.stack([first, 0.6 * first + 0.8 * noise], axis=-1)  # (50, 200, 2)
    correlation = facts.cross_correlation(paths)
    assert correlation.shape == (2, 2)
    np.testing.assert_allclose(np.diag(correlation), 1.0)
    assert abs(correlation[0, 1] - 0.6) < 4 * (1 - 0.6**2) / np.sqrt(paths[..., 0].size)
    assert correlation[0, 1] == pytest.approx(correlation[1, 0], rel=1e-14)
    assert 0 < facts.cross_correlation(paths, absolute=True)[0, 1] < correlation[0, 1]


def test_frobenius_distance_of_known_matrices():
    assert facts.frobenius_distance(np.eye(2), [[1.0, 0.6], [0.6, 1.0]]) == pytest.approx(
        np.sqrt(2 * 0.36)
    )


def test_per_asset_applies_the_fact_to_each_asset(stocks):
    windows = _chop(stocks[:, :3], 64)
    results = facts.per_asset(facts.acf_abs, windows, max_lag=5)
    for asset, curve in enumerate(results):
        np.testing.assert_array_equal(curve, facts.acf_abs(windows[:, :, asset], 5))


# ---------------------------------------------------------------- summary


def test_stylized_facts_summary_is_json_serializable_with_default_lags(sp500):
    summary = stylized_facts(_chop(sp500, 64))
    json.dumps(summary)
    assert summary["n_windows"] == len(sp500) // 64 and summary["window_length"] == 64
    assert len(summary["acf_abs"]) == 32 and len(summary["acf_r"]) == 20
    assert len(summary["leverage"]) == 20
    assert len(summary["coarse_fine_volatility"]["delta_rho"]) == 20
    assert summary["kurtosis_reliable"] is False  # S&P 500 tail index is about 3


def test_stylized_facts_flags_gaussian_kurtosis_as_reliable(gaussian_windows):
    summary = stylized_facts(gaussian_windows, max_lag=10)
    assert summary["kurtosis_reliable"] is True
    assert len(summary["acf_abs"]) == len(summary["acf_r"]) == 10


def test_stylized_facts_short_windows_shrink_the_coarse_fine_lag(sp500):
    summary = stylized_facts(_chop(sp500, 24))
    assert len(summary["coarse_fine_volatility"]["delta_rho"]) == 19


def test_stylized_facts_multi_asset_reports_each_asset_and_cross_correlations(stocks):
    windows = _chop(stocks[:, :3], 64)
    summary = stylized_facts(windows)
    json.dumps(summary)
    assert summary["n_assets"] == 3 and len(summary["assets"]) == 3
    assert summary["assets"][1]["kurtosis"] == pytest.approx(
        facts.excess_kurtosis(windows[:, :, 1])
    )
    assert np.array(summary["cross_correlation"]).shape == (3, 3)
    assert np.array(summary["cross_correlation_abs"]).shape == (3, 3)


# ---------------------------------------------------------------- validation


def test_non_finite_values_are_rejected_with_their_count():
    returns = np.zeros((3, 10))
    returns[0, 1], returns[2, 5] = np.nan, np.inf
    with pytest.raises(ValueError, match="2 non-finite"):
        facts.acf(returns, 2)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), ()])
def test_wrong_dimensions_are_rejected(shape):
    with pytest.raises(ValueError, match="shape"):
        facts.excess_kurtosis(np.zeros(shape))


def test_multi_asset_array_in_univariate_fact_points_to_per_asset():
    with pytest.raises(ValueError, match="per_asset"):
        facts.acf_abs(np.zeros((2, 10, 3)), 2)


def test_max_lag_not_below_window_length_is_rejected_with_both_numbers():
    with pytest.raises(ValueError, match=r"max_lag=10 .* window length 10"):
        facts.leverage_curve(np.ones((4, 10)), 10)


def test_coarse_fine_rejects_windows_shorter_than_tau_plus_max_lag():
    with pytest.raises(ValueError, match="at least tau \\+ max_lag = 25 days; got length 24"):
        facts.coarse_fine_volatility(np.ones((4, 24)), tau=5, max_lag=20)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: facts.hill_tail_index(x, 1.5),
        lambda x: facts.hill_tail_index(x, 1e-6),
        lambda x: facts.hill_tail_index(x, 0.05, tail="both"),
        lambda x: facts.first_passage_times(x, theta=0.0),
        lambda x: facts.cross_correlation(x),
        lambda x: facts.frobenius_distance(np.eye(2), np.eye(3)),
    ],
    ids=["k_fraction_above_1", "k_below_one", "unknown_tail", "theta_zero", "needs_3d", "shapes"],
)
def test_invalid_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call(np.random.default_rng(5).standard_normal((4, 50)))
