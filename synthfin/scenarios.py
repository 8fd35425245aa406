"""``Scenarios``: synthetic paths of returns and prices with business-day dates and asset names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synthfin.data.returns import prices_from_returns
from synthfin.errors import DataError
from synthfin.io import atomic_write


def business_days_after(last_day: pd.Timestamp | str, length: int) -> pd.DatetimeIndex:
    """``length`` business days (Mon-Fri) strictly after ``last_day``: sorted and unique."""
    return pd.bdate_range(pd.Timestamp(last_day) + pd.offsets.BDay(1), periods=length,
                          name="date")


@dataclass
class Scenarios:
    """``n`` synthetic paths of daily log returns.

    Attributes
    ----------
    returns : array (n, length, assets)
        Unscaled log returns.
    dates : DatetimeIndex (length,)
        Business days of the paths, sorted and unique.
    assets : list of str
    start_prices : array (assets,)
        Prices on the day before ``dates[0]`` (by default the last real closes).
    regime : str or None
        The regime the paths were conditioned on.
    """

    returns: np.ndarray
    dates: pd.DatetimeIndex
    assets: list[str]
    start_prices: np.ndarray
    regime: str | None = None

    def __post_init__(self) -> None:
        if self.returns.ndim != 3 or self.returns.shape[1:] != (len(self.dates),
                                                               len(self.assets)):
            raise DataError(f"returns {self.returns.shape} do not match {len(self.dates)} dates "
                            f"and {len(self.assets)} assets")
        if not (self.dates.is_monotonic_increasing and self.dates.is_unique):
            raise DataError("scenario dates must be sorted and unique")

    def __len__(self) -> int:
        return len(self.returns)

    def prices(self, start: float | np.ndarray | None = None) -> np.ndarray:
        """Price paths (n, length + 1, assets) from ``start`` (default: ``start_prices``);
        the first step is the start price on the day before ``dates[0]``."""
        return prices_from_returns(self.returns, self.start_prices if start is None else start)

    def to_frame(self, start: float | np.ndarray | None = None) -> pd.DataFrame:
        """Long table: ``path, date, asset, return, price`` (price after that day's return)."""
        n, length, n_assets = self.returns.shape
        paths, steps, assets = np.meshgrid(np.arange(n), np.arange(length), np.arange(n_assets),
                                           indexing="ij")
        return pd.DataFrame({
            "path": paths.ravel(), "date": self.dates[steps.ravel()],
            "asset": np.asarray(self.assets)[assets.ravel()], "return": self.returns.ravel(),
            "price": self.prices(start)[:, 1:].ravel()})

    def to_parquet(self, path: str | Path) -> Path:
        """Write :meth:`to_frame` as parquet, atomically."""
        return atomic_write(path, self.to_frame().to_parquet)
