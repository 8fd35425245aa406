"""Stress-testing a trading strategy on synthetic paths, beside the real history.

A strategy is a plain callable. Either it takes one path's prices as a DataFrame (dates x assets)
and returns weights of the same shape, or it is marked ``vectorized = True`` and takes the array
of all paths' prices (n, days, assets) and returns weights of that shape. The weight decided at
the close of day ``t`` earns the return from ``t`` to ``t + 1``:

``r^p_{t+1} = sum_a w_{t,a} (P_{t+1,a} / P_{t,a} - 1)``, equity ``E_t = prod_{s<=t} (1 + r^p_s)``.

:func:`stress_test` also takes a backtesting.py ``Strategy`` class, or any object with a
``scenario_returns(scenarios)`` method, such as the adapters in :mod:`synthfin.backtest.adapters`
(a vectorbt-style signal function wrapped by ``signal_strategy``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synthfin.backtest.adapters import BacktestingStrategy, is_backtesting_strategy
from synthfin.backtest.performance import Strategy, performance, strategy_returns
from synthfin.data.conditions import TRADING_DAYS
from synthfin.errors import DataError, SynthfinError
from synthfin.io import atomic_directory, atomic_write_json, atomic_write_text
from synthfin.scenarios.paths import Scenarios


# -- example strategies (vectorized over paths) -----------------------------------------------
def moving_average_crossover(fast: int = 20, slow: int = 100) -> Strategy:
    """Long (weight 1) while the ``fast``-day moving average of the price is above the
    ``slow``-day one, flat otherwise; flat until ``slow`` days of history exist."""
    if not 0 < fast < slow:
        raise DataError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")

    def strategy(prices: np.ndarray) -> np.ndarray:
        csum = np.concatenate([np.zeros_like(prices[:, :1]), np.cumsum(prices, axis=1)], axis=1)
        weights = np.zeros_like(prices)
        days = prices.shape[1]
        if days >= slow:
            fast_ma = (csum[:, slow:] - csum[:, slow - fast:days + 1 - fast]) / fast
            slow_ma = (csum[:, slow:] - csum[:, :days + 1 - slow]) / slow
            weights[:, slow - 1:] = (fast_ma > slow_ma).astype(float)
        return weights

    strategy.vectorized = True  # type: ignore[attr-defined]
    strategy.__name__ = f"ma_crossover_{fast}_{slow}"
    return strategy


def volatility_targeting(target_vol: float = 0.10, lookback: int = 20,
                         max_leverage: float = 2.0) -> Strategy:
    """Long with weight ``target_vol / realized_vol`` (annualized, trailing ``lookback`` days),
    capped at ``max_leverage``; flat until the look-back is filled."""
    def strategy(prices: np.ndarray) -> np.ndarray:
        returns = np.diff(np.log(prices), axis=1)
        csum = np.concatenate([np.zeros_like(returns[:, :1]), np.cumsum(returns**2, axis=1)],
                              axis=1)
        weights = np.zeros_like(prices)
        if returns.shape[1] >= lookback:
            vol = np.sqrt((csum[:, lookback:] - csum[:, :-lookback]) / lookback * TRADING_DAYS)
            weights[:, lookback:] = np.minimum(target_vol / np.maximum(vol, 1e-12), max_leverage)
        return weights

    strategy.vectorized = True  # type: ignore[attr-defined]
    strategy.__name__ = f"vol_target_{target_vol:g}"
    return strategy


def load_strategy(spec: str) -> Strategy:
    """``"module:function"`` -> the callable; a factory taking no arguments is called once
    (so ``synthfin.backtest.harness:moving_average_crossover`` gives the default crossover)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SynthfinError(f"strategy must be 'module:function', got {spec!r}")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SynthfinError(f"cannot load strategy {spec!r}: {error}") from None
    if target in (moving_average_crossover, volatility_targeting):
        target = target()
    return target


# -- the harness ------------------------------------------------------------------------------
@dataclass
class StressReport:
    """Metrics per path for each scenario set and for the real history in segments of the same
    length; ``table()`` puts the real median inside each synthetic distribution."""

    strategy: str
    metrics: dict[str, pd.DataFrame]   # scenario label -> per-path metrics
    real: pd.DataFrame                 # per real segment metrics
    equity: dict[str, np.ndarray]      # label -> (n, days) equity curves
    real_equity: np.ndarray

    def table(self) -> pd.DataFrame:
        """Rows: (scenario set, metric); columns: synthetic 5/50/95 % quantiles, the real
        median and its percentile within the synthetic distribution."""
        rows = {}
        for label, frame in self.metrics.items():
            for metric in frame:
                values = frame[metric].to_numpy()
                real = float(np.median(self.real[metric]))
                rows[(label, metric)] = {
                    "p05": np.quantile(values, 0.05), "median": np.median(values),
                    "p95": np.quantile(values, 0.95), "real_median": real,
                    "real_percentile": 100.0 * np.mean(values <= real)}
        return pd.DataFrame(rows).T.rename_axis(["scenarios", "metric"])

    def save(self, directory: str | Path) -> Path:
        """``stress.md``, ``stress.json`` and ``stress.png`` (fan chart and histograms)."""
        table = self.table()
        with atomic_directory(directory) as temp:  # the three as a unit
            atomic_write_text(temp / "stress.md", f"# Stress test: {self.strategy}\n\n"
                              + _markdown(table.round(4)))
            atomic_write_json(temp / "stress.json", {
                "strategy": self.strategy, "real_segments": len(self.real),
                "table": [{"scenarios": s, "metric": m, **{k: float(v) for k, v in row.items()}}
                          for (s, m), row in table.iterrows()]})
            self._plot(temp / "stress.png")
        return Path(directory)

    def _plot(self, path: Path) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from synthfin.io import atomic_write

        figure = Figure(figsize=(15, 4.2))
        FigureCanvasAgg(figure)
        fan, sharpe, drawdown = figure.subplots(1, 3)
        days = np.arange(1, self.real_equity.shape[1] + 1)
        for (label, equity), colour in zip(self.equity.items(), ("C0", "C3", "C2", "C1", "C4"),
                                           strict=False):
            lo, mid, hi = np.quantile(equity, [0.05, 0.5, 0.95], axis=0)
            fan.fill_between(days, lo, hi, color=colour, alpha=0.2)
            fan.plot(days, mid, color=colour, label=f"{label} (median, 5-95 %)")
            for axis, metric in ((sharpe, "sharpe"), (drawdown, "max_drawdown")):
                axis.hist(self.metrics[label][metric], bins=40, alpha=0.45, color=colour,
                          label=label, density=True)
        fan.plot(days, np.median(self.real_equity, axis=0), color="black", lw=2,
                 label="real segments (median)")
        for axis, metric, title in ((sharpe, "sharpe", "annualized Sharpe"),
                                    (drawdown, "max_drawdown", "max drawdown")):
            axis.axvline(np.median(self.real[metric]), color="black", lw=2, label="real median")
            axis.set_title(title)
            axis.legend(fontsize=7)
        fan.set_title(f"equity: {self.strategy}")
        fan.set_xlabel("day")
        fan.legend(fontsize=7)
        figure.tight_layout()
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=90))


def _markdown(table: pd.DataFrame) -> str:
    header = "| scenarios | metric | " + " | ".join(table.columns) + " |"
    lines = [header, "|---|---|" + "---:|" * len(table.columns)]
    for (label, metric), row in table.iterrows():
        lines.append(f"| {label} | {metric} | " + " | ".join(f"{v:.4g}" for v in row) + " |")
    return "\n".join(lines) + "\n"


def real_segments(returns: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping segments (k, length, assets) of a real return history (days, assets)."""
    k = len(returns) // length
    if k < 1:
        raise DataError(f"the real history ({len(returns)} days) is shorter than one "
                        f"{length}-day path")
    return returns[len(returns) - k * length:].reshape(k, length, returns.shape[1])


def stress_test(strategy: Strategy | type, scenarios: Mapping[str, Scenarios],
                real_returns: np.ndarray) -> StressReport:
    """Run ``strategy`` on every scenario set and on the real history cut into segments of the
    scenarios' length (all started at the first set's start prices and dates).

    ``strategy`` is a weight function (module docstring), a backtesting.py ``Strategy`` class
    (run by backtesting.py on each path's OHLCV frame; the real segments get bars from the same
    OHLCV layer) or an object with ``scenario_returns(scenarios)``, e.g.
    ``synthfin.backtest.adapters.signal_strategy(signals)``.
    """
    if not scenarios:
        raise DataError("give at least one scenario set")
    first = next(iter(scenarios.values()))
    length = first.returns.shape[1]
    run, name = _runner(strategy)
    metrics, equity = {}, {}
    for label, scen in scenarios.items():
        if scen.returns.shape[1] != length:
            raise DataError(f"scenario set {label!r} has {scen.returns.shape[1]} days, "
                            f"others {length}")
        pnl = run(scen)
        metrics[label], equity[label] = performance(pnl), np.cumprod(1 + pnl, axis=1)
    real = Scenarios(real_segments(np.asarray(real_returns, dtype=np.float64), length),
                     first.dates, first.assets, first.start_prices, start_date=first.start_date)
    real_pnl = run(real)
    return StressReport(name, metrics, performance(real_pnl), equity,
                        np.cumprod(1 + real_pnl, axis=1))


def _runner(strategy: Strategy | type) -> tuple[Callable[[Scenarios], np.ndarray], str]:
    """``scenarios -> (n, days)`` daily returns for any accepted strategy style, and its name."""
    if is_backtesting_strategy(strategy):
        strategy = BacktestingStrategy(strategy)  # type: ignore[arg-type]
    if hasattr(strategy, "scenario_returns"):
        return (strategy.scenario_returns,  # type: ignore[union-attr]
                getattr(strategy, "name", type(strategy).__name__))
    return (lambda scen: strategy_returns(strategy, scen.prices(), scen.price_dates,
                                          scen.assets),
            getattr(strategy, "__name__", repr(strategy)))
