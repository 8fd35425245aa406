"""``Synthesizer``: from prices to synthetic prices in three lines.

It holds the data preparation (log returns, windows, split, scaler, regime thresholds), one
generator and the inverse transform, and saves all of it into one directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthfin.data.conditions import TRADING_DAYS
from synthfin.data.files import bar_volumes, wide_prices
from synthfin.data.returns import log_returns
from synthfin.data.validation import validate_prices
from synthfin.data.windows import WindowData, WindowSettings
from synthfin.errors import DataError, ModelError
from synthfin.evaluation.evaluate import Evaluation, evaluate_windows
from synthfin.io import atomic_write, atomic_write_json
from synthfin.jobs.config import validated
from synthfin.models import (
    ContextSampler,
    Generator,
    available_generators,
    continuing_models,
    get_generator,
)
from synthfin.scenarios.calendars import DEFAULT_CALENDAR, previous_trading_day, trading_days_after
from synthfin.scenarios.ohlcv import VOLUME_TREND_DAYS
from synthfin.scenarios.paths import Scenarios, Shock

STARTS = ("stationary", "today")  # where paths start: see the Synthesizer docstring


class Synthesizer:
    """Fit a generator on prices and sample :class:`Scenarios` of returns and prices.

    Parameters
    ----------
    model : str
        A registered generator: ``"ar"``, ``"garch"``, ``"bootstrap"``, ``"gaussian"``...
    **settings
        The window settings (the fields of :class:`~synthfin.data.windows.WindowSettings`:
        ``window_len``, ``stride``, ``split``, ``vol_lookback``, ``regime_quantiles``,
        ``gaussianize``; its defaults) and the generator's own (``epochs=``, ``gjr=``...).

    Notes
    -----
    Where paths start is one choice, ``start=``, the same for :meth:`sample`, :meth:`crash`
    and the stress tests built on them:

    - ``"stationary"`` (default): from the model's own long-run states (the autoregressive
      model's stationary states, a window model's regime draw), whatever the market is doing
      on the last real day. Paths are comparable across dates and with the stressed regime.
    - ``"today"``: continue the real history up to the last real day (the model reads its last
      days), so the paths start in today's volatility. Only models that continue a history
      offer it (:func:`continuing_models`, e.g. ``"ar"``); it takes no ``regime``.

    Dates and prices always continue from the last real day (or ``start_date`` and
    ``start_price``); :meth:`real_segments` gives the real history cut into dated paths.

    Examples
    --------
    >>> synth = sf.Synthesizer("ar").fit(sf.load_prices("bundled", tickers=["SP500"]))
    >>> scenarios = synth.sample(1000, length=252, regime="stressed", seed=0)
    >>> scenarios.prices().shape          # (1000, 253, 1), starting at the last real close
    """

    def __init__(self, model: str = "ar", **settings: Any) -> None:
        self.model = model
        window = {k: v for k, v in settings.items() if k in WindowSettings.model_fields}
        self.data_settings = validated(WindowSettings, window, "Synthesizer data settings")
        self.model_settings = {k: v for k, v in settings.items() if k not in window}
        self.generator_cls = get_generator(model)

    def fit(self, prices: pd.DataFrame, *, volume: pd.DataFrame | pd.Series | None = None,
            run_dir: str | Path | None = None, resume: bool = False) -> Synthesizer:
        """Prepare ``prices`` (wide: date index x tickers, long: date, ticker, value, or one
        ticker's bars as Yahoo writes them) and fit the generator; ``run_dir`` and ``resume``
        go to :meth:`Generator.fit`.

        ``volume`` (daily shares, a column per ticker; read from ``prices`` when it holds a
        Volume column) sets the level of sampled bars' volume: the mean of the last
        :data:`~synthfin.scenarios.ohlcv.VOLUME_TREND_DAYS` days, per asset. Without it (or when a
        file's
        volumes are zero, as Yahoo gives for currencies) bars keep the bar model's level (the
        S&P 500 index's shares).
        """
        if not isinstance(prices, pd.DataFrame):
            raise DataError(f"prices must be a DataFrame, got {type(prices).__name__}")
        volumes = bar_volumes(prices) if volume is None else pd.DataFrame(volume)
        prices = validate_prices(wide_prices(prices))
        if isinstance(volume, pd.Series) and len(prices.columns) == 1:  # read_bars(p)["Volume"]
            volumes = volume.to_frame(prices.columns[0])
        try:
            self.volume_level_ = _volume_levels(volumes, prices)
        except DataError:
            if volume is not None:
                raise
            self.volume_level_ = None  # a file's Volume of zeros (FX, some indices): no level
        self.data_ = self.data_settings.make_windows(log_returns(prices))
        self.prices_ = prices
        self.last_date_ = prices.index[-1]
        self.last_prices_ = prices.iloc[-1].to_numpy(dtype=np.float64)
        self.generator_ = self.generator_cls(**self.model_settings).fit(
            self.data_, run_dir=run_dir, resume=resume)
        return self

    @property
    def real_windows(self) -> np.ndarray:
        """Every real window (train, val, test in date order), unscaled log returns."""
        data = self._fitted()
        return data.real_windows()

    def sample(self, n: int, length: int | None = None, regime: str | None = None,
               seed: int | None = None, start_date: str | pd.Timestamp | None = None, *,
               start: str = "stationary", calendar: str = DEFAULT_CALENDAR,
               start_price: float | np.ndarray | None = None) -> Scenarios:
        """``n`` scenarios of ``length`` trading days (default: the window length) on
        ``calendar`` (an exchange such as ``"XNYS"``, ``"XLON"``, or ``"business"``) after
        ``start_date`` (default: the last real date), from ``start_price`` (default: the last
        real closes); ``regime`` is ``"calm"``, ``"normal"``, ``"stressed"`` or None;
        ``start`` is ``"stationary"`` or ``"today"`` (see the class Notes)."""
        data = self._fitted()
        sampler = self._sampler(start)
        if sampler is None:
            returns = self.generator_.sample_returns(n, condition=regime, seed=seed,
                                                     length=length)
        elif regime is not None:
            raise ModelError(f"start='today' continues the real history, which sets its own "
                             f"regime; drop regime={regime!r} or use start='stationary'")
        else:
            context = data.history()[-sampler.context_days:]
            returns = sampler.sample_after(context, n, length or data.window_len, seed=seed)
        return self._scenarios(returns, start_date, calendar, start_price, regime)

    def crash(self, n: int, length: int, *, shock: float | np.ndarray = -0.10,
              shock_day: int = 0, seed: int | None = None, start: str = "stationary",
              calendar: str = DEFAULT_CALENDAR, start_price: float | np.ndarray | None = None
              ) -> Scenarios:
        """Crash injection: every path takes the log return ``shock`` (per asset, or the same for
        all) on day ``shock_day`` (0-based) and continues with the model's own dynamics; the
        scenarios record both (``Scenarios.shock``). ``start`` as in :meth:`sample` (the class
        Notes): the days before the shock start where :meth:`sample`'s paths would, so a crash
        and plain paths of one ``start`` differ by the shock alone. Dates and start prices as
        in :meth:`sample`.

        How the model continues after the shock depends on what it can condition on:

        - models that continue a history (:func:`continuing_models`: the autoregressive
          model, GARCH, DCC, FHS, the CVAE and TimeGAN) continue from the days before (up to a
          year of their own stationary draws, or the real history) with the shock appended, so
          their volatility state reacts to the shock itself;
        - every other model draws the days after it conditioned on the regime implied by the
          trailing realized vol up to and including the shock (usually ``stressed``): the
          shock moves the regime, not a hidden state.
        """
        data = self._fitted()
        spec = self.generator_.spec_
        if not 0 <= shock_day < length:
            raise ModelError(f"shock_day must be in [0, {length}), got {shock_day}")
        if not np.isfinite(np.asarray(shock, dtype=np.float64)).all():
            raise ModelError(f"shock must be a finite log return (per asset), got {shock}")
        sampler = self._sampler(start, history_free=True)
        rng = np.random.default_rng(seed)
        seeds = rng.integers(2**62, size=3)
        shock_row = np.broadcast_to(np.asarray(shock, dtype=np.float64), (n, 1, data.n_assets))
        if start == "today":  # sampler is not None: _sampler checked it
            history = data.history()[-sampler.context_days:]
            context = np.broadcast_to(history, (n, *history.shape))
            before = (sampler.sample_after(context[0], n, shock_day, seed=seeds[0])
                      if shock_day else np.empty((n, 0, data.n_assets)))
        else:  # the model's own stationary days stand in for the history
            days = (min(sampler.context_days, TRADING_DAYS) if sampler is not None
                    else spec.vol_lookback)
            drawn = self.generator_.sample_returns(n, length=days + shock_day, seed=seeds[0])
            context, before = drawn[:, :days], drawn[:, days:]
        shocked = np.concatenate([context, before, shock_row], axis=1)
        rest = length - shock_day - 1
        if sampler is not None:
            after = (sampler.sample_after(shocked, n, rest, seed=seeds[1]) if rest
                     else np.empty((n, 0, data.n_assets)))
        else:
            regimes = spec.regime_of(spec.scaler.transform(shocked))
            after = np.empty((n, rest, data.n_assets))
            for code in np.unique(regimes) if rest else []:
                paths = np.flatnonzero(regimes == code)
                after[paths] = self.generator_.sample_returns(
                    len(paths), condition=int(code), length=rest, seed=int(seeds[2]) + int(code))
        returns = np.concatenate([before, shock_row, after], axis=1)
        return self._scenarios(returns, None, calendar, start_price, "crash",
                               Shock(tuple(shock_row[0, 0].tolist()), shock_day))

    def sample_given(self, path: pd.DataFrame | pd.Series | np.ndarray, n: int,
                     seed: int | None = None, *, assets: Sequence[str] | None = None,
                     calendar: str = DEFAULT_CALENDAR,
                     start_price: float | np.ndarray | None = None) -> Scenarios:
        """``n`` scenarios in which the given assets follow ``path`` and the others are drawn
        from the model's conditional given it (a stress test that starts from an index path:
        a replay of 2008 or 2020, or a path a risk manager draws).

        ``path`` holds log returns of the given assets: a DataFrame (dates x tickers) or a
        Series (named by its ticker) on real dates, or an array (days, k) with ``assets=``
        names (dated on the trading days after the last real date). Paths continue the real
        history before the path's first date when this Synthesizer holds it (fitted on prices,
        or loaded from a save after fit), else start from the model's stationary states. The
        scenarios are dated on the path's dates and start from the real closes of the day
        before (or the last real closes). Exact for ``ar`` when the given assets come first
        among the fitted tickers; ``dcc`` and ``fhs`` as their ``sample_given`` says.
        """
        data = self._fitted()
        sampler = getattr(self.generator_, "sample_given", None)
        if sampler is None:
            able = [name for name in available_generators()
                    if hasattr(get_generator(name), "sample_given")]
            raise ModelError(f"{self.model!r} cannot draw assets given a path of others; use "
                             f"one of {', '.join(able)}")
        if isinstance(path, pd.Series):
            path = path.to_frame()
        if isinstance(path, pd.DataFrame):
            names, values = [str(c) for c in path.columns], path.to_numpy(dtype=np.float64)
            dates = pd.DatetimeIndex(path.index)
        else:
            if assets is None:
                raise ModelError("an array path needs assets= (the given tickers)")
            names, values, dates = list(assets), np.asarray(path, dtype=np.float64), None
        context, before = None, None
        prices = getattr(self, "prices_", None)
        if prices is not None:
            first = dates[0] if dates is not None else prices.index[-1] + pd.Timedelta(days=1)
            known = prices.loc[prices.index < first]
            if len(known) >= 2:
                context = log_returns(known).to_numpy()
                before = known.index[-1]
                start = known.iloc[-1].to_numpy(dtype=np.float64)
        elif dates is None:
            context = data.history()
        returns = sampler(values, names, n, context=context, seed=seed)
        if dates is None:
            dates = trading_days_after(before or self.last_date_, len(values), calendar)
        if start_price is None:
            start_price = start if before is not None else self.last_prices_
        return Scenarios(returns, dates, list(self.generator_.spec_.assets), start_price,
                         "given", start_date=before if before is not None
                         else previous_trading_day(dates[0], calendar),
                         volume_level=getattr(self, "volume_level_", None))

    def real_segments(self, length: int) -> list[Scenarios]:
        """The real history cut into non-overlapping dated paths of ``length`` days, the last
        ending on the last real day: one single-path :class:`Scenarios` each, with its real
        dates and its real close the day before as start price (regime ``"real"``), to run a
        backtest on real and synthetic paths side by side."""
        self._fitted()
        prices = getattr(self, "prices_", None)
        if prices is None:
            raise ModelError("this Synthesizer has no real prices (built with from_parts); "
                             "fit it on prices, or load one saved after fit")
        if length < 1 or (len(prices) - 1) // length < 1:
            raise DataError(f"length must be in [1, {len(prices) - 1}] (the real history's "
                            f"days), got {length}")
        values, dates = np.log(prices.to_numpy(dtype=np.float64)), prices.index
        first = (len(prices) - 1) % length  # the start day of the first segment
        segments = []
        for lo in range(first, len(prices) - 1, length):
            returns = np.diff(values[lo:lo + length + 1], axis=0)[None]
            segments.append(Scenarios(returns, pd.DatetimeIndex(dates[lo + 1:lo + length + 1]),
                                      list(prices.columns), np.exp(values[lo]), "real",
                                      start_date=dates[lo]))
        return segments

    def _sampler(self, start: str, history_free: bool = False) -> ContextSampler | None:
        """The context sampler that ``start`` needs: the model's own with ``"today"``; with
        ``"stationary"`` None for :meth:`sample` (it draws from the stationary states) and the
        model's own, if any, for a crash (``history_free``: it continues its own draws)."""
        if start not in STARTS:
            raise ModelError(f"start must be one of {', '.join(map(repr, STARTS))}, "
                             f"got {start!r}")
        sampler = self.generator_.context_sampler()
        if start == "today" and sampler is None:
            raise ModelError(f"start='today' needs a model that continues a history "
                             f"({', '.join(continuing_models())}); {self.model!r} starts from "
                             "its stationary states only (start='stationary')")
        return sampler if start == "today" or history_free else None

    def _scenarios(self, returns: np.ndarray, start_date: str | pd.Timestamp | None,
                   calendar: str, start_price: float | np.ndarray | None,
                   regime: str | None, shock: Shock | None = None) -> Scenarios:
        dates = trading_days_after(start_date or self.last_date_, returns.shape[1], calendar)
        start = self.last_prices_ if start_price is None else start_price
        return Scenarios(returns, dates, list(self.generator_.spec_.assets), start, regime,
                         start_date=previous_trading_day(dates[0], calendar), shock=shock,
                         volume_level=getattr(self, "volume_level_", None))

    def evaluate(self, n: int = 2000, *, seed: int = 0, neural: bool = False) -> Evaluation:
        """Evaluate ``n`` unconditional windows against the in-sample (training) and the
        out-of-sample (validation + test) real windows."""
        data = self._fitted()
        samples = self.generator_.sample_returns(n, seed=seed)
        return evaluate_windows(data, {self.model: samples}, neural=neural, seed=seed)

    def save(self, directory: str | Path) -> Path:
        """``model/`` (the generator), ``data/`` (windows and metadata), ``synthesizer.json``."""
        data = self._fitted()
        directory = Path(directory)
        self.generator_.save(directory / "model")
        data.save(directory / "data")
        if getattr(self, "prices_", None) is not None:  # the dated history of real_segments
            atomic_write(directory / "prices.parquet", self.prices_.to_parquet)
        atomic_write_json(directory / "synthesizer.json", {
            "model": self.model, "data_settings": self.data_settings.model_dump(),
            "model_settings": self.model_settings, "last_date": str(self.last_date_.date()),
            "last_prices": self.last_prices_.tolist(),
            "volume_level": None if getattr(self, "volume_level_", None) is None
            else self.volume_level_.tolist()})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Synthesizer:
        """Rebuild a fitted synthesizer from :meth:`save` output, offline, without pickle."""
        directory = Path(directory)
        meta_path = directory / "synthesizer.json"
        if not meta_path.is_file():
            raise ModelError(f"{directory} is not a saved Synthesizer (no synthesizer.json)")
        meta = json.loads(meta_path.read_text())
        synth = cls(meta["model"], **meta["data_settings"], **meta["model_settings"])
        synth.generator_ = Generator.load(directory / "model")
        synth.data_ = WindowData.load(directory / "data")
        prices = directory / "prices.parquet"
        synth.prices_ = pd.read_parquet(prices) if prices.is_file() else None
        synth.last_date_ = pd.Timestamp(meta["last_date"])
        synth.last_prices_ = np.asarray(meta["last_prices"], dtype=np.float64)
        level = meta.get("volume_level")
        synth.volume_level_ = None if level is None else np.asarray(level, dtype=np.float64)
        return synth

    @classmethod
    def from_parts(cls, generator: Generator, data: WindowData,
                   start_price: float = 100.0) -> Synthesizer:
        """A synthesizer around a fitted generator and its prepared data (e.g. a pipeline's
        ``models/NAME/model`` and ``data``); paths start at ``start_price`` after the data's
        last day."""
        synth = cls(generator.name)
        synth.generator_, synth.data_, synth.prices_ = generator, data, None
        synth.volume_level_ = None
        synth.last_date_ = pd.Timestamp(data.split_dates["test"][1])
        synth.last_prices_ = np.full(data.n_assets, float(start_price))
        return synth

    def _fitted(self) -> WindowData:
        if not hasattr(self, "data_"):
            raise ModelError("the Synthesizer is not fitted; call fit(prices) or load(dir)")
        return self.data_


def _volume_levels(volumes: pd.DataFrame | None, prices: pd.DataFrame) -> np.ndarray | None:
    """Mean daily volume of each priced ticker over its last VOLUME_TREND_DAYS days, or None."""
    if volumes is None:
        return None
    absent = [ticker for ticker in prices.columns if ticker not in volumes.columns]
    if absent:
        raise DataError(f"volume has no column for {', '.join(absent)}; it has "
                        f"{', '.join(map(str, volumes.columns))}")
    recent = volumes[list(prices.columns)].reindex(prices.index).tail(VOLUME_TREND_DAYS)
    levels = recent.mean().to_numpy(dtype=np.float64)
    if not (np.isfinite(levels).all() and (levels > 0).all()):
        raise DataError(f"volume must be positive on the price dates (a date index like the "
                        f"prices'), got mean levels {levels.tolist()}")
    return levels
