"""Third-party strategy styles for :func:`synthfin.stress_test`.

- :class:`BacktestingStrategy`: a backtesting.py ``Strategy`` class, run by backtesting.py itself
  on every path's OHLCV frame (``pip install synthfin[backtest]``); ``stress_test`` wraps a bare
  ``Strategy`` class in it.
- :func:`signal_strategy`: a vectorbt-style function ``signals(close) -> (entries, exits)`` of a
  dates x columns close frame; a long position is opened at the close of an entry bar and closed
  at the close of an exit bar, which is vectorbt's ``Portfolio.from_signals(close, entries,
  exits)`` without fees. It needs no vectorbt.
- :func:`vectorbt_defaults`: vectorbt's global frequency set for synthfin's trading-day frames,
  so ``vbt.Portfolio.from_signals(scenarios.to_wide(), entries, exits)`` needs no ``freq=``.

Each adapter exposes ``name`` and ``scenario_returns(scenarios) -> (n, days)`` daily returns.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from synthfin.backtest.performance import weighted_returns
from synthfin.data.conditions import TRADING_DAYS
from synthfin.errors import DataError
from synthfin.scenarios.ohlcv import OHLCVModel
from synthfin.scenarios.paths import Scenarios


def is_backtesting_strategy(strategy: object) -> bool:
    """Whether ``strategy`` is a subclass of ``backtesting.Strategy`` (without importing
    backtesting.py when it is not already imported)."""
    return isinstance(strategy, type) and any(
        cls.__module__.startswith("backtesting") and cls.__name__ == "Strategy"
        for cls in strategy.__mro__)


class BacktestingStrategy:
    """A backtesting.py ``Strategy`` class run on every path with ``Backtest(frame, strategy)``.

    Parameters
    ----------
    strategy : type
        A subclass of ``backtesting.Strategy``.
    cash : float, optional
        Starting cash; default ``10_000 x`` the start price, so whole-unit orders track the
        equity to within 0.01 %.
    ohlcv_model : OHLCVModel, optional
        Bars for scenarios that carry none (also the real segments in ``stress_test``);
        default :func:`synthfin.scenarios.ohlcv.sp500_ohlcv_model`, drawn with ``seed``.
    **backtest_options
        Passed to ``backtesting.Backtest`` (``commission=``, ``spread=``, ``margin=``...).
    """

    def __init__(self, strategy: type, *, cash: float | None = None,
                 ohlcv_model: OHLCVModel | None = None, seed: int = 0,
                 **backtest_options: Any) -> None:
        if not is_backtesting_strategy(strategy):
            raise DataError(f"{strategy!r} is not a backtesting.py Strategy class")
        self.strategy, self.cash, self.seed = strategy, cash, seed
        self.ohlcv_model, self.backtest_options = ohlcv_model, backtest_options
        self.name = strategy.__name__

    def scenario_returns(self, scenarios: Scenarios) -> np.ndarray:
        """Daily returns (n, days) of the strategy's equity curve on every path."""
        from backtesting import Backtest

        if len(scenarios.assets) != 1:
            raise DataError(f"backtesting.py trades one asset; these scenarios hold "
                            f"{len(scenarios.assets)} ({', '.join(scenarios.assets)}): run one "
                            f"at a time, e.g. scenarios.frames(asset={scenarios.assets[0]!r})")
        if scenarios.bars is None:
            scenarios = scenarios.with_ohlcv(self.ohlcv_model, seed=self.seed)
        cash = self.cash or 10_000 * float(scenarios.start_prices[0])
        returns = []
        with _quiet_backtesting():
            for frame in scenarios.frames(ohlcv=True):
                stats = Backtest(frame, self.strategy, cash=cash,
                                 **self.backtest_options).run()
                equity = stats["_equity_curve"]["Equity"].to_numpy(dtype=np.float64)
                returns.append(equity[1:] / equity[:-1] - 1.0)
        return np.stack(returns)


@contextlib.contextmanager
def _quiet_backtesting() -> Iterator[None]:
    """Silence backtesting.py's per-run progress bar and its per-run warnings (thousands of
    runs would flood stderr). Trades left open are not finalized: backtesting.py would close
    them at the last bar's open, while the equity curve marks them at its close."""
    import backtesting.backtesting as engine

    original = getattr(engine, "_tqdm", None)
    engine._tqdm = lambda sequence, **_: sequence
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Some trades remain open")
            warnings.filterwarnings("ignore", message="DatetimeIndex.dayofweek is deprecated")
            yield
    finally:
        if original is not None:
            engine._tqdm = original


VECTORBT_SETTINGS = {"array_wrapper": {"freq": "1D"},
                     "returns": {"year_freq": f"{TRADING_DAYS} days"}}


def vectorbt_defaults(vbt: Any = None) -> dict[str, dict[str, str]]:
    """Set vectorbt's global settings for synthfin frames (:data:`VECTORBT_SETTINGS`): one bar
    per trading day (``freq="1D"``) and :data:`TRADING_DAYS` of them a year (``year_freq``), so
    Sharpe ratios and volatilities are annualized over trading days with no extra argument.

    Frames are dated on an exchange's trading days, which skip holidays: their index has no
    pandas frequency for vectorbt to infer (and ``"B"`` would be wrong on holidays), so the
    frequency is set once here. ``vbt`` is the ``vectorbt`` module (imported when None).
    Returns the settings applied.
    """
    if vbt is None:
        try:
            import vectorbt as vbt
        except ImportError:
            raise DataError("vectorbt is not installed: pip install 'synthfin[backtest]'"
                            ) from None
    for group, values in VECTORBT_SETTINGS.items():
        vbt.settings[group].update(values)
    return VECTORBT_SETTINGS


def signal_strategy(signals: Callable[[pd.DataFrame], tuple[Any, Any]],
                    name: str | None = None) -> SignalStrategy:
    """Wrap a vectorbt-style ``signals(close) -> (entries, exits)`` for ``stress_test``."""
    return SignalStrategy(signals, name)


class SignalStrategy:
    """Long 1 (split equally across assets) from an entry bar's close to an exit bar's close.

    ``close`` is :meth:`Scenarios.to_wide` (``price_dates`` x paths, or x (path, asset));
    ``entries`` and ``exits`` are booleans of the same shape. A bar with both keeps the
    position as it was.
    """

    def __init__(self, signals: Callable[[pd.DataFrame], tuple[Any, Any]],
                 name: str | None = None) -> None:
        self.signals = signals
        self.name = name or getattr(signals, "__name__", "signals")

    def weights(self, scenarios: Scenarios) -> np.ndarray:
        """Positions (n, days + 1, assets) held from each close to the next."""
        close = scenarios.to_wide("price")
        entries, exits = (np.asarray(s, dtype=bool) for s in self.signals(close))
        if entries.shape != close.shape or exits.shape != close.shape:
            raise DataError(f"{self.name} must return (entries, exits) of the close frame's "
                            f"shape {close.shape}, got {entries.shape} and {exits.shape}")
        state = np.where(entries & ~exits, 1.0, np.where(exits & ~entries, 0.0, np.nan))
        held = pd.DataFrame(state).ffill().fillna(0.0).to_numpy()        # (days + 1, n * a)
        n, days, n_assets = len(scenarios), close.shape[0], len(scenarios.assets)
        return held.reshape(days, n, n_assets).transpose(1, 0, 2) / n_assets

    def scenario_returns(self, scenarios: Scenarios) -> np.ndarray:
        """Daily returns (n, days): ``sum_a w_{t,a} (P_{t+1,a} / P_{t,a} - 1)``."""
        return weighted_returns(self.weights(scenarios), scenarios.prices())
