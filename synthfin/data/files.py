"""Price files (``.csv``, ``.csv.gz``, ``.parquet``) and frames, wide or long, into a wide frame.

Three layouts are understood: wide (a date column or index, one column per ticker), long
(date, ticker, value) and one ticker's bars (date, Open, High, Low, Close, Adj Close, Volume, as
Yahoo Finance and Stooq write them, including the two-row ``Price`` / ``Ticker`` header that
``yfinance.download(...).to_csv`` writes). Of a bar table the adjusted close is kept (else the
close); :func:`read_bars` keeps the whole bar for :class:`~synthfin.scenarios.ohlcv.OHLCVModel`.
"""

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
_BAR_FIELDS = ("open", "high", "low", "close", "adj close", "adj_close", "adjclose", "volume")


def read_file(path: Path) -> pd.DataFrame:
    """Read a wide, long or one-ticker bar file into a wide frame with a date index; a bar
    file's column is named after the file (``JPM.csv`` -> ``JPM``)."""
    return wide_prices(_read_table(path), origin=str(path), ticker=_stem(path))


def read_bars(path: str | Path, ticker: str | None = None) -> pd.DataFrame:
    """One ticker's daily bars (columns Open, High, Low, Close, Volume, a date index) from a
    Yahoo- or Stooq-style file, for :meth:`~synthfin.scenarios.ohlcv.OHLCVModel.fit`; ``ticker``
    picks
    one of a file with several (a ticker column or yfinance's two-row header).

    Raises
    ------
    DataError
        The file is not one ticker's bars, or a field is missing or not a number.
    """
    path = Path(path)
    raw = _unstacked_yahoo_header(_read_table(path), str(path))
    if isinstance(raw.index, pd.DatetimeIndex):
        raw = raw.rename_axis(raw.index.name or "date").reset_index()
    if raw.empty:
        raise DataError(f"{path} has no bars (no rows)")
    by_name = {str(column).strip().lower(): column for column in raw.columns}
    ticker_column = _pick(by_name, _TICKER_NAMES)
    if ticker_column is not None:
        held = list(dict.fromkeys(raw[ticker_column].astype(str)))
        if ticker is None and len(held) > 1 or ticker is not None and ticker not in held:
            raise DataError(f"{path} holds bars of {_listed(held)}; pass ticker= one of them")
        raw = raw[raw[ticker_column].astype(str) == (ticker or held[0])]
    date_column = _pick(by_name, _DATE_NAMES)
    fields = [by_name.get(field.lower()) for field in _OHLCV]
    if date_column is None or None in fields:
        missing = [name for name, column in zip(_OHLCV, fields, strict=True) if column is None]
        raise DataError(f"{path} is not one ticker's daily bars: it lacks "
                        f"{', '.join(missing) or 'a date column'}; got {_listed(raw.columns)}")
    bars = raw[fields].set_axis(list(_OHLCV), axis=1)
    bars.index = pd.DatetimeIndex(_parse_dates(raw[date_column], path), name="date")
    return _numeric(bars.sort_index(), path)


_OHLCV = ("Open", "High", "Low", "Close", "Volume")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _FILE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "price"
    return path.stem


def _read_table(path: Path) -> pd.DataFrame:
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
    return raw


def wide_prices(raw: pd.DataFrame, *, origin: str = "the price frame",
                ticker: str = "price") -> pd.DataFrame:
    """A wide price frame (date index x tickers) from a wide, long ``(date, ticker, value)`` or
    one-ticker bar table (Open, High, Low, Close, Adj Close, Volume: the adjusted close is kept,
    in a column named ``ticker``), with the same column-name rules as files; validate it with
    :func:`validate_prices`.

    A frame that already has a ``DatetimeIndex`` and no ticker column is returned as floats.

    Raises
    ------
    DataError
        No date column; a long table without a value column; bar fields mixed with other
        columns (is it bars or one column per ticker?); a value that is not a number.
    """
    raw = _unstacked_yahoo_header(raw.copy(), origin)  # the caller's frame stays as it was
    if isinstance(raw.index, pd.DatetimeIndex):  # e.g. a parquet file written with a date index
        raw = raw.rename_axis(raw.index.name or "date").reset_index()

    by_name = {str(column).strip().lower(): column for column in raw.columns}
    date_column = _pick(by_name, _DATE_NAMES)
    if date_column is None:
        raise DataError(f"{origin} has no date column: expected one of {', '.join(_DATE_NAMES)} "
                        f"(any case) or a date index; got {_listed(raw.columns)}")
    raw[date_column] = _parse_dates(raw[date_column], origin)
    ticker_column = _pick(by_name, _TICKER_NAMES)
    fields = [name for name in by_name if name in _BAR_FIELDS]
    if ticker_column is None and fields:
        wide = _one_ticker_close(raw, by_name, date_column, fields, origin, ticker)
    elif ticker_column is None:
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


def bar_volumes(raw: pd.DataFrame, *, ticker: str = "price") -> pd.DataFrame | None:
    """The daily volumes (date index x tickers, as :func:`wide_prices` names them) of a bar
    table with a Volume column, one ticker's or long; None when ``raw`` has no volume."""
    raw = _unstacked_yahoo_header(raw.copy())
    if isinstance(raw.index, pd.DatetimeIndex):
        raw = raw.rename_axis(raw.index.name or "date").reset_index()
    by_name = {str(column).strip().lower(): column for column in raw.columns}
    date_column, volume = _pick(by_name, _DATE_NAMES), by_name.get("volume")
    if date_column is None or volume is None:
        return None
    raw[date_column] = _parse_dates(raw[date_column], "the bar table")
    ticker_column = _pick(by_name, _TICKER_NAMES)
    if ticker_column is None:
        wide = raw.set_index(date_column)[[volume]].set_axis([ticker], axis=1)
    else:
        wide = raw.pivot(index=date_column, columns=ticker_column, values=volume)
        wide.columns = [str(column) for column in wide.columns]
    return _numeric(wide.rename_axis("date").sort_index(), "the bar table")


def _one_ticker_close(raw: pd.DataFrame, by_name: dict[str, Hashable], date_column: Hashable,
                      fields: list[str], origin: str, ticker: str) -> pd.DataFrame:
    """The adjusted close (else the close) of a one-ticker bar table, as a column ``ticker``."""
    others = [by_name[name] for name in by_name
              if name not in _BAR_FIELDS and by_name[name] != date_column]
    if others:
        raise DataError(
            f"{origin} mixes bar fields ({', '.join(str(by_name[f]) for f in fields)}) with "
            f"other columns ({_listed(others)}): is it one ticker's bars or one column per "
            "ticker? keep Date, Open, High, Low, Close, Adj Close, Volume for one ticker, or "
            "write long rows (date, ticker, close)")
    close = _pick(by_name, ("adj close", "adj_close", "adjclose", "close"))
    if close is None:
        raise DataError(f"{origin} has bar fields ({', '.join(fields)}) but no Close or "
                        "Adj Close column")
    return raw.set_index(date_column)[[close]].set_axis([ticker], axis=1)


def _unstacked_yahoo_header(raw: pd.DataFrame, origin: str = "the price frame") -> pd.DataFrame:
    """The flat bar table of one ticker from yfinance's two-level columns (Price, Ticker), as a
    frame or as the three header rows ``Price,...`` / ``Ticker,...`` / ``Date,,,`` of its CSV;
    it becomes a long (date, fields..., ticker) table."""
    if isinstance(raw.columns, pd.MultiIndex) and raw.columns.nlevels == 2:
        levels = [{str(value).strip().lower() for value in raw.columns.get_level_values(i)}
                  for i in (0, 1)]
        field_level = 0 if levels[0] & set(_BAR_FIELDS) else 1
        names = list(dict.fromkeys(raw.columns.get_level_values(1 - field_level)))
        parts = [raw.xs(name, axis=1, level=1 - field_level).assign(ticker=str(name))
                 for name in names]
        return pd.concat(parts).rename_axis(raw.index.name or "date").reset_index()
    first = str(raw.columns[0]).strip().lower() if len(raw.columns) else ""
    if first != "price" or raw.empty or str(raw.iloc[0, 0]).strip().lower() != "ticker":
        return raw
    header = [str(column).split(".")[0] if i else "date"  # pandas renames repeats 'Close.1'
              for i, column in enumerate(raw.columns)]
    tickers = raw.iloc[0].tolist()
    blank = [field for field, ticker in zip(header[1:], tickers[1:], strict=True)
             if pd.isna(ticker) or not str(ticker).strip()]
    if blank:
        raise DataError(f"{origin} has yfinance's Price / Ticker header rows but no ticker "
                        f"under {', '.join(blank)}")
    body = raw.iloc[1:]
    if len(body) and str(body.iloc[0, 0]).strip().lower() == "date":
        body = body.iloc[1:]
    columns = pd.MultiIndex.from_arrays([header[1:], tickers[1:]])
    table = pd.DataFrame(body.iloc[:, 1:].to_numpy(), index=pd.Index(body.iloc[:, 0], name="date"),
                         columns=columns)
    return _unstacked_yahoo_header(table, origin)


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
