"""Training windows pooled across the bundled universe, for pretraining a window model.

A single series has a few thousand overlapping windows, too few for a deep model to learn
volatility clustering (on a short history it learns almost none). Pooled pretraining shows it the
training windows of all bundled series, each in units of its own training volatility and
conditioned on its own regimes and standardized log vol, before it fine-tunes on the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.conditions import WindowConditions
from synthfin.data.universe import bundled_universe
from synthfin.data.windows import WindowData
from synthfin.errors import ConfigError, DataError


def pooled_training_windows(data: WindowData, tickers: Sequence[str] = BUNDLED_TICKERS
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows (n, window_len, 1), regime codes (n,) and standardized log realized vols (n,) of
    the bundled series' training splits, cut like ``data`` (window length, stride, vol lookback,
    regime quantiles).

    Only windows that start on or before ``data``'s last training window are kept, so nothing
    after the target's training days is seen (the bundled series share one calendar).
    """
    if data.n_assets != 1:
        raise ConfigError(f"pooled pretraining needs a single-asset series; the data has "
                          f"{data.n_assets} assets ({data.assets}); set pretrain_epochs=0")
    universe = bundled_universe(tickers, window_len=data.window_len, stride=data.stride,
                                vol_lookback=data.vol_lookback,
                                regime_quantiles=data.regimes.quantiles)
    last_start = data.train.start_dates[-1]
    windows, regimes, log_vol = [], [], []
    for series in universe.values():
        train = series.train
        if len(series.regimes.names) != len(data.regimes.names):
            raise DataError(f"the pooled series have {len(series.regimes.names)} regimes, the "
                            f"target {len(data.regimes.names)}")
        keep = np.asarray(train.start_dates <= last_start)
        conditions = WindowConditions(train.regimes, train.realized_vol)
        windows.append(train.windows[keep])
        regimes.append(train.regimes[keep])
        log_vol.append(conditions.standardize(train.realized_vol[keep]))
    if sum(len(w) for w in windows) == 0:
        raise DataError(f"no bundled training window starts on or before {last_start.date()}, "
                        "the target's last training window; pretraining has nothing to learn")
    return np.concatenate(windows), np.concatenate(regimes), np.concatenate(log_vol)
