"""Price files (``.csv``, ``.csv.gz``, ``.parquet``) and frames, wide or long, into a wide frame."""

from __future__ import annotations

import zlib
from collections.abc import Hashable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from synthfin.data.validation import (
    _SHOWN,
    _count,
    _day,
    _listed,
    _naive_dates,
)
from synthfin.errors import DataError, first_line

_DATE_NAMES = ("date", "datetime", "timestamp")
_TICKER_NAMES = ("ticker", "symbol", "asset")
_VALUE_NAMES = ("adj close", "close", "price", "value")  # in order of preference
_FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def read_file(path: Path) -> pd.DataFrame:
    """Read a wide or long price file into a wide frame with a date index."""
    name = path.name.lower()
    if not name.endswith(_FILE_SUFFIXES):
        raise DataError(f"source={str(path)!r} is neither 'bundled', 'yfinance' nor a "
                        f"{', '.join(_FILE_SUFFIXES)} file")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        raw = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    except (OSError, ValueError, EOFError, zlib.error, NotImplementedError,
            pa.ArrowException) as error:  # what truncated or garbage files raise
        raise DataError(f"cannot read {path} ({type(error).__name__}: {first_line(error)}); "
                        "is it a complete price file?") from None
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
    except (ValueError, TypeError, OverflowError) as error:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        unreadable = (parsed.isna() & values.notna()).to_numpy()
        where = (f"{values.iloc[int(unreadable.argmax())]!r} in row {int(unreadable.argmax()) + 1}"
                 if unreadable.any() else f"({first_line(error)})")
        raise DataError(f"{path}: cannot read the date {where}; write dates as YYYY-MM-DD"
                        ) from None
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
