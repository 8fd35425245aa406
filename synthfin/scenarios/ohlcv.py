"""Open, high, low and volume for close-only paths: a small conditional model of daily bars.

Every generator makes closes; this layer adds the rest of the bar, the same way for all of them.
Given the day's close-to-close log return ``r_t`` and the volatility state ``sigma_t`` (an EWMA of
past squared returns), with ``z_t = min(|r_t| / sigma_t, 10)``:

- overnight gap ``g_t = log(O_t / C_{t-1}) = beta r_t + sigma_t e_t``, ``e_t`` drawn from the
  fitted residual quantiles; the intraday body is ``b_t = r_t - g_t = log(C_t / O_t)``;
- excursions beyond the body, ``u_t = log(H_t / max(O_t, C_t))`` and
  ``d_t = log(min(O_t, C_t) / L_t)``, follow the maximum of a Brownian bridge from 0 to ``b_t``
  with intraday variance ``s_t^2 = sigma_t^2 exp(a + c z_t)`` (``a`` per side):
  ``P(u > x) = exp(-2 x (x + |b_t|) / s_t^2)``, drawn exactly as
  ``u = (sqrt(b_t^2 - 2 s_t^2 log U) - |b_t|) / 2``;
- log volume ``log V_t = level + x_t`` with a HAR regression
  ``x_t = k + p_1 x_{t-1} + p_5 mean(x_{t-5..t-1}) + p_22 mean(x_{t-22..t-1})
  + q z_t + w log sigma_t + e_t``.

So ``Low <= min(Open, Close) <= max(Open, Close) <= High`` and ``Volume > 0`` by construction.
:func:`sp500_ohlcv_model` fits it on the S&P 500 bars that ``arch`` ships (2008-2016; 2017-2018
are held out, see ``pipelines/bench_ohlcv.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from synthfin.data.returns import prices_from_returns
from synthfin.errors import DataError
from synthfin.io import FileReading, atomic_write_json
from synthfin.stats.volatility import ewma_mean_squares

FIELDS = ("Open", "High", "Low", "Close", "Volume")  # backtesting.py's column names
EWMA_DECAY = 0.94            # RiskMetrics daily decay of the volatility state
WARMUP_DAYS = 21             # sigma_0^2 = mean r^2 over a path's first days
VOLUME_TREND_DAYS = 250      # real log volume is measured against its trailing mean
HAR_LAGS = (1, 5, 22)
MAX_STANDARDIZED_MOVE = 10.0
N_QUANTILES = 201


def volatility_state(returns: np.ndarray) -> np.ndarray:
    """EWMA volatility known before each day: ``sigma_t^2 = l sigma_{t-1}^2 + (1 - l) r_{t-1}^2``.

    ``returns`` (..., days, assets) of log returns; ``sigma_0^2`` is the mean ``r^2`` of the
    first :data:`WARMUP_DAYS` days. Returns the same shape, floored at 1e-8.
    """
    returns = np.asarray(returns, dtype=np.float64)
    initial = np.mean(returns[..., :WARMUP_DAYS, :] ** 2, axis=-2)
    variance = ewma_mean_squares(returns[..., :-1, :], (1 - EWMA_DECAY,), initial[..., None])
    return np.maximum(np.sqrt(variance[..., 0]), 1e-8)


def _standardized_move(returns: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return np.minimum(np.abs(returns) / sigma, MAX_STANDARDIZED_MOVE)


def _excursion(body: np.ndarray, variance: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Brownian-bridge excursion beyond the body, by inversion of ``P(u > x)``; ``>= 0``."""
    return (np.sqrt(body**2 - 2 * variance * np.log(uniform)) - np.abs(body)) / 2


def _quantile_draw(quantiles: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    return np.interp(uniform, np.linspace(0, 1, len(quantiles)), quantiles)


@dataclass(frozen=True)
class OHLCVModel:
    """Fitted parameters of the bar model (see the module docstring for the equations).

    Attributes
    ----------
    gap_beta : float
        ``beta``: share of the close-to-close return taken overnight.
    gap_quantiles : tuple of float
        Quantiles (0, 0.005, ..., 1) of the standardized gap residual ``e_t``.
    excursion_up, excursion_down, excursion_slope : float
        ``a`` for the high and the low side, and ``c``.
    volume_coefficients : tuple of float
        ``k, p_1, p_5, p_22, q, w``.
    volume_quantiles : tuple of float
        Quantiles of the volume residual.
    log_volume_level : float
        Default ``level``: mean log volume of the last 250 fitted days.
    fitted_on : str
        What the model was fitted on.
    """

    gap_beta: float
    gap_quantiles: tuple[float, ...] = field(repr=False)
    excursion_up: float
    excursion_down: float
    excursion_slope: float
    volume_coefficients: tuple[float, ...]
    volume_quantiles: tuple[float, ...] = field(repr=False)
    log_volume_level: float
    fitted_on: str = ""

    @classmethod
    def fit(cls, bars: pd.DataFrame, fitted_on: str = "") -> OHLCVModel:
        """Fit on real daily bars (columns Open, High, Low, Close, Volume; any case).

        Days whose open equals the previous close exactly carry no overnight information (index
        opens were stale in older data) and are left out of the gap fit. The excursion
        parameters are maximum-likelihood estimates; gap and volume are least squares with
        their residuals kept as quantiles.
        """
        o, h, low, c, v = _validated_bars(bars)
        r, gap = np.diff(np.log(c)), np.log(o[1:] / c[:-1])
        sigma = volatility_state(r[:, None])[:, 0]
        z = _standardized_move(r, sigma)
        body = r - gap
        up = np.log(h[1:] / np.maximum(o[1:], c[1:]))
        down = np.log(np.minimum(o[1:], c[1:]) / low[1:])
        log_volume = np.log(v[1:])
        trend = pd.Series(log_volume).shift(1).rolling(VOLUME_TREND_DAYS).mean().to_numpy()
        used = np.arange(len(r)) >= VOLUME_TREND_DAYS + max(HAR_LAGS)
        if used.sum() < 250:
            raise DataError(f"need at least {VOLUME_TREND_DAYS + max(HAR_LAGS) + 251} daily "
                            f"bars to fit the OHLCV model, got {len(c)}")

        moving = used & (np.abs(gap) > 1e-12)
        beta = np.sum(gap[moving] * r[moving] / sigma[moving] ** 2) / np.sum(
            (r[moving] / sigma[moving]) ** 2)
        gap_residual = (gap[moving] - beta * r[moving]) / sigma[moving]

        side_fit = used & (np.abs(body) + up > 0) & (np.abs(body) + down > 0)
        excursion = _fit_excursions(body[side_fit], up[side_fit], down[side_fit],
                                    sigma[side_fit], z[side_fit])

        x = log_volume - trend
        features = _har_features(x, z, np.log(sigma))
        coefficients, *_ = np.linalg.lstsq(features[used], x[used], rcond=None)
        volume_residual = x[used] - features[used] @ coefficients
        levels = np.linspace(0, 1, N_QUANTILES)
        return cls(
            gap_beta=float(beta),
            gap_quantiles=tuple(np.quantile(gap_residual, levels).tolist()),
            excursion_up=excursion[0], excursion_down=excursion[1],
            excursion_slope=excursion[2],
            volume_coefficients=tuple(coefficients.tolist()),
            volume_quantiles=tuple(np.quantile(volume_residual, levels).tolist()),
            log_volume_level=float(np.mean(log_volume[-VOLUME_TREND_DAYS:])),
            fitted_on=fitted_on)

    def sample(self, returns: np.ndarray, start_prices: float | np.ndarray, *,
               seed: int | np.random.Generator | None = None,
               volume_level: float | np.ndarray | None = None) -> np.ndarray:
        """Bars for close paths: array (n, days + 1, assets, 5) of Open, High, Low, Close,
        Volume.

        ``returns`` (n, days, assets) are log returns; the closes are
        ``start_prices * exp(cumsum)`` with the start price as the close of row 0, a bar of
        zero close-to-close return (so the row before the first return is a full bar too).
        ``volume_level`` (shares per day, one for all assets or one per asset) replaces the
        fitted level (the S&P 500 index's shares for the default model, about 3.4e9 a day).
        """
        returns = np.asarray(returns, dtype=np.float64)
        if returns.ndim != 3 or 0 in returns.shape or not np.isfinite(returns).all():
            raise DataError(f"returns must be finite with shape (n, days, assets), each at "
                            f"least 1, got {returns.shape}")
        rng = np.random.default_rng(seed)
        r = np.concatenate([np.zeros_like(returns[:, :1]), returns], axis=1)  # (n, days+1, a)
        start = np.asarray(start_prices, dtype=np.float64)
        if start.size not in (1, r.shape[2]):
            raise DataError(f"give one start price, or one per asset ({r.shape[2]}); got "
                            f"{start.size}")
        start = np.broadcast_to(start.reshape(-1) if start.size > 1 else start, r.shape[2:])
        close = prices_from_returns(returns, start)
        previous = np.concatenate([close[:, :1] * np.exp(-r[:, :1]), close[:, :-1]], axis=1)
        sigma = volatility_state(r)
        z = _standardized_move(r, sigma)

        gap = self.gap_beta * r + sigma * _quantile_draw(np.asarray(self.gap_quantiles),
                                                         rng.random(r.shape))
        body = r - gap
        open_ = previous * np.exp(gap)
        spread = sigma**2 * np.exp(self.excursion_slope * z)
        high = np.maximum(open_, close) * np.exp(_excursion(
            body, spread * np.exp(self.excursion_up), 1.0 - rng.random(r.shape)))
        low = np.minimum(open_, close) * np.exp(-_excursion(
            body, spread * np.exp(self.excursion_down), 1.0 - rng.random(r.shape)))

        level = self.log_volume_level if volume_level is None else _log_level(volume_level)
        x = self._volume_deviation(z, np.log(sigma), rng)
        return np.stack([open_, high, low, close, np.exp(level + x)], axis=-1)

    def _volume_deviation(self, z: np.ndarray, log_sigma: np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
        """Run the HAR recursion forward from ``x = 0`` history, day by day."""
        k, p1, p5, p22, q, w = self.volume_coefficients
        n, days, assets = z.shape
        history = np.zeros((n, max(HAR_LAGS) + days, assets))
        noise = _quantile_draw(np.asarray(self.volume_quantiles), rng.random(z.shape))
        for t in range(days):
            past = history[:, t:t + max(HAR_LAGS)]                  # (n, 22, assets)
            history[:, t + max(HAR_LAGS)] = (
                k + p1 * past[:, -1] + p5 * past[:, -5:].mean(axis=1) + p22 * past.mean(axis=1)
                + q * z[:, t] + w * log_sigma[:, t] + noise[:, t])
        return history[:, max(HAR_LAGS):]

    def save(self, path: str | Path) -> Path:
        """Write the parameters as JSON, atomically."""
        return atomic_write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> OHLCVModel:
        """Read :meth:`save` output."""
        path = Path(path)
        with FileReading(DataError, "write it with OHLCVModel.save") as reading:
            reading.file = path
            fields = json.loads(path.read_text())
            return cls(**{key: tuple(value) if isinstance(value, list) else value
                          for key, value in fields.items()})


def _log_level(volume_level: float | np.ndarray) -> np.ndarray:
    level = np.asarray(volume_level, dtype=np.float64)
    if level.ndim > 1 or not (np.isfinite(level).all() and (level > 0).all()):
        raise DataError(f"volume_level must be a positive number of shares (or one per "
                        f"asset), got {volume_level}")
    return np.log(level)


def _har_features(x: np.ndarray, z: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    """Columns 1, x_{t-1}, mean x_{t-5..t-1}, mean x_{t-22..t-1}, z_t, log sigma_t."""
    lagged = pd.Series(x).shift(1)
    columns = [np.ones_like(x)] + [lagged.rolling(lag).mean().to_numpy() for lag in HAR_LAGS]
    return np.column_stack(columns + [z, log_sigma])


def _fit_excursions(body: np.ndarray, up: np.ndarray, down: np.ndarray, sigma: np.ndarray,
                    z: np.ndarray) -> tuple[float, float, float]:
    """Maximum likelihood of ``(a_up, a_down, c)``: with ``s^2 = sigma^2 exp(a + c z)`` the
    density of an excursion ``x`` is ``2 (2x + |b|) / s^2 exp(-2 x (x + |b|) / s^2)``."""
    size = np.abs(body)

    def negative_log_likelihood(params: np.ndarray) -> float:
        total = 0.0
        for excursion, intercept in ((up, params[0]), (down, params[1])):
            variance = sigma**2 * np.exp(intercept + params[2] * z)
            total += np.sum(np.log(variance) + 2 * excursion * (excursion + size) / variance
                            - np.log(2 * (2 * excursion + size)))
        return total

    result = minimize(negative_log_likelihood, np.array([-1.0, -1.0, 0.0]), method="Nelder-Mead",
                      options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 4000})
    return tuple(float(value) for value in result.x)  # type: ignore[return-value]


def _validated_bars(bars: pd.DataFrame) -> tuple[np.ndarray, ...]:
    if not isinstance(bars, pd.DataFrame):
        raise DataError(f"bars must be a DataFrame with columns {', '.join(FIELDS)}, got "
                        f"{type(bars).__name__}")
    by_name = {str(column).lower(): column for column in bars.columns}
    missing = [field for field in FIELDS if field.lower() not in by_name]
    if missing:
        raise DataError(f"bars lack column(s) {', '.join(missing)}; have "
                        f"{', '.join(map(str, bars.columns))}")
    o, h, low, c, v = (bars[by_name[field.lower()]].to_numpy(dtype=np.float64)
                       for field in FIELDS)
    bad = ~(np.isfinite(o + h + low + c + v) & (low > 0) & (v > 0)
            & (low <= np.minimum(o, c)) & (np.maximum(o, c) <= h))
    if bad.any():
        raise DataError(f"{bad.sum()} bar(s) are not positive, finite and ordered "
                        f"(Low <= Open, Close <= High, Volume > 0), first on "
                        f"{bars.index[np.argmax(bad)]}; drop or fix them before fitting")
    return o, h, low, c, v


def bar_facts(bars: np.ndarray) -> dict[str, float]:
    """The facts users check on daily bars, per path of ``bars`` (n, days, 5) and averaged.

    ``range_abs_return_slope`` and ``_corr``: OLS slope and correlation of the log range
    ``log(H/L)`` on ``|r|``; ``parkinson_ratio``: ``sqrt(mean(log(H/L)^2) / (4 log 2))`` over the
    close-to-close ``sqrt(mean r^2)``; ``gap_return_corr``: of ``log(O_t / C_{t-1})`` and ``r``;
    ``volume_abs_return_corr``: of log volume and ``|r|``; ``volume_acf_k``: autocorrelation of
    log volume (demeaned per path) at lag ``k``.
    """
    bars = np.asarray(bars, dtype=np.float64)
    o, h, low, c, v = np.moveaxis(bars[:, 1:], -1, 0)
    r = np.diff(np.log(bars[:, :, 3]), axis=1)
    size, log_range, log_volume = np.abs(r), np.log(h / low), np.log(v)
    gap = np.log(o / bars[:, :-1, 3])

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
        return np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))

    def acf(lag: int) -> np.ndarray:
        x = log_volume - log_volume.mean(axis=1, keepdims=True)
        return np.sum(x[:, lag:] * x[:, :-lag], axis=1) / np.sum(x * x, axis=1)

    centred = size - size.mean(axis=1, keepdims=True)
    facts = {
        "range_abs_return_slope": np.sum(centred * log_range, axis=1)
        / np.sum(centred**2, axis=1),
        "range_abs_return_corr": corr(size, log_range),
        "parkinson_ratio": np.sqrt(np.mean(log_range**2, axis=1) / (4 * np.log(2))
                                   / np.mean(r**2, axis=1)),
        "gap_return_corr": corr(gap, r),
        "volume_abs_return_corr": corr(log_volume, size),
        **{f"volume_acf_{lag}": acf(lag) for lag in (1, 5, 20)},
    }
    return {name: float(np.mean(values)) for name, values in facts.items()}


@functools.lru_cache(maxsize=1)
def sp500_ohlcv_model() -> OHLCVModel:
    """The default model: fitted on ``arch``'s S&P 500 daily bars, 2008-2016 (offline)."""
    from arch.data import sp500

    bars = sp500.load().loc["2007-01-01":"2016-12-31"]  # 2007 warms up the volume trend
    return OHLCVModel.fit(bars, fitted_on="S&P 500 daily bars 2008-2016 (arch.data.sp500)")
