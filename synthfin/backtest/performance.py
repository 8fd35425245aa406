"""Daily P&L of weights on price paths, and per-path performance metrics (return, Sharpe,
drawdown, VaR / ES, time under water)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from synthfin.data.conditions import TRADING_DAYS
from synthfin.errors import DataError
from synthfin.stats.tails import var_es

Strategy = Callable[..., object]


# -- P&L and metrics --------------------------------------------------------------------------
def strategy_returns(strategy: Strategy, prices: np.ndarray, dates: pd.DatetimeIndex,
                     assets: list[str]) -> np.ndarray:
    """Daily portfolio returns (n, days - 1) of ``strategy`` on price paths (n, days, assets)."""
    expected = prices.shape[1:]
    if getattr(strategy, "vectorized", False):
        weights = np.asarray(strategy(prices), dtype=np.float64)
    else:
        per_path = []
        for path in prices:
            result = np.asarray(strategy(pd.DataFrame(path, index=dates, columns=assets)),
                                dtype=np.float64)
            if result.shape == expected[:1] and expected[1] == 1:  # a Series for one asset
                result = result[:, None]
            if result.shape != expected:
                raise DataError(f"the strategy must return weights of shape {expected} per "
                                f"path (days, assets), got {result.shape}")
            per_path.append(result)
        weights = np.stack(per_path)
    if weights.shape != prices.shape or not np.isfinite(weights).all():
        raise DataError(f"the strategy must return finite weights of shape {expected} per "
                        f"path, got {weights.shape}")
    return weighted_returns(weights, prices)


def weighted_returns(weights: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """``sum_a w_{t,a} (P_{t+1,a} / P_{t,a} - 1)``: (n, days - 1) from (n, days, assets)."""
    return np.sum(weights[:, :-1] * (prices[:, 1:] / prices[:, :-1] - 1.0), axis=2)


def performance(returns: np.ndarray, levels: tuple[float, ...] = (0.95, 0.99)) -> pd.DataFrame:
    """Per-path metrics of daily portfolio returns (n, days).

    ``total_return`` (compounded), ``sharpe`` (mean / std * sqrt(TRADING_DAYS), 0 when flat),
    ``max_drawdown`` (largest fall from a running peak of equity, positive), ``var_95``,
    ``es_95`` ... (historical VaR and expected shortfall of the daily P&L as positive losses,
    :func:`synthfin.stats.tails.var_es`),
    ``underwater_share`` (share of days below the running peak) and ``longest_underwater_days``.
    """
    returns = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    equity = np.cumprod(1.0 + returns, axis=1)
    peak = np.maximum.accumulate(np.concatenate([np.ones((len(equity), 1)), equity], axis=1),
                                 axis=1)[:, 1:]
    underwater = equity < peak - 1e-12
    std = returns.std(axis=1, ddof=1)
    metrics = {
        "total_return": equity[:, -1] - 1.0,
        "sharpe": np.where(std > 0, returns.mean(axis=1) / np.where(std > 0, std, 1.0)
                           * np.sqrt(TRADING_DAYS), 0.0),
        "max_drawdown": np.max(1.0 - equity / peak, axis=1),
    }
    for level, (var, es) in var_es(returns, levels).items():
        metrics[f"var_{round(level * 100)}"] = var
        metrics[f"es_{round(level * 100)}"] = es
    metrics["underwater_share"] = underwater.mean(axis=1)
    metrics["longest_underwater_days"] = np.array([_longest_run(row) for row in underwater])
    return pd.DataFrame(metrics)


def _longest_run(flags: np.ndarray) -> int:
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
