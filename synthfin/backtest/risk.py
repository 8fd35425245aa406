"""Risk backtests of one-day-ahead forecasts: VaR and ES from predictive samples, judged on
realized returns by Kupiec, Christoffersen and Acerbi-Szekely.

Conventions
-----------
Returns are daily **log returns** ``r_t``; the **loss** is ``L_t = -r_t``. For a confidence level
``alpha`` (0.95, 0.99), ``VaR_alpha`` and ``ES_alpha`` are reported as **positive loss numbers**:

``VaR_t = q_alpha(L_t)``,   ``ES_t = E[L_t | L_t >= VaR_t]``,

both under the forecast distribution of day ``t`` given the days before it. Day ``t`` is an
**exceedance** (a VaR breach) when ``L_t > VaR_t``; under a correct forecast that happens with
probability ``p = 1 - alpha``.

A forecast is a matrix of predictive samples ``(days, n_draws)``: row ``t`` holds draws of
``r_t`` given the real history before ``t``. :func:`garch_t_forecast_samples` and
:func:`model_forecast_samples` produce them by rolling through held-out days; :func:`risk_backtest`
turns them and the realized returns into one table row per level.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special, stats

from synthfin.errors import DataError, ModelError
from synthfin.stats.tails import var_es

if TYPE_CHECKING:  # the models (and torch) are not needed at run time
    from synthfin.models.base import ContextSampler

LEVELS = (0.95, 0.99)
Z2_SIMULATIONS = 2000
MIN_GARCH_TRAIN_DAYS = 100
Seed = int | np.random.Generator | None


# -- VaR and ES from samples ------------------------------------------------------------------
def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be in (0, 1), e.g. 0.99, got {level}")
    return level


def _check_samples(samples: np.ndarray, name: str = "samples") -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] < 1 or samples.shape[1] < 2:
        raise DataError(f"{name} must be (days >= 1, n_draws >= 2), got {samples.shape}")
    if not np.isfinite(samples).all():
        raise DataError(f"{name} hold {np.size(samples) - np.isfinite(samples).sum()} "
                        "non-finite values")
    return samples


def var_es_from_samples(samples: np.ndarray, levels: Sequence[float] = LEVELS
                        ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Value at Risk and Expected Shortfall per day from predictive return samples.

    Parameters
    ----------
    samples : array (days, n_draws)
        Draws of each day's log return from the forecast distribution.
    levels : sequence of float
        Confidence levels ``alpha`` in (0, 1).

    Returns
    -------
    dict
        ``level -> (var, es)``, each an array (days,) of positive loss numbers.

    Raises
    ------
    DataError
        If ``samples`` is not a finite 2-D array with at least two draws per day, or a level is
        outside (0, 1).

    Notes
    -----
    :func:`synthfin.stats.tails.var_es` of each day's draws: with losses ``L = -r``,
    ``VaR_alpha = Q_L(alpha)`` and ``ES_alpha = mean{L_i : L_i >= VaR_alpha}``. The tail mean
    averages ``ceil(n (1 - alpha))`` draws for untied samples (50 of 1,000 at 95 %, 10 at 99 %),
    so ES is always at least VaR.
    """
    return var_es(_check_samples(samples), [_check_level(level) for level in levels])


# -- coverage tests -----------------------------------------------------------------------------
def _check_exceedances(exceedances: np.ndarray) -> np.ndarray:
    exceedances = np.asarray(exceedances)
    if exceedances.ndim != 1 or len(exceedances) < 1:
        raise DataError(f"exceedances must be a non-empty 1-D array, got shape "
                        f"{exceedances.shape}")
    if exceedances.dtype != bool:
        if not np.isin(exceedances, (0, 1)).all():
            raise DataError("exceedances must be booleans (or 0/1)")
        exceedances = exceedances.astype(bool)
    return exceedances


def _bernoulli_log_likelihood(hits: float, misses: float, probability: float) -> float:
    """``hits log p + misses log(1 - p)`` with ``0 log 0 = 0``."""
    return float(special.xlogy(hits, probability) + special.xlogy(misses, 1.0 - probability))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0 when nothing was observed (its terms then vanish)."""
    return numerator / denominator if denominator > 0 else 0.0


def kupiec_test(exceedances: np.ndarray, level: float, lags: int = 0) -> tuple[float, float]:
    """Kupiec (1995) proportion-of-failures test of unconditional coverage.

    Parameters
    ----------
    exceedances : bool array (days,)
        ``True`` on days whose loss exceeded that day's VaR.
    level : float
        VaR confidence level ``alpha``; the expected exceedance rate is ``p = 1 - alpha``.
    lags : int
        Days over which exceedances are dependent even for a correct VaR: ``h - 1`` for
        ``h``-day losses forecast every day (their windows overlap); 0 for independent days.

    Returns
    -------
    (float, float)
        Likelihood ratio ``LR_uc`` (divided by the variance inflation when ``lags > 0``) and
        its p-value from chi-squared with one degree of freedom.

    Notes
    -----
    With ``x`` exceedances in ``T`` days and ``pi_hat = x / T``,

    ``LR_uc = -2 [x log p + (T - x) log(1 - p) - x log pi_hat - (T - x) log(1 - pi_hat)]``,

    asymptotically ``chi2_1`` under ``H0: P(exceedance) = p``. The convention ``0 log 0 = 0``
    handles ``x = 0`` (``LR_uc = -2 T log(1 - p)``) and ``x = T``. Overlapping forecasts
    breach in runs, which widens the spread of ``pi_hat`` by the long-run variance ratio
    ``1 + 2 sum_{k=1}^{lags} rho_k`` (the exceedances' autocorrelations, a truncated kernel as
    Hansen and Hodrick's for overlapping horizons; floored at 1); ``LR_uc`` is divided by it, as
    a HAC Wald statistic would be, so that a correct VaR is not rejected more often than the
    test's level says (``pipelines/FORECAST.md``: a calibrated 5-day forecast from every day of
    ten years fails the plain test about 25 % of the time at 5 %).
    """
    hits = _check_exceedances(exceedances)
    p = 1.0 - _check_level(level)
    if lags < 0:
        raise DataError(f"lags must be >= 0, got {lags}")
    days, count = len(hits), int(hits.sum())
    ratio = 2.0 * (_bernoulli_log_likelihood(count, days - count, count / days)
                   - _bernoulli_log_likelihood(count, days - count, p))
    ratio = max(ratio, 0.0)  # rounding can leave -1e-13
    ratio /= _variance_inflation(hits, lags)
    return ratio, float(stats.chi2.sf(ratio, 1))


def _variance_inflation(hits: np.ndarray, lags: int) -> float:
    """``max(1, 1 + 2 sum_{k=1}^{lags} rho_k)`` of a 0/1 series (1 if it is constant)."""
    centred = hits.astype(float) - hits.mean()
    variance = float(np.mean(centred**2))
    if lags == 0 or variance == 0:
        return 1.0
    covariances = [np.mean(centred[k:] * centred[:-k])
                   for k in range(1, min(lags, len(hits) - 1) + 1)]
    return max(1.0, 1.0 + 2.0 * float(np.sum(covariances)) / variance)


def _transition_counts(hits: np.ndarray) -> tuple[int, int, int, int]:
    """Counts ``(n00, n01, n10, n11)`` of consecutive pairs ``(I_{t-1}, I_t)``."""
    previous, current = hits[:-1], hits[1:]
    return (int((~previous & ~current).sum()), int((~previous & current).sum()),
            int((previous & ~current).sum()), int((previous & current).sum()))


def christoffersen_independence(exceedances: np.ndarray) -> tuple[float, float]:
    """Christoffersen (1998) test that exceedances do not cluster (first-order Markov).

    Parameters
    ----------
    exceedances : bool array (days,)
        ``True`` on days whose loss exceeded that day's VaR.

    Returns
    -------
    (float, float)
        Likelihood ratio ``LR_ind`` and its p-value from ``chi2_1``.

    Notes
    -----
    With ``n_ij`` the number of days in state ``j`` after a day in state ``i`` (1 = exceedance),
    ``pi_01 = n01 / (n00 + n01)``, ``pi_11 = n11 / (n10 + n11)`` and
    ``pi = (n01 + n11) / (n00 + n01 + n10 + n11)``:

    ``LR_ind = -2 [(n00 + n10) log(1 - pi) + (n01 + n11) log pi
                   - n00 log(1 - pi_01) - n01 log pi_01 - n10 log(1 - pi_11) - n11 log pi_11]``,

    asymptotically ``chi2_1`` under ``H0: pi_01 = pi_11``. With ``0 log 0 = 0`` a state never
    left (for instance no exceedance at all, so ``n10 = n11 = 0``) contributes nothing and gives
    ``LR_ind = 0``; fewer than two days give no transition and ``(0, 1)``.
    """
    hits = _check_exceedances(exceedances)
    n00, n01, n10, n11 = _transition_counts(hits)
    pi_01, pi_11 = _ratio(n01, n00 + n01), _ratio(n11, n10 + n11)
    pi = _ratio(n01 + n11, n00 + n01 + n10 + n11)
    markov = (_bernoulli_log_likelihood(n01, n00, pi_01)
              + _bernoulli_log_likelihood(n11, n10, pi_11))
    ratio = max(2.0 * (markov - _bernoulli_log_likelihood(n01 + n11, n00 + n10, pi)), 0.0)
    return ratio, float(stats.chi2.sf(ratio, 1))


def christoffersen_conditional_coverage(exceedances: np.ndarray, level: float
                                        ) -> tuple[float, float]:
    """Christoffersen (1998) joint test of correct coverage and independence.

    Parameters
    ----------
    exceedances : bool array (days,)
        ``True`` on days whose loss exceeded that day's VaR.
    level : float
        VaR confidence level ``alpha``.

    Returns
    -------
    (float, float)
        ``LR_cc`` and its p-value from ``chi2_2``.

    Notes
    -----
    ``LR_cc = LR_uc + LR_ind`` (:func:`kupiec_test` plus :func:`christoffersen_independence`),
    asymptotically ``chi2_2`` under ``H0``: exceedances are iid Bernoulli(``1 - alpha``).
    (Christoffersen's exact identity computes ``LR_uc`` on the ``T - 1`` days that follow a
    first one; the difference is one day and vanishes asymptotically.)
    """
    coverage, _ = kupiec_test(exceedances, level)
    independence, _ = christoffersen_independence(exceedances)
    ratio = coverage + independence
    return ratio, float(stats.chi2.sf(ratio, 2))


# -- Acerbi-Szekely Z2 ------------------------------------------------------------------------
def _z2_statistic(losses: np.ndarray, var: np.ndarray, es: np.ndarray, level: float
                  ) -> np.ndarray:
    """Z2 over the last axis of ``losses`` (..., days) for per-day ``var``, ``es`` (days,)."""
    tail = np.where(losses > var, losses, 0.0) / es  # (..., days)
    return 1.0 - tail.sum(axis=-1) / (losses.shape[-1] * (1.0 - level))


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def acerbi_szekely_z2(realized_returns: np.ndarray, var: np.ndarray, es: np.ndarray,
                      level: float, simulated: np.ndarray | None = None, *,
                      n_sims: int = Z2_SIMULATIONS, seed: Seed = 0) -> tuple[float, float]:
    """Acerbi and Szekely (2014) test 2 of Expected Shortfall, "testing ES directly".

    Parameters
    ----------
    realized_returns : array (days,)
        Realized log returns.
    var, es : array (days,)
        The forecasts' VaR and ES at ``level`` as positive loss numbers.
    level : float
        Confidence level ``alpha``.
    simulated : array (days, n_draws), optional
        The forecasts' own predictive return samples (those ``var`` and ``es`` came from). They
        give the null distribution of ``Z2``; without them the p-value is NaN.
    n_sims : int
        Scenarios simulated under ``H0``.
    seed : int or numpy.random.Generator
        Seeds the simulation.

    Returns
    -------
    (float, float)
        ``Z2`` and its one-sided p-value (small when ES is underestimated).

    Raises
    ------
    DataError
        On mismatched shapes, non-finite values or a non-positive ES.

    Notes
    -----
    Acerbi and Szekely write ``Z2 = sum_t X_t I_t / (T alpha_AS ES_t) + 1`` with P&L ``X_t``,
    tail probability ``alpha_AS`` and ES a positive number. In this module's terms
    (``X = -L``, ``alpha_AS = 1 - alpha``, ``I_t = 1{L_t > VaR_t}``):

    ``Z2 = 1 - (1 / T) sum_t L_t I_t / ((1 - alpha) ES_t)``.

    Since ``E[L_t I_t] = (1 - alpha) ES_t`` under a correct forecast, ``E_H0[Z2] = 0``; ``Z2 < 0``
    when realized tail losses are larger than forecast (ES underestimated) and ``Z2 > 0`` when
    ES is overstated. The test rejects for small ``Z2``.

    The null distribution is simulated: scenario ``k`` draws one return per day from row ``t`` of
    ``simulated`` (the forecast itself), recomputes ``Z2^k`` with the same ``VaR_t``, ``ES_t``,
    and ``p = (1 + #{k : Z2^k <= Z2}) / (1 + n_sims)`` (the ``+1`` keeps a Monte-Carlo p-value
    valid and never zero).
    """
    level = _check_level(level)
    losses = -np.asarray(realized_returns, dtype=np.float64)
    var, es = np.asarray(var, dtype=np.float64), np.asarray(es, dtype=np.float64)
    if losses.ndim != 1 or var.shape != losses.shape or es.shape != losses.shape:
        raise DataError(f"realized_returns, var and es must be matching 1-D arrays, got "
                        f"{losses.shape}, {var.shape}, {es.shape}")
    if len(losses) == 0 or not all(np.isfinite(x).all() for x in (losses, var, es)):
        raise DataError("realized_returns, var and es must be non-empty and finite")
    if (es <= 0).any():
        raise DataError(f"ES must be a positive loss on every day; {(es <= 0).sum()} days are "
                        "not (is the sign convention 'loss = -return' respected?)")
    statistic = float(_z2_statistic(losses, var, es, level))
    if simulated is None:
        return statistic, float("nan")
    simulated = _check_samples(simulated, "simulated")
    if len(simulated) != len(losses):
        raise DataError(f"simulated must have one row per day ({len(losses)}), got "
                        f"{len(simulated)}")
    if n_sims < 1:
        raise DataError(f"n_sims must be >= 1, got {n_sims}")
    rng = _rng(seed)
    days, draws = simulated.shape
    picks = rng.integers(draws, size=(n_sims, days))  # (n_sims, days)
    null_losses = -simulated[np.arange(days), picks]  # (n_sims, days)
    null = _z2_statistic(null_losses, var, es, level)  # (n_sims,)
    return statistic, float((1 + np.sum(null <= statistic)) / (1 + n_sims))


# -- one table ------------------------------------------------------------------------------
def risk_backtest(realized: np.ndarray, samples: np.ndarray,
                  levels: Sequence[float] = LEVELS, seed: Seed = 0,
                  n_sims: int = Z2_SIMULATIONS) -> pd.DataFrame:
    """Backtest one-day-ahead VaR and ES forecasts given as predictive samples.

    Parameters
    ----------
    realized : array (days,)
        Realized log returns.
    samples : array (days, n_draws)
        Predictive samples of each day's log return, given the real past.
    levels : sequence of float
        Confidence levels.
    seed : int or numpy.random.Generator
        Seeds the Z2 null simulation.
    n_sims : int
        Scenarios of that simulation.

    Returns
    -------
    DataFrame
        One row per level (index ``level``): ``days``, ``exceedances``, ``expected``
        (``days (1 - alpha)``), ``rate``, ``kupiec_p``, ``independence_p``,
        ``conditional_coverage_p``, ``z2`` and ``z2_p``.

    Notes
    -----
    See :func:`var_es_from_samples`, :func:`kupiec_test`, :func:`christoffersen_independence`,
    :func:`christoffersen_conditional_coverage` and :func:`acerbi_szekely_z2`. Small p-values
    reject the forecasts: too many or too few exceedances (Kupiec), clustered exceedances
    (independence), either (conditional coverage), tail losses larger than the forecast ES (Z2).
    """
    realized = np.asarray(realized, dtype=np.float64)
    samples = _check_samples(samples)
    if realized.shape != (len(samples),) or not np.isfinite(realized).all():
        raise DataError(f"realized must be finite with shape ({len(samples)},) to match samples "
                        f"{samples.shape}, got {realized.shape}")
    rng = _rng(seed)
    rows = []
    for level, (var, es) in var_es_from_samples(samples, levels).items():
        hits = -realized > var
        z2, z2_p = acerbi_szekely_z2(realized, var, es, level, samples, n_sims=n_sims, seed=rng)
        rows.append({"level": level, "days": len(realized), "exceedances": int(hits.sum()),
                     "expected": len(realized) * (1.0 - level), "rate": float(hits.mean()),
                     "kupiec_p": kupiec_test(hits, level)[1],
                     "independence_p": christoffersen_independence(hits)[1],
                     "conditional_coverage_p": christoffersen_conditional_coverage(hits, level)[1],
                     "z2": z2, "z2_p": z2_p})
    return pd.DataFrame(rows).set_index("level")


# -- forecast drivers ---------------------------------------------------------------------------
def _check_days(length: int, first_day: int, earliest: int, name: str) -> None:
    if not earliest <= first_day < length:
        raise DataError(f"first_day must be in [{earliest}, {length}) (after {name}), got "
                        f"{first_day}")


def garch_t_forecast_samples(series: np.ndarray, n_train: int, first_day: int,
                             n_draws: int = 1000, seed: Seed = 0) -> np.ndarray:
    """One-day-ahead GARCH(1,1)-t predictive samples for each day from ``first_day`` on.

    Parameters
    ----------
    series : array (T,)
        Unscaled daily log returns of one asset, contiguous.
    n_train : int
        The model is fitted on ``series[:n_train]`` only.
    first_day : int
        First forecast day, ``n_train <= first_day < T`` (out of sample).
    n_draws : int
        Draws per day.
    seed : int or numpy.random.Generator
        Seeds the draws.

    Returns
    -------
    array (T - first_day, n_draws)
        Draws of ``r_t`` given ``r_<t``, in log-return units.

    Raises
    ------
    DataError
        On a bad series or day range.
    ModelError
        If the fit gives non-finite parameters.

    Notes
    -----
    In percent (``y = 100 r``, as ``arch`` prefers; ``rescale=False``),

    ``y_t = mu + sigma_t e_t``, ``sigma_t^2 = omega + a (y_{t-1} - mu)^2 + b sigma_{t-1}^2``,
    ``e_t = sqrt((nu - 2) / nu) T_nu`` (unit-variance Student-t),

    fitted by maximum likelihood on the first ``n_train`` days, then filtered through the whole
    series with the parameters fixed (``model.fix``), so ``sigma_t`` uses the real returns
    before ``t`` only. Draws are ``(mu + sigma_t e) / 100``, vectorized over days and draws.
    """
    from synthfin.models.baselines import fit_arch  # heavy import (arch, torch), only here

    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1 or not np.isfinite(series).all():
        raise DataError(f"series must be a finite 1-D array of log returns, got shape "
                        f"{series.shape}")
    if not MIN_GARCH_TRAIN_DAYS <= n_train <= len(series):
        raise DataError(f"n_train must be in [{MIN_GARCH_TRAIN_DAYS}, {len(series)}], got "
                        f"{n_train}")
    _check_days(len(series), first_day, n_train, "the training days")
    if n_draws < 2:
        raise DataError(f"n_draws must be >= 2, got {n_draws}")
    fit = fit_arch(series * 100, last_obs=n_train)
    params = fit.params
    if not np.isfinite(params.to_numpy()).all() or params["nu"] <= 2:
        raise ModelError(f"GARCH(1,1)-t fit failed: parameters {params.to_dict()}")
    if fit.convergence_flag != 0:
        warnings.warn(f"GARCH(1,1)-t optimizer did not converge (flag {fit.convergence_flag})",
                      RuntimeWarning, stacklevel=2)
    sigma = np.asarray(fit.model.fix(params).conditional_volatility)[first_day:]  # (days,)
    nu = float(params["nu"])
    innovations = _rng(seed).standard_t(nu, size=(len(sigma), n_draws)) * np.sqrt((nu - 2) / nu)
    return (params["mu"] + sigma[:, None] * innovations) / 100  # (days, n_draws)


def _day_seed(seed: int, day: int) -> int:
    """An independent 63-bit seed for forecast day ``day`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence((seed, day)).generate_state(1, dtype=np.uint64)[0] >> 1)


def model_forecast_samples(generator: ContextSampler, series: np.ndarray, first_day: int,
                           n_draws: int = 1000, seed: int = 0, asset: int = 0) -> np.ndarray:
    """One-day-ahead predictive samples from a generator that conditions on the real past.

    Parameters
    ----------
    generator : object with ``sample_after(context, n, length=1, seed)``
        Fitted; ``sample_after`` returns ``(n, length, assets)`` unscaled log returns.
    series : array (T, assets) or (T,)
        Unscaled daily log returns, contiguous.
    first_day : int
        First forecast day; the generator must accept ``series[:first_day]`` as context.
    n_draws : int
        Draws per day.
    seed : int
        Day ``t`` is sampled with a seed derived from ``(seed, t)``, so any sub-range of days
        reproduces the same draws.
    asset : int
        Column of the returned asset.

    Returns
    -------
    array (T - first_day, n_draws)
        Draws of ``r_t[asset]`` given ``series[:t]``.

    Raises
    ------
    ModelError
        If ``generator`` has no ``sample_after`` (it cannot condition on history) or returns a
        wrong shape.
    DataError
        On a bad series, day range or asset.

    Notes
    -----
    One ``sample_after(series[:t], n_draws, length=1)`` call per day, batched over draws.
    """
    if not callable(getattr(generator, "sample_after", None)):
        raise ModelError(f"{type(generator).__name__} has no sample_after(context, n, length, "
                         "seed): it cannot forecast from the real past, so it cannot be "
                         "risk-backtested this way")
    series = np.asarray(series, dtype=np.float64)
    series = series[:, None] if series.ndim == 1 else series
    if series.ndim != 2 or not np.isfinite(series).all():
        raise DataError(f"series must be finite (T, assets) log returns, got {series.shape}")
    if not 0 <= asset < series.shape[1]:
        raise DataError(f"asset must be in [0, {series.shape[1]}), got {asset}")
    _check_days(len(series), first_day, 1, "at least one day of context")
    if n_draws < 2:
        raise DataError(f"n_draws must be >= 2, got {n_draws}")
    out = np.empty((len(series) - first_day, n_draws))
    for row, day in enumerate(range(first_day, len(series))):
        draws = np.asarray(generator.sample_after(series[:day], n_draws, length=1,
                                                  seed=_day_seed(seed, day)))
        if draws.shape != (n_draws, 1, series.shape[1]):
            raise ModelError(f"sample_after returned shape {draws.shape}, expected "
                             f"({n_draws}, 1, {series.shape[1]})")
        out[row] = draws[:, 0, asset]
    return out
