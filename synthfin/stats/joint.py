"""Joint (cross-asset) facts of multi-asset log returns: pure NumPy/SciPy, no models, no I/O.

Every function takes unscaled log returns ``x`` of shape ``(n, length, assets)`` (``n``
windows or paths; a 2-D ``(days, assets)`` array is one window) and pools the days of all
windows, as :mod:`synthfin.stats.facts` does; trailing quantities (the 21-day volatility that
splits calm from stressed days, lagged products) never cross the seam between two windows.

- :func:`correlation_matrix`, :func:`mean_pairwise_correlation`, :func:`correlation_error`:
  same-day Pearson correlations and the mean absolute error of their off-diagonal entries.
- :func:`regime_correlations`: mean pairwise correlation on calm and on stressed days, split by
  the equal-weight portfolio's trailing 21-day volatility at given thresholds (the real
  quartiles, :func:`stress_thresholds`).
- :func:`lower_tail_dependence`: ``P(r_j < q_j | r_i < q_i)`` at each asset's own ``q``-quantile
  (5 %), averaged over pairs; :func:`gaussian_tail_dependence` is its value for a bivariate
  Gaussian of correlation ``rho`` (tends to 0 as ``q -> 0``: a Gaussian has no tail dependence).
- :func:`portfolio_returns`, :func:`min_variance_weights`, :func:`portfolio_facts`: facts of the
  equal-weight and minimum-variance portfolios (excess kurtosis, ACF of ``|r|``, 99 % VaR, ES).
- :func:`joint_statistics` gathers them; :func:`joint_gaps` measures two sets' difference.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from synthfin.errors import DataError
from synthfin.stats import facts
from synthfin.stats.tails import value_at_risk

STRESS_LOOKBACK_DAYS = 21
STRESS_QUANTILES = (0.25, 0.75)   # calm below the lower, stressed above the upper
TAIL_QUANTILE = 0.05
PORTFOLIO_ACF_LAGS = 10
# the scalar joint statistics, in report order (the curves are ``ew_acf_abs``, ``mv_acf_abs``)
JOINT_SCALARS = ("mean_corr", "calm_corr", "stressed_corr", "tail_dependence", "ew_kurtosis",
                 "ew_var99", "ew_es99", "mv_kurtosis", "mv_var99", "mv_es99")


def as_joint(x: ArrayLike, name: str = "x") -> np.ndarray:
    """``x`` as float64 (n, length, assets) with at least two assets; (days, assets) is one
    window."""
    paths = np.asarray(x, dtype=np.float64)
    if paths.ndim == 2:
        paths = paths[None]
    if paths.ndim != 3 or paths.shape[2] < 2:
        raise DataError(f"{name} must have shape (n, length, assets >= 2), got {paths.shape}")
    return paths


def _off_diagonal(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(len(matrix), k=1)]


def correlation_matrix(x: ArrayLike) -> np.ndarray:
    """Pooled same-day Pearson correlations, (assets, assets)."""
    return facts.cross_correlation(as_joint(x))


def mean_pairwise_correlation(x: ArrayLike) -> float:
    """Mean of the off-diagonal entries of :func:`correlation_matrix`."""
    return float(np.mean(_off_diagonal(correlation_matrix(x))))


def correlation_error(a: np.ndarray, b: np.ndarray) -> float:
    r"""Mean absolute error of the off-diagonal correlations of two matrices,
    :math:`\frac{2}{A(A-1)}\sum_{i<j}|a_{ij} - b_{ij}|` (infinite where ``a`` is undefined)."""
    diff = np.abs(_off_diagonal(np.asarray(a)) - _off_diagonal(np.asarray(b)))
    return float(diff.mean()) if np.isfinite(diff).all() else np.inf


def portfolio_returns(x: ArrayLike, weights: ArrayLike) -> np.ndarray:
    r"""Daily log returns of a portfolio rebalanced to ``weights`` every day, (n, length):
    :math:`\log \sum_i w_i e^{r_i}` (weights sum to 1; short weights allowed)."""
    paths = as_joint(x)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (paths.shape[2],) or not np.isclose(w.sum(), 1.0):
        raise DataError(f"weights must be {paths.shape[2]} numbers summing to 1, got {w}")
    gross = np.exp(paths) @ w  # (n, length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gross > 0, np.log(np.where(gross > 0, gross, 1.0)), -np.inf)


def equal_weights(assets: int) -> np.ndarray:
    return np.full(assets, 1.0 / assets)


def min_variance_weights(x: ArrayLike) -> np.ndarray:
    r"""Global minimum-variance weights :math:`w = \Sigma^{-1}1 / 1^\top\Sigma^{-1}1` of the
    pooled daily covariance (short positions allowed)."""
    days = as_joint(x).reshape(-1, np.shape(x)[-1])
    covariance = np.cov(days, rowvar=False)
    solved = np.linalg.solve(covariance, np.ones(len(covariance)))
    return solved / solved.sum()


def trailing_portfolio_vol(x: ArrayLike, lookback_days: int = STRESS_LOOKBACK_DAYS
                           ) -> np.ndarray:
    """Std of the equal-weight portfolio over the previous ``lookback_days`` days of the same
    window (today excluded), (n, length); NaN for the first ``lookback_days`` days."""
    paths = as_joint(x)
    portfolio = portfolio_returns(paths, equal_weights(paths.shape[2]))  # (n, length)
    n, length = portfolio.shape
    out = np.full((n, length), np.nan)
    if length <= lookback_days:
        return out
    view = np.lib.stride_tricks.sliding_window_view(portfolio, lookback_days, axis=1)
    out[:, lookback_days:] = view[:, :length - lookback_days].std(axis=2, ddof=1)
    return out


def stress_thresholds(x: ArrayLike, quantiles: tuple[float, float] = STRESS_QUANTILES
                      ) -> np.ndarray:
    """Quantiles of :func:`trailing_portfolio_vol` of a (real) set: calm below the first,
    stressed above the second; NaN for windows of at most 21 days (no day can be split)."""
    vol = trailing_portfolio_vol(x)
    vol = vol[np.isfinite(vol)]
    return np.quantile(vol, quantiles) if len(vol) else np.full(len(quantiles), np.nan)


def regime_correlations(x: ArrayLike, thresholds: ArrayLike) -> tuple[float, float]:
    """Mean pairwise correlation on calm days (trailing equal-weight vol below
    ``thresholds[0]``) and on stressed days (above ``thresholds[1]``); NaN with fewer than 10
    such days."""
    paths = as_joint(x)
    vol = trailing_portfolio_vol(paths)
    days = paths.reshape(-1, paths.shape[2])
    vol = vol.ravel()
    out = []
    for mask in (vol < thresholds[0], vol > thresholds[1]):
        if mask.sum() < 10:
            out.append(np.nan)
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(float(np.mean(_off_diagonal(np.corrcoef(days[mask], rowvar=False)))))
    return out[0], out[1]


def lower_tail_dependence(x: ArrayLike, q: float = TAIL_QUANTILE) -> float:
    r"""Mean over pairs ``i != j`` of :math:`P(r_j < q_j \mid r_i < q_i)`, with ``q_i`` the
    ``q``-quantile of asset ``i``'s own returns (a property of the copula only).

    Notes
    -----
    With exceedance indicators :math:`E_i = 1[r_i < q_i]`, each of probability ``q``, the
    conditional probability is :math:`P(E_i E_j) / q`, symmetric in ``i, j``; independence gives
    ``q``, comonotonic assets give 1.
    """
    days = as_joint(x).reshape(-1, np.shape(x)[-1])
    exceed = (days < np.quantile(days, q, axis=0)).astype(np.float64)  # (days, assets)
    joint = exceed.T @ exceed / len(days)                               # P(E_i E_j)
    return float(np.mean(_off_diagonal(joint / exceed.mean(axis=0)[:, None])))


def gaussian_tail_dependence(rho: float, q: float = TAIL_QUANTILE) -> float:
    r""":math:`P(Z_2 < z_q \mid Z_1 < z_q)` for a standard bivariate Gaussian of correlation
    ``rho``: :math:`\Phi_2(z_q, z_q; \rho) / q`."""
    z = stats.norm.ppf(q)
    joint = stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]]).cdf([z, z])
    return float(joint / q)


def portfolio_facts(x: ArrayLike, weights: ArrayLike, max_lag: int = PORTFOLIO_ACF_LAGS
                    ) -> dict[str, np.ndarray]:
    """Excess kurtosis, ACF of ``|r|`` (lags 1..``max_lag``), 99 % VaR and ES of a portfolio."""
    portfolio = portfolio_returns(x, weights)
    var, es = value_at_risk(portfolio)
    return {"kurtosis": np.array(facts.excess_kurtosis(portfolio)),
            "acf_abs": facts.acf_abs(portfolio, max_lag=max_lag),
            "var99": np.array(var), "es99": np.array(es)}


def joint_statistics(x: ArrayLike, thresholds: ArrayLike, min_variance: ArrayLike
                     ) -> dict[str, np.ndarray]:
    """Every joint fact of a set; ``thresholds`` (:func:`stress_thresholds`) and the
    minimum-variance weights come from the real reference, so that every set is split and
    weighted alike.

    Returns
    -------
    dict
        ``corr`` (the matrix), the scalars of :data:`JOINT_SCALARS` (0-d arrays) and the curves
        ``ew_acf_abs``, ``mv_acf_abs``.
    """
    paths = as_joint(x)
    corr = correlation_matrix(paths)
    calm, stressed = regime_correlations(paths, thresholds)
    out: dict[str, np.ndarray] = {
        "corr": corr, "mean_corr": np.array(np.mean(_off_diagonal(corr))),
        "calm_corr": np.array(calm), "stressed_corr": np.array(stressed),
        "tail_dependence": np.array(lower_tail_dependence(paths))}
    max_lag = min(PORTFOLIO_ACF_LAGS, paths.shape[1] - 1)
    for prefix, weights in (("ew", equal_weights(paths.shape[2])), ("mv", min_variance)):
        for key, value in portfolio_facts(paths, weights, max_lag).items():
            out[f"{prefix}_{key}"] = value
    return out


def joint_gaps(synthetic: Mapping[str, np.ndarray], real: Mapping[str, np.ndarray]
               ) -> dict[str, float]:
    """Distance of each joint statistic: ``corr_mae`` (:func:`correlation_error`), the absolute
    difference of each scalar and the L2 norm of the difference of each ACF curve; infinite where
    the synthetic value is undefined and the real one is not."""
    gaps = {"corr_mae": correlation_error(synthetic["corr"], real["corr"])}
    for key, value in real.items():
        if key == "corr":
            continue
        defined = np.isfinite(value)
        diff = np.asarray(synthetic[key])[defined] - value[defined]
        gaps[key] = float(np.sqrt(np.sum(diff ** 2))) if np.isfinite(diff).all() else np.inf
    return gaps
