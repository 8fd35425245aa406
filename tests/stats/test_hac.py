"""Newey-West errors match statsmodels' HAC and widen for autocorrelated differences."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from synthfin.stats.hac import diebold_mariano, newey_west_lags, newey_west_se


def test_newey_west_matches_statsmodels(rng):
    x = rng.normal(size=500).cumsum() * 0.01 + rng.normal(size=500)
    for lags in (0, 3, 12):
        fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
        assert newey_west_se(x, lags) == pytest.approx(float(fit.bse[0]), rel=1e-10)
    assert newey_west_lags(2500) == 8


def test_hac_error_of_an_ar1_exceeds_the_iid_one_by_the_long_run_factor(rng):
    """AR(1) with phi = 0.5: the long-run variance is (1 + phi) / (1 - phi) = 3 times the
    marginal one, so the true SE is sqrt(3) times the iid one; Bartlett weights with lags of
    ~20 recover most of it (bias < 10 %), the iid error none."""
    phi, count, ratios = 0.5, 20000, []
    for _ in range(5):
        e = rng.normal(size=count)
        x = np.empty(count)
        x[0] = e[0]
        for t in range(1, count):
            x[t] = phi * x[t - 1] + e[t]
        ratios.append(newey_west_se(x, 20) / newey_west_se(x, 0))
    assert np.mean(ratios) == pytest.approx(np.sqrt(3), rel=0.1)


def test_diebold_mariano_t_is_the_mean_over_the_hac_error(rng):
    d = rng.normal(0.05, 1, size=4000)
    result = diebold_mariano(d)
    assert result.t == pytest.approx(d.mean() / newey_west_se(d))
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(result.t)))
