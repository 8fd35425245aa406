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

from synthfin.calendars import DEFAULT_CALENDAR, previous_trading_day, trading_days_after
from synthfin.config import WindowSettings, validated
from synthfin.data.files import wide_prices
from synthfin.data.returns import log_returns
from synthfin.data.validation import validate_prices
from synthfin.data.windows import WindowData
from synthfin.errors import DataError, ModelError
from synthfin.evaluation.evaluate import Evaluation, evaluate_windows
from synthfin.io import atomic_write_json
from synthfin.models import Generator, get_generator
from synthfin.scenarios import Scenarios, Shock


class Synthesizer:
    """Fit a generator on prices and sample :class:`Scenarios` of returns and prices.

    Parameters
    ----------
    model : str
        A registered generator: ``"ar"``, ``"garch"``, ``"bootstrap"``, ``"gaussian"``...
    window_len, stride, split, vol_lookback, regime_quantiles, gaussianize
        Data preparation, as in :func:`synthfin.make_windows`.
    **model_settings
        The generator's own settings (``epochs=``, ``gjr=``, ``device=``...).

    Examples
    --------
    >>> synth = sf.Synthesizer("ar").fit(sf.load_prices("bundled", tickers=["SP500"]))
    >>> scenarios = synth.sample(1000, length=252, regime="stressed", seed=0)
    >>> scenarios.prices().shape          # (1000, 253, 1), starting at the last real close
    """

    def __init__(self, model: str = "ar", *, window_len: int = 64, stride: int = 1,
                 split: Sequence[float] | Sequence[str] = (0.7, 0.15, 0.15),
                 vol_lookback: int = 21, regime_quantiles: Sequence[float] = (0.25, 0.75),
                 gaussianize: bool = False, **model_settings: Any) -> None:
        self.model = model
        self.data_settings = validated(WindowSettings, {
            "window_len": window_len, "stride": stride, "split": list(split),
            "vol_lookback": vol_lookback, "regime_quantiles": list(regime_quantiles),
            "gaussianize": gaussianize}, "Synthesizer data settings")
        self.model_settings = model_settings
        self.generator_cls = get_generator(model)

    def fit(self, prices: pd.DataFrame, *, run_dir: str | Path | None = None,
            resume: bool = False) -> Synthesizer:
        """Prepare ``prices`` (wide: date index x tickers, or long: date, ticker, value) and fit
        the generator; ``run_dir`` and ``resume`` go to :meth:`Generator.fit`."""
        if not isinstance(prices, pd.DataFrame):
            raise DataError(f"prices must be a DataFrame, got {type(prices).__name__}")
        prices = validate_prices(wide_prices(prices))
        self.data_ = self.data_settings.make_windows(log_returns(prices))
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
               calendar: str = DEFAULT_CALENDAR, start_price: float | np.ndarray | None = None
               ) -> Scenarios:
        """``n`` scenarios of ``length`` trading days (default: the window length) on
        ``calendar`` (an exchange such as ``"XNYS"``, ``"XLON"``, or ``"business"``) after
        ``start_date`` (default: the last real date), from ``start_price`` (default: the last
        real closes); ``regime`` is ``"calm"``, ``"normal"``, ``"stressed"`` or None."""
        self._fitted()
        returns = self.generator_.sample_returns(n, condition=regime, seed=seed, length=length)
        return self._scenarios(returns, start_date, calendar, start_price, regime)

    def crash(self, n: int, length: int, *, shock: float | np.ndarray = -0.10,
              shock_day: int = 0, seed: int | None = None, calendar: str = DEFAULT_CALENDAR,
              start_price: float | np.ndarray | None = None) -> Scenarios:
        """Crash injection: every path takes the log return ``shock`` (per asset, or the same for
        all) on day ``shock_day`` (0-based) and continues with the model's own dynamics; the
        scenarios record both (``Scenarios.shock``). Dates and start prices as in :meth:`sample`.

        How the model continues depends on what it can condition on:

        - models that continue a history (:meth:`Generator.context_sampler`: the
          autoregressive model) draw the
          days before the shock after the real history, then continue from that history
          with the shock appended, so their volatility state reacts to the shock itself;
        - every other model draws the days before the shock unconditionally and the days after
          it conditioned on the regime implied by the trailing realized vol up to and including
          the shock (usually ``stressed``): the shock moves the regime, not a hidden state.
        """
        data = self._fitted()
        spec = self.generator_.spec_
        if not 0 <= shock_day < length:
            raise ModelError(f"shock_day must be in [0, {length}), got {shock_day}")
        if not np.isfinite(np.asarray(shock, dtype=np.float64)).all():
            raise ModelError(f"shock must be a finite log return (per asset), got {shock}")
        rng = np.random.default_rng(seed)
        seeds = rng.integers(2**62, size=3)
        shock_row = np.broadcast_to(np.asarray(shock, dtype=np.float64), (n, 1, data.n_assets))
        sampler = self.generator_.context_sampler()
        days = sampler.context_days if sampler is not None else spec.vol_lookback
        context = data.history()[-days:]
        context = np.broadcast_to(context, (n, *context.shape))
        rest = length - shock_day - 1
        if sampler is not None:
            before = (sampler.sample_after(context[0], n, shock_day, seed=seeds[0])
                      if shock_day else np.empty((n, 0, data.n_assets)))
            shocked = np.concatenate([context, before, shock_row], axis=1)
            after = (sampler.sample_after(shocked, n, rest, seed=seeds[1]) if rest
                     else np.empty((n, 0, data.n_assets)))
        else:
            before = (self.generator_.sample_returns(n, length=shock_day, seed=seeds[0])
                      if shock_day else np.empty((n, 0, data.n_assets)))
            shocked = np.concatenate([context, before, shock_row], axis=1)
            regimes = spec.regime_of(spec.scaler.transform(shocked))
            after = np.empty((n, rest, data.n_assets))
            for code in np.unique(regimes) if rest else []:
                paths = np.flatnonzero(regimes == code)
                after[paths] = self.generator_.sample_returns(
                    len(paths), condition=int(code), length=rest, seed=int(seeds[2]) + int(code))
        returns = np.concatenate([before, shock_row, after], axis=1)
        return self._scenarios(returns, None, calendar, start_price, "crash",
                               Shock(tuple(shock_row[0, 0].tolist()), shock_day))

    def _scenarios(self, returns: np.ndarray, start_date: str | pd.Timestamp | None,
                   calendar: str, start_price: float | np.ndarray | None,
                   regime: str | None, shock: Shock | None = None) -> Scenarios:
        dates = trading_days_after(start_date or self.last_date_, returns.shape[1], calendar)
        start = self.last_prices_ if start_price is None else start_price
        return Scenarios(returns, dates, list(self.generator_.spec_.assets), start, regime,
                         start_date=previous_trading_day(dates[0], calendar), shock=shock)

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
        atomic_write_json(directory / "synthesizer.json", {
            "model": self.model, "data_settings": self.data_settings.model_dump(),
            "model_settings": self.model_settings, "last_date": str(self.last_date_.date()),
            "last_prices": self.last_prices_.tolist()})
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
        synth.last_date_ = pd.Timestamp(meta["last_date"])
        synth.last_prices_ = np.asarray(meta["last_prices"], dtype=np.float64)
        return synth

    @classmethod
    def from_parts(cls, generator: Generator, data: WindowData,
                   start_price: float = 100.0) -> Synthesizer:
        """A synthesizer around a fitted generator and its prepared data (e.g. a pipeline's
        ``models/NAME/model`` and ``data``); paths start at ``start_price`` after the data's
        last day."""
        synth = cls(generator.name)
        synth.generator_, synth.data_ = generator, data
        synth.last_date_ = pd.Timestamp(data.split_dates["test"][1])
        synth.last_prices_ = np.full(data.n_assets, float(start_price))
        return synth

    def _fitted(self) -> WindowData:
        if not hasattr(self, "data_"):
            raise ModelError("the Synthesizer is not fitted; call fit(prices) or load(dir)")
        return self.data_
