"""Yahoo Finance closes through an on-disk parquet cache: retries, back-adjustment across the
seam, and a fall-back to the cache when Yahoo is unreachable."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.validation import (
    _ONE_DAY,
    _day,
    _naive_dates,
    _ticker_list,
    _to_day,
)
from synthfin.errors import DataError, DownloadError
from synthfin.io import atomic_write

logger = logging.getLogger("synthfin.data")

# Phrases yfinance logs when it swallows a network failure or a rate limit.
_TRANSIENT_PHRASES = (
    "rate limit", "too many requests", "failed to perform", "timed out", "timeout",
    "connectionerror",
)
# Failures that a retry cannot fix: no name resolution (offline), a missing page or ticker.
_OFFLINE_PHRASES = (
    "could not resolve", "name or service not known", "nodename nor servname",
    "name resolution", "getaddrinfo failed", "no address associated",
)
_PERMANENT_PHRASES = (*_OFFLINE_PHRASES, "404", "not found")

_sleep = time.sleep  # between download retries; tests replace it so they do not wait


def download_prices(
    tickers: str | Sequence[str],
    start: str | date,
    end: str | date | None = None,
    *,
    interval: str = "1d",
    cache_dir: str | os.PathLike | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 10.0,
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
        Extra attempts after a rate limit or a transient network failure, sleeping
        ``backoff * 2**k`` seconds before retry ``k + 1``. Permanent failures (no name
        resolution, HTTP 404, unknown ticker) are not retried.
    backoff : float, default 1.0
        First sleep, in seconds.
    timeout : float, default 10.0
        Seconds to wait for each answer from Yahoo.

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
    if not (retries >= 0 and backoff >= 0 and timeout > 0):
        raise DataError(f"retries={retries} and backoff={backoff} must be >= 0 and "
                        f"timeout={timeout} > 0")
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
            raw = _download_with_retries(group, low, high, interval, retries, backoff, timeout)
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
    timeout: float,
) -> pd.DataFrame:
    """``_call_yahoo`` with up to ``retries`` retries after exponentially growing sleeps; a
    permanent failure (see ``_PERMANENT_PHRASES``) is raised at once."""
    from yfinance.exceptions import YFRateLimitError

    attempt = 0
    while True:
        try:
            return _call_yahoo(symbols, low, high, interval, timeout)
        except (YFRateLimitError, OSError, _YahooUnavailable) as error:  # OSError: network
            reason = error if isinstance(error, _YahooUnavailable) else repr(error)
            if _has_phrase(str(reason), _PERMANENT_PHRASES):
                raise _YahooUnavailable(f"({reason}; not retried: the network is down or the "
                                        "address is wrong)") from error
            if attempt == retries:
                raise _YahooUnavailable(f"after {attempt + 1} attempts: {reason}") from error
            delay = backoff * 2**attempt
            logger.warning("Yahoo Finance failed for %s (%s); retry %d of %d in %.1f s",
                           ", ".join(symbols), reason, attempt + 1, retries, delay)
            _sleep(delay)
            attempt += 1


def _has_phrase(message: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in message.lower() for phrase in phrases)


def _call_yahoo(
    symbols: list[str], low: pd.Timestamp, high: pd.Timestamp, interval: str, timeout: float
) -> pd.DataFrame:
    """One ``yfinance.download`` call for the days ``low`` to ``high``, both inclusive.

    What yfinance and pandas print, log or warn meanwhile is kept out of the user's terminal
    and logged at INFO level (shown by ``synthfin -v``); the errors it logs decide a retry.
    """
    import yfinance  # here, not at the top: the bundled data and files must not need it

    logger.info("downloading %s from Yahoo Finance, %s to %s",
                ", ".join(symbols), _day(low), _day(high))
    errors = _ErrorLog()
    yfinance_logger = logging.getLogger("yfinance")
    yfinance_logger.addHandler(errors)
    propagate, yfinance_logger.propagate = yfinance_logger.propagate, False
    printed = io.StringIO()
    try:
        with (warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed),
              contextlib.redirect_stderr(printed)):
            warnings.simplefilter("always")
            raw = yfinance.download(
                tickers=symbols, start=_day(low), end=_day(high + _ONE_DAY),  # end: exclusive
                interval=interval, auto_adjust=True, actions=False, progress=False,
                threads=False, timeout=timeout,
            )
    finally:
        yfinance_logger.removeHandler(errors)
        yfinance_logger.propagate = propagate
    for line in [*errors.messages, *printed.getvalue().splitlines(),
                 *(str(w.message) for w in caught)]:
        if line.strip():
            logger.info("yfinance: %s", line.strip())
    unreachable = [m for m in errors.messages
                   if _has_phrase(m, _TRANSIENT_PHRASES + _OFFLINE_PHRASES)]
    if unreachable:
        raise _YahooUnavailable(unreachable[-1])
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
            f"{error}; offline, take source 'bundled' (S&P 500 and {len(BUNDLED_TICKERS) - 1} "
            f"stocks, daily 1990-2022: {', '.join(BUNDLED_TICKERS)}) or the path of a CSV or "
            "parquet file, e.g. one saved from Yahoo (Date, Open, High, Low, Close, Adj Close, "
            "Volume), as load_prices(source) or synthfin prepare --source"
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
