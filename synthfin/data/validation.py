"""The tidy price frame every source ends in (:func:`validate_prices`), and the checks and
messages on dates, tickers and gaps that the sources share."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from synthfin.errors import DataError

_SHOWN = 5  # how many offending dates an error message lists
MAX_DAILY_RATIO = 100.0  # a price 100 times the day before's (or a hundredth of it) is a typo
_ONE_DAY = pd.Timedelta(days=1)


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
        infinite or non-positive prices; a price more than 100 times (or under a
        hundredth of) the day before's; a gap longer than ``fill_gaps``; histories that do
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
                raise DataError(f"{ticker} has {_count(bad.sum(), problem + ' price')}: {shown}"
                                f"{_returns_hint(column) if problem == 'non-positive' else ''}")
        known = column.dropna()
        ratio = (known / known.shift()).iloc[1:]
        jumps = ratio[(ratio > MAX_DAILY_RATIO) | (ratio < 1 / MAX_DAILY_RATIO)]
        if len(jumps):
            day = jumps.index[0]
            before = known.iloc[known.index.get_loc(day) - 1]
            raise DataError(f"{ticker} jumps from {before:.6g} to {known[day]:.6g} on {_day(day)} "
                            f"(more than {MAX_DAILY_RATIO:g}-fold in a day): a typo, a unit "
                            "change or a split? fix the price or use split-adjusted prices")


def _returns_hint(column: pd.Series) -> str:
    """A hint when a column looks like returns (every value within (-1, 1), a tenth or more
    negative) rather than prices."""
    known = column.dropna()
    if len(known) < 10 or not (known.abs() < 1).all() or (known < 0).mean() < 0.1:
        return ""
    return (f"; these look like returns, not prices (all between {known.min():.3g} and "
            f"{known.max():.3g}, {(known < 0).mean():.0%} negative): pass prices, or rebuild "
            "them from simple returns r with 100 * (1 + r).cumprod()")


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



# --- small helpers ------------------------------------------------------------------------


def _naive_dates(index: pd.Index, *, intraday: bool = False) -> pd.DatetimeIndex:
    """Tz-naive dates at midnight (or times, if intraday), keeping the exchange's local day."""
    index = pd.DatetimeIndex(index)
    if index.tz is not None:
        index = index.tz_localize(None)  # not tz_convert: Tokyo's midnight stays that day
    if not intraday:
        index = index.normalize()
    return pd.DatetimeIndex(index, freq=None, name="date")  # normalize() may infer a freq



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
