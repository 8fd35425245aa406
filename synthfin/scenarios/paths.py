"""``Scenarios``: synthetic paths of returns, prices and daily bars, dated on a trading calendar.

Row conventions: ``returns`` and ``dates`` have one row per simulated day; every price-like
output (``prices()``, ``price_dates``, ``frames()``, ``to_wide("price")``) has one more row in
front, the start day (``start_date``), whose close is the start price.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthfin.data.returns import prices_from_returns
from synthfin.errors import DataError
from synthfin.io import FileReading, atomic_write, long_table
from synthfin.scenarios.calendars import BUSINESS_DAYS, trading_days_after
from synthfin.scenarios.ohlcv import FIELDS, OHLCVModel, sp500_ohlcv_model

WIDE_VALUES = ("price", "open", "high", "low", "volume", "log_return", "simple_return")


def business_days_after(last_day: pd.Timestamp | str, length: int) -> pd.DatetimeIndex:
    """``length`` business days (Mon-Fri) strictly after ``last_day``, ``freq=None``."""
    return trading_days_after(last_day, length, BUSINESS_DAYS)


@dataclass(frozen=True)
class Shock:
    """A crash injected into every path: log return ``size`` (per asset) on day ``day``."""

    size: tuple[float, ...]
    day: int


@dataclass
class Scenarios:
    """``n`` synthetic paths of daily log returns.

    Attributes
    ----------
    returns : array (n, length, assets)
        Unscaled log returns.
    dates : DatetimeIndex (length,)
        Trading days of the returns, sorted and unique.
    assets : list of str
    start_prices : array (assets,)
        Closes on ``start_date`` (by default the last real closes).
    regime : str or None
        The regime the paths were conditioned on (``"crash"`` for crash injection).
    start_date : Timestamp, optional
        The day of the start prices; by default the business day before ``dates[0]``.
    shock : Shock or None
        Size and day of an injected crash.
    bars : array (n, length + 1, assets, 5) or None
        Open, High, Low, Close, Volume from :meth:`with_ohlcv`, start row included.
    volume_level : float, array (assets,) or None
        Mean daily volume (shares) of each asset's real bars, when known (a
        :class:`~synthfin.Synthesizer` fitted on bars with a Volume column): the level of
        drawn bars. None: the bar model's own level (the S&P 500 index's shares).
    """

    returns: np.ndarray
    dates: pd.DatetimeIndex
    assets: list[str]
    start_prices: np.ndarray
    regime: str | None = None
    start_date: pd.Timestamp | None = None
    shock: Shock | None = None
    bars: np.ndarray | None = None
    volume_level: float | np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            self.start_prices = np.broadcast_to(np.asarray(self.start_prices, dtype=np.float64),
                                                (len(self.assets),)).copy()
        except ValueError:
            raise DataError(f"start prices {np.shape(self.start_prices)} do not match "
                            f"{len(self.assets)} assets") from None
        if not (np.isfinite(self.start_prices).all() and (self.start_prices > 0).all()):
            raise DataError(f"start prices must be positive and finite, got "
                            f"{self.start_prices.tolist()}")
        if self.returns.ndim != 3 or self.returns.shape[1:] != (len(self.dates),
                                                               len(self.assets)):
            raise DataError(f"returns {self.returns.shape} do not match {len(self.dates)} dates "
                            f"and {len(self.assets)} assets")
        if not (self.dates.is_monotonic_increasing and self.dates.is_unique):
            raise DataError("scenario dates must be sorted and unique")
        start = (self.dates[0] - pd.offsets.BDay(1) if self.start_date is None
                 else pd.Timestamp(self.start_date))
        if len(self.dates) and start >= self.dates[0]:
            raise DataError(f"start_date {start.date()} must come before the first date "
                            f"{self.dates[0].date()}")
        self.start_date = start
        expected = (len(self.returns), len(self.dates) + 1, len(self.assets), len(FIELDS))
        if self.bars is not None and self.bars.shape != expected:
            raise DataError(f"bars {self.bars.shape} do not match {expected}")

    def __len__(self) -> int:
        return len(self.returns)

    def __getitem__(self, paths: int | slice | Sequence[int] | np.ndarray) -> Scenarios:
        """A subset of paths (an int keeps one path), with dates and metadata kept."""
        if isinstance(paths, (int, np.integer)):
            paths = [int(paths)]
        index = np.arange(len(self))[paths]
        return dataclasses.replace(
            self, returns=self.returns[index],
            bars=None if self.bars is None else self.bars[index])

    @classmethod
    def concat(cls, parts: Sequence[Scenarios]) -> Scenarios:
        """Paths of several sets of the same scenario (same dates, assets, start, regime and
        shock) in one set; bars are kept when every part has them."""
        if not parts:
            raise DataError("give at least one Scenarios to concat")
        first = parts[0]
        for part in parts[1:]:
            for field in ("regime", "shock", "start_date"):
                if getattr(part, field) != getattr(first, field):
                    raise DataError(f"cannot concat scenarios with different {field}: "
                                    f"{getattr(first, field)!r} and {getattr(part, field)!r}; "
                                    "keep them as separate sets (a dict for stress_test)")
            if not (part.dates.equals(first.dates) and part.assets == first.assets
                    and np.array_equal(part.start_prices, first.start_prices)):
                raise DataError("cannot concat scenarios with different dates, assets or "
                                "start prices")
            if (part.bars is None) != (first.bars is None):
                raise DataError("cannot concat scenarios of which only some have bars; call "
                                "with_ohlcv on all of them or on none")
        bars = None if first.bars is None else np.concatenate([p.bars for p in parts])
        return dataclasses.replace(first, returns=np.concatenate([p.returns for p in parts]),
                                   bars=bars)

    @property
    def price_dates(self) -> pd.DatetimeIndex:
        """``start_date`` followed by ``dates``: the rows of :meth:`prices` and the frames."""
        return self.dates.insert(0, self.start_date).rename("date")

    def prices(self, start: float | np.ndarray | None = None) -> np.ndarray:
        """Price paths (n, length + 1, assets) from ``start`` (default: ``start_prices``);
        row 0 is the start price on ``start_date``, dated by :attr:`price_dates`."""
        return prices_from_returns(self.returns, self.start_prices if start is None else start)

    def simple_returns(self) -> np.ndarray:
        """``P_t / P_{t-1} - 1 = exp(r_t) - 1``, shape (n, length, assets)."""
        return np.expm1(self.returns)

    def with_ohlcv(self, model: OHLCVModel | None = None, *, seed: int | None = None,
                   volume_level: float | None = None) -> Scenarios:
        """A copy carrying Open/High/Low/Close/Volume bars from ``model`` (default:
        :func:`synthfin.scenarios.ohlcv.sp500_ohlcv_model`) around these closes; volume at
        ``volume_level`` shares a day (default: :attr:`volume_level`, else the model's)."""
        model = model or sp500_ohlcv_model()
        level = self.volume_level if volume_level is None else volume_level
        bars = model.sample(self.returns, self.start_prices, seed=seed, volume_level=level)
        return dataclasses.replace(self, bars=bars)

    def frames(self, ohlcv: bool = True, *, seed: int = 0,
               asset: str | None = None) -> Iterator[pd.DataFrame]:
        """One DataFrame per path, indexed by :attr:`price_dates` (start row included).

        ``ohlcv=True``: columns Open, High, Low, Close, Volume (backtesting.py's names) for one
        asset (or the one named by ``asset``), ``(asset, field)`` for several; the bars are
        this object's, or drawn from the default model with ``seed`` when it has none.
        ``ohlcv=False``: one close column per asset (a portfolio tool such as skfolio takes
        these columns as its assets; :meth:`to_wide`'s columns are paths, not assets).

        backtesting.py trades one asset in whole units: give ``Backtest`` a ``cash=`` of some
        thousand start prices (``stress_test`` uses 10,000) or use
        ``backtesting.lib.FractionalBacktest``, else at index price levels much of the cash
        stays idle.
        """
        index = self.price_dates
        if asset is not None:
            if asset not in self.assets:
                raise DataError(f"asset={asset!r} is not in these scenarios "
                                f"({', '.join(self.assets)})")
            one = self.assets.index(asset)
            bars = None if self.bars is None else self.bars[:, :, one:one + 1]
            level = (self.volume_level if np.ndim(self.volume_level) == 0
                     else np.asarray(self.volume_level)[one])
            yield from dataclasses.replace(
                self, returns=self.returns[:, :, one:one + 1], assets=[asset],
                start_prices=self.start_prices[one:one + 1], bars=bars,
                volume_level=level).frames(ohlcv, seed=seed)
            return
        if not ohlcv:
            for path in self.prices():
                yield pd.DataFrame(path, index=index, columns=self.assets)
            return
        bars = self._bars(seed)
        columns = (pd.Index(FIELDS) if len(self.assets) == 1 else
                   pd.MultiIndex.from_product([self.assets, FIELDS], names=["asset", "field"]))
        for path in bars:
            yield pd.DataFrame(path.reshape(len(index), -1), index=index, columns=columns)

    def to_wide(self, values: str = "price", *, seed: int = 0) -> pd.DataFrame:
        """Dates x paths: ``values`` is ``"price"`` (close), ``"open"``, ``"high"``, ``"low"``,
        ``"volume"`` (rows :attr:`price_dates`) or ``"log_return"``, ``"simple_return"``
        (rows ``dates``). Columns are the path numbers, or a ``(path, asset)`` MultiIndex for
        several assets. Bars come as in :meth:`frames`."""
        if values not in WIDE_VALUES:
            raise DataError(f"values must be one of {', '.join(WIDE_VALUES)}, got {values!r}")
        if values.endswith("return"):
            cube = self.returns if values == "log_return" else self.simple_returns()
            index = self.dates
        else:
            field = FIELDS.index(values.capitalize() if values != "price" else "Close")
            cube = self.prices() if values == "price" else self._bars(seed)[..., field]
            index = self.price_dates
        n, days, n_assets = cube.shape
        columns = (pd.RangeIndex(n, name="path") if n_assets == 1 else
                   pd.MultiIndex.from_product([range(n), self.assets], names=["path", "asset"]))
        return pd.DataFrame(cube.transpose(1, 0, 2).reshape(days, n * n_assets), index=index,
                            columns=columns)

    def to_frame(self, start: float | np.ndarray | None = None, *,
                 returns: str = "log") -> pd.DataFrame:
        """Long table: ``path, date, asset, return, price`` (price after that day's return);
        ``returns="simple"`` gives ``P_t / P_{t-1} - 1`` instead of log returns."""
        if returns not in ("log", "simple"):
            raise DataError(f"returns must be 'log' or 'simple', got {returns!r}")
        values = self.returns if returns == "log" else self.simple_returns()
        return long_table(values, self.assets, ("date", self.dates),
                          values={"price": self.prices(start)[:, 1:]}).to_pandas()

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description: assets, start, regime, shock (size, day, date), volume
        level."""
        shock = None if self.shock is None else {
            "size": list(self.shock.size), "day": self.shock.day,
            "date": str(self.dates[self.shock.day].date())}
        level = None if self.volume_level is None else np.asarray(self.volume_level).tolist()
        return {"assets": list(self.assets), "start_date": str(self.start_date.date()),
                "start_prices": self.start_prices.tolist(), "regime": self.regime,
                "shock": shock, "volume_level": level}

    def to_parquet(self, path: str | Path) -> Path:
        """Write :meth:`to_frame` as parquet, atomically; :meth:`metadata` is stored in the
        file (``pd.read_parquet(path).attrs["synthfin"]``, a JSON string)."""
        frame = self.to_frame()
        frame.attrs["synthfin"] = json.dumps(self.metadata())
        return atomic_write(path, frame.to_parquet)

    def save(self, path: str | Path) -> Path:
        """Everything (returns, dates, bars, metadata) in one ``.safetensors`` file."""
        from safetensors.numpy import save_file

        arrays = {"returns": np.ascontiguousarray(self.returns, dtype=np.float64),
                  "dates": self.dates.to_numpy("datetime64[ns]").astype(np.int64)}
        if self.bars is not None:
            arrays["bars"] = np.ascontiguousarray(self.bars)
        meta = {"synthfin": json.dumps(self.metadata())}
        return atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> Scenarios:
        """Read :meth:`save` output (no pickle)."""

        from safetensors import safe_open

        path = Path(path)
        with FileReading(DataError, "write it again with Scenarios.save") as reading:
            reading.file = path
            with safe_open(str(path), framework="numpy") as handle:
                meta = json.loads((handle.metadata() or {}).get("synthfin", "null"))
                arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            if not isinstance(meta, dict):
                raise DataError("not a file written by Scenarios.save (no synthfin metadata)")
            shock = None if meta["shock"] is None else Shock(tuple(meta["shock"]["size"]),
                                                             meta["shock"]["day"])
            return cls(arrays["returns"], pd.DatetimeIndex(
                arrays["dates"].astype("datetime64[ns]"), name="date"), meta["assets"],
                np.asarray(meta["start_prices"]), meta["regime"],
                pd.Timestamp(meta["start_date"]), shock, arrays.get("bars"),
                meta.get("volume_level"))

    def _bars(self, seed: int) -> np.ndarray:
        return self.bars if self.bars is not None else self.with_ohlcv(seed=seed).bars
