"""The bundled real daily closes: the S&P 500 index (1990-01-02 to 2022-12-28) and 20 stocks."""

from __future__ import annotations

from importlib.resources import as_file, files

import pandas as pd

from synthfin.data.validation import (
    _naive_dates,
)
from synthfin.errors import DataError

BUNDLED_TICKERS: tuple[str, ...] = (
    "SP500", "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
)
_INDEX_FILE = "sp500_index.csv.gz"  # Date, SP500
_STOCKS_FILE = "sp500_dataset.csv.gz"  # Date + the 20 stocks


def read_bundled(tickers: list[str]) -> pd.DataFrame:
    """Closes of the bundled ``tickers`` (see :data:`BUNDLED_TICKERS`), date index."""
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
