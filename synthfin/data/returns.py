"""Prices to log returns and back.

A log return is ``r_t = log(P_t / P_{t-1})``; a price path is recovered exactly from its start price
and the returns as ``P_t = P_0 * exp(r_1 + ... + r_t)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthfin.errors import DataError


def log_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Daily log returns of a tidy price frame, on the common date range of its tickers.

    Parameters
    ----------
    prices : DataFrame
        DatetimeIndex x tickers, positive closes (as returned by :func:`synthfin.load_prices`).

    Returns
    -------
    DataFrame
        ``log(P_t / P_{t-1})``, one row fewer than the common date range; the index holds the date
        of ``t`` (the day the return is realized).
    """
    common = prices.dropna(how="any")
    if len(common) < 2:
        raise DataError(
            f"need at least 2 dates on which every ticker has a price, got {len(common)} "
            f"(tickers: {', '.join(map(str, prices.columns))})"
        )
    if (common <= 0).to_numpy().any():
        raise DataError("prices must be positive to take log returns; validate them first")
    values = np.log(common.to_numpy(dtype=np.float64))
    return pd.DataFrame(np.diff(values, axis=0), index=common.index[1:], columns=common.columns)


def prices_from_returns(returns: np.ndarray, start_prices: np.ndarray | float) -> np.ndarray:
    """Price paths from log returns: ``P_t = P_0 exp(r_1 + ... + r_t)``, with ``P_0`` prepended.

    Parameters
    ----------
    returns : array (..., length, assets)
        Log returns; time is the second-to-last axis, as everywhere in synthfin.
    start_prices : float or array (assets,)
        Price on the day before the first return, per asset.

    Returns
    -------
    array (..., length + 1, assets)
        The start price followed by one price per return.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim < 2:
        raise DataError(f"returns must have shape (..., length, assets), got {returns.shape}")
    start = np.broadcast_to(np.asarray(start_prices, dtype=np.float64), returns.shape[-1:])
    if (start <= 0).any() or not np.isfinite(start).all():
        raise DataError(f"start prices must be positive and finite, got {start.tolist()}")
    zeros = np.zeros(returns.shape[:-2] + (1, returns.shape[-1]))
    cumulative = np.concatenate([zeros, np.cumsum(returns, axis=-2)], axis=-2)
    return start * np.exp(cumulative)
