"""Daily price frames from the bundled S&P 500 data, Yahoo Finance or a user's file.

Every source (:mod:`~synthfin.data.bundled`, :mod:`~synthfin.data.files`,
:mod:`~synthfin.data.yahoo`) ends in :func:`validate_prices`, so the next stage (prices ->
returns) always sees the same tidy frame: a ``DatetimeIndex`` named ``date`` (tz-naive, at
midnight, sorted, unique) and one positive float64 column per ticker, without missing values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from synthfin.data.bundled import read_bundled
from synthfin.data.files import read_file
from synthfin.data.validation import (
    _ONE_DAY,
    _day,
    _span,
    _ticker_list,
    _to_day,
    validate_prices,
)
from synthfin.data.yahoo import download_prices
from synthfin.errors import DataError


def load_prices(
    source: str | os.PathLike = "bundled",
    tickers: str | Sequence[str] | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    *,
    interval: str = "1d",
    cache_dir: str | os.PathLike | None = None,
    fill_gaps: int = 0,
    max_nan_run: int = 5,
    retries: int = 4,
    timeout: float = 10.0,
) -> pd.DataFrame:
    """Load a validated price frame from the bundled data, Yahoo Finance or a file.

    Parameters
    ----------
    source : str or os.PathLike, default "bundled"
        ``"bundled"`` (S&P 500 index and 20 stocks, daily, 1990-01-02 to 2022-12-28, see
        :data:`~synthfin.data.bundled.BUNDLED_TICKERS`), ``"yfinance"`` (see
        :func:`~synthfin.data.yahoo.download_prices`), or the path of a ``.csv``, ``.csv.gz``
        or ``.parquet`` file. A file is wide (a date column or index, one column per
        ticker), long (columns date, ticker, value) or one ticker's bars as Yahoo Finance or
        Stooq write them (Date, Open, High, Low, Close, Adj Close, Volume; named after the
        file: ``JPM.csv`` -> ``JPM``); column names are matched case-insensitively:
        date/datetime/timestamp, ticker/symbol/asset and adj close/close/price/value (the
        first present in that order is used). See :func:`~synthfin.data.files.read_bars` for
        the whole bars.
    tickers : str or sequence of str, optional
        Columns to return, in this order. Defaults to ``"SP500"`` for the bundled data and to
        every column of a file; required for Yahoo Finance (whose symbols are upper-cased).
    start, end : str or datetime.date, optional
        First and last day to keep, both inclusive. ``start`` is required for Yahoo Finance.
    interval : str, default "1d"
        Bar length; only Yahoo Finance offers others (``"1wk"``, ``"1h"``...).
    cache_dir : str or os.PathLike, optional
        Yahoo Finance cache folder; see :func:`download_prices`.
    fill_gaps, max_nan_run : int
        Gap handling; see :func:`validate_prices`.
    retries, timeout : int, float
        Yahoo Finance retries after a transient failure, and seconds to wait for an answer;
        see :func:`download_prices`.

    Returns
    -------
    pandas.DataFrame
        Prices on the dates where every requested ticker has one; see :func:`validate_prices`.

    Raises
    ------
    DataError
        Unknown source, ticker or file layout, bad dates or prices. :class:`DownloadError`
        when Yahoo Finance cannot be reached and no cache covers the request.
    """
    first, last = _to_day(start, "start"), _to_day(end, "end")
    if first is not None and last is not None and first > last:
        raise DataError(f"start={first:%Y-%m-%d} is after end={last:%Y-%m-%d}")
    if source != "yfinance" and interval != "1d":
        raise DataError(f"interval={interval!r} needs source='yfinance'; other sources are daily")

    if source == "bundled":
        wanted = ["SP500"] if tickers is None else _ticker_list(tickers)
        frame, origin = read_bundled(wanted), "the bundled data"
    elif source == "yfinance":
        if tickers is None or first is None:
            raise DataError("source='yfinance' needs tickers and start, e.g. "
                            "load_prices('yfinance', ['SPY'], start='2010-01-01')")
        frame = download_prices(tickers, first, last, interval=interval, cache_dir=cache_dir,
                                retries=retries, timeout=timeout)
        wanted, origin = list(frame.columns), "Yahoo Finance"
    else:
        path = Path(source)
        frame, origin = read_file(path), str(path)
        wanted = list(frame.columns) if tickers is None else _ticker_list(tickers)
        absent = [ticker for ticker in wanted if ticker not in frame.columns]
        if absent:
            raise DataError(f"{path} has no column for {', '.join(absent)}; "
                            f"available: {', '.join(frame.columns)}")

    frame = _between(frame[wanted], first, last, origin)
    return validate_prices(frame, fill_gaps=fill_gaps, max_nan_run=max_nan_run)



def _between(
    frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, origin: str
) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= frame.index >= start
    if end is not None:
        keep &= frame.index < end + _ONE_DAY
    if not keep.any():
        held = f"; it covers {_span(frame.index.sort_values())}" if len(frame) else ""
        raise DataError(f"no prices in {origin} from start={_day(start)} to end={_day(end)}{held}")
    return frame[keep]

