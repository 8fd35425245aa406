"""Model-ready windows: ``WindowData`` with a chronological train / val / test split.

Returns are cut into the three splits by date first; windows are then taken inside each split only,
so no window straddles a boundary and no training window shares a day with a validation one. The
scaler and the regime thresholds are fitted on the training split alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from synthfin.data.conditions import RegimeModel, trailing_realized_vol
from synthfin.data.scaling import ReturnScaler
from synthfin.errors import DataError
from synthfin.io import FileReading, atomic_directory, atomic_write_json, recover_directory

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class WindowSplit:
    """Windows of one chronological split.

    Attributes
    ----------
    windows : array (n, window_len, assets)
        Scaled log returns.
    start_dates : DatetimeIndex (n,)
        Date of the first return of each window.
    regimes : int array (n,)
        Regime code from the realized vol of the ``vol_lookback`` days before each window.
    realized_vol : array (n,)
        That annualized realized vol (unscaled returns).
    returns : array (days, assets)
        The split's contiguous scaled returns the windows are cut from (for models that fit a
        series, such as GARCH, and for block bootstraps).
    """

    windows: np.ndarray
    start_dates: pd.DatetimeIndex
    regimes: np.ndarray
    realized_vol: np.ndarray
    returns: np.ndarray

    def __len__(self) -> int:
        return len(self.windows)


@dataclass
class WindowData:
    """Scaled windows of log returns with everything needed to undo the scaling and condition."""

    train: WindowSplit
    val: WindowSplit
    test: WindowSplit
    assets: list[str]
    window_len: int
    stride: int
    vol_lookback: int
    scaler: ReturnScaler
    regimes: RegimeModel
    split_dates: dict[str, list[str]]

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    def split(self, name: str) -> WindowSplit:
        if name not in SPLIT_NAMES:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def day_regimes(self, name: str = "train") -> np.ndarray:
        """Regime code of each day of a split's ``returns`` from the trailing vol of that split's
        own earlier days; -1 for the first ``vol_lookback`` days, whose vol is not observed."""
        vol = trailing_realized_vol(self.unscale(self.split(name).returns), self.vol_lookback)
        codes = np.full(len(vol), -1)
        known = np.isfinite(vol)
        codes[known] = self.regimes.label(vol[known])
        return codes

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """Unscaled log returns from scaled windows (n, length, assets)."""
        return self.scaler.inverse(scaled)

    def real_windows(self, *splits: str) -> np.ndarray:
        """Unscaled windows of the named splits (default: all three), in date order."""
        names = splits or SPLIT_NAMES
        return self.unscale(np.concatenate([self.split(name).windows for name in names]))

    def history(self) -> np.ndarray:
        """The whole unscaled return history (days, assets): train, val and test days."""
        return self.unscale(np.concatenate([self.split(name).returns for name in SPLIT_NAMES]))

    def summary(self) -> pd.DataFrame:
        """One row per split: dates, days, windows and the count of each regime."""
        rows = []
        for name in SPLIT_NAMES:
            part = self.split(name)
            counts = np.bincount(part.regimes, minlength=len(self.regimes.names))
            first, last = self.split_dates[name]
            rows.append({"split": name, "first_day": first, "last_day": last,
                         "days": len(part.returns), "windows": len(part),
                         **dict(zip(self.regimes.names, counts.tolist(), strict=True))})
        return pd.DataFrame(rows).set_index("split")

    def metadata(self) -> dict[str, Any]:
        """JSON-serializable description: assets, split dates, scaler state, regime thresholds."""
        return {
            "assets": self.assets, "window_len": self.window_len, "stride": self.stride,
            "vol_lookback": self.vol_lookback, "split_dates": self.split_dates,
            "scaler": self.scaler.to_dict(), "regimes": self.regimes.to_dict(),
        }

    def fingerprint(self) -> str:
        """SHA-256 of the metadata and every array: equal fingerprints mean equal data."""
        digest = hashlib.sha256(json.dumps(self.metadata(), sort_keys=True).encode())
        for name, array in sorted(self._arrays().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def save(self, directory: str | Path) -> Path:
        """Write ``windows.npz`` (arrays, no pickle) and ``meta.json`` into a folder, as a unit
        (:func:`~synthfin.io.atomic_directory`)."""
        directory = Path(directory)
        with atomic_directory(directory) as temp:
            np.savez(temp / "windows.npz", **self._arrays())
            atomic_write_json(temp / "meta.json", {**self.metadata(),
                                                   "fingerprint": self.fingerprint()})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> WindowData:
        """Read a folder written by :meth:`save` (``allow_pickle=False``), checked against the
        fingerprint saved with it: a hand-edited or mixed folder is a :class:`DataError`."""
        directory = Path(directory)
        recover_directory(directory)
        meta_path, npz_path = directory / "meta.json", directory / "windows.npz"
        if not meta_path.is_file() or not npz_path.is_file():
            raise DataError(f"{directory} is not a prepared data set (needs meta.json and "
                            f"windows.npz); create one with `synthfin prepare --out {directory}`")
        hint = f"prepare the data again with `synthfin prepare --out {directory}`"
        with FileReading(DataError, hint) as reading:
            reading.file = meta_path
            meta = json.loads(meta_path.read_text())
            reading.file = npz_path
            with np.load(npz_path, allow_pickle=False) as arrays:
                splits = {name: WindowSplit(
                    windows=arrays[f"{name}_windows"],
                    start_dates=pd.DatetimeIndex(arrays[f"{name}_start_dates"]),
                    regimes=arrays[f"{name}_regimes"],
                    realized_vol=arrays[f"{name}_realized_vol"],
                    returns=arrays[f"{name}_returns"]) for name in SPLIT_NAMES}
            reading.file = meta_path
            data = cls(**splits, assets=list(meta["assets"]),
                       window_len=int(meta["window_len"]), stride=int(meta["stride"]),
                       vol_lookback=int(meta["vol_lookback"]),
                       scaler=ReturnScaler.from_dict(meta["scaler"]),
                       regimes=RegimeModel.from_dict(meta["regimes"]),
                       split_dates={k: list(v) for k, v in meta["split_dates"].items()})
        if meta.get("fingerprint") != data.fingerprint():  # edited or mixed by hand
            raise DataError(f"{directory} was changed after it was prepared (its meta.json and "
                            "windows.npz no longer match the fingerprint written with them); "
                            + hint)
        return data

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name in SPLIT_NAMES:
            part = self.split(name)
            arrays.update({f"{name}_windows": part.windows,
                           f"{name}_start_dates": part.start_dates.to_numpy("datetime64[ns]"),
                           f"{name}_regimes": part.regimes, f"{name}_realized_vol":
                           part.realized_vol, f"{name}_returns": part.returns})
        return arrays


def _split_bounds(dates: pd.DatetimeIndex, split: Sequence[float] | Sequence[str]) -> list[int]:
    """Row indices ``[0, train_end, val_end, n]`` from fractions or from two boundary dates."""
    if len(split) == 3 and all(isinstance(s, (int, float)) for s in split):
        fractions = np.asarray(split, dtype=np.float64)
        if (fractions < 0).any() or fractions[0] <= 0 or not np.isclose(fractions.sum(), 1.0):
            raise DataError(f"split fractions must be >= 0, train > 0, and sum to 1, got {split}")
        cuts = np.round(np.cumsum(fractions)[:2] * len(dates)).astype(int)
    elif len(split) == 2:
        boundaries = pd.to_datetime(list(split))
        if boundaries[0] >= boundaries[1]:
            raise DataError(f"split dates must increase (train end < val end), got {list(split)}")
        cuts = dates.searchsorted(boundaries, side="right")
    else:
        raise DataError("split must be 3 fractions (train, val, test) or 2 dates "
                        f"(last train day, last val day), got {split}")
    return [0, int(cuts[0]), int(cuts[1]), len(dates)]


class WindowSettings(BaseModel):
    """How returns become windows (:func:`make_windows`): the one place of their defaults.
    ``window_len`` is spelled ``window`` in a pipeline YAML and on the command line; dump
    with ``by_alias=True`` for that spelling."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    window_len: int = Field(64, ge=2, alias="window")
    stride: int = Field(1, ge=1)
    split: list[float] | list[str] = [0.7, 0.15, 0.15]
    vol_lookback: int = Field(21, ge=2)
    regime_quantiles: list[float] = [0.25, 0.75]
    gaussianize: bool = False

    def make_windows(self, returns: pd.DataFrame) -> WindowData:
        """Windows of ``returns`` (date index x assets) with these settings."""
        return make_windows(returns, self.window_len, stride=self.stride, split=self.split,
                            vol_lookback=self.vol_lookback,
                            regime_quantiles=self.regime_quantiles, gaussianize=self.gaussianize)


DEFAULT_WINDOWS = WindowSettings()


def make_windows(returns: pd.DataFrame, window_len: int = DEFAULT_WINDOWS.window_len, *,
                 stride: int = DEFAULT_WINDOWS.stride,
                 split: Sequence[float] | Sequence[str] = tuple(DEFAULT_WINDOWS.split),
                 vol_lookback: int = DEFAULT_WINDOWS.vol_lookback,
                 regime_quantiles: Sequence[float] = tuple(DEFAULT_WINDOWS.regime_quantiles),
                 gaussianize: bool = DEFAULT_WINDOWS.gaussianize) -> WindowData:
    """Cut log returns into scaled, regime-labelled windows with a chronological split.

    Parameters
    ----------
    returns : DataFrame
        Unscaled log returns (DatetimeIndex x assets), e.g. from :func:`log_returns`.
    window_len : int
        Days per window.
    stride : int
        Days between the starts of consecutive windows (1 = every day).
    split : 3 fractions or 2 dates
        ``(train, val, test)`` fractions of the days, or the last day of train and of val.
    vol_lookback : int
        Trailing days of the realized vol that labels each window's regime. The first training
        window starts after this many days, so its condition is fully observed.
    regime_quantiles : sequence of float
        Training-vol quantiles separating calm / normal / stressed.
    gaussianize : bool
        Also remove heavy tails with the Lambert W transform (see :class:`ReturnScaler`).
    """
    if window_len < 2 or stride < 1:
        raise DataError(f"window_len must be >= 2 and stride >= 1, got {window_len}, {stride}")
    if returns.isna().to_numpy().any():
        raise DataError("returns contain NaN; build them with log_returns on validated prices")
    values = returns.to_numpy(dtype=np.float64)
    bounds = _split_bounds(returns.index, split)
    train_days = bounds[1] - vol_lookback
    if train_days < window_len + 2:
        raise DataError(
            f"history too short: the training split has {bounds[1]} days but window {window_len} "
            f"after a {vol_lookback}-day vol look-back needs at least "
            f"{window_len + vol_lookback + 2}; use an earlier start date, a larger train "
            "fraction or a shorter window")
    scaler = ReturnScaler(gaussianize=gaussianize).fit(values[:bounds[1]])
    scaled = scaler.transform(values)
    vol = trailing_realized_vol(values, vol_lookback)
    regimes = RegimeModel(regime_quantiles).fit(vol[vol_lookback:bounds[1]])
    splits, split_dates = {}, {}
    for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:], strict=True):
        starts = np.arange(max(lo, vol_lookback), hi - window_len + 1, stride)
        if len(starts) == 0:
            raise DataError(f"the {name} split has {hi - lo} days, fewer than one window of "
                            f"{window_len}; give it a larger share of the history or shorten "
                            "the window")
        steps = starts[:, None] + np.arange(window_len)
        splits[name] = WindowSplit(
            windows=scaled[steps],
            start_dates=returns.index[starts], regimes=regimes.label(vol[starts]),
            realized_vol=vol[starts], returns=scaled[lo:hi])
        split_dates[name] = [d.strftime("%Y-%m-%d") for d in returns.index[[lo, hi - 1]]]
    return WindowData(**splits, assets=[str(c) for c in returns.columns], window_len=window_len,
                      stride=stride, vol_lookback=vol_lookback, scaler=scaler, regimes=regimes,
                      split_dates=split_dates)
