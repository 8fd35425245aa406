"""Conditioning features: trailing realized volatility and the named regimes derived from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthfin.errors import DataError
from synthfin.stats.facts import TRADING_DAYS

REGIME_NAMES: tuple[str, ...] = ("calm", "normal", "stressed")


def realized_vol(returns: np.ndarray) -> np.ndarray:
    """Annualized realized vol of each path of unscaled returns (..., days, assets), averaged
    over assets: ``sqrt(TRADING_DAYS / days * sum_t r_t^2)``, shape (...)."""
    returns = np.asarray(returns, dtype=np.float64)
    return _annualized(np.sum(np.square(returns), axis=-2), returns.shape[-2])


def trailing_sum_squares(returns: np.ndarray, lookback: int) -> np.ndarray:
    """``sum_{s=t-lookback}^{t-1} r_s^2`` for each day ``t`` of (time, assets) returns; the
    first ``lookback`` rows are NaN."""
    squared_sum = np.concatenate([np.zeros((1, returns.shape[1])),
                                  np.cumsum(np.square(returns), axis=0)])
    sums = np.full(returns.shape, np.nan)
    sums[lookback:] = squared_sum[lookback:-1] - squared_sum[:-lookback - 1]  # days lookback..T-1
    return sums


def trailing_realized_vol(returns: np.ndarray, lookback: int) -> np.ndarray:
    """Annualized realized volatility of the ``lookback`` returns *before* each day.

    ``vol[t] = sqrt(TRADING_DAYS / lookback * sum_{s=t-lookback}^{t-1} r_s^2)``, averaged
    over assets for a multi-asset array, so ``vol[t]`` is known before day ``t`` (a causal
    condition). The first ``lookback`` entries are NaN.

    Parameters
    ----------
    returns : array (time, assets)
        Unscaled log returns.
    lookback : int
        Number of trailing days (21 is about one trading month).
    """
    returns = np.asarray(returns, dtype=np.float64)
    if lookback < 2:
        raise DataError(f"vol_lookback must be >= 2 days, got {lookback}")
    return _annualized(trailing_sum_squares(returns, lookback), lookback)


def _annualized(sum_squares: np.ndarray, days: int) -> np.ndarray:
    """``sqrt(TRADING_DAYS / days * sum of squares)``, averaged over the last (asset) axis."""
    return np.sqrt(TRADING_DAYS / days * sum_squares).mean(axis=-1)


class RegimeModel:
    """Volatility regimes from quantiles of training realized vol: ``calm`` / ``normal`` /
    ``stressed`` by default.

    Parameters
    ----------
    quantiles : sequence of float
        Increasing cut points in (0, 1); ``len(names) - 1`` of them.
    names : sequence of str
        Regime names from the lowest to the highest volatility.
    """

    def __init__(self, quantiles: Sequence[float] = (0.25, 0.75),
                 names: Sequence[str] = REGIME_NAMES) -> None:
        quantiles, names = list(quantiles), list(names)
        if len(quantiles) != len(names) - 1:
            raise DataError(f"{len(names)} regimes need {len(names) - 1} quantiles, "
                            f"got {quantiles}")
        if any(not 0 < q < 1 for q in quantiles) or sorted(set(quantiles)) != quantiles:
            raise DataError("regime quantiles must increase strictly inside (0, 1), "
                            f"got {quantiles}")
        if len(set(names)) != len(names):
            raise DataError(f"regime names must be unique, got {names}")
        self.quantiles, self.names = quantiles, names

    def fit(self, train_vol: np.ndarray) -> RegimeModel:
        """Fit thresholds (and each regime's median vol) on training realized vol only."""
        vol = np.asarray(train_vol, dtype=np.float64)
        vol = vol[np.isfinite(vol)]
        if vol.size < len(self.names):
            raise DataError(f"too few training days ({vol.size}) to fit {len(self.names)} regimes")
        self.thresholds_ = np.quantile(vol, self.quantiles)
        labels = self.label(vol)
        self.median_vol_ = np.array([np.median(vol[labels == code]) for code in
                                     range(len(self.names))])
        return self

    def label(self, vol: np.ndarray) -> np.ndarray:
        """Integer regime codes (0 = lowest vol) for realized-vol values."""
        self._fitted()
        return np.searchsorted(self.thresholds_, np.asarray(vol), side="right")

    def code(self, regime: str | int) -> int:
        """Code of a regime given by name or code; a clear error for one never seen in training."""
        if isinstance(regime, (int, np.integer)) and 0 <= regime < len(self.names):
            return int(regime)
        if regime in self.names:
            return self.names.index(regime)
        raise DataError(f"unknown regime {regime!r}; this model knows {', '.join(self.names)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable state."""
        self._fitted()
        return {"quantiles": self.quantiles, "names": self.names,
                "thresholds": self.thresholds_.tolist(), "median_vol": self.median_vol_.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RegimeModel:
        """Rebuild a fitted model from :meth:`to_dict` output."""
        model = cls(state["quantiles"], state["names"])
        model.thresholds_ = np.asarray(state["thresholds"], dtype=np.float64)
        model.median_vol_ = np.asarray(state["median_vol"], dtype=np.float64)
        return model

    def _fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise DataError("the regime model is not fitted; call fit(train_vol) first")


class WindowConditions:
    """The training windows' (regime, realized vol) pairs that a window model is conditioned on.

    :meth:`standardize` turns a realized vol into the standardized log vol the networks read
    (training mean and std of ``log vol``); :meth:`draw` picks conditions for sampling from the
    training windows, among one regime's or (``None``) all of them, i.e. at the training regime
    frequencies. The state is plain arrays, for a model's safetensors file.
    """

    def __init__(self, regimes: np.ndarray, realized_vol: np.ndarray) -> None:
        self.regimes = np.asarray(regimes, dtype=np.int64)
        self.realized_vol = np.asarray(realized_vol, dtype=np.float64)
        if not np.isfinite(self.realized_vol).all() or len(self.realized_vol) == 0:
            raise DataError("every training window needs a finite realized vol")
        log_vol = np.log(np.maximum(self.realized_vol, 1e-8))
        self.log_vol_stats = np.array([log_vol.mean(), max(log_vol.std(), 1e-8)])

    def standardize(self, realized_vol: np.ndarray) -> np.ndarray:
        """``(log vol - training mean) / training std``."""
        mean, std = self.log_vol_stats
        return (np.log(np.maximum(np.asarray(realized_vol, dtype=np.float64), 1e-8)) - mean) / std

    def draw(self, n: int, regime: int | None, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        """Regime codes and realized vols (n,) of training windows drawn with replacement."""
        pool = (np.arange(len(self.regimes)) if regime is None
                else np.flatnonzero(self.regimes == regime))
        if len(pool) == 0:
            raise DataError(f"no training window is in regime {regime}; cannot condition on it")
        pick = rng.choice(pool, size=n)
        return self.regimes[pick], self.realized_vol[pick]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"conditions.regimes": self.regimes, "conditions.realized_vol": self.realized_vol}

    @classmethod
    def from_arrays(cls, state: dict[str, np.ndarray]) -> WindowConditions:
        return cls(state["conditions.regimes"], state["conditions.realized_vol"])
