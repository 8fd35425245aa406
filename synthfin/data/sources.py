"""Daily price frames from the bundled S&P 500 data, Yahoo Finance or a user's file.

Every source ends in :func:`validate_prices`, so the next stage (prices -> returns) always
sees the same tidy frame: a ``DatetimeIndex`` named ``date`` (tz-naive, at midnight, sorted,
unique) and one positive float64 column per ticker, without missing values.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import pandas as pd

from synthfin.errors import DataError, DownloadError
from synthfin.io import atomic_write

logger = logging.getLogger("synthfin.data")

BUNDLED_TICKERS: tuple[str, ...] = (
    "SP500", "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
)
_INDEX_FILE = "sp500_index.csv.gz"  # Date, SP500
_STOCKS_FILE = "sp500_dataset.csv.gz"  # Date + the 20 stocks

_DATE_NAMES = ("date", "datetime", "timestamp")
_TICKER_NAMES = ("ticker", "symbol", "asset")
_VALUE_NAMES = ("adj close", "close", "price", "value")  # in order of preference
_FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_SHOWN = 5  # how many offending dates an error message lists

# Phrases yfinance logs when it swallows a network failure or a rate limit.
_TRANSIENT_PHRASES = (
    "rate limit", "too many requests", "failed to perform", "timed out", "timeout",
    "connectionerror",
)
_ONE_DAY = pd.Timedelta(days=1)

_sleep = time.sleep  # between download retries; tests replace it so they do not wait


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
) -> pd.DataFrame:
    """Load a validated price frame from the bundled data, Yahoo Finance or a file.

    Parameters
    ----------
    source : str or os.PathLike, default "bundled"
        ``"bundled"`` (S&P 500 index and 20 stocks, daily, 1990-01-02 to 2022-12-28, see
        :data:`BUNDLED_TICKERS`), ``"yfinance"`` (see :func:`download_prices`), or the path of
        a ``.csv``, ``.csv.gz`` or ``.parquet`` file. A file is either wide (a date column or
        index, one column per ticker) or long (columns date, ticker, value); column names are
        matched case-insensitively: date/datetime/timestamp, ticker/symbol/asset and
        adj close/close/price/value (the first present in that order is used).
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
        frame, origin = _read_bundled(wanted), "the bundled data"
    elif source == "yfinance":
        if tickers is None or first is None:
            raise DataError("source='yfinance' needs tickers and start, e.g. "
                            "load_prices('yfinance', ['SPY'], start='2010-01-01')")
        frame = download_prices(tickers, first, last, interval=interval, cache_dir=cache_dir)
        wanted, origin = list(frame.columns), "Yahoo Finance"
    else:
        path = Path(source)
        frame, origin = _read_file(path), str(path)
        wanted = list(frame.columns) if tickers is None else _ticker_list(tickers)
        absent = [ticker for ticker in wanted if ticker not in frame.columns]
        if absent:
            raise DataError(f"{path} has no column for {', '.join(absent)}; "
                            f"available: {', '.join(frame.columns)}")

    frame = _between(frame[wanted], first, last, origin)
    return validate_prices(frame, fill_gaps=fill_gaps, max_nan_run=max_nan_run)


def validate_prices(
    frame: pd.DataFrame, *, fill_gaps: int = 0, max_nan_run: int = 5, min_rows: int = 2
) -> pd.DataFrame:
    """Check a wide price frame and return its tidy, gap-free float64 copy.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tz-naive ``DatetimeIndex`` of dates, one numeric column per ticker.
    fill_gaps : int, default 0
        Longest run of missing prices inside a ticker's history to forward-fill; a longer
        run is an error. Filled cells are counted in a warning.
    max_nan_run : int, default 5
        Cap on ``fill_gaps``: forward-filling longer runs invents flat stretches of prices,
        so a larger ``fill_gaps`` must raise this cap explicitly too.
    min_rows : int, default 2
        Fewest rows accepted after trimming.

    Returns
    -------
    pandas.DataFrame
        The frame restricted to the dates where every ticker has a price (leading rows
        before a later listing and trailing rows after a delisting are dropped with a
        warning), gaps filled, index named ``date``.

    Raises
    ------
    DataError
        Duplicate, unsorted or missing dates; a non-numeric, empty or all-NaN column;
        infinite or non-positive prices; a gap longer than ``fill_gaps``; histories that do
        not overlap; fewer than ``min_rows`` rows; or bad ``fill_gaps``/``max_nan_run``.
    """
    _check_gap_arguments(fill_gaps, max_nan_run)
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"prices need a DatetimeIndex, got {type(frame.index).__name__}")
    if frame.index.tz is not None:
        raise DataError(f"the date index is tz-aware ({frame.index.tz}); "
                        "drop the zone with frame.tz_localize(None)")
    if frame.columns.empty:
        raise DataError("the price frame has no ticker columns")
    if frame.columns.has_duplicates:
        repeated = frame.columns[frame.columns.duplicated()].unique()
        raise DataError(f"duplicate ticker columns: {_listed(repeated)}")
    _check_dates(frame.index)
    prices = _as_float(frame)
    if len(prices):
        _check_values(prices)
        prices = _fill_short_gaps(_common_range(prices), fill_gaps, max_nan_run)
    if len(prices) < min_rows:
        held = _count(len(prices), "row") + (f" ({_span(prices.index)})" if len(prices) else "")
        raise DataError(f"only {held} of prices; need at least min_rows={min_rows}")
    return prices.rename_axis("date").rename_axis(None, axis=1)


def download_prices(
    tickers: str | Sequence[str],
    start: str | date,
    end: str | date | None = None,
    *,
    interval: str = "1d",
    cache_dir: str | os.PathLike | None = None,
    retries: int = 4,
    backoff: float = 1.0,
) -> pd.DataFrame:
    """Adjusted closes from Yahoo Finance, through an on-disk cache that grows as needed.

    Parameters
    ----------
    tickers : str or sequence of str
        Yahoo symbols (``"SPY"``, ``"^GSPC"``, ``"EURUSD=X"``); upper-cased.
    start : str or datetime.date
        First day, inclusive.
    end : str or datetime.date, optional
        Last day, inclusive; defaults to today.
    interval : str, default "1d"
        Yahoo bar length. Daily and longer bars are dated at midnight; intraday bars keep
        the exchange's wall-clock time.
    cache_dir : str or os.PathLike, optional
        Cache folder; defaults to ``$SYNTHFIN_CACHE_DIR``, then ``~/.cache/synthfin``. Each
        (ticker, interval) has one file, ``{cache_dir}/yfinance/{TICKER}_{interval}.parquet``.
    retries : int, default 4
        Extra attempts after a rate limit or network failure, sleeping ``backoff * 2**k``
        seconds before retry ``k + 1``.
    backoff : float, default 1.0
        First sleep, in seconds.

    Returns
    -------
    pandas.DataFrame
        One float64 column per ticker (upper-cased, in the order given), on the union of
        their dates (NaN where a ticker has no bar), index named ``date``. Not validated:
        :func:`load_prices` does that.

    Raises
    ------
    DataError
        If Yahoo has no data for a ticker in the range.
    DownloadError
        If Yahoo stays unreachable and the cache does not cover a ticker.

    Notes
    -----
    A cached file records the range of days it covers. A request inside it is served from
    disk; otherwise only the missing head and/or tail is downloaded (one call for all
    tickers missing the same range), merged and written back atomically. Each download
    overlaps one cached bar: Yahoo back-adjusts the whole history at every dividend or
    split, so cached closes are rescaled by ``fresh / cached`` on that bar and the seam
    carries no fake return. Coverage stops at yesterday (UTC), since today's bar may still
    be trading. If Yahoo is unreachable, a cache covering every settled day requested is
    used with a warning.
    """
    symbols = [ticker.upper() for ticker in _ticker_list(tickers)]
    first = _to_day(start, "start")
    last = _to_day(end, "end") if end is not None else pd.Timestamp.today().normalize()
    if first is None:
        raise DataError("download_prices needs a start date")
    if first > last:
        raise DataError(f"start={first:%Y-%m-%d} is after end={last:%Y-%m-%d}")
    root = _cache_root(cache_dir)
    caches = {symbol: _read_cache(_cache_path(root, symbol, interval)) for symbol in symbols}

    needed: dict[tuple[pd.Timestamp, pd.Timestamp], list[str]] = {}
    for symbol in symbols:
        for span in _missing_spans(caches[symbol], first, last):
            needed.setdefault(span, []).append(symbol)
    fresh: dict[str, list[pd.Series]] = {}
    for (low, high), group in needed.items():
        try:
            raw = _download_with_retries(group, low, high, interval, retries, backoff)
        except _YahooUnavailable as error:
            _fall_back_to_cache(group, caches, first, last, root, error)
            continue
        for symbol in group:
            fresh.setdefault(symbol, []).append(_extract_close(raw, symbol, low, high, interval))

    closes = {symbol: None if cache is None else cache.closes for symbol, cache in caches.items()}
    for symbol, parts in fresh.items():
        downloaded = pd.concat(parts)
        closes[symbol] = _merge_closes(
            closes[symbol], downloaded[~downloaded.index.duplicated(keep="last")]
        )
        _write_cache(_cache_path(root, symbol, interval), closes[symbol],
                     _covered_after(caches[symbol], first, last))

    frame = pd.DataFrame({symbol: closes[symbol] for symbol in symbols}).sort_index()
    frame = frame[(frame.index >= first) & (frame.index < last + _ONE_DAY)]
    return frame.astype("float64").rename_axis("date")


# --- reading the bundled data and files ----------------------------------------------------


def _read_bundled(tickers: list[str]) -> pd.DataFrame:
    unknown = [ticker for ticker in tickers if ticker not in BUNDLED_TICKERS]
    if unknown:
        raise DataError(f"no bundled prices for {', '.join(unknown)}; "
                        f"available: {', '.join(BUNDLED_TICKERS)}")
    names = sorted({_INDEX_FILE if ticker == "SP500" else _STOCKS_FILE for ticker in tickers})
    frames = []
    for name in names:
        with as_file(files("synthfin.data") / "bundled" / name) as path:
            frames.append(pd.read_csv(path, index_col="Date", parse_dates=["Date"]))
    frame = pd.concat(frames, axis=1)[tickers].astype("float64")
    frame.index = _naive_dates(frame.index)
    return frame


def _read_file(path: Path) -> pd.DataFrame:
    """Read a wide or long price file into a wide frame with a date index."""
    name = path.name.lower()
    if not name.endswith(_FILE_SUFFIXES):
        raise DataError(f"source={str(path)!r} is neither 'bundled', 'yfinance' nor a "
                        f"{', '.join(_FILE_SUFFIXES)} file")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        raw = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    return wide_prices(raw, origin=str(path))


def wide_prices(raw: pd.DataFrame, *, origin: str = "the price frame") -> pd.DataFrame:
    """A wide price frame (date index x tickers) from a wide or long ``(date, ticker, value)``
    table, with the same column-name rules as files; validate it with :func:`validate_prices`.

    A frame that already has a ``DatetimeIndex`` and no ticker column is returned as floats.
    """
    raw = raw.copy()  # the caller's frame stays as it was
    if isinstance(raw.index, pd.DatetimeIndex):  # e.g. a parquet file written with a date index
        raw = raw.rename_axis(raw.index.name or "date").reset_index()

    by_name = {str(column).strip().lower(): column for column in raw.columns}
    date_column = _pick(by_name, _DATE_NAMES)
    if date_column is None:
        raise DataError(f"{origin} has no date column: expected one of {', '.join(_DATE_NAMES)} "
                        f"(any case) or a date index; got {_listed(raw.columns)}")
    raw[date_column] = _parse_dates(raw[date_column], origin)
    ticker_column = _pick(by_name, _TICKER_NAMES)
    if ticker_column is None:
        wide = raw.set_index(date_column)
    else:
        value_column = _pick(by_name, _VALUE_NAMES)
        if value_column is None:
            raise DataError(f"{origin} looks long (it has a {ticker_column!r} column) but has no "
                            f"value column: expected one of {', '.join(_VALUE_NAMES)}")
        repeated = raw.duplicated([date_column, ticker_column])
        if repeated.any():
            pairs = raw.loc[repeated, [ticker_column, date_column]].head(_SHOWN)
            shown = ", ".join(f"{t} {_day(day)}" for t, day in pairs.itertuples(index=False))
            count = _count(repeated.sum(), "repeated (date, ticker) row")
            raise DataError(f"{origin} has {count}: {shown}")
        wide = raw.pivot(index=date_column, columns=ticker_column, values=value_column)
    wide.columns = [str(column) for column in wide.columns]
    if wide.columns.empty or wide.empty:
        raise DataError(f"{origin} has no prices (no rows or no ticker columns)")
    return _numeric(wide.rename_axis("date"), origin)


def _pick(by_name: dict[str, Hashable], candidates: tuple[str, ...]) -> Hashable | None:
    return next((by_name[name] for name in candidates if name in by_name), None)


def _parse_dates(values: pd.Series, path: Path | str) -> pd.DatetimeIndex:
    try:
        dates = _naive_dates(pd.to_datetime(values))
    except (ValueError, TypeError) as error:
        raise DataError(f"cannot read the dates in {path}: {error}") from error
    if dates.hasnans:
        raise DataError(f"{path} has {dates.isna().sum()} rows without a date")
    return dates


def _numeric(wide: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """Convert every column to float64, naming the first value that is not a number."""
    converted = {}
    for ticker, column in wide.items():
        converted[ticker] = pd.to_numeric(column, errors="coerce").astype("float64")
        unreadable = (converted[ticker].isna() & column.notna()).to_numpy()
        if unreadable.any():
            row = int(unreadable.argmax())
            raise DataError(f"{path}: {ticker} on {_day(wide.index[row])} is not a number: "
                            f"{column.iloc[row]!r}")
    return pd.DataFrame(converted, index=wide.index)


def _naive_dates(index: pd.Index, *, intraday: bool = False) -> pd.DatetimeIndex:
    """Tz-naive dates at midnight (or times, if intraday), keeping the exchange's local day."""
    index = pd.DatetimeIndex(index)
    if index.tz is not None:
        index = index.tz_localize(None)  # not tz_convert: Tokyo's midnight stays that day
    if not intraday:
        index = index.normalize()
    return pd.DatetimeIndex(index, freq=None, name="date")  # normalize() may infer a freq


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


# --- validation ---------------------------------------------------------------------------


def _check_gap_arguments(fill_gaps: int, max_nan_run: int) -> None:
    for name, value in (("fill_gaps", fill_gaps), ("max_nan_run", max_nan_run)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise DataError(f"{name} must be a non-negative integer, got {value!r}")
    if fill_gaps > max_nan_run:
        raise DataError(f"fill_gaps={fill_gaps} exceeds max_nan_run={max_nan_run}: forward-filling "
                        f"that many missing prices in a row invents flat stretches; pass "
                        f"max_nan_run={fill_gaps} as well if that is really wanted")


def _check_dates(index: pd.DatetimeIndex) -> None:
    if index.hasnans:
        raise DataError(f"{index.isna().sum()} dates are missing (NaT)")
    if index.has_duplicates:
        raise DataError(f"duplicate dates: {_listed(index[index.duplicated()].unique())}")
    backwards = np.flatnonzero(index[1:] < index[:-1])
    if backwards.size:
        row = backwards[0] + 1
        raise DataError(f"dates are not sorted: {_day(index[row])} comes right after "
                        f"{_day(index[row - 1])}; sort with frame.sort_index()")


def _as_float(frame: pd.DataFrame) -> pd.DataFrame:
    for ticker, column in frame.items():
        if not pd.api.types.is_numeric_dtype(column):
            raise DataError(f"{ticker} prices are not numeric (dtype {column.dtype})")
    return frame.astype("float64")


def _check_values(prices: pd.DataFrame) -> None:
    empty = [ticker for ticker, column in prices.items() if column.isna().all()]
    if empty:
        names = ", ".join(map(str, empty))
        raise DataError(f"no prices at all for {names} (column empty or all NaN)")
    for ticker, column in prices.items():
        for problem, bad in (("infinite", np.isinf(column)), ("non-positive", column <= 0)):
            if bad.any():
                first_bad = column[bad].head(_SHOWN).items()
                shown = ", ".join(f"{_day(day)} ({value})" for day, value in first_bad)
                raise DataError(f"{ticker} has {_count(bad.sum(), problem + ' price')}: {shown}")


def _common_range(prices: pd.DataFrame) -> pd.DataFrame:
    """Rows from the latest first price to the earliest last price, with a warning if trimmed."""
    firsts = {ticker: column.first_valid_index() for ticker, column in prices.items()}
    lasts = {ticker: column.last_valid_index() for ticker, column in prices.items()}
    start, end = max(firsts.values()), min(lasts.values())
    if start > end:
        spans = ", ".join(f"{t} {_day(firsts[t])} to {_day(lasts[t])}" for t in firsts)
        raise DataError(f"the tickers' histories do not overlap: {spans}")
    kept = prices.loc[start:end]
    if len(kept) < len(prices):
        limits = []
        if start > prices.index[0]:
            late = ", ".join(str(t) for t, day in firsts.items() if day == start)
            limits.append(f"{late} start on {_day(start)}")
        if end < prices.index[-1]:
            early = ", ".join(str(t) for t, day in lasts.items() if day == end)
            limits.append(f"{early} end on {_day(end)}")
        warnings.warn(f"kept {_span(kept.index)}, where every ticker has prices, dropping "
                      f"{_count(len(prices) - len(kept), 'row')}: {' and '.join(limits)}",
                      stacklevel=3)
    return kept


def _fill_short_gaps(prices: pd.DataFrame, fill_gaps: int, max_nan_run: int) -> pd.DataFrame:
    filled = {}
    for ticker, column in prices.items():
        length, first, last = _longest_nan_run(column)
        if length > fill_gaps:
            gap = (f"{ticker} has {_count(length, 'missing price')} in a row, "
                   f"{_day(first)} to {_day(last)}")
            if length <= max_nan_run:
                raise DataError(f"{gap}; pass fill_gaps={length} to forward-fill gaps that long, "
                                "or clean the data")
            raise DataError(f"{gap}, more than max_nan_run={max_nan_run}; clean the data, or "
                            f"pass fill_gaps={length}, max_nan_run={length} if forward-filling "
                            "is really right")
        if length:
            filled[ticker] = int(column.isna().sum())
    if not filled:
        return prices
    counts = ", ".join(f"{ticker}: {count}" for ticker, count in filled.items())
    total = _count(sum(filled.values()), "missing price")
    warnings.warn(f"forward-filled {total} ({counts})", stacklevel=3)
    return prices.ffill()


def _longest_nan_run(column: pd.Series) -> tuple[int, pd.Timestamp | None, pd.Timestamp | None]:
    """Length, first and last date of the longest run of NaN in ``column``."""
    missing = column.isna().to_numpy()
    if not missing.any():
        return 0, None, None
    positions = np.flatnonzero(missing)
    run_ids = np.cumsum(~missing)[missing]  # constant within a run of NaN
    _, starts, lengths = np.unique(run_ids, return_index=True, return_counts=True)
    longest = lengths.argmax()
    first = positions[starts[longest]]
    return int(lengths[longest]), column.index[first], column.index[first + lengths[longest] - 1]


# --- Yahoo Finance and its cache ----------------------------------------------------------


class _YahooUnavailable(Exception):
    """Yahoo Finance was rate limited or unreachable, even after retries."""


class _ErrorLog(logging.Handler):
    """Collects the errors yfinance logs: its ``download`` swallows every exception."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass(frozen=True)
class _Cache:
    closes: pd.Series  # adjusted closes on every trading day of the covered range
    covered_start: pd.Timestamp
    covered_end: pd.Timestamp


def _download_with_retries(
    symbols: list[str],
    low: pd.Timestamp,
    high: pd.Timestamp,
    interval: str,
    retries: int,
    backoff: float,
) -> pd.DataFrame:
    """``_call_yahoo`` with up to ``retries`` retries after exponentially growing sleeps."""
    from yfinance.exceptions import YFRateLimitError

    attempt = 0
    while True:
        try:
            return _call_yahoo(symbols, low, high, interval)
        except (YFRateLimitError, OSError, _YahooUnavailable) as error:  # OSError: network
            reason = error if isinstance(error, _YahooUnavailable) else repr(error)
            if attempt == retries:
                raise _YahooUnavailable(f"after {attempt + 1} attempts: {reason}") from error
            delay = backoff * 2**attempt
            logger.warning("Yahoo Finance failed for %s (%s); retry %d of %d in %.1f s",
                           ", ".join(symbols), reason, attempt + 1, retries, delay)
            _sleep(delay)
            attempt += 1


def _call_yahoo(
    symbols: list[str], low: pd.Timestamp, high: pd.Timestamp, interval: str
) -> pd.DataFrame:
    """One ``yfinance.download`` call for the days ``low`` to ``high``, both inclusive."""
    import yfinance  # here, not at the top: the bundled data and files must not need it

    logger.info("downloading %s from Yahoo Finance, %s to %s",
                ", ".join(symbols), _day(low), _day(high))
    errors = _ErrorLog()
    yfinance_logger = logging.getLogger("yfinance")
    yfinance_logger.addHandler(errors)
    try:
        raw = yfinance.download(
            tickers=symbols, start=_day(low), end=_day(high + _ONE_DAY),  # Yahoo's end is exclusive
            interval=interval, auto_adjust=True, actions=False, progress=False, threads=False,
        )
    finally:
        yfinance_logger.removeHandler(errors)
    transient = [m for m in errors.messages if any(p in m.lower() for p in _TRANSIENT_PHRASES)]
    if transient:
        raise _YahooUnavailable(transient[-1])
    return raw


def _extract_close(
    raw: pd.DataFrame, symbol: str, low: pd.Timestamp, high: pd.Timestamp, interval: str
) -> pd.Series:
    """The Close column of ``symbol`` from either column layout yfinance returns."""
    # MultiIndex (Price, Ticker) for several tickers, and for one in recent versions;
    # flat ("Close", "Open", ...) for one ticker in older versions or multi_level_index=False.
    key = ("Close", symbol) if isinstance(raw.columns, pd.MultiIndex) else "Close"
    close = raw.get(key)
    if close is None or close.dropna().empty:
        raise DataError(f"no data for ticker {symbol} from Yahoo Finance between {_day(low)} "
                        f"and {_day(high)} (unknown or delisted ticker?)")
    close = close.dropna().astype("float64").rename(symbol)
    close.index = _naive_dates(close.index, intraday=interval[-1] in "mh")
    return close[~close.index.duplicated(keep="last")]


def _fall_back_to_cache(
    symbols: list[str],
    caches: dict[str, _Cache | None],
    first: pd.Timestamp,
    last: pd.Timestamp,
    root: Path,
    error: _YahooUnavailable,
) -> None:
    """Warn and carry on if the cache holds every settled day requested, else raise."""
    settled_end = min(last, _last_settled_day())
    uncovered = [
        symbol
        for symbol in symbols
        if caches[symbol] is None
        or caches[symbol].covered_start > first
        or caches[symbol].covered_end < settled_end
    ]
    if uncovered:
        raise DownloadError(
            f"no cache covers {', '.join(uncovered)} from {_day(first)} to {_day(last)} "
            f"(checked {root / 'yfinance'}) and the network or Yahoo Finance is unreachable "
            f"{error}"
        ) from error
    warnings.warn(f"using cached prices for {', '.join(symbols)} up to {_day(settled_end)}: "
                  f"the network or Yahoo Finance is unreachable {error}", stacklevel=3)


def _missing_spans(
    cache: _Cache | None, first: pd.Timestamp, last: pd.Timestamp
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Day ranges to download; each overlaps one cached bar (see ``_merge_closes``)."""
    if cache is None:
        return [(first, last)]
    spans = []
    if first < cache.covered_start:
        spans.append((first, cache.closes.index[0].normalize()))
    if last > cache.covered_end:
        spans.append((cache.closes.index[-1].normalize(), last))
    return spans


def _merge_closes(cached: pd.Series | None, fresh: pd.Series) -> pd.Series:
    """Fresh closes win; cached ones are rescaled onto the fresh adjustment basis."""
    if cached is None:
        return fresh
    overlap = cached.index.intersection(fresh.index)
    if len(overlap):
        day = overlap[-1]
        cached = cached * (fresh[day] / cached[day])
    return pd.concat([cached.drop(overlap), fresh]).sort_index()


def _covered_after(
    cache: _Cache | None, first: pd.Timestamp, last: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    if cache is not None:
        first, last = min(first, cache.covered_start), max(last, cache.covered_end)
    return first, min(last, _last_settled_day())


def _last_settled_day() -> pd.Timestamp:
    """Yesterday in UTC: every exchange has closed that session; today's may still trade."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() - _ONE_DAY


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get("SYNTHFIN_CACHE_DIR")
    return Path(from_env).expanduser() if from_env else Path.home() / ".cache" / "synthfin"


def _cache_path(root: Path, symbol: str, interval: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", symbol)  # ^GSPC -> _GSPC, EURUSD=X -> EURUSD_X
    return root / "yfinance" / f"{safe}_{interval}.parquet"


def _read_cache(path: Path) -> _Cache | None:
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
        return _Cache(frame["close"], pd.Timestamp(frame.attrs["covered_start"]),
                      pd.Timestamp(frame.attrs["covered_end"]))
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable cache %s (%s); it will be rebuilt", path, error)
        return None


def _write_cache(
    path: Path, closes: pd.Series, covered: tuple[pd.Timestamp, pd.Timestamp]
) -> None:
    """Store the closes inside ``covered``; a failed write warns and leaves the old file."""
    first, last = covered
    kept = closes[(closes.index >= first) & (closes.index < last + _ONE_DAY)]
    if kept.empty:  # only today's unsettled bar so far: nothing worth keeping
        return
    frame = kept.to_frame("close").rename_axis("date")
    frame.attrs = {"covered_start": _day(first), "covered_end": _day(last)}
    try:
        atomic_write(path, frame.to_parquet)
    except OSError as error:
        warnings.warn(f"could not update the price cache {path}: {error}", stacklevel=3)


# --- small helpers ------------------------------------------------------------------------


def _ticker_list(tickers: str | Sequence[str]) -> list[str]:
    names = [tickers] if isinstance(tickers, str) else list(tickers)
    if not names:
        raise DataError("tickers is empty; name at least one")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"tickers lists {', '.join(repeated)} more than once")
    return names


def _to_day(value: str | date | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        day = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}={value!r} is not a date; use 'YYYY-MM-DD'") from error
    if pd.isna(day):
        raise DataError(f"{name}={value!r} is not a date; use 'YYYY-MM-DD'")
    return (day.tz_localize(None) if day.tzinfo is not None else day).normalize()


def _day(moment: pd.Timestamp | None) -> str:
    """``YYYY-MM-DD`` at midnight, the full timestamp otherwise (intraday bars)."""
    if moment is None:
        return "None"
    return f"{moment:%Y-%m-%d}" if moment == moment.normalize() else str(moment)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _span(index: pd.DatetimeIndex) -> str:
    return f"{_day(index[0])} to {_day(index[-1])}"


def _listed(values: pd.Index) -> str:
    shown = ", ".join(_day(v) if isinstance(v, pd.Timestamp) else str(v) for v in values[:_SHOWN])
    return shown + (f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "")
