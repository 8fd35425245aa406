"""The catalogue of stylized facts: one entry per fact (name, function, lag rule, kind, streaming
reducer, place in the summary and the report).

Scores, the summary, the report, streaming facts, ``metrics.json`` and model selection iterate
the facts here, so a fact has one name everywhere and adding one is one entry (plus a test).
:data:`FACTS` holds the facts of windows (compared window against window of the same length);
:data:`LONG_FACTS` those of long paths (1,000 days or more), compared with the real series cut
into segments of the same length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from synthfin.errors import DataError
from synthfin.stats import facts, reducers
from synthfin.stats.reducers import Finish, Moments, Reducer, Stream

HILL_K_FRACTION = 0.05
KURTOSIS_RELIABLE_MIN_TAIL_INDEX = 4.0
WINDOW_AGGREGATION_DAYS = (5, 20)
LONG_AGGREGATION_DAYS = (1, 5, 20, 60)
LONG_MAX_LAG = 250
BETA_MAX_LAG = 100
DRAWDOWN_QUANTILES = (0.1, 0.5, 0.9)


def linear_max_lag(length: int) -> int:
    """Largest lag of the curves of r (ACF of r, leverage): ``min(20, length - 1)``."""
    return max(1, min(20, length - 1))


def clustering_max_lag(length: int) -> int:
    """Largest lag of the volatility-clustering curves in windows: ``min(100, length // 2)``."""
    return max(1, min(100, length // 2))


def long_max_lag(length: int) -> int:
    """Largest lag of the ACF of |r| on long paths: ``min(250, length // 4)``."""
    return max(1, min(LONG_MAX_LAG, length // 4))


def beta_max_lag(length: int) -> int:
    """Largest lag of the power-law fit on long paths: ``min(100, length // 4)`` (beyond, the
    ACF of |r| is small and noisy; S&P 500 1990-2022 gives beta 0.38 at lags 1..100)."""
    return max(2, min(BETA_MAX_LAG, length // 4))


@dataclass(frozen=True)
class Fact:
    """One stylized fact of one asset's windows.

    Attributes
    ----------
    name : str
        The key in scores, ``metrics.json`` and the report.
    function : callable
        ``function(windows)``, or ``function(windows, max_lag)`` when ``lag_rule`` is set, of an
        ``(n, length)`` array of unscaled log returns; returns a float or a vector.
    description : str
        One line for the report.
    lag_rule : callable, optional
        Window length -> largest lag, for curves.
    kind : {"curve", "vector", "scalar"}
        One value per lag (scored also lag by lag against the real spread, drawn against the
        lags in the report), a fixed vector, or one value (per asset).
    reducer : callable, optional
        The fact's streaming form (:mod:`synthfin.stats.reducers`, used by :meth:`reduce`);
        every fact of :data:`FACTS` has one.
    headline : bool
        A column of the summary table.
    figure, title : str
        The report figure that draws a curve (``"autocorrelation"`` or ``"leverage"``) and its
        panel title.
    """

    name: str
    function: Callable[..., Any]
    description: str
    lag_rule: Callable[[int], int] | None = None
    kind: Literal["curve", "vector", "scalar"] = "scalar"
    reducer: Reducer | None = None
    headline: bool = False
    figure: str = ""
    title: str = ""

    def value(self, windows: np.ndarray, max_lag: int | None = None) -> float | np.ndarray:
        """The fact of ``windows`` (n, length): a float or a vector, as the function returns."""
        if self.lag_rule is None:
            return self.function(windows)
        return self.function(windows, max_lag or self.lag_rule(windows.shape[1]))

    def __call__(self, windows: np.ndarray, max_lag: int | None = None) -> np.ndarray:
        """The fact of ``windows`` (n, length) as a flat float vector."""
        return np.atleast_1d(np.asarray(self.value(windows, max_lag), dtype=float))

    def reduce(self, stream: Stream) -> Finish:
        """Register the fact's accumulators with ``stream``; the returned finish gives the fact
        of every path fed to it, (assets, values)."""
        return self.reducer(stream, self.lag_rule(stream.length) if self.lag_rule else None)


def hill_left_right(x: ArrayLike) -> np.ndarray:
    """Hill tail indices of the losses and of the gains from the 5 % largest values."""
    return np.array([facts.hill_tail_index(x, HILL_K_FRACTION, tail) for tail in ("left",
                                                                                   "right")])


def window_horizons(length: int) -> list[int]:
    """The aggregation horizons (5, 20 days) that windows of ``length`` days hold."""
    return [h for h in WINDOW_AGGREGATION_DAYS if h <= length]


def window_aggregated_kurtosis(x: ArrayLike) -> np.ndarray:
    """Excess kurtosis of 5- and 20-day returns, for the horizons the window holds."""
    return facts.aggregated_kurtosis(x, window_horizons(np.shape(x)[-1]))


def volatility_level(x: ArrayLike) -> float:
    """Log of the pooled standard deviation of daily returns: the fact the scale-free ones miss
    (a set scaled by 10 has the ACFs, tails and kurtosis of the original)."""
    with np.errstate(divide="ignore"):
        return float(np.log(np.std(np.asarray(x, dtype=float))))


def acf_abs_power_law_beta(x: ArrayLike, max_lag: int) -> float:
    """:func:`~synthfin.stats.facts.power_law_beta` of the ACF of |r| at lags 1..max_lag."""
    return facts.power_law_beta(facts.acf_abs(x, max_lag), np.arange(1, max_lag + 1))


def max_drawdown_quantiles(x: ArrayLike) -> np.ndarray:
    """10 / 50 / 90 % quantiles over paths of each path's maximum drawdown (share of peak)."""
    return np.quantile(facts.drawdowns(x)[0], DRAWDOWN_QUANTILES)


def drawdown_days_quantiles(x: ArrayLike) -> np.ndarray:
    """10 / 50 / 90 % quantiles over paths of each path's longest drawdown, in days."""
    return np.quantile(facts.drawdowns(x)[1].astype(float), DRAWDOWN_QUANTILES)


def long_aggregated_kurtosis(x: ArrayLike) -> np.ndarray:
    """Excess kurtosis of 1-, 5-, 20- and 60-day returns (aggregational Gaussianity)."""
    return facts.aggregated_kurtosis(x, LONG_AGGREGATION_DAYS)


def volatility_drift(x: ArrayLike) -> float:
    """Median annualized volatility of the paths' last year over that of their first year,
    minus one: 0 for a stationary model; needs paths of at least two years."""
    windows = np.atleast_2d(np.asarray(x, dtype=float))
    if windows.shape[1] < 2 * facts.TRADING_DAYS:
        return float("nan")
    first, last = windows[:, :facts.TRADING_DAYS], windows[:, -facts.TRADING_DAYS:]
    return float(np.median(last.std(axis=1)) / np.median(first.std(axis=1)) - 1.0)


FACTS: tuple[Fact, ...] = (
    Fact("acf_r", facts.acf, "autocorrelation of r (none in real data)", linear_max_lag,
         kind="curve", reducer=reducers.lagged(reducers.returns, reducers.returns),
         headline=True, figure="autocorrelation", title="ACF of r"),
    Fact("acf_abs", facts.acf_abs, "autocorrelation of |r| (volatility clustering)",
         clustering_max_lag, kind="curve", reducer=reducers.lagged(np.abs, np.abs),
         headline=True, figure="autocorrelation", title="ACF of |r|"),
    Fact("acf_abs_within", facts.acf_abs_within,
         "autocorrelation of |r| over its window's mean |r| (clustering within windows)",
         clustering_max_lag, kind="curve",
         reducer=reducers.lagged(facts.relative_abs, facts.relative_abs), headline=True,
         figure="autocorrelation", title="ACF of |r| / window level"),
    Fact("acf_sq", facts.acf_sq, "autocorrelation of r^2", clustering_max_lag, kind="curve",
         reducer=reducers.lagged(np.square, np.square), headline=True, figure="autocorrelation",
         title="ACF of r²"),
    Fact("leverage", facts.leverage_curve, "correlation of r with future r^2", linear_max_lag,
         kind="curve", reducer=reducers.lagged(reducers.returns, np.square), headline=True,
         figure="leverage", title="Leverage: corr(r_t, r²_t+k)"),
    Fact("tails", facts.tail_quantiles, "0.5 / 1 / 99 / 99.5 % quantiles in units of std",
         kind="vector", reducer=reducers.tail_quantiles(facts.DEFAULT_TAIL_PROBABILITIES),
         headline=True),
    Fact("hill", hill_left_right, "Hill tail indices of losses and gains (5 % largest)",
         kind="vector", reducer=reducers.hill_indices(HILL_K_FRACTION)),
    Fact("skewness", facts.skewness, "skewness of daily returns",
         reducer=reducers.daily(Moments.skewness)),
    Fact("kurtosis", facts.excess_kurtosis, "excess kurtosis of daily returns",
         reducer=reducers.daily(Moments.kurtosis), headline=True),
    Fact("agg_kurtosis", window_aggregated_kurtosis, "excess kurtosis of 5- and 20-day returns",
         kind="vector", reducer=reducers.aggregated_kurtosis(window_horizons)),
    Fact("vol_level", volatility_level, "log of the standard deviation of daily returns",
         reducer=reducers.daily(Moments.log_std), headline=True),
)
"""The facts of windows, in report order."""

LONG_FACTS: tuple[Fact, ...] = (
    Fact("acf_abs", facts.acf_abs, "autocorrelation of |r| at lags 1..250", long_max_lag,
         kind="curve"),
    Fact("power_law_beta", acf_abs_power_law_beta,
         "decay exponent of the ACF of |r| at lags 1..100 (Cont 2001: 0.2-0.4 for equities)",
         beta_max_lag),
    Fact("memory_d", facts.gph_memory,
         "GPH long-memory d of |r| (mean over paths; iid: 0)"),
    Fact("vol_of_vol", facts.volatility_of_volatility,
         "std of the log of monthly realized volatility"),
    Fact("max_drawdown", max_drawdown_quantiles,
         "10 / 50 / 90 % quantiles of the paths' maximum drawdowns", kind="vector"),
    Fact("drawdown_days", drawdown_days_quantiles,
         "10 / 50 / 90 % quantiles of the paths' longest drawdowns (days)", kind="vector"),
    Fact("agg_kurtosis", long_aggregated_kurtosis,
         "excess kurtosis of 1-, 5-, 20- and 60-day returns", kind="vector"),
    Fact("vol_drift", volatility_drift, "median vol of the last year / first year - 1"),
)
"""The facts of long paths (1,000 days or more), in report order."""

FACTS_BY_NAME = {fact.name: fact for fact in FACTS}


def _as_paths(x: ArrayLike) -> np.ndarray:
    paths = np.asarray(x, dtype=float)
    if paths.ndim == 2:
        paths = paths[..., None]
    if paths.ndim != 3:
        raise DataError(f"returns must have shape (n, length[, assets]); got {paths.shape}")
    return paths


def fact_statistics(x: ArrayLike, catalogue: tuple[Fact, ...] | None = None
                    ) -> dict[str, np.ndarray]:
    """Every fact of ``catalogue`` (default :data:`FACTS`) of ``x`` (n, length[, assets]), each a
    flat vector over assets (and lags), plus ``cross_corr`` (upper triangles of the correlations
    of r and of |r|) for several assets. These vectors are what fidelity scores compare."""
    paths = _as_paths(x)
    statistics = {fact.name: np.concatenate([fact(paths[:, :, asset])
                                             for asset in range(paths.shape[2])])
                  for fact in catalogue or FACTS}
    if paths.shape[2] > 1:
        upper = np.triu_indices(paths.shape[2], k=1)
        statistics["cross_corr"] = np.concatenate(
            [facts.cross_correlation(paths, absolute=a)[upper] for a in (False, True)])
    return statistics


def _univariate_summary(windows: np.ndarray, max_lag: int | None, gain_loss_theta: float,
                        coarse_fine_tau: int) -> dict[str, Any]:
    length = windows.shape[1]
    if length < 2:
        raise DataError(f"stylized_facts needs windows of at least 2 days; got {length}")
    summary: dict[str, Any] = {
        "mean": float(windows.mean()), "std": float(windows.std()),
        **{fact.name: np.asarray(fact.value(windows, max_lag), dtype=float).tolist()
           for fact in FACTS}}
    summary["kurtosis_reliable"] = bool(
        facts.hill_tail_index(windows, HILL_K_FRACTION) >= KURTOSIS_RELIABLE_MIN_TAIL_INDEX)
    for name in ("acf_abs", "acf_sq"):
        curve = np.asarray(summary[name])
        summary[f"{name}_power_law_beta"] = facts.power_law_beta(curve,
                                                                  np.arange(1, len(curve) + 1))
    summary["gain_loss"] = facts.gain_loss_asymmetry(windows, gain_loss_theta)
    coarse_fine_lag = min(max_lag or linear_max_lag(length), length - coarse_fine_tau)
    if coarse_fine_lag >= 1:
        lags, rho, delta_rho = facts.coarse_fine_volatility(windows, coarse_fine_tau,
                                                            coarse_fine_lag)
        summary["coarse_fine_volatility"] = {"tau": coarse_fine_tau, "lags": lags.tolist(),
                                             "rho": rho.tolist(),
                                             "delta_rho": delta_rho.tolist()}
    else:
        summary["coarse_fine_volatility"] = None
    return summary


def stylized_facts(x: ArrayLike, max_lag: int | None = None, gain_loss_theta: float = 0.05,
                   coarse_fine_tau: int = 5) -> dict[str, Any]:
    """Every fact of :data:`FACTS` and the descriptive ones in one JSON-serializable dict.

    Parameters
    ----------
    x : array_like, shape (length,), (n, length) or (n, length, assets)
        Unscaled log returns.
    max_lag : int, optional
        Largest lag of every curve (default: each fact's lag rule; the coarse-fine curve uses
        :func:`linear_max_lag`, capped at ``length - tau``).
    gain_loss_theta : float
        Return level of :func:`~synthfin.stats.facts.gain_loss_asymmetry`.
    coarse_fine_tau : int
        Aggregation period of :func:`~synthfin.stats.facts.coarse_fine_volatility`.

    Returns
    -------
    dict
        Univariate input: ``n_windows``, ``window_length``, ``mean``, ``std``, one list per
        fact of :data:`FACTS` under its name, ``kurtosis_reliable`` (False when the 5 % Hill
        index of ``|r|`` is below 4 or undefined), ``acf_abs_power_law_beta``,
        ``acf_sq_power_law_beta``, ``gain_loss`` and ``coarse_fine_volatility`` (None if the
        windows are too short). Multi-asset input: ``n_windows``, ``window_length``,
        ``n_assets``, ``assets`` (the univariate dicts in asset order), ``cross_correlation`` and
        ``cross_correlation_abs`` (nested lists). Undefined values are NaN.
    """
    values = np.asarray(x, dtype=float)
    if values.ndim == 3:
        paths = facts.as_multi_asset(values)
        return {
            "n_windows": paths.shape[0], "window_length": paths.shape[1],
            "n_assets": paths.shape[2],
            "assets": [_univariate_summary(paths[:, :, asset], max_lag, gain_loss_theta,
                                           coarse_fine_tau) for asset in range(paths.shape[2])],
            "cross_correlation": facts.cross_correlation(paths).tolist(),
            "cross_correlation_abs": facts.cross_correlation(paths, absolute=True).tolist(),
        }
    windows = facts.as_windows(values)
    return {"n_windows": windows.shape[0], "window_length": windows.shape[1],
            **_univariate_summary(windows, max_lag, gain_loss_theta, coarse_fine_tau)}
