"""A universe of series for pooled training: one :class:`WindowData` per ticker.

Daily returns are few per series, so the neural generators borrow strength across series: they
pretrain on many series at once and fine-tune on one. Each series keeps its own chronological
split and its own scaler (fitted on its training days), so pooled training sees every series in
units of its own training volatility, and nothing after a series' training split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from synthfin.data.bundled import BUNDLED_TICKERS, read_bundled
from synthfin.data.returns import log_returns
from synthfin.data.windows import WindowData, make_windows
from synthfin.errors import DataError


def series_universe(returns: pd.DataFrame, **window_settings: Any) -> dict[str, WindowData]:
    """One :class:`WindowData` per column of ``returns`` (date index x tickers, unscaled log
    returns; a column's missing days are dropped), cut with ``window_settings`` (the keywords
    of :func:`~synthfin.data.windows.make_windows`)."""
    if returns.shape[1] == 0:
        raise DataError("the universe has no series; pass at least one column of returns")
    return {str(name): make_windows(returns[[name]].dropna(), **window_settings)
            for name in returns.columns}


def bundled_universe(tickers: Sequence[str] = BUNDLED_TICKERS, *, last_days: int | None = None,
                     **window_settings: Any) -> dict[str, WindowData]:
    """The bundled series as a universe (default: all 21, 1990-2022; all share one calendar, so
    the default 70/15/15 split ends every series' training days on the same date).

    ``last_days`` keeps only each series' last days (a short history, as a user with a few
    years of data has)."""
    returns = log_returns(read_bundled(list(tickers)))
    if last_days is not None:
        if last_days < 2:
            raise DataError(f"last_days must be >= 2, got {last_days}")
        returns = returns.iloc[-last_days:]
    return series_universe(returns, **window_settings)
