import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from synthfin.backtest.risk import (
    acerbi_szekely_z2,
    christoffersen_conditional_coverage,
    christoffersen_independence,
    garch_t_forecast_samples,
    kupiec_test,
    model_forecast_samples,
    risk_backtest,
    var_es_from_samples,
)
from synthfin.data.windows import make_windows
from synthfin.errors import DataError, ModelError
from synthfin.models.baselines import GaussianGenerator


def _flags(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text])


# -- Kupiec and Christoffersen: hand-computed values -------------------------------------------
def test_kupiec_matches_hand_computed_lr_and_chi2_1_p_value():
    lr, p = kupiec_test(_flags("0001000000"), 0.95)  # x = 1 of T = 10, p = 0.05
    expected = -2 * (math.log(0.05) + 9 * math.log(0.95) - math.log(0.1) - 9 * math.log(0.9))
    assert lr == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)


def test_kupiec_edge_cases_use_zero_log_zero_convention():
    lr, p = kupiec_test(np.zeros(10, dtype=bool), 0.95)  # no exceedance: -2 T log(1 - p)
    assert lr == pytest.approx(-20 * math.log(0.95), rel=1e-12)
    assert p == pytest.approx(stats.chi2.sf(lr, 1))
    lr, _ = kupiec_test(np.ones(4, dtype=bool), 0.99)  # all exceed: -2 T log p
    assert lr == pytest.approx(-8 * math.log(0.01), rel=1e-12)
    assert kupiec_test(_flags("00000000000000000001"), 0.95) == pytest.approx((0.0, 1.0))


def test_christoffersen_independence_matches_hand_computed_lr():
    # pairs of 0111000010: n00 = 3, n01 = 2, n10 = 2, n11 = 2
    lr, p = christoffersen_independence(_flags("0111000010"))
    pi, pi01, pi11 = 4 / 9, 2 / 5, 2 / 4
    expected = -2 * (5 * math.log(1 - pi) + 4 * math.log(pi)
                     - 3 * math.log(1 - pi01) - 2 * math.log(pi01)
                     - 2 * math.log(1 - pi11) - 2 * math.log(pi11))
    assert lr == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)


def test_christoffersen_independence_edge_cases():
    for text in ["0000000000", "1111", "0000000001", "1", "0"]:  # a state never left, or no pair
        assert christoffersen_independence(_flags(text)) == pytest.approx((0.0, 1.0))
    # one exceedance inside: n00 = 7, n01 = 1, n10 = 1, n11 = 0, so pi11 = 0 and 0 log 0 = 0
    lr, _ = christoffersen_independence(_flags("0000100000"))
    expected = -2 * (8 * math.log(8 / 9) + math.log(1 / 9) - 7 * math.log(7 / 8) - math.log(1 / 8))
    assert lr == pytest.approx(expected, rel=1e-12)


def test_conditional_coverage_is_the_sum_with_chi2_2_p_value():
    flags = _flags("0111000010")
    lr, p = christoffersen_conditional_coverage(flags, 0.9)
    expected = kupiec_test(flags, 0.9)[0] + christoffersen_independence(flags)[0]
    assert lr == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(stats.chi2.sf(expected, 2), rel=1e-12)


def test_coverage_tests_reject_bad_input():
    with pytest.raises(DataError, match="level"):
        kupiec_test(_flags("01"), 95)
    with pytest.raises(DataError, match="booleans"):
        christoffersen_independence(np.array([0, 2, 1]))
    with pytest.raises(DataError, match="non-empty"):
        kupiec_test(np.array([], dtype=bool), 0.99)


# -- sizes and power -----------------------------------------------------------------------------
def _rejection_bounds(n: int, size_low: float, size_high: float) -> tuple[int, int]:
    """Counts of rejections among ``n`` iid tests that a size in [low, high] makes implausible
    (beyond the 0.1 % tails of the binomial)."""
    return int(stats.binom.ppf(0.001, n, size_low)), int(stats.binom.isf(0.001, n, size_high))


def test_correct_iid_exceedances_are_rejected_at_the_nominal_rate():
    days, p, sequences = 1000, 0.05, 200
    hits = np.random.default_rng(3).random((sequences, days)) < p
    kupiec = np.array([kupiec_test(h, 1 - p)[1] for h in hits])
    independence = np.array([christoffersen_independence(h)[1] for h in hits])
    coverage = np.array([christoffersen_conditional_coverage(h, 1 - p)[1] for h in hits])
    # Kupiec's exact size: binomial probability of the counts it rejects
    counts = np.arange(days + 1)
    rejected = np.array([kupiec_test(np.arange(days) < x, 1 - p)[1] < 0.05 for x in counts])
    size = stats.binom.pmf(counts, days, p)[rejected].sum()
    low, high = _rejection_bounds(sequences, size, size)
    assert low <= (kupiec < 0.05).sum() <= high
    # LR_ind is known to be somewhat over-sized in samples of this length: allow 2.5-10 %
    low, high = _rejection_bounds(sequences, 0.025, 0.10)
    assert low <= (independence < 0.05).sum() <= high
    assert low <= (coverage < 0.05).sum() <= high
    assert 0.3 < np.median(kupiec) < 0.7 and 0.3 < np.median(coverage) < 0.7


def test_overlapping_forecasts_keep_their_size_when_the_test_allows_for_the_overlap():
    """5-day losses of a random walk (Student-t(4) days) forecast every day with the correct
    1 % VaR: the exceedances come in runs, so the plain Kupiec test rejects far more often than
    5 % (a quarter of these series); with ``lags = 4`` its rejections fall within the same
    2.5-10 % allowance as the independence test's above (7 %)."""
    days, horizon, p, sequences = 2500, 5, 0.01, 200
    rng = np.random.default_rng(4)
    steps = rng.standard_t(4, (sequences, days + horizon - 1))
    sums = np.lib.stride_tricks.sliding_window_view(steps, horizon, axis=1).sum(-1)
    var = -np.quantile(rng.standard_t(4, (200_000, horizon)).sum(-1), p)  # the correct VaR
    hits = -sums > var
    plain = np.array([kupiec_test(h, 1 - p)[1] for h in hits])
    overlap = np.array([kupiec_test(h, 1 - p, lags=horizon - 1)[1] for h in hits])
    low, _ = _rejection_bounds(sequences, 0.15, 0.15)
    assert (plain < 0.05).sum() >= low
    low, high = _rejection_bounds(sequences, 0.025, 0.10)
    assert low <= (overlap < 0.05).sum() <= high
    # no overlap: the plain test; a constant series: nothing to inflate
    assert kupiec_test(hits[0], 1 - p, lags=0) == kupiec_test(hits[0], 1 - p)
    assert kupiec_test(np.zeros(100, bool), 0.99, lags=4) == kupiec_test(np.zeros(100, bool), 0.99)
    with pytest.raises(DataError, match="lags"):
        kupiec_test(hits[0], 1 - p, lags=-1)


def test_clustered_exceedances_reject_independence_but_not_coverage():
    hits = np.zeros(1200, dtype=bool)
    for start in range(30, 1200, 60):  # runs of 3 every 60 days: rate exactly 5 %
        hits[start:start + 3] = True
    assert kupiec_test(hits, 0.95)[1] == pytest.approx(1.0)
    assert christoffersen_independence(hits)[1] < 1e-6
    assert christoffersen_conditional_coverage(hits, 0.95)[1] < 1e-6


# -- VaR and ES from samples ---------------------------------------------------------------------
def test_var_es_match_the_normal_within_their_standard_errors():
    draws = 200_000
    samples = np.random.default_rng(0).standard_normal((4, draws))
    for level, (var, es) in var_es_from_samples(samples).items():
        q = stats.norm.ppf(level)
        true_es = stats.norm.pdf(q) / (1 - level)
        var_se = math.sqrt(level * (1 - level) / draws) / stats.norm.pdf(q)
        # asymptotic variance of the tail mean: [Var(L | L > q) + alpha (ES - q)^2] / (n (1-alpha))
        tail_var = 1 + q * true_es - true_es**2
        es_se = math.sqrt((tail_var + level * (true_es - q) ** 2) / (draws * (1 - level)))
        assert var.shape == es.shape == (4,)
        np.testing.assert_array_less(np.abs(var - q), 4 * var_se)
        np.testing.assert_array_less(np.abs(es - true_es), 4 * es_se)


def test_var_es_are_positive_losses_of_the_left_tail():
    samples = np.arange(1, 101, dtype=float)[None] - 50.5  # returns -49.5 .. 49.5
    (var, es), = var_es_from_samples(samples, levels=(0.9,)).values()
    assert var[0] == pytest.approx(39.6)  # position 0.9 * 99 = 89.1 among losses -49.5 .. 49.5
    assert es[0] == pytest.approx(np.mean(np.arange(40.5, 50)))  # the 10 losses above 39.6
    with pytest.raises(DataError, match="non-finite"):
        var_es_from_samples(np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match="n_draws"):
        var_es_from_samples(np.zeros(5))


# -- Acerbi-Szekely Z2 ---------------------------------------------------------------------------
def test_z2_matches_its_formula_on_a_small_example():
    returns = np.array([-3.0, 0.5, -1.0, -2.0])
    var, es = np.array([2.0, 2.0, 1.5, 1.0]), np.array([2.5, 2.5, 2.0, 1.5])
    z2, p = acerbi_szekely_z2(returns, var, es, 0.9)
    assert z2 == pytest.approx(1 - (3.0 / 2.5 + 2.0 / 1.5) / (4 * 0.1))
    assert math.isnan(p)  # no predictive samples, no null distribution
    with pytest.raises(DataError, match="positive"):
        acerbi_szekely_z2(returns, var, -es, 0.9)


def _z2_null_sd(samples: np.ndarray, level: float) -> float:
    """Standard deviation of Z2 under H0 from the per-day terms' variance (iid days)."""
    (var, es), = var_es_from_samples(samples, levels=(level,)).values()
    losses = -samples
    terms = np.where(losses > var[:, None], losses, 0) / ((1 - level) * es[:, None])
    return math.sqrt(terms.var(axis=1).mean() / len(samples))


def test_z2_is_near_zero_and_not_rejected_for_correct_forecasts():
    days, dof = 2000, 5
    samples = stats.t.rvs(dof, size=(days, 1000), random_state=1)
    realized = stats.t.rvs(dof, size=days, random_state=2)
    for level, (var, es) in var_es_from_samples(samples).items():
        z2, p = acerbi_szekely_z2(realized, var, es, level, samples, n_sims=1000, seed=0)
        assert abs(z2) < 4 * _z2_null_sd(samples, level)
        assert p > 0.01
        assert (z2, p) == acerbi_szekely_z2(realized, var, es, level, samples, n_sims=1000,
                                            seed=0)


def test_z2_rejects_gaussian_forecasts_of_equal_variance_t3_returns():
    # t(3) / sqrt(3) has unit variance like the forecast but far heavier tails beyond 99 %:
    # analytically E[Z2] = -0.86 there, against a null sd of about 10 / sqrt(days).
    days = 3000
    samples = np.random.default_rng(4).standard_normal((days, 1000))
    realized = stats.t.rvs(3, size=days, random_state=5) / math.sqrt(3)
    (var, es), = var_es_from_samples(samples, levels=(0.99,)).values()
    z2, p = acerbi_szekely_z2(realized, var, es, 0.99, samples, n_sims=1000, seed=0)
    assert z2 < -3 * _z2_null_sd(samples, 0.99)
    assert p < 0.01
    # roles swapped, the t(3) forecast overstates the normal truth's ES: Z2 > 0, not rejected
    heavy = stats.t.rvs(3, size=(days, 1000), random_state=6) / math.sqrt(3)
    (var, es), = var_es_from_samples(heavy, levels=(0.99,)).values()
    z2, p = acerbi_szekely_z2(samples[:, 0], var, es, 0.99, heavy, n_sims=1000, seed=0)
    assert z2 > 0 and p > 0.5


# -- the table -------------------------------------------------------------------------------
def test_risk_backtest_table_has_one_row_per_level():
    rng = np.random.default_rng(6)
    samples, realized = rng.standard_normal((500, 400)), rng.standard_normal(500)
    table = risk_backtest(realized, samples, seed=1, n_sims=500)
    assert list(table.index) == [0.95, 0.99]
    assert list(table.columns) == ["days", "exceedances", "expected", "rate", "kupiec_p",
                                   "independence_p", "conditional_coverage_p", "z2", "z2_p"]
    var, _ = var_es_from_samples(samples)[0.99]
    assert table.loc[0.99, "exceedances"] == (-realized > var).sum()
    assert table.loc[0.95, "expected"] == pytest.approx(25.0)
    assert table[["kupiec_p", "independence_p", "z2_p"]].stack().between(0, 1).all()
    pd.testing.assert_frame_equal(table, risk_backtest(realized, samples, seed=1, n_sims=500))
    with pytest.raises(DataError, match="match samples"):
        risk_backtest(realized[:-1], samples)


# -- forecast drivers -----------------------------------------------------------------------------
def _simulate_garch_t(days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1)-t log returns and their true conditional vol (percent parameters)."""
    omega, alpha, beta, nu, mu = 0.02, 0.08, 0.9, 6.0, 0.05
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(nu, size=days) * math.sqrt((nu - 2) / nu)
    variance, sigma, returns = omega / (1 - alpha - beta), np.empty(days), np.empty(days)
    for t in range(days):
        sigma[t] = math.sqrt(variance)
        returns[t] = mu + sigma[t] * shocks[t]
        variance = omega + alpha * (returns[t] - mu) ** 2 + beta * variance
    return returns / 100, sigma / 100


def test_garch_t_forecasts_cover_a_simulated_garch_series():
    series, true_sigma = _simulate_garch_t(3000, seed=8)
    samples = garch_t_forecast_samples(series, n_train=2000, first_day=2000, n_draws=1000)
    assert samples.shape == (1000, 1000)
    var, _ = var_es_from_samples(samples, levels=(0.95,))[0.95]
    rate = (-series[2000:] > var).mean()
    # binomial noise over 1,000 days, 4.5 standard errors (parameter error is far smaller)
    assert abs(rate - 0.05) < 4.5 * math.sqrt(0.05 * 0.95 / 1000)
    assert np.corrcoef(var, true_sigma[2000:])[0, 1] > 0.95  # VaR follows the true vol
    np.testing.assert_array_equal(samples[:5], garch_t_forecast_samples(
        series, 2000, 2000, n_draws=1000)[:5])
    with pytest.raises(DataError, match="first_day"):
        garch_t_forecast_samples(series, n_train=2000, first_day=1500)


class _TrailingVolSampler:
    """Stand-in for a context generator: normal draws with the context's trailing 20-day std."""

    def __init__(self) -> None:
        self.context_days: list[int] = []

    def sample_after(self, context, n, length=1, seed=None):
        self.context_days.append(len(context))
        scale = context[-20:].std(axis=0)
        return np.random.default_rng(seed).standard_normal((n, length, context.shape[1])) * scale


def test_model_forecast_samples_roll_through_days_with_the_real_past():
    series = np.random.default_rng(9).standard_normal((80, 2)) * [1.0, 5.0]
    sampler = _TrailingVolSampler()
    samples = model_forecast_samples(sampler, series, first_day=60, n_draws=50, seed=3, asset=1)
    assert samples.shape == (20, 50)
    assert sampler.context_days == list(range(60, 80))  # day t sees series[:t]
    assert samples.std() > 3  # asset 1, scale 5
    later = model_forecast_samples(_TrailingVolSampler(), series, 70, n_draws=50, seed=3, asset=1)
    np.testing.assert_array_equal(later, samples[10:])  # per-day seeds: sub-ranges reproduce
    with pytest.raises(DataError, match="asset"):
        model_forecast_samples(sampler, series, 60, asset=2)


def test_model_forecast_samples_needs_a_generator_that_conditions_on_history():
    dates = pd.bdate_range("2000-01-03", periods=400)
    returns = pd.DataFrame({"X": np.random.default_rng(10).normal(0, 0.01, 400)}, index=dates)
    generator = GaussianGenerator().fit(make_windows(returns, 16))
    with pytest.raises(ModelError, match="GaussianGenerator has no sample_after"):
        model_forecast_samples(generator, returns.to_numpy(), first_day=300)


def test_a_fitted_garch_generator_is_backtested_without_a_refit(sp500_windows, sp500_returns):
    """GarchGenerator continues the real history (fitted parameters, filtered variance), so it
    goes through model_forecast_samples like ar: on 500 held-out S&P 500 days its 5 % VaR is
    breached at the nominal rate within 4.5 binomial SE, and it follows the VaR of the refit
    GARCH(1,1)-t of garch_t_forecast_samples (same model class, fitted on other units)."""
    from synthfin.models.baselines import GarchGenerator

    series = sp500_returns.to_numpy()[:, 0]
    first = len(series) - 500
    model = GarchGenerator().fit(sp500_windows)
    samples = model_forecast_samples(model, series[:, None], first, n_draws=500, seed=0)
    var, _ = var_es_from_samples(samples, levels=(0.95,))[0.95]
    rate = (-series[first:] > var).mean()
    assert abs(rate - 0.05) < 4.5 * math.sqrt(0.05 * 0.95 / 500)
    refit = garch_t_forecast_samples(series, n_train=len(sp500_windows.train.returns),
                                     first_day=first, n_draws=500)
    reference, _ = var_es_from_samples(refit, levels=(0.95,))[0.95]
    assert np.corrcoef(var, reference)[0, 1] > 0.9
