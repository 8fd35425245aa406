"""The joint peers: bounded GJR filters, the DCC-t likelihood and recursion, filtered historical
simulation drawing whole days, and both as generators (save/load, regimes, history)."""

import numpy as np
import pytest
from scipy import stats

from synthfin.errors import ModelError
from synthfin.models import Generator
from synthfin.models.base import implausible_paths
from synthfin.models.multivariate import (
    MAX_PERSISTENCE,
    MAX_VOL_MULTIPLE,
    MIN_DF,
    DCCGenerator,
    FilteredHistoricalSimulation,
    dcc_correlations,
    fit_gjr,
    gjr_filter,
    long_run_variance,
    mvt_log_density,
)


def simulate_dcc(days: int, a: float, b: float, nu: float, qbar: np.ndarray,
                 seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, out = qbar.copy(), np.empty((days, len(qbar)))
    for t in range(days):
        d = np.sqrt(np.diag(q))
        corr = q / np.outer(d, d)
        z = np.linalg.cholesky(corr) @ rng.standard_normal(len(qbar))
        out[t] = z * np.sqrt((nu - 2) / rng.chisquare(nu))
        q = (1 - a - b) * qbar + a * np.outer(out[t], out[t]) + b * q
    return out


def test_near_integrated_gjr_fits_are_capped_and_variance_targeted():
    """IGARCH data (alpha + beta = 1): the fit's persistence is capped and its long-run
    variance is the sample's, so simulated paths cannot drift away."""
    rng = np.random.default_rng(0)
    variance, series = 1.0, np.empty((3000, 1))
    for t in range(3000):
        series[t, 0] = np.sqrt(variance) * rng.standard_t(6) * np.sqrt(4 / 6)
        variance = 0.02 + 0.12 * series[t, 0] ** 2 + 0.88 * variance
    params = fit_gjr(series / series.std())
    mu, omega, alpha, gamma, beta, nu = params[0]
    assert alpha + gamma / 2 + beta <= MAX_PERSISTENCE + 1e-12 and nu >= MIN_DF
    scaled = series[:, 0] / series.std()
    np.testing.assert_allclose(long_run_variance(params)[0], np.mean((scaled - mu) ** 2),
                               rtol=1e-10)
    z, after = gjr_filter(scaled[:, None] * 100, params)  # a wild history: variance capped
    assert after.max() <= MAX_VOL_MULTIPLE**2 * long_run_variance(params)[0] * (1 + 1e-12)


def test_mvt_log_density_is_scipys_multivariate_t_with_unit_variance():
    rng = np.random.default_rng(1)
    corr = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.3], [0.2, 0.3, 1.0]])
    z, nu = rng.standard_normal((5, 3)), 7.0
    expected = stats.multivariate_t(np.zeros(3), corr * (nu - 2) / nu, df=nu).logpdf(z)
    got = mvt_log_density(z, np.broadcast_to(corr, (5, 3, 3)), nu)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_dcc_correlations_are_the_recursion():
    z = np.random.default_rng(2).standard_normal((30, 2))
    qbar = np.array([[1.0, 0.4], [0.4, 1.0]])
    q, expected = qbar.copy(), []
    for t in range(30):
        d = np.sqrt(np.diag(q))
        expected.append(q / np.outer(d, d))
        q = 0.5 * qbar + 0.1 * np.outer(z[t], z[t]) + 0.4 * q
    np.testing.assert_allclose(dcc_correlations(z, qbar, 0.1, 0.4), expected, atol=1e-12)


def test_dcc_fit_recovers_simulated_parameters():
    """DCC-t data with a = 0.05, b = 0.90, nu = 8 over 4,000 days: the two-step fit recovers
    them within about three standard errors (a: 0.01, b: 0.03, nu: 1.5 at this length)."""
    qbar = np.array([[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]])
    z = simulate_dcc(4000, 0.05, 0.90, 8.0, qbar)
    model = DCCGenerator()
    model._fit_joint(z, np.zeros(len(z), dtype=int), 1)  # the joint step alone, on known residuals
    a, b, nu = model.dcc_
    assert abs(a - 0.05) < 0.03 and abs(b - 0.90) < 0.09 and 4 < nu < 13, model.dcc_


@pytest.fixture(scope="module")
def fitted(two_asset_windows):
    return {cls.name: cls().fit(two_asset_windows)
            for cls in (DCCGenerator, FilteredHistoricalSimulation)}


@pytest.mark.parametrize("name", ["dcc", "fhs"])
def test_joint_peers_keep_the_correlation_save_load_and_continue_a_history(
        fitted, two_asset_windows, tmp_path, name):
    model = fitted[name]
    real = two_asset_windows.unscale(two_asset_windows.train.returns)
    paths = model.sample_returns(400, length=252, seed=0)
    sampled = np.mean([np.corrcoef(p.T)[0, 1] for p in paths])
    # yearly correlations of the real pair spread about 0.1 (sd): the mean within 0.1
    assert abs(sampled - np.corrcoef(real.T)[0, 1]) < 0.1
    # heavy tails, not explosions: DCC-t drew one path of 1,000 beyond 25 sds on this pair
    assert np.abs(paths).max() < 1.0
    assert implausible_paths(paths, two_asset_windows.scaler.std_).mean() < 0.01
    again = Generator.load(model.save(tmp_path / name))
    np.testing.assert_array_equal(again.sample_returns(5, seed=3), model.sample_returns(5, seed=3))
    after = model.sample_after(real, 300, 21, seed=0)
    assert after.shape == (300, 21, 2) and model.context_sampler() is model
    calm, stressed = (model.sample_returns(400, length=21, condition=c, seed=0)
                      for c in ("calm", "stressed"))
    assert stressed.std() > 1.5 * calm.std()
    with pytest.raises(ModelError, match="context must be"):
        model.sample_after(np.zeros((10, 3)), 5)


def test_fhs_days_are_whole_training_days_of_residuals(fitted):
    model = fitted["fhs"]
    drawn = model._draw(None, np.random.default_rng(0), 500)
    rows = {tuple(row) for row in model.residuals_}
    assert all(tuple(row) in rows for row in drawn)


def test_dcc_draws_others_from_the_multivariate_t_conditional(fitted):
    """Monte Carlo mean and variance of the others given z_G against the closed form:
    mean R_OG R_GG^-1 z_G, covariance (nu - 2 + d) / (nu + k - 2) times the Schur complement
    (within 4 standard errors of 200,000 draws)."""
    model = DCCGenerator()
    model.dcc_ = np.array([0.0, 0.0, 7.0])
    corr = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    n, z_given = 200_000, np.array([-2.5])
    z = model._draw_given(np.broadcast_to(corr, (n, 3, 3)), np.random.default_rng(0),
                          np.broadcast_to(z_given, (n, 1)), [1])
    assert np.all(z[:, 1] == -2.5)
    others = [0, 2]
    mean = corr[others, 1] * z_given[0]
    schur = corr[np.ix_(others, others)] - np.outer(corr[others, 1], corr[1, others])
    cov = (7.0 - 2 + z_given[0] ** 2) / (7.0 + 1 - 2) * schur
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(z[:, others].mean(axis=0) - mean) < 4 * se)
    np.testing.assert_allclose(np.cov(z[:, others].T), cov, atol=0.02)  # se about 0.005


def test_fhs_given_days_are_real_days_nearest_to_the_given_residuals(fitted):
    model = fitted["fhs"]
    z_given = np.full((300, 1), -3.0)
    z = model._draw_given(None, np.random.default_rng(0), z_given, [0])
    assert np.all(z[:, 0] == -3.0)
    nearest = np.argsort(np.abs(model.residuals_[:, 0] + 3.0))[:20]
    assert set(z[:, 1]) <= set(model.residuals_[nearest, 1])


@pytest.mark.parametrize("name", ["dcc", "fhs"])
def test_sample_given_follows_the_path_and_moves_the_others_with_it(fitted,
                                                                    two_asset_windows, name):
    """Given a JPM path of large falls, XOM falls on average (their correlation is positive),
    more than given a path of rises."""
    model = fitted[name]
    history = two_asset_windows.unscale(two_asset_windows.train.returns)
    falls = np.full((10, 1), -0.04)
    down = model.sample_given(falls, ["JPM"], 500, context=history, seed=0)
    up = model.sample_given(-falls, ["JPM"], 500, context=history, seed=0)
    assert down.shape == (500, 10, 2) and np.all(down[:, :, 0] == -0.04)
    assert down[:, :, 1].mean() < 0 < up[:, :, 1].mean()
    stationary = model.sample_given(falls, "JPM", 50, seed=0)
    assert stationary.shape == (50, 10, 2)
    with pytest.raises(ModelError, match="given assets"):
        model.sample_given(falls, ["SPY"], 5)
    with pytest.raises(ModelError, match="nothing to draw"):
        model.sample_given(np.zeros((3, 2)), ["JPM", "XOM"], 5)
